// keyval<T>: one JSON document per (host, owner, store), in the shared `kv` table with key ''.
// Values round-trip through JSON on every engine (memory too): a Date comes back as a string,
// undefined members vanish, and the caller never shares an object with the store.

import type { Kysely } from 'kysely';
import { checkName, toJson, type CoreTables, type SqlContext } from '../db.ts';

export interface KeyvalStore<T> {
  get(host: string, owner: string): Promise<T | null>;
  /** Creates or replaces the document. */
  set(host: string, owner: string, value: T): Promise<void>;
  /** No-op if absent. */
  delete(host: string, owner: string): Promise<void>;
  /**
   * Create or replace several owners' documents in one transaction (one commit, one fsync), for
   * write-behind buffers. Owners without an account are skipped, so a late flush can never bring
   * back data of an account deleted meanwhile. Resolves with the number of documents written.
   */
  setMany(host: string, entries: ReadonlyArray<readonly [owner: string, value: T]>): Promise<number>;
}

const KEYVAL_KEY = '';
/** Owners per statement in setMany (well under SQLite's 32766 bound parameters). */
const SET_MANY_CHUNK = 200;

export class SqlKeyvalStore<T> implements KeyvalStore<T> {
  constructor(
    private readonly ctx: SqlContext,
    readonly store: string,
  ) {
    checkName('store', store);
  }

  async get(host: string, owner: string): Promise<T | null> {
    const row = await this.ctx
      .db()
      .selectFrom('kv')
      .select('value')
      .where('host', '=', host)
      .where('owner', '=', owner)
      .where('store', '=', this.store)
      .where('key', '=', KEYVAL_KEY)
      .executeTakeFirst();
    return row ? (JSON.parse(row.value) as T) : null;
  }

  async set(host: string, owner: string, value: T): Promise<void> {
    const json = toJson(value);
    const now = Date.now();
    await this.ctx
      .db()
      .insertInto('kv')
      .values({ host, owner, store: this.store, key: KEYVAL_KEY, value: json, updated_at: now })
      .onConflict((oc) =>
        oc.columns(['host', 'owner', 'store', 'key']).doUpdateSet((eb) => ({ value: eb.ref('excluded.value'), updated_at: eb.ref('excluded.updated_at') })),
      )
      .execute();
  }

  async setMany(host: string, entries: ReadonlyArray<readonly [owner: string, value: T]>): Promise<number> {
    if (entries.length === 0) return 0;
    const rows = entries.map(([owner, value]) => ({ owner, json: toJson(value) }));
    const now = Date.now();
    return this.ctx.db().transaction().execute(async (trx) => {
      let written = 0;
      for (let i = 0; i < rows.length; i += SET_MANY_CHUNK) {
        const chunk = rows.slice(i, i + SET_MANY_CHUNK);
        let q = trx.selectFrom('accounts').select('username').where('host', '=', host).where('username', 'in', chunk.map((r) => r.owner));
        // PostgreSQL: hold the account rows until commit, so a concurrent account deletion waits
        // and its purge then sees (and removes) what we wrote. SQLite transactions are serial.
        if (this.ctx.dialect === 'postgres') q = q.forShare();
        const live = new Set((await q.execute()).map((r) => r.username));
        const values = chunk.filter((r) => live.has(r.owner))
          .map((r) => ({ host, owner: r.owner, store: this.store, key: KEYVAL_KEY, value: r.json, updated_at: now }));
        if (values.length === 0) continue;
        await trx.insertInto('kv').values(values)
          .onConflict((oc) => oc.columns(['host', 'owner', 'store', 'key']).doUpdateSet((eb) => ({ value: eb.ref('excluded.value'), updated_at: eb.ref('excluded.updated_at') })))
          .execute();
        written += values.length;
      }
      return written;
    });
  }

  async delete(host: string, owner: string): Promise<void> {
    await this.ctx
      .db()
      .deleteFrom('kv')
      .where('host', '=', host)
      .where('owner', '=', owner)
      .where('store', '=', this.store)
      .where('key', '=', KEYVAL_KEY)
      .execute();
  }
}

/** Every kv row (all stores, all keys) of one owner. */
export async function deleteKvOwner(db: Kysely<CoreTables>, host: string, owner: string): Promise<number> {
  const r = await db.deleteFrom('kv').where('host', '=', host).where('owner', '=', owner).executeTakeFirst();
  return Number(r.numDeletedRows);
}

/** Shared state of all memory keyval stores of one memoryStorage(). */
export class MemoryKeyvalData {
  live: () => void = () => {};
  /** Whether an account exists (set by memoryStorage()); setMany skips owners without one. */
  hasAccount: (host: string, owner: string) => boolean = () => true;
  /** host → owner → store → JSON */
  readonly docs = new Map<string, Map<string, Map<string, string>>>();

  deleteOwner(host: string, owner: string): void {
    const owners = this.docs.get(host);
    owners?.delete(owner);
    if (owners?.size === 0) this.docs.delete(host);
  }
}

export class MemoryKeyvalStore<T> implements KeyvalStore<T> {
  constructor(
    private readonly data: MemoryKeyvalData,
    readonly store: string,
  ) {
    checkName('store', store);
  }

  async get(host: string, owner: string): Promise<T | null> {
    this.data.live();
    const json = this.data.docs.get(host)?.get(owner)?.get(this.store);
    return json === undefined ? null : (JSON.parse(json) as T);
  }

  async set(host: string, owner: string, value: T): Promise<void> {
    this.data.live();
    const json = toJson(value);
    let owners = this.data.docs.get(host);
    if (!owners) this.data.docs.set(host, (owners = new Map()));
    let stores = owners.get(owner);
    if (!stores) owners.set(owner, (stores = new Map()));
    stores.set(this.store, json);
  }

  async setMany(host: string, entries: ReadonlyArray<readonly [owner: string, value: T]>): Promise<number> {
    this.data.live();
    const json = entries.map(([owner, value]) => [owner, toJson(value)] as const);
    let written = 0;
    for (const [owner, value] of json) {
      if (!this.data.hasAccount(host, owner)) continue;
      let owners = this.data.docs.get(host);
      if (!owners) this.data.docs.set(host, (owners = new Map()));
      let stores = owners.get(owner);
      if (!stores) owners.set(owner, (stores = new Map()));
      stores.set(this.store, value);
      written++;
    }
    return written;
  }

  async delete(host: string, owner: string): Promise<void> {
    this.data.live();
    const owners = this.data.docs.get(host);
    const stores = owners?.get(owner);
    if (!stores) return;
    stores.delete(this.store);
    if (stores.size === 0) owners!.delete(owner);
    if (owners!.size === 0) this.data.docs.delete(host);
  }
}
