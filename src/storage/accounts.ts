// Accounts: a typed repository (one row per (host, username)), SQL and in-memory.
// Host and username are stored as given: callers pass the canonical (PRECIS-prepared) forms.

import { sql, type Kysely } from 'kysely';
import type { StoredCredentials } from '../core/auth/credentials.ts';
import type { AccountsTable, CoreTables, SqlContext } from './db.ts';
import { prepared } from './prepared.ts';
import { toJson } from './db.ts';

export interface AccountRecord {
  host: string;
  username: string;
  credentials: StoredCredentials;
  createdAt: Date;
}

export interface AccountSummary {
  host: string;
  username: string;
  createdAt: Date;
}

export class AccountExistsError extends Error {
  constructor(readonly host: string, readonly username: string) {
    super(`account ${username}@${host} already exists`);
    this.name = 'AccountExistsError';
  }
}

export interface AccountStore {
  /** Throws AccountExistsError if (host, username) exists. */
  create(host: string, username: string, credentials: StoredCredentials): Promise<void>;
  get(host: string, username: string): Promise<AccountRecord | null>;
  /**
   * false if there is no such account. With `expected`, a compare-and-set: the credentials are
   * replaced only if the stored ones are still exactly `expected` (as `get` returned them), else
   * nothing changes and the result is false (an upgrade after a login must not undo a password
   * change made meanwhile).
   */
  setCredentials(host: string, username: string, credentials: StoredCredentials, expected?: StoredCredentials): Promise<boolean>;
  /**
   * false if there is no such account (then nothing is touched). Otherwise also removes every
   * generic-kind row (kv, archive) with that (host, owner = username), in the same transaction.
   */
  delete(host: string, username: string): Promise<boolean>;
  /** Ordered by host, then username. */
  list(host?: string): Promise<AccountSummary[]>;
  count(host?: string): Promise<number>;
  /**
   * How many accounts of `host` store each PBKDF2 iteration count, read from their SCRAM-SHA-1
   * credential (both hashes are always derived with one count). Accounts without a positive
   * integer count there are left out. Reads every account of the host (extracting the count in
   * the database): for a cached census (src/core/auth/census.ts), never for each login.
   */
  iterationCounts(host: string): Promise<Map<number, number>>;
}

/** Accounts per SQLite query of SqlAccountStore.iterationCounts (a few ms of JSON parsing). */
const ITERATION_COUNT_BATCH = 2000;

/**
 * Adds `n` accounts with `iterations` to `out` if that is a valid count (a positive integer). The
 * engines give the JSON value as a number (SQLite, memory) or as text (PostgreSQL, and SQLite for
 * a JSON string).
 */
function addCount(out: Map<number, number>, iterations: unknown, n: unknown): void {
  const it = typeof iterations === 'string' && iterations !== '' ? Number(iterations) : iterations;
  const k = Number(n);
  if (typeof it !== 'number' || !Number.isSafeInteger(it) || it < 1 || !Number.isSafeInteger(k) || k < 1) return;
  out.set(it, (out.get(it) ?? 0) + k);
}

const GET_ACCOUNT = prepared<[host: string, username: string], AccountsTable>(2, (db, host, username) =>
  (db as Kysely<CoreTables>).selectFrom('accounts').selectAll().where('host', '=', host).where('username', '=', username));

function parseCredentials(s: string): StoredCredentials {
  return JSON.parse(s) as StoredCredentials;
}

export class SqlAccountStore implements AccountStore {
  constructor(
    private readonly ctx: SqlContext,
    private readonly purgeOwner: (trx: Kysely<CoreTables>, host: string, owner: string) => Promise<void>,
  ) {}

  async create(host: string, username: string, credentials: StoredCredentials): Promise<void> {
    const r = await this.ctx
      .db()
      .insertInto('accounts')
      .values({ host, username, credentials: toJson(credentials, 'credentials'), created_at: Date.now() })
      .onConflict((oc) => oc.columns(['host', 'username']).doNothing())
      .executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 0) throw new AccountExistsError(host, username);
  }

  async get(host: string, username: string): Promise<AccountRecord | null> {
    // Twice per login (SASL, then binding): compiled once.
    const row = await GET_ACCOUNT.first(this.ctx.db(), host, username);
    if (!row) return null;
    return { host: row.host, username: row.username, credentials: parseCredentials(row.credentials), createdAt: new Date(Number(row.created_at)) };
  }

  async setCredentials(host: string, username: string, credentials: StoredCredentials, expected?: StoredCredentials): Promise<boolean> {
    let q = this.ctx
      .db()
      .updateTable('accounts')
      .set({ credentials: toJson(credentials, 'credentials') })
      .where('host', '=', host)
      .where('username', '=', username);
    // The column holds JSON.stringify output, and parsing and re-serialising it gives the same text.
    if (expected !== undefined) q = q.where('credentials', '=', toJson(expected, 'expected credentials'));
    const r = await q.executeTakeFirst();
    return Number(r.numUpdatedRows) > 0;
  }

  async delete(host: string, username: string): Promise<boolean> {
    return this.ctx
      .db()
      .transaction()
      .execute(async (trx) => {
        const r = await trx.deleteFrom('accounts').where('host', '=', host).where('username', '=', username).executeTakeFirst();
        if (Number(r.numDeletedRows) === 0) return false;
        await this.purgeOwner(trx, host, username);
        return true;
      });
  }

  async list(host?: string): Promise<AccountSummary[]> {
    let q = this.ctx.db().selectFrom('accounts').select(['host', 'username', 'created_at']);
    if (host !== undefined) q = q.where('host', '=', host);
    // Byte/code-unit order on both engines (PostgreSQL's default collation may be linguistic).
    const rows = await (this.ctx.dialect === 'postgres'
      ? q.orderBy(sql`host COLLATE "C"`).orderBy(sql`username COLLATE "C"`)
      : q.orderBy('host').orderBy('username')
    ).execute();
    return rows.map((r) => ({ host: r.host, username: r.username, createdAt: new Date(Number(r.created_at)) }));
  }

  async count(host?: string): Promise<number> {
    let q = this.ctx.db().selectFrom('accounts').select((eb) => eb.fn.countAll<number>().as('n'));
    if (host !== undefined) q = q.where('host', '=', host);
    const row = await q.executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async iterationCounts(host: string): Promise<Map<number, number>> {
    // The count is extracted from the JSON text in the database. Every writer stores
    // JSON.stringify output; a row that is not JSON has no count in SQLite, while PostgreSQL 15
    // has no cheap validity test (`IS JSON` is 16+) and fails the call (the census keeps what it had).
    const out = new Map<number, number>();
    if (this.ctx.dialect === 'postgres') {
      // One aggregate: the server does the work, a row per distinct count comes back.
      const j = sql<string | null>`credentials::json #>> '{SHA-1,iterations}'`;
      const rows = await this.ctx
        .db()
        .selectFrom('accounts')
        .select([j.as('j'), (eb) => eb.fn.countAll<number | string>().as('n')])
        .where('host', '=', host)
        .groupBy(j)
        .execute();
      for (const r of rows) addCount(out, r.j, r.n);
      return out;
    }
    // SQLite parses JSON at ~2 µs a row on this very thread (100 000 accounts: 0.2 s of stalled
    // server), so: batches along the primary key, a turn of the event loop in between, and only a
    // short text per account comes back.
    const j = sql<unknown>`CASE WHEN json_valid(credentials) THEN credentials ->> '$."SHA-1".iterations' END`;
    let after: string | undefined;
    for (;;) {
      let q = this.ctx.db().selectFrom('accounts').select(['username', j.as('j')]).where('host', '=', host);
      if (after !== undefined) q = q.where('username', '>', after);
      const rows = await q.orderBy('username').limit(ITERATION_COUNT_BATCH).execute();
      for (const r of rows) addCount(out, r.j, 1);
      if (rows.length < ITERATION_COUNT_BATCH) return out;
      after = rows[rows.length - 1]!.username;
      await new Promise((r) => setImmediate(r));
    }
  }
}

interface MemoryAccount {
  credentials: string; // JSON, as in SQL: callers never share objects with the store
  createdAt: number;
}

export class MemoryAccountStore implements AccountStore {
  readonly #hosts = new Map<string, Map<string, MemoryAccount>>();

  constructor(
    private readonly live: () => void,
    private readonly purgeOwner: (host: string, owner: string) => void,
  ) {}

  /** Synchronous existence check, for the memory twins of other kinds. */
  has(host: string, username: string): boolean {
    return this.#hosts.get(host)?.has(username) ?? false;
  }

  async create(host: string, username: string, credentials: StoredCredentials): Promise<void> {
    this.live();
    const json = toJson(credentials, 'credentials');
    let users = this.#hosts.get(host);
    if (!users) this.#hosts.set(host, (users = new Map()));
    if (users.has(username)) throw new AccountExistsError(host, username);
    users.set(username, { credentials: json, createdAt: Date.now() });
  }

  async get(host: string, username: string): Promise<AccountRecord | null> {
    this.live();
    const a = this.#hosts.get(host)?.get(username);
    return a ? { host, username, credentials: parseCredentials(a.credentials), createdAt: new Date(a.createdAt) } : null;
  }

  async setCredentials(host: string, username: string, credentials: StoredCredentials, expected?: StoredCredentials): Promise<boolean> {
    this.live();
    const json = toJson(credentials, 'credentials');
    const was = expected === undefined ? undefined : toJson(expected, 'expected credentials');
    const a = this.#hosts.get(host)?.get(username);
    if (!a || (was !== undefined && a.credentials !== was)) return false;
    a.credentials = json;
    return true;
  }

  async delete(host: string, username: string): Promise<boolean> {
    this.live();
    const users = this.#hosts.get(host);
    if (!users?.delete(username)) return false;
    if (users.size === 0) this.#hosts.delete(host);
    this.purgeOwner(host, username);
    return true;
  }

  async list(host?: string): Promise<AccountSummary[]> {
    this.live();
    const out: AccountSummary[] = [];
    for (const [h, users] of this.#hosts) {
      if (host !== undefined && h !== host) continue;
      for (const [username, a] of users) out.push({ host: h, username, createdAt: new Date(a.createdAt) });
    }
    // Code-unit order, as SQLite's BINARY collation and PostgreSQL's "C" collation.
    return out.sort((x, y) => cmp(x.host, y.host) || cmp(x.username, y.username));
  }

  async count(host?: string): Promise<number> {
    this.live();
    if (host !== undefined) return this.#hosts.get(host)?.size ?? 0;
    let n = 0;
    for (const users of this.#hosts.values()) n += users.size;
    return n;
  }

  async iterationCounts(host: string): Promise<Map<number, number>> {
    this.live();
    const out = new Map<number, number>();
    for (const a of this.#hosts.get(host)?.values() ?? []) {
      let it: unknown;
      try {
        it = (JSON.parse(a.credentials) as { 'SHA-1'?: { iterations?: unknown } } | null)?.['SHA-1']?.iterations;
      } catch {
        continue;
      }
      if (typeof it === 'number' || typeof it === 'string') addCount(out, it, 1);
    }
    return out;
  }
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
