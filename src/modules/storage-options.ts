// What the storage layer needs to know about the modules: their migrations and the tables whose
// rows belong to an account. Used by the server and by the CLI (so that `amsel deluser` on a
// stopped server purges module data too).
import type { ModuleDefinition } from '../core/modules/define.ts';
import type { OpenOptions } from '../storage/index.ts';
import { builtinModules } from './index.ts';

export function moduleStorageOptions(defs: readonly ModuleDefinition[] = builtinModules): Pick<OpenOptions, 'migrations' | 'ownedTables'> {
  return {
    migrations: defs.flatMap((d) => d.migrations ?? []),
    ownedTables: defs.flatMap((d) => d.ownedTables ?? []),
  };
}
