// Storage faults: errors meaning "the database cannot serve right now" (disk full, I/O error,
// locked past the busy timeout, PostgreSQL unreachable, restarting or out of connections), as
// opposed to errors of the request itself (constraint violations, bad SQL). They are thrown as
// StorageUnavailableError so that callers can answer with a temporary error (the router:
// <resource-constraint/> of type wait) instead of an internal error, and retry later: the fault
// goes away by itself once space is freed or the database is back (the pg pool reconnects on
// the next query).
//
// The classification happens once, in a Kysely dialect wrapper: every query, transaction
// statement and connection checkout of a Storage goes through it.
import type { DatabaseConnection, Dialect, Driver, QueryResult, TransactionSettings } from 'kysely';

export class StorageUnavailableError extends Error {
  /**
   * What the engine reported: an SQLite result code (SQLITE_FULL, SQLITE_IOERR...), a PostgreSQL
   * SQLSTATE (08006, 53100, 57P01...), a socket error code (ECONNREFUSED...), or 'connection'
   * (pg reported a lost or timed-out connection without a code).
   */
  readonly code: string;
  constructor(code: string, cause: unknown) {
    super(`storage unavailable (${code}): ${cause instanceof Error ? cause.message : String(cause)}`, { cause });
    this.name = 'StorageUnavailableError';
    this.code = code;
  }
}

/** SQLite primary result codes of a database that cannot serve now (extended codes included). */
const SQLITE_FAULTS = new Set(['SQLITE_FULL', 'SQLITE_IOERR', 'SQLITE_BUSY', 'SQLITE_LOCKED', 'SQLITE_READONLY', 'SQLITE_CANTOPEN', 'SQLITE_NOMEM', 'SQLITE_PROTOCOL']);
/** Operating-system errors: the disk or the network. */
const OS_FAULTS = new Set([
  'ENOSPC', 'EDQUOT', 'EIO', 'EROFS',
  'ECONNREFUSED', 'ECONNRESET', 'ECONNABORTED', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'EHOSTDOWN', 'ENETUNREACH', 'ENETDOWN', 'ENOTFOUND', 'EAI_AGAIN',
]);
/** SQLSTATE: connection exception (08), insufficient resources (53: disk full, out of memory, too many connections), system error (58). */
const PG_FAULT_CLASSES = new Set(['08', '53', '58']);
/** SQLSTATE: admin/crash shutdown, cannot connect now (starting up), canceled (statement_timeout), read-only transaction (a standby after failover). */
const PG_FAULTS = new Set(['57P01', '57P02', '57P03', '57014', '25006']);
/** What pg says, without a code, when a connection broke, timed out or was never made. */
const PG_CONNECTION_MESSAGES = /^(Connection terminated|timeout exceeded when trying to connect|Query read timeout|Client (has encountered a connection error|was closed) and is not queryable)/;

/** The StorageUnavailableError for a fault, or undefined for any other error (left as it is). */
export function storageFault(err: unknown): StorageUnavailableError | undefined {
  if (err instanceof StorageUnavailableError) return err;
  if (!(err instanceof Error)) return undefined;
  const code = (err as { code?: unknown }).code;
  if (typeof code === 'string') {
    if (code.startsWith('SQLITE_')) {
      const primary = code.split('_', 2).join('_'); // SQLITE_IOERR_WRITE → SQLITE_IOERR
      return SQLITE_FAULTS.has(primary) ? new StorageUnavailableError(code, err) : undefined;
    }
    if (OS_FAULTS.has(code) || PG_FAULTS.has(code) || (/^[0-9A-Z]{5}$/.test(code) && PG_FAULT_CLASSES.has(code.slice(0, 2)))) {
      return new StorageUnavailableError(code, err);
    }
  }
  if (PG_CONNECTION_MESSAGES.test(err.message)) return new StorageUnavailableError('connection', err);
  // Connecting to a host with several addresses fails with all of them.
  if (err instanceof AggregateError && err.errors.length > 0 && err.errors.every((e) => storageFault(e) !== undefined)) {
    return new StorageUnavailableError(storageFault(err.errors[0])!.code, err);
  }
  return undefined;
}

/** A connection whose failures are classified; remembers the fault of the current transaction. */
class FaultConnection implements DatabaseConnection {
  fault: StorageUnavailableError | undefined;
  constructor(readonly inner: DatabaseConnection) {}

  /** The error to throw instead of `err`. */
  failed(err: unknown): unknown {
    const f = storageFault(err);
    if (f !== undefined) this.fault = f;
    return f ?? err;
  }

  async executeQuery<R>(q: Parameters<DatabaseConnection['executeQuery']>[0]): Promise<QueryResult<R>> {
    try {
      return await this.inner.executeQuery<R>(q);
    } catch (err) {
      throw this.failed(err);
    }
  }

  async *streamQuery<R>(q: Parameters<DatabaseConnection['streamQuery']>[0], chunkSize?: number): AsyncIterableIterator<QueryResult<R>> {
    try {
      yield* this.inner.streamQuery<R>(q, chunkSize);
    } catch (err) {
      throw this.failed(err);
    }
  }
}

/** Runs `op` on the wrapped connection; its error is classified by the connection (FaultConnection.failed). */
async function guarded(c: DatabaseConnection, op: (inner: DatabaseConnection) => Promise<void>): Promise<void> {
  const conn = c as FaultConnection;
  try {
    await op(conn.inner);
  } catch (err) {
    throw conn.failed(err);
  }
}

class FaultDriver implements Driver {
  constructor(private readonly inner: Driver) {}

  async init(): Promise<void> {
    try {
      await this.inner.init();
    } catch (err) {
      throw storageFault(err) ?? err;
    }
  }

  async acquireConnection(): Promise<DatabaseConnection> {
    try {
      return new FaultConnection(await this.inner.acquireConnection());
    } catch (err) {
      // No connection to be had (refused, timed out, too many clients, bad password after a
      // change on the server): the database is unavailable, whatever the detail.
      throw storageFault(err) ?? new StorageUnavailableError('connection', err);
    }
  }

  async beginTransaction(c: DatabaseConnection, settings: TransactionSettings): Promise<void> {
    (c as FaultConnection).fault = undefined;
    await guarded(c, (inner) => this.inner.beginTransaction(inner, settings));
  }

  commitTransaction(c: DatabaseConnection): Promise<void> {
    return guarded(c, (inner) => this.inner.commitTransaction(inner));
  }

  async rollbackTransaction(c: DatabaseConnection): Promise<void> {
    const conn = c as FaultConnection;
    try {
      await this.inner.rollbackTransaction(conn.inner);
    } catch (err) {
      // Kysely throws the rollback's error instead of the one that caused the rollback. After a
      // fault that one is expected (SQLite rolls back by itself on SQLITE_FULL, so ROLLBACK says
      // "no transaction is active"; a lost pg connection cannot roll back): report the fault.
      throw conn.fault ?? conn.failed(err);
    }
  }

  savepoint(c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['savepoint']>>[2]): Promise<void> {
    return guarded(c, (inner) => this.inner.savepoint!(inner, name, compile));
  }

  rollbackToSavepoint(c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['rollbackToSavepoint']>>[2]): Promise<void> {
    return guarded(c, (inner) => this.inner.rollbackToSavepoint!(inner, name, compile));
  }

  releaseSavepoint(c: DatabaseConnection, name: string, compile: Parameters<NonNullable<Driver['releaseSavepoint']>>[2]): Promise<void> {
    return guarded(c, (inner) => this.inner.releaseSavepoint!(inner, name, compile));
  }

  releaseConnection(c: DatabaseConnection): Promise<void> {
    return this.inner.releaseConnection((c as FaultConnection).inner);
  }

  destroy(): Promise<void> {
    return this.inner.destroy();
  }
}

/** The dialect with every storage fault thrown as StorageUnavailableError. */
export function classifyingFaults(inner: Dialect): Dialect {
  return {
    createDriver: () => new FaultDriver(inner.createDriver()),
    createQueryCompiler: () => inner.createQueryCompiler(),
    createAdapter: () => inner.createAdapter(),
    createIntrospector: (db) => inner.createIntrospector(db),
  };
}

/** How often a storage fault is logged at most, however many operations fail meanwhile. */
export const STORAGE_FAULT_LOG_INTERVAL_MS = 10_000;

/**
 * A rate-limited warning for storage faults: one line per interval with the fault's code and how
 * many operations failed since the last line (a full disk must not also fill the log).
 */
export class StorageFaultLog {
  #at = 0;
  #count = 0;
  constructor(
    private readonly log: { warn(obj: object, msg: string): void },
    private readonly msg: string,
    /** The log field that carries the count, e.g. 'bounced'. */
    private readonly countField: string,
  ) {}

  note(err: StorageUnavailableError): void {
    this.#count++;
    const now = Date.now();
    if (now - this.#at < STORAGE_FAULT_LOG_INTERVAL_MS) return;
    this.log.warn({ code: err.code, reason: err.message, [this.countField]: this.#count }, this.msg);
    this.#at = now;
    this.#count = 0;
  }
}
