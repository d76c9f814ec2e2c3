// Presence subscriptions (RFC 6121 §3) and presence exchange (RFC 6121 §4).
//
// Client presence arrives through the router with `session` set (outbound processing, the
// "user's server"); presence the server routes with ctx.send() arrives without it (inbound
// processing, the "contact's server"). Both sides are local for now: remote domains are bounced
// by the router until s2s exists. Probes about contacts of this host are answered directly
// (§4.3.2); about contacts of another local host, a probe is routed there.
//
// One instance runs per host, and the router hands a stanza to the instance of its 'to' domain.
// Outbound processing needs the sender's roster and session state, which belong to the sender's
// host, so a client's presence to another local host is relayed to its own host's instance
// through the module's 'presence:outbound' hook.
//
// State: the roster (subscription, ask, approved) and pending inbound requests live in the
// roster service; per-session presence state (last broadcast presence, directed presence) lives
// in a WeakMap of this module instance. Work on one account is serialised by a per-user lock;
// stanzas to another account are routed after the lock is released, so two users subscribing to
// each other at once can never wait on each other.
//
// Replaced sessions (a new login binds the same full JID, RFC 6120 §7.7.2.2): the old session's
// 'session:closed' comes after the registry already points at the new one. Rule: if the new
// session has sent presence by then (checked under the user's lock, so it cannot happen half-way),
// the old session's close sends nothing to contacts or the user's other resources — the full
// JID is online, with the new session's presence. Only entities that got directed presence from
// the old session and not from the new one (and are not subscribers) get unavailable. If the
// new session has not sent presence yet, the close is broadcast as usual: that full JID is
// not available until the new session says so (its initial presence then follows, in order).
import { defineModule } from '../../core/modules/define.ts';
import type { RoutedStanza } from '../../core/router/router.ts';
import type { Session } from '../../core/sessions/session.ts';
import type { Jid } from '../../jid/index.ts';
import type { XmlElement } from '../../xml/index.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import { RosterServiceKey, type RosterItem, type Subscription } from '../roster/service.ts';
import { parsePriority, presence, SUBSCRIPTION_TYPES } from './codec.ts';
import { KeyedLock } from '../../core/util/keyed-lock.ts';
import { inbound, outbound, type Outcome, type SubState, type SubscriptionType } from './subscription.ts';

declare module '../../core/hooks.ts' {
  interface HookMap {
    /**
     * Internal to the presence module: a client's presence addressed to another local host,
     * relayed by that host's instance to the instance of the client's own host.
     */
    'presence:outbound': { stanza: RoutedStanza };
  }
}

interface SessionState {
  /** The last available presence the session broadcast (from = its full JID, no 'to'). */
  last?: XmlElement;
  /** Entities that got directed available presence and no unavailable since (§4.6), by JID string. */
  readonly directed: Map<string, Jid>;
}

const hasFrom = (s: Subscription) => s === 'from' || s === 'both';
const hasTo = (s: Subscription) => s === 'to' || s === 'both';

export default defineModule({
  name: 'presence',
  specs: [{ rfc: 6121, status: 'partial', note: '§3 subscriptions (with pre-approval) and §4 presence; remote contacts wait for s2s' }],
  defaultEnabled: true,
  depends: ['roster'],
  setup(ctx) {
    const roster = ctx.use(RosterServiceKey);
    const lock = new KeyedLock();
    const states = new WeakMap<Session, SessionState>();
    const stateOf = (s: Session): SessionState => {
      let st = states.get(s);
      if (!st) states.set(s, (st = { directed: new Map() }));
      return st;
    };
    const isLocal = (domain: string) => ctx.serverConfig.hosts.includes(domain);
    const accountExists = async (j: Jid) => isLocal(j.domain) && (await ctx.storage.accounts.get(j.domain, j.local)) !== null;
    const available = (bare: Jid) => ctx.sessions.resources(bare).filter((r) => r.available);

    // ---- subscriptions (§3) ---------------------------------------------------------------

    /**
     * Apply one subscription stanza to `owner`'s relationship with `contact` (call under the
     * owner's lock). Reads the roster item and the pending request, writes only what changed.
     */
    async function transition(owner: Jid, contact: Jid, dir: 'outbound' | 'inbound', type: SubscriptionType, stanza: XmlElement): Promise<Outcome> {
      const pendingIn = (await roster.pendingIn(owner)).some((p) => p.from.bare.equals(contact));
      const stateOf = (item: RosterItem | undefined): SubState => ({
        subscription: item?.subscription ?? 'none', pendingOut: item?.ask ?? false, pendingIn, approved: item?.approved ?? false,
      });
      const decide = (item: RosterItem | undefined) => (dir === 'outbound' ? outbound : inbound)(type, stateOf(item));
      const rosterChange = (cur: SubState, o: Outcome) =>
        o.next.subscription !== cur.subscription || o.next.pendingOut !== cur.pendingOut || o.next.approved !== cur.approved;
      const before = await roster.get(owner, contact);
      let o = decide(before);
      if (rosterChange(stateOf(before), o)) {
        // Decide again on the item modify() hands us (serialised per owner by the roster service).
        await roster.modify(owner, contact, (current) => {
          o = decide(current);
          const cur = stateOf(current);
          if (!rosterChange(cur, o)) return current;
          const base: RosterItem = current ?? { jid: contact, groups: [], subscription: 'none', ask: false, approved: false };
          const next: RosterItem = { ...base, subscription: o.next.subscription, ask: o.next.pendingOut, approved: o.next.approved };
          // RFC 6121 §3.1.3: an inbound request alone creates no roster item.
          if (!current && next.subscription === 'none' && !next.ask && !next.approved) return undefined;
          return next;
        });
      }
      if (o.next.pendingIn && !pendingIn) await roster.addPendingIn(owner, contact, stanza);
      else if (!o.next.pendingIn && pendingIn) await roster.removePendingIn(owner, contact);
      return o;
    }

    /** The presence `owner`'s available resources owe `contact` after a subscription change. */
    async function owePresence(owner: Jid, contact: Jid, kind: Outcome['presence']): Promise<void> {
      if (!kind) return;
      for (const r of available(owner)) {
        const last = stateOf(r).last;
        if (kind === 'available' && last) await ctx.send(last.withAttrs({ to: contact.toString() }));
        else if (kind === 'unavailable') await ctx.send(presence(r.jid, contact, 'unavailable'));
      }
    }

    /** §3.1.2, §3.1.5, §3.2.1, §3.3.1, §3.4: the user sends a subscription stanza. */
    async function outboundSubscription(session: Session, s: RoutedStanza): Promise<void> {
      const user = session.jid.bare;
      const contact = s.to.bare;
      if (contact.equals(user)) return; // to oneself: no subscription state to keep
      // §3.1.2: the server stamps the bare JIDs of both parties.
      const stamped = s.el.withAttrs({ from: user.toString(), to: contact.toString() });
      const type = s.type as SubscriptionType;
      const o = await lock.run(user.toString(), () => transition(user, contact, 'outbound', type, stamped));
      if (o.pass) await ctx.send(stamped);
      await owePresence(user, contact, o.presence);
    }

    /** §3.1.3, §3.1.6, §3.2.3, §3.3.3, §3.4: a subscription stanza to a local user. */
    async function inboundSubscription(s: RoutedStanza): Promise<void> {
      const owner = s.to.bare;
      const contact = s.from.bare;
      // Never reveal whether an account exists: to a non-existent user, silently nothing.
      if (contact.equals(owner) || !(await accountExists(owner))) return;
      const stanza = s.el.withAttrs({ from: contact.toString(), to: owner.toString() });
      const type = s.type as SubscriptionType;
      const o = await lock.run(owner.toString(), async () => {
        const out = await transition(owner, contact, 'inbound', type, stanza);
        // §3.1.3: a request goes to all available resources (and is stored until answered);
        // approvals and cancellations likewise (§3.1.6, §3.2.3, §3.3.3).
        if (out.pass) for (const r of available(owner)) r.send(stanza);
        return out;
      });
      // §3.1.3 auto-reply when already subscribed; §3.4 approval of a pre-approved contact.
      if (o.reply) await ctx.send(presence(owner, contact, o.reply));
      await owePresence(owner, contact, o.presence);
    }

    // ---- presence (§4) -------------------------------------------------------------------

    /** Each local owner's subscription with `contact` (none when the owner is no account), by bare JID string. */
    async function subscriptions(owners: Jid[], contact: Jid): Promise<Map<string, Subscription>> {
      if (roster.subscriptions) return roster.subscriptions(owners, contact);
      const out = new Map<string, Subscription>();
      for (const o of owners) {
        const item = (await accountExists(o)) ? await roster.get(o, contact) : undefined;
        if (item) out.set(o.toString(), item.subscription);
      }
      return out;
    }

    /** §4.3.2: answer a probe from `prober` about local `contact`. */
    async function answerProbe(contact: Jid, prober: Jid): Promise<void> {
      const item = (await accountExists(contact)) ? await roster.get(contact, prober.bare) : undefined;
      await answerProbeWith(contact, prober, item?.subscription);
    }

    /** answerProbe with the contact's subscription with the prober already read (undefined: no item, or no account). */
    async function answerProbeWith(contact: Jid, prober: Jid, subscription: Subscription | undefined): Promise<void> {
      if (!subscription || !hasFrom(subscription)) {
        // §4.3.2: not subscribed (or no such account: the same answer) → "unsubscribed", which
        // the prober's server processes as a cancellation (not of a pre-approval, §3.4).
        await ctx.send(presence(contact, prober.bare, 'unsubscribed'));
        return;
      }
      // Each available resource's last presence. With none, we send nothing: the prober
      // already treats the contact as offline (the RFC allows either).
      for (const r of available(contact)) {
        const last = stateOf(r).last;
        if (last) await ctx.send(last.withAttrs({ to: prober.toString() }));
      }
    }

    /** §4.2.2 initial and §4.4.2 subsequent presence: a broadcast from `session`. */
    async function broadcastAvailable(session: Session, el: XmlElement, priority: number): Promise<void> {
      const user = session.jid.bare;
      const stamped = el.withAttrs({ to: undefined });
      const result = await lock.run(user.toString(), async () => {
        // A session already replaced by a new login with the same resource speaks no more for that JID.
        if (ctx.sessions.get(session.jid) !== session) return undefined;
        const st = stateOf(session);
        const initial = !session.available;
        session.available = true;
        session.priority = priority; // RFC 6121 §8.5.2.1.1: the router reads it for bare-JID messages
        st.last = stamped;
        const items = await roster.list(user);
        // §4.2.2/§4.4.2: to every contact subscribed to the user (their available resources, §4.2.3).
        for (const item of items) {
          if (hasFrom(item.subscription)) await ctx.send(stamped.withAttrs({ to: item.jid.toString() }));
        }
        // ... and to all of the user's available resources, the sender included (implicitly
        // subscribed to its own presence).
        for (const r of available(user)) r.send(stamped.withAttrs({ to: user.toString() }));
        if (initial) {
          // The new resource learns about the user's other available resources.
          for (const r of available(user)) {
            const last = stateOf(r).last;
            if (r !== session && last) session.send(last.withAttrs({ to: session.jid.toString() }));
          }
          // §3.1.3: unanswered subscription requests, again on every initial presence.
          for (const p of await roster.pendingIn(user)) session.send(p.stanza.withAttrs({ to: user.toString() }));
        }
        return { initial, items };
      });
      if (!result) return;
      if (result.initial) {
        // §4.2.2 probes to the contacts the user is subscribed to. Local contacts are answered
        // directly (§4.3.2); outside the lock, since an "unsubscribed" answer comes back to us.
        const probed = result.items.filter((i) => hasTo(i.subscription));
        // The contacts' subscriptions with the user, in one read rather than two per contact.
        const theirs = await subscriptions(probed.filter((i) => i.jid.domain === ctx.host).map((i) => i.jid), user);
        for (const item of probed) {
          // Contacts on this host: answered here. Elsewhere (another local host's instance
          // keeps its users' presence; remote domains once s2s exists): a probe from the new
          // resource, so the answers come to it alone.
          if (item.jid.domain === ctx.host) await answerProbeWith(item.jid, session.jid, theirs.get(item.jid.bare.toString()));
          else await ctx.send(presence(session.jid, item.jid, 'probe'));
        }
      }
      await ctx.emit('presence:available', { session, initial: result.initial });
    }

    /**
     * §4.5.2: `session` becomes unavailable (call under the user's lock): `el` goes to the
     * subscribers, the user's other available resources and the entities that got directed
     * presence (§4.6.3). Returns whether the session had been available.
     */
    async function goUnavailable(session: Session, el: XmlElement): Promise<boolean> {
      const user = session.jid.bare;
      const st = stateOf(session);
      const was = session.available;
      session.available = false;
      session.priority = 0;
      st.last = undefined;
      const covered = new Set<string>();
      if (was) {
        for (const item of await roster.list(user)) {
          if (!hasFrom(item.subscription)) continue;
          covered.add(item.jid.toString());
          await ctx.send(el.withAttrs({ to: item.jid.toString() }));
        }
        for (const r of available(user)) if (r !== session) r.send(el.withAttrs({ to: user.toString() }));
      }
      for (const jid of st.directed.values()) {
        if (!covered.has(jid.bare.toString())) await ctx.send(el.withAttrs({ to: jid.toString() }));
      }
      st.directed.clear();
      return was;
    }

    /** §4.6.2: directed presence from a client; tracked so it can be "unsaid" on logout (§4.6.3). */
    async function directed(session: Session, s: RoutedStanza): Promise<void> {
      const user = session.jid.bare;
      const st = stateOf(session);
      if (!s.to.bare.equals(user)) {
        const key = s.to.toString();
        if (s.type === 'unavailable') st.directed.delete(key);
        else {
          // Subscribers get the broadcasts anyway (and the unavailable with them).
          const item = await roster.get(user, s.to.bare);
          if (!item || !hasFrom(item.subscription)) st.directed.set(key, s.to);
        }
      }
      await ctx.send(s.el);
    }

    /** A presence stanza from one of our clients. */
    async function fromClient(session: Session, s: RoutedStanza): Promise<void> {
      if (SUBSCRIPTION_TYPES.has(s.type)) return outboundSubscription(session, s);
      switch (s.type) {
        case 'probe':
          // §4.3: probes are the server's business, but a client's probe about a local
          // contact is answered like any other (to that resource only).
          if (isLocal(s.to.domain)) return answerProbe(s.to.bare, session.jid);
          return;
        case 'error':
          // The client answers something with an error: route it as is. Without 'to' it answers
          // nobody (an error is never answered, RFC 6120 §8.3.1): nothing to route.
          if (s.el.attr('to') === undefined) return;
          return ctx.send(s.el);
        case 'available':
        case 'unavailable':
          break;
        default:
          // RFC 6121 §4.7.1: no other types.
          throw new StanzaError('bad-request', 'Unknown presence type'); // the router answers the sending session (RFC 6120 §8.3.1)
      }
      // A bad <priority/> throws StanzaError('bad-request'): the router answers the sending session.
      const priority = s.type === 'available' ? parsePriority(s.el) : 0;
      // A 'to' attribute makes it directed presence (§4.6); none makes it a broadcast.
      if (s.el.attr('to') !== undefined) return directed(session, s);
      if (s.type === 'available') return broadcastAvailable(session, s.el, priority);
      const was = await lock.run(session.jid.bare.toString(), () => goUnavailable(session, s.el.withAttrs({ to: undefined })));
      if (was) await ctx.emit('presence:unavailable', { session });
    }

    /** Presence routed by the server to a local address (inbound processing). */
    async function toLocal(s: RoutedStanza): Promise<void> {
      if (SUBSCRIPTION_TYPES.has(s.type)) return inboundSubscription(s); // to a full JID: as to the bare (§3)
      switch (s.type) {
        case 'probe':
          return answerProbe(s.to.bare, s.from);
        case 'error': {
          // §4.6.3: an entity that answers directed presence with an error gets no unavailable later.
          const targets = s.addressing === 'full' ? [ctx.sessions.get(s.to)].filter((t) => t !== undefined) : ctx.sessions.resources(s.to);
          for (const t of targets) {
            const st = states.get(t);
            if (st) for (const [k, j] of st.directed) if (j.bare.equals(s.from.bare)) st.directed.delete(k);
          }
          // Delivered to the resource it answers; an error to the bare JID goes no further.
          if (s.addressing === 'full') ctx.sessions.get(s.to)?.send(s.el);
          return;
        }
        case 'available':
        case 'unavailable':
          if (s.addressing === 'full') {
            // RFC 6121 §8.5.3.1: to the resource, if there is one; otherwise silently dropped.
            ctx.sessions.get(s.to)?.send(s.el);
          } else {
            // RFC 6121 §8.5.2.1.2 (§4.2.3, §4.4.3, §4.5.3): all available resources; none → dropped.
            for (const r of available(s.to)) r.send(s.el);
          }
          return;
        default:
          return; // unknown type from the server side: nothing sensible to do
      }
    }

    const handle = async (s: RoutedStanza): Promise<boolean> => {
      if (!s.session) await toLocal(s);
      // The router hands us what is addressed to our host; a client of another local host is
      // that host's business (its roster, its sessions' state): relay it there.
      else if (s.session.host !== ctx.host) await ctx.emit('presence:outbound', { stanza: s });
      else await fromClient(s.session, s);
      return true;
    };
    ctx.on('presence:outbound', async ({ stanza }) => {
      if (stanza.session?.host === ctx.host) await fromClient(stanza.session, stanza);
    });
    ctx.presence.on('bare', handle);
    ctx.presence.on('full', handle);

    // §4.5.2: a connection that ends without unavailable presence → broadcast it as if sent.
    ctx.on('session:closed', async ({ session }) => {
      if (session.host !== ctx.host) return; // hooks are server-wide: every host's instance hears them
      const user = session.jid.bare;
      const was = await lock.run(user.toString(), async () => {
        const replacement = ctx.sessions.get(session.jid);
        if (replacement && replacement !== session && replacement.available) {
          // Replaced by a new login that already sent presence (see the rule at the top).
          const st = stateOf(session);
          const wasAvailable = session.available;
          session.available = false;
          st.last = undefined;
          const theirs = stateOf(replacement).directed;
          if (st.directed.size > 0) {
            const subscribers = new Set((await roster.list(user)).filter((i) => hasFrom(i.subscription)).map((i) => i.jid.toString()));
            for (const [k, jid] of st.directed) {
              if (!theirs.has(k) && !subscribers.has(jid.bare.toString())) await ctx.send(presence(session.jid, jid, 'unavailable'));
            }
          }
          st.directed.clear();
          return wasAvailable;
        }
        return goUnavailable(session, presence(session.jid, user, 'unavailable').withAttrs({ to: undefined }));
      });
      if (was) await ctx.emit('presence:unavailable', { session });
    });

    // RFC 6121 §2.5.2: removing a contact from the roster ends both directions of the subscription
    // and denies a pending request.
    ctx.on('roster:item-removed', async ({ owner, contact, subscription, ask }) => {
      if (owner.domain !== ctx.host) return;
      const user = owner.bare;
      const them = contact.bare;
      const wasPending = await lock.run(user.toString(), async () => {
        const pending = (await roster.pendingIn(user)).some((p) => p.from.bare.equals(them));
        if (pending) await roster.removePendingIn(user, them);
        return pending;
      });
      if (hasTo(subscription) || ask) await ctx.send(presence(user, them, 'unsubscribe'));
      if (hasFrom(subscription) || wasPending) await ctx.send(presence(user, them, 'unsubscribed'));
      // §3.2.1: the contact loses the user's presence: unavailable from each available resource.
      if (hasFrom(subscription)) await owePresence(user, them, 'unavailable');
    });
  },
});

