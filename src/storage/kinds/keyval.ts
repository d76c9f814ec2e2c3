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
}

const KEYVAL_KEY = '';

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
