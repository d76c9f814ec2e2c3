// archive<T>: append-only items per (host, owner, store) in the shared `archive` table: offline
// messages, MAM, MUC history. Values round-trip through JSON (as keyval).
//
// Order: items are ordered by (when, insertion sequence): by time, and in append order for equal
// times. `after` / `before` page relative to an item's position in that order.
//
// Ids: when the caller gives none, a ULID-style string: 10 Crockford-base32 characters of the
// generation time in ms, then 16 of randomness (80 bits), incremented instead of redrawn within
// the same ms. So ids are unique (per store and owner, enforced by a unique index; across the
// server by 80 random bits), URL/XML safe, and sort lexically by generation time (strictly
// increasing within one process). Paging never relies on id order, only on (when, sequence), so
// caller-given ids (e.g. a stanza-id) work too. A duplicate id in the same (host, owner, store)
// throws ArchiveIdExistsError.

import { randomBytes } from 'node:crypto';
import type { Kysely } from 'kysely';
import { checkName, toJson, toMs, type CoreTables, type SqlContext } from '../db.ts';
import { prepared } from '../prepared.ts';

export interface ArchiveItem<T> {
  id: string;
  host: string;
  owner: string;
  with?: string;
  when: Date;
  value: T;
}

export interface ArchiveQuery {
  /** Exact match on the item's `with`. */
  with?: string;
  /** Inclusive lower bound on `when`. */
  start?: Date;
  /** Inclusive upper bound on `when`. */
  end?: Date;
  /** Only items after the item with this id (exclusive). Unknown id → UnknownArchiveIdError. */
  after?: string;
  /** Only items before the item with this id (exclusive). Unknown id → UnknownArchiveIdError. */
  before?: string;
  /** Maximum number of items returned, counted from the first returned (see `reverse`). */
  limit?: number;
  /**
   * Newest first. The limit applies in the returned order, so the RSM "last page" is
   * `{ reverse: true, limit }` and the page before X is `{ before: X, reverse: true, limit }`
   * (reverse the result for chronological display).
   */
  reverse?: boolean;
}

/** Filters of count(): limit and reverse are ignored. */
export type ArchiveCountQuery = Omit<ArchiveQuery, 'limit' | 'reverse'>;

export interface ArchiveDeleteQuery {
  /** Only these ids (an empty list deletes nothing). */
  ids?: string[];
  /** Only items with `when` strictly before this. */
  before?: Date;
}

export interface ArchiveStore<T> {
  /** Returns the id (the given one or a generated one). `when` defaults to now. */
  append(host: string, owner: string, item: { with?: string; when?: Date; value: T; id?: string }): Promise<string>;
  query(host: string, owner: string, q?: ArchiveQuery): Promise<ArchiveItem<T>[]>;
  count(host: string, owner: string, q?: ArchiveCountQuery): Promise<number>;
  /** Without q: every item of this owner in this store. Both filters given: both must match. */
  delete(host: string, owner: string, q?: ArchiveDeleteQuery): Promise<number>;
  /** Retention sweep across all hosts and owners of this store: deletes items with `when` < cutoff. */
  deleteOlderThan(cutoff: Date): Promise<number>;
}

export class UnknownArchiveIdError extends Error {
  constructor(readonly id: string) {
    super(`no archive item with id ${JSON.stringify(id)}`);
    this.name = 'UnknownArchiveIdError';
  }
}

export class ArchiveIdExistsError extends Error {
  constructor(readonly id: string) {
    super(`archive item id ${JSON.stringify(id)} already exists`);
    this.name = 'ArchiveIdExistsError';
  }
}

// ---------------------------------------------------------------------------------------------
// Ids.

const B32 = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
const RAND_BITS = 80n;
const RAND_MAX = (1n << RAND_BITS) - 1n;
let lastTime = -1;
let lastRand = 0n;

function encode(n: bigint, chars: number): string {
  let s = '';
  for (let i = 0; i < chars; i++) {
    s = B32[Number(n & 31n)]! + s;
    n >>= 5n;
  }
  return s;
}

/** A new archive id (ULID layout): sortable by generation time, unique. */
export function newArchiveId(now = Date.now()): string {
  let t = now;
  if (t <= lastTime) {
    t = lastTime; // clock went back or same ms: stay monotonic
    if (lastRand === RAND_MAX) {
      t = lastTime + 1;
      lastRand = BigInt('0x' + randomBytes(10).toString('hex')) >> 1n;
    } else {
      lastRand += 1n;
    }
  } else {
    lastRand = BigInt('0x' + randomBytes(10).toString('hex')) >> 1n; // leave room to increment
  }
  lastTime = t;
  return encode(BigInt(t), 10) + encode(lastRand, 16);
}

function checkId(id: string): void {
  if (typeof id !== 'string' || id.length === 0 || id.length > 255) throw new TypeError('invalid archive id');
}

function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isInteger(limit) || limit < 0)) throw new TypeError('limit must be a non-negative integer');
}

// ---------------------------------------------------------------------------------------------
// SQL.

type ArchiveSelect = ReturnType<typeof baseSelect>;

const OLDEST_SINCE = prepared<[host: string, owner: string, store: string, start: number, limit: number], { id: string; with_jid: string | null; ts: number; value: string }>(
  5, (db, host, owner, store, start, limit) => baseSelect(db as Kysely<CoreTables>, host, owner, store).where('ts', '>=', start)
    .select(['id', 'with_jid', 'ts', 'value']).orderBy('ts', 'asc').orderBy('seq', 'asc').limit(limit));

function baseSelect(db: Kysely<CoreTables>, host: string, owner: string, store: string) {
  return db.selectFrom('archive').where('host', '=', host).where('owner', '=', owner).where('store', '=', store);
}

export class SqlArchiveStore<T> implements ArchiveStore<T> {
  constructor(
    private readonly ctx: SqlContext,
    readonly store: string,
  ) {
    checkName('store', store);
  }

  async append(host: string, owner: string, item: { with?: string; when?: Date; value: T; id?: string }): Promise<string> {
    const id = item.id ?? newArchiveId();
    checkId(id);
    const ts = item.when === undefined ? Date.now() : toMs(item.when, 'when');
    const value = toJson(item.value);
    const r = await this.ctx
      .db()
      .insertInto('archive')
      .values({ id, host, owner, store: this.store, with_jid: item.with ?? null, ts, value })
      .onConflict((oc) => oc.columns(['host', 'owner', 'store', 'id']).doNothing())
      .executeTakeFirst();
    if (Number(r.numInsertedOrUpdatedRows ?? 0n) === 0) throw new ArchiveIdExistsError(id);
    return id;
  }

  async #position(db: Kysely<CoreTables>, host: string, owner: string, id: string): Promise<{ ts: number; seq: number }> {
    const row = await baseSelect(db, host, owner, this.store).select(['ts', 'seq']).where('id', '=', id).executeTakeFirst();
    if (!row) throw new UnknownArchiveIdError(id);
    return { ts: Number(row.ts), seq: Number(row.seq) };
  }

  async #filtered(db: Kysely<CoreTables>, host: string, owner: string, q: ArchiveCountQuery): Promise<ArchiveSelect> {
    let s = baseSelect(db, host, owner, this.store);
    if (q.with !== undefined) s = s.where('with_jid', '=', q.with);
    if (q.start !== undefined) s = s.where('ts', '>=', toMs(q.start, 'start'));
    if (q.end !== undefined) s = s.where('ts', '<=', toMs(q.end, 'end'));
    if (q.after !== undefined) {
      const p = await this.#position(db, host, owner, q.after);
      // The redundant `ts >=` bound lets both engines use it as an index range (the OR alone is a filter).
      s = s.where('ts', '>=', p.ts).where((eb) => eb.or([eb('ts', '>', p.ts), eb('seq', '>', p.seq)]));
    }
    if (q.before !== undefined) {
      const p = await this.#position(db, host, owner, q.before);
      s = s.where('ts', '<=', p.ts).where((eb) => eb.or([eb('ts', '<', p.ts), eb('seq', '<', p.seq)]));
    }
    return s;
  }

  async query(host: string, owner: string, q: ArchiveQuery = {}): Promise<ArchiveItem<T>[]> {
    checkLimit(q.limit);
    if (q.limit === 0) {
      // Still validate after/before ids (an unknown id is an error, even for a count-only page).
      const db = this.ctx.db();
      await this.#filtered(db, host, owner, q);
      return [];
    }
    const db = this.ctx.db();
    let rows: { id: string; with_jid: string | null; ts: number; value: string }[];
    if (q.start !== undefined && q.limit !== undefined && q.with === undefined && q.end === undefined
      && q.after === undefined && q.before === undefined && !q.reverse) {
      // The shape of offline delivery at every login: compiled once.
      rows = await OLDEST_SINCE.all(db, host, owner, this.store, toMs(q.start, 'start'), q.limit);
    } else {
      const dir = q.reverse ? 'desc' : 'asc';
      let s = (await this.#filtered(db, host, owner, q)).select(['id', 'with_jid', 'ts', 'value']).orderBy('ts', dir).orderBy('seq', dir);
      if (q.limit !== undefined) s = s.limit(q.limit);
      rows = await s.execute();
    }
    return rows.map((r) => {
      const item: ArchiveItem<T> = { id: r.id, host, owner, when: new Date(Number(r.ts)), value: JSON.parse(r.value) as T };
      if (r.with_jid !== null) item.with = r.with_jid;
      return item;
    });
  }

  async count(host: string, owner: string, q: ArchiveCountQuery = {}): Promise<number> {
    const db = this.ctx.db();
    const row = await (await this.#filtered(db, host, owner, q)).select((eb) => eb.fn.countAll<number>().as('n')).executeTakeFirstOrThrow();
    return Number(row.n);
  }

  async delete(host: string, owner: string, q: ArchiveDeleteQuery = {}): Promise<number> {
    const db = this.ctx.db();
    const before = q.before === undefined ? undefined : toMs(q.before, 'before');
    const run = async (ids?: string[]) => {
      let d = db.deleteFrom('archive').where('host', '=', host).where('owner', '=', owner).where('store', '=', this.store);
      if (ids !== undefined) d = d.where('id', 'in', ids);
      if (before !== undefined) d = d.where('ts', '<', before);
      return Number((await d.executeTakeFirst()).numDeletedRows);
    };
    if (q.ids === undefined) return run();
    if (q.ids.length === 0) return 0;
    const ids = [...new Set(q.ids)];
    if (ids.length <= 500) return run(ids);
    return db.transaction().execute(async () => {
      let n = 0;
      for (let i = 0; i < ids.length; i += 500) n += await run(ids.slice(i, i + 500));
      return n;
    });
  }

  async deleteOlderThan(cutoff: Date): Promise<number> {
    const r = await this.ctx.db().deleteFrom('archive').where('store', '=', this.store).where('ts', '<', toMs(cutoff, 'cutoff')).executeTakeFirst();
    return Number(r.numDeletedRows);
  }
}

/** Every archive row (all stores) of one owner. */
export async function deleteArchiveOwner(db: Kysely<CoreTables>, host: string, owner: string): Promise<number> {
  const r = await db.deleteFrom('archive').where('host', '=', host).where('owner', '=', owner).executeTakeFirst();
  return Number(r.numDeletedRows);
}

// ---------------------------------------------------------------------------------------------
// Memory.

interface MemItem {
  seq: number;
  id: string;
  with: string | null;
  ts: number;
  value: string; // JSON
}

/** Shared state of all memory archive stores of one memoryStorage(). */
export class MemoryArchiveData {
  live: () => void = () => {};
  seq = 0;
  /** host → owner → store → items sorted by (ts, seq) */
  readonly items = new Map<string, Map<string, Map<string, MemItem[]>>>();

  list(host: string, owner: string, store: string, create: true): MemItem[];
  list(host: string, owner: string, store: string, create?: false): MemItem[] | undefined;
  list(host: string, owner: string, store: string, create = false): MemItem[] | undefined {
    let owners = this.items.get(host);
    if (!owners) {
      if (!create) return undefined;
      this.items.set(host, (owners = new Map()));
    }
    let stores = owners.get(owner);
    if (!stores) {
      if (!create) return undefined;
      owners.set(owner, (stores = new Map()));
    }
    let list = stores.get(store);
    if (!list) {
      if (!create) return undefined;
      stores.set(store, (list = []));
    }
    return list;
  }

  deleteOwner(host: string, owner: string): void {
    const owners = this.items.get(host);
    owners?.delete(owner);
    if (owners?.size === 0) this.items.delete(host);
  }
}

function before(a: MemItem, b: { ts: number; seq: number }): boolean {
  return a.ts < b.ts || (a.ts === b.ts && a.seq < b.seq);
}

export class MemoryArchiveStore<T> implements ArchiveStore<T> {
  constructor(
    private readonly data: MemoryArchiveData,
    readonly store: string,
  ) {
    checkName('store', store);
  }

  async append(host: string, owner: string, item: { with?: string; when?: Date; value: T; id?: string }): Promise<string> {
    this.data.live();
    const id = item.id ?? newArchiveId();
    checkId(id);
    const ts = item.when === undefined ? Date.now() : toMs(item.when, 'when');
    const value = toJson(item.value);
    const list = this.data.list(host, owner, this.store, true);
    if (list.some((i) => i.id === id)) throw new ArchiveIdExistsError(id);
    const m: MemItem = { seq: ++this.data.seq, id, with: item.with ?? null, ts, value };
    // Binary search for the first item after m; appends in time order land at the end.
    let lo = 0;
    let hi = list.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (before(m, list[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    list.splice(lo, 0, m);
    return id;
  }

  #filtered(host: string, owner: string, q: ArchiveCountQuery): MemItem[] {
    const list = this.data.list(host, owner, this.store) ?? [];
    const pos = (id: string) => {
      const p = list.find((i) => i.id === id);
      if (!p) throw new UnknownArchiveIdError(id);
      return p;
    };
    const start = q.start === undefined ? undefined : toMs(q.start, 'start');
    const end = q.end === undefined ? undefined : toMs(q.end, 'end');
    const after = q.after === undefined ? undefined : pos(q.after);
    const bef = q.before === undefined ? undefined : pos(q.before);
    return list.filter(
      (i) =>
        (q.with === undefined || i.with === q.with) &&
        (start === undefined || i.ts >= start) &&
        (end === undefined || i.ts <= end) &&
        (after === undefined || before(after, i)) &&
        (bef === undefined || before(i, bef)),
    );
  }

  async query(host: string, owner: string, q: ArchiveQuery = {}): Promise<ArchiveItem<T>[]> {
    this.data.live();
    checkLimit(q.limit);
    let items = this.#filtered(host, owner, q);
    if (q.reverse) items = items.reverse();
    if (q.limit !== undefined) items = items.slice(0, q.limit);
    return items.map((i) => {
      const item: ArchiveItem<T> = { id: i.id, host, owner, when: new Date(i.ts), value: JSON.parse(i.value) as T };
      if (i.with !== null) item.with = i.with;
      return item;
    });
  }

  async count(host: string, owner: string, q: ArchiveCountQuery = {}): Promise<number> {
    this.data.live();
    return this.#filtered(host, owner, q).length;
  }

  async delete(host: string, owner: string, q: ArchiveDeleteQuery = {}): Promise<number> {
    this.data.live();
    const before = q.before === undefined ? undefined : toMs(q.before, 'before');
    const list = this.data.list(host, owner, this.store);
    if (!list) return 0;
    const ids = q.ids === undefined ? undefined : new Set(q.ids);
    const keep = list.filter((i) => !((ids === undefined || ids.has(i.id)) && (before === undefined || i.ts < before)));
    const n = list.length - keep.length;
    list.splice(0, list.length, ...keep);
    return n;
  }

  async deleteOlderThan(cutoff: Date): Promise<number> {
    this.data.live();
    const c = toMs(cutoff, 'cutoff');
    let n = 0;
    for (const owners of this.data.items.values()) {
      for (const stores of owners.values()) {
        const list = stores.get(this.store);
        if (!list) continue;
        const keep = list.filter((i) => i.ts >= c);
        n += list.length - keep.length;
        list.splice(0, list.length, ...keep);
      }
    }
    return n;
  }
}
