// RFC 6121 §2: roster management (get, set, remove, groups, pushes to interested resources)
// and XEP-0237 roster versioning. Provides the RosterService (./service.ts) through which the
// presence module changes subscription states, so every change of an item is stored,
// versioned and pushed in one place, serialised per owner.
import { randomBytes } from 'node:crypto';
import { z } from 'zod';
import { defineModule, type ModuleContext } from '../../core/modules/define.ts';
import type { Session } from '../../core/sessions/session.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import type { RoutedStanza } from '../../core/router/router.ts';
import {
  NS_ROSTER, NS_ROSTERVER, formatVersion, itemElement, parseRosterSet, parseVersion,
  pushStanza, queryElement, removedElement, stanzaFromText, stanzaToText, type ItemData,
} from './codec.ts';
import { MemoryRosterRepo, SqlRosterRepo, rosterMigrations, rosterOwnedTables, type PendingIn, type RosterRepo, type StoredItem, type VersionRow } from './roster.repo.ts';
import { KeyedLock } from '../../core/util/keyed-lock.ts';
import { Priority } from '../../core/hooks.ts';
import { RosterCache, type CachedRoster } from './cache.ts';
import { RosterServiceKey, type RosterItem, type RosterService, type Subscription } from './service.ts';

/** Session mark: this resource requested the roster, so it is an "interested resource" (RFC 6121 §2.1.6). */
export const ROSTER_REQUESTED = 'roster-requested';

const DAY = 86_400_000;

export const RosterConfig = z.strictObject({
  maxItems: z.number().int().min(1).max(100_000).default(500)
    .describe('Most items in one roster; adding more is refused with <policy-violation/> (RFC 6121 §2.3.3).'),
  maxNameLength: z.number().int().min(1).max(10_000).default(256)
    .describe('Longest item name, in characters; longer is refused with <not-acceptable/> (RFC 6121 §2.3.3).'),
  maxGroupLength: z.number().int().min(1).max(10_000).default(256)
    .describe('Longest group name, in characters; longer is refused with <not-acceptable/> (RFC 6121 §2.3.3).'),
  maxGroupsPerItem: z.number().int().min(1).max(1_000).default(64)
    .describe('Most groups one item may be in; more is refused with <not-acceptable/>.'),
  tombstoneRetentionDays: z.number().int().min(1).max(3650).default(30)
    .describe('How long removals are remembered for versioned roster retrieval (XEP-0237); a client whose version is older gets the full roster.'),
  maxTombstones: z.number().int().min(0).max(100_000).default(200)
    .describe('Most remembered removals per roster; older ones are forgotten (their clients get the full roster).'),
  maxPendingIn: z.number().int().min(1).max(100_000).default(200)
    .describe('Most unanswered inbound subscription requests stored per account; further ones are refused with <resource-constraint/>.'),
  pendingInRetentionDays: z.number().int().min(1).max(3650).default(90)
    .describe('Unanswered inbound subscription requests are deleted after this many days.'),
});
export type RosterConfig = z.infer<typeof RosterConfig>;


/**
 * Resolves after the router has delivered the reply of the IQ being handled: the router sends
 * the result synchronously right after the handler's promise settles (router.ts routeIq), so a
 * macrotask later it is on the session's queue. Used to send pushes after the result
 * (RFC 6121 §2.3.2, XEP-0237 §4: the empty result first, then the pushes).
 */
const afterReply = (): Promise<void> => new Promise((r) => setImmediate(r));

function sameItem(a: ItemData, b: ItemData): boolean {
  return a.contact === b.contact && a.name === b.name && a.subscription === b.subscription && a.ask === b.ask
    && a.approved === b.approved && a.groups.length === b.groups.length && a.groups.every((g, i) => g === b.groups[i]);
}

function toItem(s: StoredItem): RosterItem | undefined {
  const jid = Jid.tryParse(s.contact);
  if (!jid) return undefined;
  return { jid, name: s.name, groups: s.groups, subscription: s.subscription, ask: s.ask, approved: s.approved };
}

/** A change made under the owner's lock; `push` sends it to the interested resources. */
interface Change { item: RosterItem | undefined; before: StoredItem | undefined; push?: () => void }

class Roster implements RosterService {
  readonly #locks = new KeyedLock();
  readonly #cfg: RosterConfig;
  readonly cache = new RosterCache(toItem);

  constructor(private readonly ctx: ModuleContext<RosterConfig>, private readonly repo: RosterRepo) {
    this.#cfg = ctx.config;
  }

  /** The account's username; the owner must be an account of this host. */
  #owner(owner: Jid): string {
    if (owner.domain !== this.ctx.host || owner.local === '') throw new Error(`roster: ${owner.bare.toString()} is not an account of ${this.ctx.host}`);
    return owner.local;
  }

  #lockKey(owner: Jid): string {
    return owner.bare.toString();
  }

  async get(owner: Jid, contact: Jid): Promise<RosterItem | undefined> {
    const username = this.#owner(owner);
    const key = contact.bare.toString();
    const cached = this.cache.peek(username);
    if (cached) return cached.byContact.get(key);
    const s = await this.repo.get(this.ctx.host, username, key);
    return s ? toItem(s) : undefined;
  }

  async list(owner: Jid): Promise<RosterItem[]> {
    return [...(await this.#cached(owner)).items];
  }

  /** The owner's roster, from the cache while the account has a session here. */
  #cached(owner: Jid): Promise<CachedRoster> {
    const username = this.#owner(owner);
    return this.cache.get(username, () => this.repo.list(this.ctx.host, username), () => this.ctx.sessions.countFor(owner.bare) > 0);
  }

  /** The account's last session here closed, or the account is gone: its cached roster goes. */
  forget(owner: Jid): void {
    if (owner.domain === this.ctx.host && this.ctx.sessions.countFor(owner.bare) === 0) this.cache.invalidate(owner.local);
  }

  async subscriptions(owners: readonly Jid[], contact: Jid): Promise<Map<string, Subscription>> {
    const key = contact.bare.toString();
    const out = new Map<string, Subscription>();
    const unread: Jid[] = [];
    for (const o of owners) {
      if (o.domain !== this.ctx.host || o.local === '') continue;
      // A cached roster is current, and its owner an account (the entry goes with the account).
      const cached = this.cache.peek(o.local);
      if (!cached) unread.push(o);
      else {
        const sub = cached.byContact.get(key)?.subscription;
        if (sub) out.set(o.bare.toString(), sub);
      }
    }
    if (unread.length === 0) return out;
    const found = await this.repo.subscriptions(this.ctx.host, unread.map((o) => o.local), key);
    for (const o of unread) {
      const sub = found.get(o.local);
      if (sub) out.set(o.bare.toString(), sub);
    }
    return out;
  }

  /** `fn` runs under the owner's lock: it must not call back into this service for the same owner. */
  async modify(owner: Jid, contact: Jid, fn: (current: RosterItem | undefined) => RosterItem | undefined): Promise<RosterItem | undefined> {
    const change = await this.#locks.run(this.#lockKey(owner), async () => {
      const c = await this.change(owner, contact, fn);
      c.push?.();
      return c;
    });
    return change.item;
  }

  /**
   * Read-modify-write one item; the caller holds the owner's lock. Stores the change (bumping
   * the version) and returns a push to send, or no push when nothing changed.
   */
  async change(owner: Jid, contact: Jid, fn: (current: RosterItem | undefined) => RosterItem | undefined): Promise<Change> {
    const username = this.#owner(owner);
    try {
      return await this.#change(owner, username, contact, fn);
    } finally {
      // After the write (even a failed one: it may have reached storage): reads start afresh.
      this.cache.invalidate(username);
    }
  }

  async #change(owner: Jid, username: string, contact: Jid, fn: (current: RosterItem | undefined) => RosterItem | undefined): Promise<Change> {
    const key = contact.bare.toString();
    const before = await this.repo.get(this.ctx.host, username, key);
    const next = fn(before ? toItem(before) : undefined);
    if (!next) {
      if (!before) return { item: undefined, before };
      const v = await this.repo.remove(this.ctx.host, username, key, Date.now(), this.#cfg.maxTombstones);
      if (!v) return { item: undefined, before: undefined }; // gone meanwhile (another process)
      return { item: undefined, before, push: () => this.push(owner, removedElement(key), v) };
    }
    const data: ItemData = {
      contact: key,
      name: next.name === '' ? undefined : next.name,
      subscription: next.subscription,
      ask: next.ask,
      approved: next.approved,
      groups: [...next.groups],
    };
    if (before && sameItem(before, data)) return { item: toItem(before), before };
    // RFC 6121 §2.3.3 leaves roster size to local policy: refuse new items beyond maxItems.
    if (!before && (await this.repo.count(this.ctx.host, username)) >= this.#cfg.maxItems) {
      this.ctx.log.info({ owner: owner.bare.toString(), limit: this.#cfg.maxItems }, 'roster full: item refused (modules.roster.maxItems)');
      throw new StanzaError('policy-violation', `A roster holds at most ${this.#cfg.maxItems} items`);
    }
    const v = await this.repo.put(this.ctx.host, username, data);
    return { item: toItem({ ...data, ver: v.n }), before, push: () => this.push(owner, itemElement(data), v) };
  }

  /** RFC 6121 §2.1.6: a push to every interested resource, with the new version (XEP-0237 §5). */
  push(owner: Jid, item: XmlElement, v: VersionRow): void {
    const ver = formatVersion({ epoch: v.epoch, n: v.n });
    for (const s of this.ctx.sessions.resources(owner.bare)) {
      if (s.marks.has(ROSTER_REQUESTED)) s.send(pushStanza(owner, s.jid, newId(), ver, item));
    }
  }

  async addPendingIn(owner: Jid, from: Jid, stanza: XmlElement): Promise<void> {
    const username = this.#owner(owner);
    const key = from.bare.toString();
    if (!(await this.repo.getPendingIn(this.ctx.host, username, key))
      && (await this.repo.countPendingIn(this.ctx.host, username)) >= this.#cfg.maxPendingIn) {
      this.ctx.log.info({ owner: owner.bare.toString(), limit: this.#cfg.maxPendingIn }, 'too many unanswered subscription requests: request refused (modules.roster.maxPendingIn)');
      throw new StanzaError('resource-constraint', 'Too many unanswered subscription requests');
    }
    await this.repo.addPendingIn(this.ctx.host, username, key, stanzaToText(stanza), Date.now());
  }

  async removePendingIn(owner: Jid, from: Jid): Promise<void> {
    await this.repo.removePendingIn(this.ctx.host, this.#owner(owner), from.bare.toString());
  }

  async pendingIn(owner: Jid): Promise<{ from: Jid; stanza: XmlElement }[]> {
    const out: { from: Jid; stanza: XmlElement }[] = [];
    for (const p of await this.repo.pendingIn(this.ctx.host, this.#owner(owner))) {
      const from = Jid.tryParse(p.from);
      let stanza: XmlElement;
      try {
        stanza = stanzaFromText(p.stanza);
      } catch (err) {
        this.ctx.log.warn({ err }, 'unreadable stored subscription request skipped');
        continue;
      }
      if (from) out.push({ from, stanza });
    }
    return out;
  }

  // --- the IQ handlers ---------------------------------------------------------------------

  /** RFC 6121 §2.1.5, §2.3.3: only the account's own resources get or set its roster. */
  #requester(stanza: RoutedStanza, session: Session | undefined): { owner: Jid; session: Session } {
    if (!session || !stanza.from.bare.equals(stanza.to.bare)) throw new StanzaError('forbidden');
    return { owner: stanza.to.bare, session };
  }

  /** RFC 6121 §2.1.3 roster get, with XEP-0237 §4 versioned retrieval. */
  async handleGet(stanza: RoutedStanza, payload: XmlElement, session0: Session | undefined): Promise<XmlElement | undefined> {
    const { owner, session } = this.#requester(stanza, session0);
    const username = this.#owner(owner);
    const asked = payload.attr('ver');
    // Hold the owner's lock until the result and any interim pushes are out: a live push
    // (newer version) must not overtake them.
    const release = await this.#locks.acquire(this.#lockKey(owner));
    let result: XmlElement | undefined;
    let interim: XmlElement[] = [];
    try {
      session.marks.add(ROSTER_REQUESTED); // now an interested resource (§2.1.6)
      if (asked === undefined) {
        // Not versioning (RFC 6121 §2.1.4): the full roster, without a version.
        result = await this.#full(owner, false);
      } else {
        ({ result, interim } = await this.#versioned(owner, session.jid, username, asked));
      }
    } catch (err) {
      release();
      throw err;
    }
    this.ctx.background('roster interim pushes', (async () => {
      try {
        await afterReply();
        for (const p of interim) session.send(p);
      } finally {
        release();
      }
    })());
    return result;
  }

  async #full(owner: Jid, withVersion: boolean): Promise<XmlElement> {
    const { stored } = await this.#cached(owner);
    const version = withVersion ? formatVersion(await this.repo.version(this.ctx.host, owner.local)) : undefined;
    return queryElement(version, stored.map(itemElement));
  }

  async #versioned(owner: Jid, to: Jid, username: string, asked: string): Promise<{ result: XmlElement | undefined; interim: XmlElement[] }> {
    const cur = await this.repo.version(this.ctx.host, username);
    const current = formatVersion(cur);
    // XEP-0237 §4: unchanged → an empty result, no pushes.
    if (asked === current) return { result: undefined, interim: [] };
    const v = parseVersion(asked);
    // Unknown (other epoch, "", garbage, newer than ours, or older than what we still remember
    // removals for) → the full roster with the current version.
    if (!cur || !v || v.epoch !== cur.epoch || v.n > cur.n || v.n < cur.purged) {
      return { result: await this.#full(owner, true), interim: [] };
    }
    const { version, items, removed } = await this.repo.since(this.ctx.host, username, v.n);
    if (!version || version.epoch !== cur.epoch || v.n < version.purged) return { result: await this.#full(owner, true), interim: [] };
    const changes: { ver: number; el: XmlElement }[] = [
      ...items.map((i) => ({ ver: i.ver, el: itemElement(i) })),
      ...removed.map((t) => ({ ver: t.ver, el: removedElement(t.contact) })),
    ].sort((a, b) => a.ver - b.ver);
    // XEP-0237 §4: pushes unless the full roster is smaller; approximated by counting items.
    const total = await this.repo.count(this.ctx.host, username);
    if (changes.length > total) return { result: await this.#full(owner, true), interim: [] };
    // "Interim roster pushes", in order of modification, each with its own (unique) version.
    return {
      result: undefined,
      interim: changes.map((c) => pushStanza(owner, to, newId(), formatVersion({ epoch: version.epoch, n: c.ver }), c.el)),
    };
  }

  /** RFC 6121 §2.3 (add), §2.4 (update), §2.5 (remove). */
  async handleSet(stanza: RoutedStanza, payload: XmlElement, session0: Session | undefined): Promise<undefined> {
    const { owner } = this.#requester(stanza, session0); // §2.3.3 forbidden
    const req = parseRosterSet(payload, this.#cfg);
    // The user's own JID is not a contact: RFC 6121 defines presence to and from one's own
    // resources without subscriptions (§4.2.2, §4.4.2), so an item for it would only invite
    // subscription loops. Refused as other servers do (Prosody: not-allowed).
    if (req.jid.equals(owner)) throw new StanzaError('not-allowed', 'Your own address cannot be a roster item');
    const username = this.#owner(owner);

    const release = await this.#locks.acquire(this.#lockKey(owner));
    let change: Change;
    let pending: PendingIn | undefined;
    try {
      change = await this.change(owner, req.jid, (cur) => req.kind === 'remove' ? undefined : {
        jid: req.jid,
        name: req.name,
        groups: req.groups,
        // §2.1.2.5, §2.1.2.2, §2.1.2.1: the client never sets these; keep what the server has.
        subscription: cur?.subscription ?? 'none',
        ask: cur?.ask ?? false,
        approved: cur?.approved ?? false,
      });
      if (req.kind === 'remove') {
        if (!change.before) throw new StanzaError('item-not-found'); // §2.5.3
        pending = await this.repo.getPendingIn(this.ctx.host, username, req.jid.toString());
      }
    } catch (err) {
      release();
      throw err;
    }
    const before = change.before;
    this.ctx.background('roster set pushes', (async () => {
      try {
        await afterReply(); // the result first (§2.3.2), then the pushes
        change.push?.();
      } finally {
        release();
      }
      if (req.kind !== 'remove' || !before) return;
      // §2.5.2: the presence module cancels the subscriptions (unsubscribe / unsubscribed) and
      // denies a pending request from the contact (it reads and removes that request itself).
      if (before.subscription !== 'none' || before.ask || pending) {
        await this.ctx.emit('roster:item-removed', { owner, contact: req.jid, subscription: before.subscription, ask: before.ask });
      }
      // The removed contact's unanswered request goes too (if no listener took it) — unless a
      // new one arrived meanwhile, which is left to be answered.
      if (pending) {
        const now = await this.repo.getPendingIn(this.ctx.host, username, req.jid.toString());
        if (now && now.receivedAt === pending.receivedAt && now.stanza === pending.stanza) {
          await this.repo.removePendingIn(this.ctx.host, username, req.jid.toString());
        }
      }
    })());
    return undefined;
  }
}

const newId = (): string => `push-${randomBytes(9).toString('base64url')}`;

export default defineModule({
  name: 'roster',
  specs: [
    { rfc: 6121, status: 'complete', note: '§2 roster management: get, set, remove, groups, pushes to interested resources, size limits' },
    { xep: 237, version: '1.3', status: 'complete', note: 'sequence-number versions with tombstones; interim pushes' },
  ],
  defaultEnabled: true,
  migrations: rosterMigrations,
  ownedTables: rosterOwnedTables,
  config: RosterConfig,
  setup(ctx) {
    const memory = ctx.storage.dialect === 'memory';
    const repo: RosterRepo = memory
      ? new MemoryRosterRepo(async (host, username) => (await ctx.storage.accounts.get(host, username)) !== null)
      : new SqlRosterRepo(() => ctx.storage.db);
    const roster = new Roster(ctx, repo);
    ctx.provide(RosterServiceKey, roster);

    // XEP-0237 §3: advertise versioning among the stream features.
    ctx.streamFeature(() => x('ver', { xmlns: NS_ROSTERVER }));

    ctx.iq.get(NS_ROSTER, 'query', ({ stanza, payload, session }) => roster.handleGet(stanza, payload, session), { to: ['account'] });
    ctx.iq.set(NS_ROSTER, 'query', ({ stanza, payload, session }) => roster.handleSet(stanza, payload, session), { to: ['account'] });

    // SQL tables are purged with the account (ownedTables); the memory twin listens. Either way
    // its cached roster goes.
    ctx.on('user:deleted', async ({ host, username }) => {
      if (host !== ctx.host) return;
      if (memory) await repo.deleteOwner(host, username);
      roster.cache.invalidate(username);
    });
    // The cache holds rosters of accounts with a session only. Late: the presence module's
    // logout broadcast (a 'session:closed' handler too) still reads it.
    ctx.on('session:closed', ({ session }) => roster.forget(session.jid.bare), Priority.Late);

    // Retention: forget old removals (XEP-0237 clients then get the full roster) and
    // unanswered subscription requests.
    const purge = async () => {
      const now = Date.now();
      const t = await repo.purgeTombstones(ctx.host, now - ctx.config.tombstoneRetentionDays * DAY);
      const p = await repo.purgePendingIn(ctx.host, now - ctx.config.pendingInRetentionDays * DAY);
      if (t + p > 0) ctx.log.debug({ tombstones: t, pendingIn: p }, 'roster retention purge');
    };
    ctx.timers.after(60_000, purge);
    ctx.timers.every(6 * 3_600_000, purge);
  },
});

