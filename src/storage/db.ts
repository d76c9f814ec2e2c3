// Storage entry point: opens SQLite (embedded default) or PostgreSQL through Kysely, applies the
// migrations, and hands out the account repository and the generic kinds (ARCHITECTURE.md §5).
//
// Portable conventions shared by every table (so one migration set serves both engines):
// * time is an integer of epoch milliseconds (BIGINT); `pg` int8 is parsed to number per pool;
// * JSON documents are TEXT holding JSON.stringify output (no jsonb: identical on both engines);
// * upserts use `INSERT ... ON CONFLICT ... DO UPDATE/NOTHING` (SQLite >= 3.24 and PostgreSQL);
// * the identity column is the only dialect branch (see migrate.ts).

import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import Database from 'better-sqlite3';
import { Kysely, PostgresDialect, SqliteDialect, type PostgresPool, type PostgresPoolClient } from 'kysely';
import pg from 'pg';
import { MemoryAccountStore, SqlAccountStore, type AccountStore } from './accounts.ts';
import { MemoryArchiveData, MemoryArchiveStore, SqlArchiveStore, deleteArchiveOwner, type ArchiveStore } from './kinds/archive.ts';
import { MemoryKeyvalData, MemoryKeyvalStore, SqlKeyvalStore, deleteKvOwner, type KeyvalStore } from './kinds/keyval.ts';
import { classifyingFaults } from './faults.ts';
import { runMigrations, type Migration } from './migrate.ts';

export type Dialect = 'sqlite' | 'postgres';

export type StorageConfig =
  | { type: 'sqlite'; path: string }
  | {
      type: 'postgres';
      url: string;
      /** Schema to create (if missing) and put alone on every pooled connection's search_path. */
      schema?: string;
      /** Pool size, default 10. */
      poolSize?: number;
      /** Longest wait for one query's answer, default PG_QUERY_TIMEOUT_MS. */
      queryTimeoutMs?: number;
    };

/** A module table whose rows belong to one account: deleted with the account, in the same transaction. */
export interface OwnedTable {
  table: string;
  /** Column holding the account's host (default 'host'). */
  hostColumn?: string;
  /** Column holding the account's username (default 'owner'). */
  ownerColumn?: string;
}

export interface OpenOptions {
  /** Extra migrations of modules, applied after the core ones in the given order. */
  migrations?: Migration[];
  /** Module tables purged with an account (AccountStore.delete, Storage.deleteOwner). */
  ownedTables?: OwnedTable[];
  /**
   * Errors of idle pooled PostgreSQL connections (server restart, network). Without a listener,
   * `pg` would crash the process; the broken client is discarded either way and the next query
   * opens a new connection (or fails with a thrown error).
   */
  onPoolError?: (err: Error) => void;
}

export interface Storage {
  /** 'memory' only for memoryStorage(): modules with typed repositories pick their memory twin. */
  readonly dialect: Dialect | 'memory';
  /** The Kysely instance (for typed repositories). Throws once closed; memoryStorage(): always throws. */
  readonly db: Kysely<any>;
  readonly accounts: AccountStore;
  /** One JSON document per (host, owner, store). */
  keyval<T>(store: string): KeyvalStore<T>;
  /** Append-only items per (host, owner, store): offline messages, MAM, MUC history. */
  archive<T>(store: string): ArchiveStore<T>;
  /** Everything one account owns, in every generic kind (the user-deletion path calls this plus module hooks). */
  deleteOwner(host: string, owner: string): Promise<void>;
  /** Idempotent. Every later call of a store method throws. */
  close(): Promise<void>;
}

/** Opening failed: the message names the SQLite path or the (password-redacted) PostgreSQL URL. */
export class StorageOpenError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StorageOpenError';
  }
}

export class StorageClosedError extends Error {
  constructor() {
    super('storage is closed');
    this.name = 'StorageClosedError';
  }
}

// ---------------------------------------------------------------------------------------------
// Table types (internal typing of the core tables; `Storage.db` stays Kysely<any> for modules).

export interface AccountsTable { host: string; username: string; credentials: string; created_at: number }
export interface KvTable { host: string; owner: string; store: string; key: string; value: string; updated_at: number }
export interface ArchiveTable {
  seq: import('kysely').Generated<number>;
  id: string;
  host: string;
  owner: string;
  store: string;
  with_jid: string | null;
  ts: number;
  value: string;
}
export interface CoreTables { accounts: AccountsTable; kv: KvTable; archive: ArchiveTable }

/** What the SQL stores need: a live database (throws once closed) and the dialect. */
export interface SqlContext {
  readonly dialect: Dialect;
  db(): Kysely<CoreTables>;
}

// ---------------------------------------------------------------------------------------------
// Small portable helpers.

/** Date → epoch ms, refusing invalid dates (NaN must never reach a NOT NULL column silently). */
export function toMs(d: Date, what = 'date'): number {
  const t = d instanceof Date ? d.getTime() : Number.NaN;
  if (!Number.isFinite(t)) throw new TypeError(`invalid ${what}`);
  return t;
}

export function toJson(value: unknown, what = 'value'): string {
  const s = JSON.stringify(value);
  if (typeof s !== 'string') throw new TypeError(`${what} is not JSON-serialisable`);
  return s;
}

export function checkName(kind: string, name: string): void {
  if (typeof name !== 'string' || name.length === 0 || name.length > 255) throw new TypeError(`invalid ${kind} name`);
}

// ---------------------------------------------------------------------------------------------
// Engines.

/** Busy timeout: the CLI account commands write to the same file while a server runs. */
export const SQLITE_BUSY_TIMEOUT_MS = 5000;

/** Prepared statements kept per SQL text (the hot queries are few and repeat at every login). */
export const SQLITE_STATEMENT_CACHE = 256;

/**
 * Kysely prepares every query afresh; compiling the SQL costs more than running a point lookup.
 * Keep the most recently used statements per SQL text (Map order = recency, oldest evicted). A
 * statement still iterating (Kysely's streamQuery) is busy and can't run again: prepare another.
 */
function cachingStatements(handle: Database.Database): { close(): void; prepare(sql: string): Database.Statement } {
  const cache = new Map<string, Database.Statement>();
  return {
    close: () => { cache.clear(); handle.close(); },
    prepare(sql: string): Database.Statement {
      let stmt = cache.get(sql);
      if (stmt !== undefined && !stmt.busy) {
        cache.delete(sql);
        cache.set(sql, stmt);
        return stmt;
      }
      stmt = handle.prepare(sql);
      cache.set(sql, stmt);
      if (cache.size > SQLITE_STATEMENT_CACHE) cache.delete(cache.keys().next().value!);
      return stmt;
    },
  };
}

function openSqlite(path: string): Database.Database {
  const inMemory = path === ':memory:' || path === '';
  const shown = inMemory ? path : resolve(path);
  let handle: Database.Database | undefined;
  try {
    if (!inMemory) mkdirSync(dirname(shown), { recursive: true });
    handle = new Database(path, { timeout: SQLITE_BUSY_TIMEOUT_MS });
    handle.pragma(`busy_timeout = ${SQLITE_BUSY_TIMEOUT_MS}`);
    // WAL: readers never block the writer (and vice versa), one fsync per commit instead of two.
    handle.pragma('journal_mode = WAL');
    // Durability. In WAL mode a commit is a write() of the frames to the -wal file; with
    // synchronous=FULL SQLite also fsyncs the WAL before the commit returns. A kill -9 of the
    // process alone loses nothing once write() has returned (the kernel has the pages), but an OS
    // crash or power cut after we acknowledged a stanza/registration would roll back the last
    // transactions under NORMAL. FULL makes "acknowledged" mean "on disk" in every case, so
    // acknowledged data survives kill -9 and the worse cases; the cost is one fsync per commit.
    handle.pragma('synchronous = FULL');
    handle.pragma('foreign_keys = ON');
    // Touch the file now so "not a database" / unreadable fails here, not at the first query.
    handle.prepare('SELECT count(*) FROM sqlite_master').get();
    return handle;
  } catch (err) {
    try { handle?.close(); } catch { /* already failing */ }
    throw new StorageOpenError(`cannot open SQLite database "${shown}": ${(err as Error).message}`, { cause: err });
  }
}

/** int8 (BIGINT, COUNT(*)) as number: epoch ms and counts stay far below 2^53. */
const INT8_OID = 20;
const pgTypes = {
  getTypeParser(oid: number, format?: 'text' | 'binary') {
    if (oid === INT8_OID && format !== 'binary') return (v: string) => Number(v);
    return (pg.types.getTypeParser as (o: number, f?: string) => any)(oid, format);
  },
} as pg.CustomTypesConfig;

const SCHEMA_RE = /^[A-Za-z_][A-Za-z0-9_]{0,62}$/;

/** Longest wait for a new PostgreSQL connection (also for a free one from a busy pool). */
export const PG_CONNECT_TIMEOUT_MS = 10_000;
/**
 * Longest wait for the answer to one query. A database that went silent (a network partition,
 * a frozen host: no reset, no FIN) would otherwise hold the query, and the session that sent the
 * stanza, until TCP gives up, many minutes later; with it the sender gets a temporary error.
 * Generous, so that the daily retention sweep of a large table still finishes.
 */
export const PG_QUERY_TIMEOUT_MS = 30_000;

export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '<unparsable PostgreSQL URL>';
  }
}

function openPostgresPool(cfg: Extract<StorageConfig, { type: 'postgres' }>, onPoolError?: (e: Error) => void): pg.Pool {
  if (cfg.schema !== undefined && !SCHEMA_RE.test(cfg.schema)) {
    throw new StorageOpenError(`invalid PostgreSQL schema name "${cfg.schema}" (letters, digits, _)`);
  }
  const pool = new pg.Pool({
    connectionString: cfg.url,
    max: cfg.poolSize ?? 10,
    connectionTimeoutMillis: PG_CONNECT_TIMEOUT_MS,
    query_timeout: cfg.queryTimeoutMs ?? PG_QUERY_TIMEOUT_MS,
    // Scoped to this pool's clients: the global pg.types registry stays untouched.
    types: pgTypes,
    // Set at connection startup, so every pooled connection has it before its first query.
    ...(cfg.schema !== undefined ? { options: `-c search_path=${cfg.schema}` } : {}),
  });
  pool.on('error', (err) => onPoolError?.(err));
  // pg-pool listens for errors of idle clients only (the 'error' above) and stops while a client
  // is checked out: a connection dying then (the database restarting or cut off mid-query) would
  // emit 'error' with no listener, an uncaught exception that ends the process. The query in
  // flight rejects with the same error, and the broken client is dropped on release.
  pool.on('connect', (client) => client.on('error', () => undefined));
  return pool;
}

/**
 * The pool as Kysely sees it, except that a client whose query timed out is destroyed when it
 * is released: pg leaves it waiting for the lost answer, and every later query on it would
 * queue behind that one (pg-pool only drops clients whose socket already failed).
 */
function discardingTimedOut(pool: pg.Pool): PostgresPool {
  const clients = new WeakMap<pg.PoolClient, PostgresPoolClient>();
  return {
    async connect() {
      const client = await pool.connect();
      let c = clients.get(client);
      if (c === undefined) {
        let timedOut = false;
        c = {
          query: ((...args: unknown[]) => {
            const r = (client.query as (...a: unknown[]) => unknown)(...args);
            if (!(r instanceof Promise)) return r; // a cursor
            return r.catch((err: unknown) => {
              if (err instanceof Error && err.message === 'Query read timeout') timedOut = true;
              throw err;
            });
          }) as PostgresPoolClient['query'],
          release: (destroy?: boolean) => client.release(destroy === true || timedOut),
        };
        clients.set(client, c);
      }
      return c;
    },
    end: () => pool.end(),
  };
}

// ---------------------------------------------------------------------------------------------

class SqlStorage implements Storage {
  readonly accounts: AccountStore;
  #closed = false;
  readonly #db: Kysely<any>;
  readonly #ctx: SqlContext;

  readonly #purge: (trx: Kysely<CoreTables>, host: string, owner: string) => Promise<void>;

  constructor(readonly dialect: Dialect, db: Kysely<any>, owned: readonly OwnedTable[]) {
    this.#db = db;
    this.#ctx = { dialect, db: () => this.db as Kysely<CoreTables> };
    this.#purge = async (trx, host, owner) => {
      await purgeOwnerSql(trx, host, owner);
      for (const t of owned) {
        await (trx as Kysely<any>).deleteFrom(t.table).where(t.hostColumn ?? 'host', '=', host).where(t.ownerColumn ?? 'owner', '=', owner).execute();
      }
    };
    this.accounts = new SqlAccountStore(this.#ctx, this.#purge);
  }

  /** Throws StorageClosedError once closed. */
  get db(): Kysely<any> {
    if (this.#closed) throw new StorageClosedError();
    return this.#db;
  }

  keyval<T>(store: string): KeyvalStore<T> {
    return new SqlKeyvalStore<T>(this.#ctx, store);
  }

  archive<T>(store: string): ArchiveStore<T> {
    return new SqlArchiveStore<T>(this.#ctx, store);
  }

  async deleteOwner(host: string, owner: string): Promise<void> {
    await this.#ctx.db().transaction().execute((trx) => this.#purge(trx, host, owner));
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await this.#db.destroy();
  }
}

/** Removes every generic-kind row of (host, owner); runs inside the caller's transaction. */
async function purgeOwnerSql(trx: Kysely<CoreTables>, host: string, owner: string): Promise<void> {
  await deleteKvOwner(trx, host, owner);
  await deleteArchiveOwner(trx, host, owner);
}

/**
 * Opens the database, applies core + given migrations, returns the storage. Throws
 * StorageOpenError (naming the path / URL), UnknownMigrationError or MigrationError.
 *
 * SQLite: open one Storage per file per process. Other processes (the CLI) are fine, they wait
 * up to busy_timeout for the write lock; but better-sqlite3 waits synchronously, so a second
 * handle in the same process would block the very thread that must finish the first handle's
 * transaction (a 5 s stall, then SQLITE_BUSY).
 */
export async function openStorage(cfg: StorageConfig, opts: OpenOptions = {}): Promise<Storage> {
  let db: Kysely<any>;
  let where: string;
  if (cfg.type === 'sqlite') {
    where = `SQLite database "${cfg.path === ':memory:' ? cfg.path : resolve(cfg.path)}"`;
    const handle = openSqlite(cfg.path);
    db = new Kysely<any>({ dialect: classifyingFaults(new SqliteDialect({ database: cachingStatements(handle) })) });
  } else if (cfg.type === 'postgres') {
    where = `PostgreSQL ${redactUrl(cfg.url)}${cfg.schema ? ` (schema ${cfg.schema})` : ''}`;
    const pool = openPostgresPool(cfg, opts.onPoolError);
    db = new Kysely<any>({ dialect: classifyingFaults(new PostgresDialect({ pool: discardingTimedOut(pool) })) });
  } else {
    throw new StorageOpenError(`unknown storage type ${JSON.stringify((cfg as { type: unknown }).type)}`);
  }
  try {
    await runMigrations(db, cfg.type, opts.migrations ?? [], cfg.type === 'postgres' ? { schema: cfg.schema } : {});
  } catch (err) {
    await db.destroy().catch(() => {});
    if (err instanceof StorageOpenError) throw err;
    const e = err as Error & { code?: string };
    // Unknown-migration / bad-migration errors keep their own type (see migrate.ts).
    if (e.name === 'UnknownMigrationError' || e.name === 'MigrationError') throw err;
    throw new StorageOpenError(`cannot open ${where}: ${e.message || e.code || String(err)}`, { cause: err });
  }
  return new SqlStorage(cfg.type, db, opts.ownedTables ?? []);
}

// ---------------------------------------------------------------------------------------------

class MemoryStorage implements Storage {
  readonly dialect = 'memory' as const;
  readonly accounts: MemoryAccountStore;
  readonly #kv = new MemoryKeyvalData();
  readonly #archive = new MemoryArchiveData();
  #closed = false;

  constructor() {
    const live = () => {
      if (this.#closed) throw new StorageClosedError();
    };
    this.accounts = new MemoryAccountStore(live, (host, owner) => this.#purge(host, owner));
    this.#kv.live = live;
    this.#kv.hasAccount = (host, owner) => this.accounts.has(host, owner);
    this.#archive.live = live;
  }

  get db(): Kysely<any> {
    throw new Error('memoryStorage() has no SQL database (dialect "memory"): use a memory repository');
  }

  keyval<T>(store: string): KeyvalStore<T> {
    return new MemoryKeyvalStore<T>(this.#kv, store);
  }

  archive<T>(store: string): ArchiveStore<T> {
    return new MemoryArchiveStore<T>(this.#archive, store);
  }

  #purge(host: string, owner: string): void {
    this.#kv.deleteOwner(host, owner);
    this.#archive.deleteOwner(host, owner);
  }

  async deleteOwner(host: string, owner: string): Promise<void> {
    if (this.#closed) throw new StorageClosedError();
    this.#purge(host, owner);
  }

  async close(): Promise<void> {
    this.#closed = true;
  }
}

/** In-memory twin with the same contract (tests, `--dev`). `db` throws; `dialect` is 'memory'. */
export function memoryStorage(): Storage {
  return new MemoryStorage();
}

