// Public surface of the storage layer (ARCHITECTURE.md §5).
export {
  openStorage,
  memoryStorage,
  StorageOpenError,
  StorageClosedError,
  SQLITE_BUSY_TIMEOUT_MS,
  PG_QUERY_TIMEOUT_MS,
  type Storage,
  type StorageConfig,
  type OpenOptions,
  type OwnedTable,
  type Dialect,
} from './db.ts';
export { StorageUnavailableError, storageFault } from './faults.ts';
export {
  openStorageWhenReachable,
  startupFault,
  configurationError,
  pgTarget,
  STORAGE_URL_KEY,
  STARTUP_WAIT_MSG,
  STARTUP_CONNECTED_MSG,
  type StartupWaitOptions,
} from './startup.ts';
export { runMigrations, coreMigrations, UnknownMigrationError, MigrationError, type Migration } from './migrate.ts';
export { AccountExistsError, type AccountRecord, type AccountSummary, type AccountStore } from './accounts.ts';
export type { KeyvalStore } from './kinds/keyval.ts';
export { prepared, type Prepared } from './prepared.ts';
export {
  newArchiveId,
  UnknownArchiveIdError,
  ArchiveIdExistsError,
  type ArchiveItem,
  type ArchiveQuery,
  type ArchiveCountQuery,
  type ArchiveDeleteQuery,
  type ArchiveStore,
} from './kinds/archive.ts';
