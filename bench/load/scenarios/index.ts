// The scenarios by name.
import { aging } from './aging.ts';
import { chat } from './chat.ts';
import type { Scenario } from './common.ts';
import { idle } from './idle.ts';
import { login } from './login.ts';
import { roster } from './roster.ts';

export { aging, chat, idle, login, roster };
export { rosterProvision } from './roster.ts';
export { BENCH_PASSWORD, userName, withDefaults, type Params, type Scenario } from './common.ts';

export const scenarios: Record<string, Scenario<any>> = { login, idle, chat, roster, aging };
