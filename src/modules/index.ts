// The modules that ship with Amsel. Each is enabled per its `defaultEnabled` unless the
// config's `modules` section says otherwise.
import type { ModuleDefinition } from '../core/modules/define.ts';
import disco from './disco/index.ts';
import ping from './ping/index.ts';

export const builtinModules: readonly ModuleDefinition[] = [disco, ping] as ModuleDefinition[];
