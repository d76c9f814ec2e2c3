// Placeholder: being written (issue 3).
import { defineModule } from '../../core/modules/define.ts';

export default defineModule({
  name: 'presence',
  defaultEnabled: true,
  setup() {},
});
