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
  /** false if there is no such account. */
  setCredentials(host: string, username: string, credentials: StoredCredentials): Promise<boolean>;
  /**
   * false if there is no such account (then nothing is touched). Otherwise also removes every
   * generic-kind row (kv, archive) with that (host, owner = username), in the same transaction.
   */
  delete(host: string, username: string): Promise<boolean>;
  /** Ordered by host, then username. */
  list(host?: string): Promise<AccountSummary[]>;
  count(host?: string): Promise<number>;
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

  async setCredentials(host: string, username: string, credentials: StoredCredentials): Promise<boolean> {
    const r = await this.ctx
      .db()
      .updateTable('accounts')
      .set({ credentials: toJson(credentials, 'credentials') })
      .where('host', '=', host)
      .where('username', '=', username)
      .executeTakeFirst();
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

  async setCredentials(host: string, username: string, credentials: StoredCredentials): Promise<boolean> {
    this.live();
    const json = toJson(credentials, 'credentials');
    const a = this.#hosts.get(host)?.get(username);
    if (!a) return false;
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
}

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}
