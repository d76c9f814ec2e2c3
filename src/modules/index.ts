// The modules that ship with Amsel. Each is enabled per its `defaultEnabled` unless the
// config's `modules` section says otherwise.
import type { ModuleDefinition } from '../core/modules/define.ts';
import account from './account/index.ts';
import caps from './caps/index.ts';
import disco from './disco/index.ts';
import last from './last/index.ts';
import offline from './offline/index.ts';
import ping from './ping/index.ts';
import presence from './presence/index.ts';
import privateStorage from './private/index.ts';
import roster from './roster/index.ts';
import time from './time/index.ts';
import version from './version/index.ts';

export const builtinModules: readonly ModuleDefinition[] = [
  disco, ping, roster, presence, offline, caps, account, privateStorage, version, time, last,
] as ModuleDefinition[];
