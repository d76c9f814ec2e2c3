// Roster storage (RFC 6121 §2, XEP-0237): items, tombstones of removed items, the per-owner
// version counter, and inbound subscription requests awaiting an answer (RFC 6121 §3.1.3).
// SQL (SQLite and PostgreSQL through Kysely) and a memory twin with the same contract.
//
// Versioning ("strictly increasing sequence numbers", XEP-0237 §6.3): every change bumps the
// owner's counter and stamps the changed item (or, for a removal, a tombstone) with the new
// value, in one transaction. Changes since version n = items and tombstones stamped > n.
// Tombstones are purged by age and by count; `purged` is the highest stamp ever purged, so a
// client at a version below it may have missed a removal and gets the full roster instead.
import { randomBytes } from 'node:crypto';
import { sql, type Kysely } from 'kysely';
import { prepared, type Migration, type OwnedTable, type Prepared } from '../../storage/index.ts';
import type { Subscription } from './service.ts';
import type { ItemData } from './codec.ts';

export interface StoredItem extends ItemData {
  /** The version that last changed this item. */
  readonly ver: number;
}

export interface VersionRow {
  readonly epoch: string;
  /** Current version (number of changes so far). */
  readonly n: number;
  /** Highest tombstone stamp purged so far (0: none). */
  readonly purged: number;
}

export interface Tombstone { readonly contact: string; readonly ver: number }

export interface PendingIn { readonly from: string; readonly stanza: string; readonly receivedAt: number }

export interface RosterRepo {
  list(host: string, owner: string): Promise<StoredItem[]>;
  get(host: string, owner: string, contact: string): Promise<StoredItem | undefined>;
  /**
   * Each listed owner's subscription with `contact`, by owner, for the owners that have an item
   * for it and are accounts (an item left behind by a deleted account counts as none). A probe
   * fan-out (RFC 6121 §4.3.2) reads them all at once instead of two reads per contact.
   */
  subscriptions(host: string, owners: readonly string[], contact: string): Promise<Map<string, Subscription>>;
  count(host: string, owner: string): Promise<number>;
  version(host: string, owner: string): Promise<VersionRow | undefined>;
  /** Insert or replace an item: bump the version, stamp the item, drop its tombstone. Atomic. */
  put(host: string, owner: string, item: ItemData): Promise<VersionRow>;
  /**
   * Delete an item: bump the version and leave a tombstone (at most `keepTombstones` per owner:
   * older ones are purged). Atomic. Undefined (and nothing changes) if there is no such item.
   */
  remove(host: string, owner: string, contact: string, now: number, keepTombstones: number): Promise<VersionRow | undefined>;
  /**
   * What changed after version n: items and tombstones stamped > n, oldest change first, and the
   * version they lead to. Read tombstones first, the version last, so a concurrent purge can
   * only make `purged` look higher (→ full roster), never hide a removal.
   */
  since(host: string, owner: string, n: number): Promise<{ version: VersionRow | undefined; items: StoredItem[]; removed: Tombstone[] }>;
  /** Purge tombstones removed before `before` (epoch ms), on all owners of a host; returns how many. */
  purgeTombstones(host: string, before: number): Promise<number>;

  /** Store (or replace) an inbound subscription request from a bare JID. */
  addPendingIn(host: string, owner: string, from: string, stanza: string, now: number): Promise<void>;
  removePendingIn(host: string, owner: string, from: string): Promise<boolean>;
  /** Oldest first. */
  pendingIn(host: string, owner: string): Promise<PendingIn[]>;
  countPendingIn(host: string, owner: string): Promise<number>;
  getPendingIn(host: string, owner: string, from: string): Promise<PendingIn | undefined>;
  /** Purge requests received before `before` (epoch ms), on all owners of a host. */
  purgePendingIn(host: string, before: number): Promise<number>;

  /** Everything of one account (the SQL tables are also purged through ownedTables). */
  deleteOwner(host: string, owner: string): Promise<void>;
}

export const newEpoch = (): string => randomBytes(4).toString('hex');

// ---------------------------------------------------------------------------------------------
// Schema

export const rosterMigrations: Migration[] = [
  {
    id: 'roster/001-tables',
    async up(db) {
      await db.schema
        .createTable('roster_items')
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('contact', 'text', (c) => c.notNull()) // bare JID, prepared
        .addColumn('name', 'text')
        .addColumn('subscription', 'text', (c) => c.notNull()) // none | to | from | both
        .addColumn('ask', 'integer', (c) => c.notNull().defaultTo(0)) // 1 = ask="subscribe"
        .addColumn('approved', 'integer', (c) => c.notNull().defaultTo(0)) // 1 = pre-approved
        .addColumn('groups', 'text', (c) => c.notNull().defaultTo('[]')) // JSON array of strings
        .addColumn('ver', 'bigint', (c) => c.notNull())
        .addPrimaryKeyConstraint('roster_items_pk', ['host', 'owner', 'contact'])
        .execute();
      await db.schema
        .createTable('roster_tombstones')
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('contact', 'text', (c) => c.notNull())
        .addColumn('ver', 'bigint', (c) => c.notNull())
        .addColumn('removed_at', 'bigint', (c) => c.notNull()) // epoch ms
        .addPrimaryKeyConstraint('roster_tombstones_pk', ['host', 'owner', 'contact'])
        .execute();
      await db.schema.createIndex('roster_tombstones_age').on('roster_tombstones').columns(['host', 'removed_at']).execute();
      await db.schema
        .createTable('roster_versions')
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('epoch', 'text', (c) => c.notNull())
        .addColumn('ver', 'bigint', (c) => c.notNull())
        .addColumn('purged', 'bigint', (c) => c.notNull().defaultTo(0))
        .addPrimaryKeyConstraint('roster_versions_pk', ['host', 'owner'])
        .execute();
      await db.schema
        .createTable('roster_pending_in')
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('contact', 'text', (c) => c.notNull()) // the requester's bare JID
        .addColumn('stanza', 'text', (c) => c.notNull()) // the <presence type='subscribe'/> as XML
        .addColumn('received_at', 'bigint', (c) => c.notNull()) // epoch ms
        .addPrimaryKeyConstraint('roster_pending_in_pk', ['host', 'owner', 'contact'])
        .execute();
      await db.schema.createIndex('roster_pending_in_age').on('roster_pending_in').columns(['host', 'received_at']).execute();
    },
  },
];

/** Every roster table belongs to one account (host, owner): purged with it. */
export const rosterOwnedTables: OwnedTable[] = [
  { table: 'roster_items' },
  { table: 'roster_tombstones' },
  { table: 'roster_versions' },
  { table: 'roster_pending_in' },
];

// ---------------------------------------------------------------------------------------------
// SQL

interface ItemRow { contact: string; name: string | null; subscription: string; ask: number; approved: number; groups: string; ver: number }

const SUBSCRIPTIONS: readonly string[] = ['none', 'to', 'from', 'both'];

const toSubscription = (s: string): Subscription => (SUBSCRIPTIONS.includes(s) ? (s as Subscription) : 'none');

function fromRow(r: ItemRow): StoredItem {
  const sub = toSubscription(r.subscription);
  const groups = JSON.parse(r.groups) as unknown;
  return {
    contact: r.contact,
    name: r.name ?? undefined,
    subscription: sub,
    ask: Number(r.ask) === 1,
    approved: Number(r.approved) === 1,
    groups: Array.isArray(groups) ? groups.filter((g): g is string => typeof g === 'string') : [],
    ver: Number(r.ver),
  };
}

const ITEM_COLUMNS = ['contact', 'name', 'subscription', 'ask', 'approved', 'groups', 'ver'] as const;
/** Owners per IN list (SQLite and PostgreSQL bound the number of parameters); a power of two. */
const IN_CHUNK = 512;

// The queries every login runs, compiled once (storage/prepared.ts).
const LIST = prepared<[host: string, owner: string], ItemRow>(2, (db, host, owner) =>
  db.selectFrom('roster_items').select(ITEM_COLUMNS).where('host', '=', host).where('owner', '=', owner).orderBy('contact'));
const GET = prepared<[host: string, owner: string, contact: string], ItemRow>(3, (db, host, owner, contact) =>
  db.selectFrom('roster_items').select(ITEM_COLUMNS).where('host', '=', host).where('owner', '=', owner).where('contact', '=', contact));
const PENDING_IN = prepared<[host: string, owner: string], { contact: string; stanza: string; received_at: number }>(2, (db, host, owner) =>
  db.selectFrom('roster_pending_in').select(['contact', 'stanza', 'received_at']).where('host', '=', host).where('owner', '=', owner).orderBy('received_at').orderBy('contact'));
const VERSION = prepared<[host: string, owner: string], { epoch: string; ver: number; purged: number }>(2, (db, host, owner) =>
  db.selectFrom('roster_versions').select(['epoch', 'ver', 'purged']).where('host', '=', host).where('owner', '=', owner));
/** By number of owners (a power of two up to IN_CHUNK): host, contact, then the owners. */
const SUBSCRIPTIONS_OF = new Map<number, Prepared<string[], { owner: string; subscription: string }>>();
function subscriptionsOf(n: number): Prepared<string[], { owner: string; subscription: string }> {
  let q = SUBSCRIPTIONS_OF.get(n);
  if (!q) {
    // The (host, owner, contact) key serves each IN lookup, the accounts key the join.
    SUBSCRIPTIONS_OF.set(n, (q = prepared<string[], { owner: string; subscription: string }>(n + 2, (db, host, contact, ...owners) =>
      db.selectFrom('roster_items as r')
        .innerJoin('accounts as a', (j) => j.onRef('a.host', '=', 'r.host').onRef('a.username', '=', 'r.owner'))
        .select(['r.owner', 'r.subscription'])
        .where('r.host', '=', host!).where('r.contact', '=', contact!).where('r.owner', 'in', owners))));
  }
  return q;
}

export class SqlRosterRepo implements RosterRepo {
  constructor(private readonly db: () => Kysely<any>) {}

  async list(host: string, owner: string): Promise<StoredItem[]> {
    return (await LIST.all(this.db(), host, owner)).map(fromRow);
  }

  async get(host: string, owner: string, contact: string): Promise<StoredItem | undefined> {
    const r = await GET.first(this.db(), host, owner, contact);
    return r ? fromRow(r) : undefined;
  }

  async subscriptions(host: string, owners: readonly string[], contact: string): Promise<Map<string, Subscription>> {
    const out = new Map<string, Subscription>();
    const all = [...new Set(owners)];
    for (let i = 0; i < all.length; i += IN_CHUNK) {
      const chunk = all.slice(i, i + IN_CHUNK);
      // Padded to a power of two (repeats are harmless in IN): a few query shapes, not one per
      // roster size.
      while (chunk.length & (chunk.length - 1)) chunk.push(chunk[0]!);
      const rows = await subscriptionsOf(chunk.length).all(this.db(), host, contact, ...chunk);
      for (const r of rows) out.set(String(r.owner), toSubscription(r.subscription));
    }
    return out;
  }

  async count(host: string, owner: string): Promise<number> {
    const r = await this.db().selectFrom('roster_items').select((eb) => eb.fn.countAll().as('n')).where('host', '=', host).where('owner', '=', owner).executeTakeFirstOrThrow();
    return Number((r as { n: number | string }).n);
  }

  async version(host: string, owner: string): Promise<VersionRow | undefined> {
    const r = await VERSION.first(this.db(), host, owner);
    return r ? { epoch: String(r.epoch), n: Number(r.ver), purged: Number(r.purged) } : undefined;
  }

  async put(host: string, owner: string, item: ItemData): Promise<VersionRow> {
    return this.db().transaction().execute(async (trx) => {
      const v = await bump(trx, host, owner);
      const row = {
        name: item.name ?? null,
        subscription: item.subscription,
        ask: item.ask ? 1 : 0,
        approved: item.approved ? 1 : 0,
        groups: JSON.stringify(item.groups),
        ver: v.n,
      };
      await trx.insertInto('roster_items').values({ host, owner, contact: item.contact, ...row })
        .onConflict((oc) => oc.columns(['host', 'owner', 'contact']).doUpdateSet(row))
        .execute();
      await trx.deleteFrom('roster_tombstones').where('host', '=', host).where('owner', '=', owner).where('contact', '=', item.contact).execute();
      return v;
    });
  }

  async remove(host: string, owner: string, contact: string, now: number, keepTombstones: number): Promise<VersionRow | undefined> {
    return this.db().transaction().execute(async (trx) => {
      const del = await trx.deleteFrom('roster_items').where('host', '=', host).where('owner', '=', owner).where('contact', '=', contact).executeTakeFirst();
      if (Number(del.numDeletedRows) === 0) return undefined;
      let v = await bump(trx, host, owner);
      await trx.insertInto('roster_tombstones').values({ host, owner, contact, ver: v.n, removed_at: now })
        .onConflict((oc) => oc.columns(['host', 'owner', 'contact']).doUpdateSet({ ver: v.n, removed_at: now }))
        .execute();
      // Keep at most `keepTombstones`: the oldest beyond go, and `purged` remembers their stamp.
      const beyond = await trx.selectFrom('roster_tombstones').select('ver').where('host', '=', host).where('owner', '=', owner)
        .orderBy('ver', 'desc').limit(1).offset(keepTombstones).executeTakeFirst();
      if (beyond) {
        const upTo = Number((beyond as { ver: number }).ver);
        await trx.deleteFrom('roster_tombstones').where('host', '=', host).where('owner', '=', owner).where('ver', '<=', upTo).execute();
        await trx.updateTable('roster_versions').set({ purged: upTo }).where('host', '=', host).where('owner', '=', owner).where('purged', '<', upTo).execute();
        v = { ...v, purged: Math.max(v.purged, upTo) };
      }
      return v;
    });
  }

  async since(host: string, owner: string, n: number) {
    const db = this.db();
    const removed = (await db.selectFrom('roster_tombstones').select(['contact', 'ver']).where('host', '=', host).where('owner', '=', owner).where('ver', '>', n).execute())
      .map((r) => ({ contact: String(r.contact), ver: Number(r.ver) }));
    const items = ((await db.selectFrom('roster_items').select(ITEM_COLUMNS).where('host', '=', host).where('owner', '=', owner).where('ver', '>', n).execute()) as ItemRow[]).map(fromRow);
    const version = await readVersion(db, host, owner);
    return { version, items, removed };
  }

  async purgeTombstones(host: string, before: number): Promise<number> {
    return this.db().transaction().execute(async (trx) => {
      const per = await trx.selectFrom('roster_tombstones').select(['owner', (eb) => eb.fn.max('ver').as('m')])
        .where('host', '=', host).where('removed_at', '<', before).groupBy('owner').execute();
      if (per.length === 0) return 0;
      for (const r of per as { owner: string; m: number | string }[]) {
        const m = Number(r.m);
        await trx.updateTable('roster_versions').set({ purged: m }).where('host', '=', host).where('owner', '=', r.owner).where('purged', '<', m).execute();
      }
      // Delete by stamp, not by age alone: per owner everything up to the highest purged stamp,
      // so `purged` never lies about what is left.
      let total = 0;
      for (const r of per as { owner: string; m: number | string }[]) {
        const d = await trx.deleteFrom('roster_tombstones').where('host', '=', host).where('owner', '=', r.owner).where('ver', '<=', Number(r.m)).executeTakeFirst();
        total += Number(d.numDeletedRows);
      }
      return total;
    });
  }

  async addPendingIn(host: string, owner: string, from: string, stanza: string, now: number): Promise<void> {
    await this.db().insertInto('roster_pending_in').values({ host, owner, contact: from, stanza, received_at: now })
      .onConflict((oc) => oc.columns(['host', 'owner', 'contact']).doUpdateSet({ stanza, received_at: now }))
      .execute();
  }

  async removePendingIn(host: string, owner: string, from: string): Promise<boolean> {
    const d = await this.db().deleteFrom('roster_pending_in').where('host', '=', host).where('owner', '=', owner).where('contact', '=', from).executeTakeFirst();
    return Number(d.numDeletedRows) > 0;
  }

  async pendingIn(host: string, owner: string): Promise<PendingIn[]> {
    const rows = await PENDING_IN.all(this.db(), host, owner);
    return rows.map((r) => ({ from: String(r.contact), stanza: String(r.stanza), receivedAt: Number(r.received_at) }));
  }

  async countPendingIn(host: string, owner: string): Promise<number> {
    const r = await this.db().selectFrom('roster_pending_in').select((eb) => eb.fn.countAll().as('n')).where('host', '=', host).where('owner', '=', owner).executeTakeFirstOrThrow();
    return Number((r as { n: number | string }).n);
  }

  async getPendingIn(host: string, owner: string, from: string): Promise<PendingIn | undefined> {
    const r = await this.db().selectFrom('roster_pending_in').select(['contact', 'stanza', 'received_at']).where('host', '=', host).where('owner', '=', owner).where('contact', '=', from).executeTakeFirst();
    return r ? { from: String(r.contact), stanza: String(r.stanza), receivedAt: Number(r.received_at) } : undefined;
  }

  async purgePendingIn(host: string, before: number): Promise<number> {
    const d = await this.db().deleteFrom('roster_pending_in').where('host', '=', host).where('received_at', '<', before).executeTakeFirst();
    return Number(d.numDeletedRows);
  }

  async deleteOwner(host: string, owner: string): Promise<void> {
    await this.db().transaction().execute(async (trx) => {
      for (const t of rosterOwnedTables) await trx.deleteFrom(t.table).where('host', '=', host).where('owner', '=', owner).execute();
    });
  }
}

async function readVersion(db: Kysely<any>, host: string, owner: string): Promise<VersionRow | undefined> {
  const r = await db.selectFrom('roster_versions').select(['epoch', 'ver', 'purged']).where('host', '=', host).where('owner', '=', owner).executeTakeFirst();
  return r ? { epoch: String(r.epoch), n: Number(r.ver), purged: Number(r.purged) } : undefined;
}

/** Increment (or create) the owner's counter inside a transaction; returns the new version. */
async function bump(trx: Kysely<any>, host: string, owner: string): Promise<VersionRow> {
  const r = await trx.insertInto('roster_versions').values({ host, owner, epoch: newEpoch(), ver: 1, purged: 0 })
    .onConflict((oc) => oc.columns(['host', 'owner']).doUpdateSet({ ver: sql`roster_versions.ver + 1` }))
    .returning(['epoch', 'ver', 'purged'])
    .executeTakeFirstOrThrow();
  return { epoch: String(r.epoch), n: Number(r.ver), purged: Number(r.purged) };
}

// ---------------------------------------------------------------------------------------------
// Memory twin

interface MemOwner {
  items: Map<string, StoredItem>;
  tombstones: Map<string, { ver: number; removedAt: number }>;
  version?: VersionRow;
  pending: Map<string, PendingIn>;
}

export class MemoryRosterRepo implements RosterRepo {
  readonly #owners = new Map<string, MemOwner>();

  /** `accountExists` stands in for the SQL join with the accounts table (default: every owner is one). */
  constructor(private readonly accountExists: (host: string, owner: string) => Promise<boolean> = async () => true) {}

  #key(host: string, owner: string): string {
    return `${host}\u0000${owner}`;
  }

  #get(host: string, owner: string): MemOwner | undefined {
    return this.#owners.get(this.#key(host, owner));
  }

  #make(host: string, owner: string): MemOwner {
    const k = this.#key(host, owner);
    let o = this.#owners.get(k);
    if (!o) this.#owners.set(k, (o = { items: new Map(), tombstones: new Map(), pending: new Map() }));
    return o;
  }

  #bump(o: MemOwner): VersionRow {
    o.version = o.version ? { ...o.version, n: o.version.n + 1 } : { epoch: newEpoch(), n: 1, purged: 0 };
    return o.version;
  }

  async list(host: string, owner: string): Promise<StoredItem[]> {
    return [...(this.#get(host, owner)?.items.values() ?? [])].sort((a, b) => (a.contact < b.contact ? -1 : a.contact > b.contact ? 1 : 0));
  }

  async get(host: string, owner: string, contact: string): Promise<StoredItem | undefined> {
    return this.#get(host, owner)?.items.get(contact);
  }

  async subscriptions(host: string, owners: readonly string[], contact: string): Promise<Map<string, Subscription>> {
    const out = new Map<string, Subscription>();
    for (const owner of owners) {
      const item = this.#get(host, owner)?.items.get(contact);
      if (item && (await this.accountExists(host, owner))) out.set(owner, item.subscription);
    }
    return out;
  }

  async count(host: string, owner: string): Promise<number> {
    return this.#get(host, owner)?.items.size ?? 0;
  }

  async version(host: string, owner: string): Promise<VersionRow | undefined> {
    return this.#get(host, owner)?.version;
  }

  async put(host: string, owner: string, item: ItemData): Promise<VersionRow> {
    const o = this.#make(host, owner);
    const v = this.#bump(o);
    o.items.set(item.contact, { ...item, groups: [...item.groups], ver: v.n });
    o.tombstones.delete(item.contact);
    return v;
  }

  async remove(host: string, owner: string, contact: string, now: number, keepTombstones: number): Promise<VersionRow | undefined> {
    const o = this.#get(host, owner);
    if (!o || !o.items.delete(contact)) return undefined;
    const v = this.#bump(o);
    o.tombstones.set(contact, { ver: v.n, removedAt: now });
    if (o.tombstones.size > keepTombstones) {
      const vers = [...o.tombstones.values()].map((t) => t.ver).sort((a, b) => b - a);
      const upTo = vers[keepTombstones]!;
      for (const [c, t] of o.tombstones) if (t.ver <= upTo) o.tombstones.delete(c);
      o.version = { ...v, purged: Math.max(v.purged, upTo) };
    }
    return o.version;
  }

  async since(host: string, owner: string, n: number) {
    const o = this.#get(host, owner);
    if (!o) return { version: undefined, items: [], removed: [] };
    return {
      version: o.version,
      items: [...o.items.values()].filter((i) => i.ver > n),
      removed: [...o.tombstones].filter(([, t]) => t.ver > n).map(([contact, t]) => ({ contact, ver: t.ver })),
    };
  }

  async purgeTombstones(host: string, before: number): Promise<number> {
    let total = 0;
    for (const [k, o] of this.#owners) {
      if (!k.startsWith(`${host}\u0000`)) continue;
      let m = 0;
      for (const t of o.tombstones.values()) if (t.removedAt < before) m = Math.max(m, t.ver);
      if (m === 0) continue;
      for (const [c, t] of o.tombstones) if (t.ver <= m) { o.tombstones.delete(c); total++; }
      if (o.version && o.version.purged < m) o.version = { ...o.version, purged: m };
    }
    return total;
  }

  async addPendingIn(host: string, owner: string, from: string, stanza: string, now: number): Promise<void> {
    this.#make(host, owner).pending.set(from, { from, stanza, receivedAt: now });
  }

  async removePendingIn(host: string, owner: string, from: string): Promise<boolean> {
    return this.#get(host, owner)?.pending.delete(from) ?? false;
  }

  async pendingIn(host: string, owner: string): Promise<PendingIn[]> {
    return [...(this.#get(host, owner)?.pending.values() ?? [])].sort((a, b) => a.receivedAt - b.receivedAt || (a.from < b.from ? -1 : a.from > b.from ? 1 : 0));
  }

  async countPendingIn(host: string, owner: string): Promise<number> {
    return this.#get(host, owner)?.pending.size ?? 0;
  }

  async getPendingIn(host: string, owner: string, from: string): Promise<PendingIn | undefined> {
    return this.#get(host, owner)?.pending.get(from);
  }

  async purgePendingIn(host: string, before: number): Promise<number> {
    let total = 0;
    for (const [k, o] of this.#owners) {
      if (!k.startsWith(`${host}\u0000`)) continue;
      for (const [c, p] of o.pending) if (p.receivedAt < before) { o.pending.delete(c); total++; }
    }
    return total;
  }

  async deleteOwner(host: string, owner: string): Promise<void> {
    this.#owners.delete(this.#key(host, owner));
  }
}
