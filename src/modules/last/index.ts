// XEP-0012 Last Activity: jabber:iq:last on the server (uptime, §5) and on account JIDs (time
// since the user's last session ended and the status of their last unavailable presence, §3).
//
// Stored: one record per account in keyval('last'): when the account's last session closed and
// the <status/> text of the last broadcast unavailable presence of that session (empty when the
// connection just dropped). Overwritten at every logout, deleted with the account (keyval kind).
//
// Written behind: logouts are collected for up to FLUSH_MS (or FLUSH_AT records) and stored in
// one transaction, so a burst of logouts costs one commit (one fsync on SQLite, which runs on
// the event loop) instead of one each. Queries read the buffer first. A crash loses at most the
// last FLUSH_MS of logout times — a timestamp, never a message. A stopping server flushes after
// its sessions closed; a deleted account's buffered record is dropped (and setMany skips owners
// without an account, so a flush racing the deletion writes nothing).
// Queries to full JIDs are routed to the client by the router (§4); the server does not
// intercept them (see the note in the issue report).
import { defineModule } from '../../core/modules/define.ts';
import type { RoutedStanza } from '../../core/router/router.ts';
import type { Session } from '../../core/sessions/session.ts';
import { x } from '../../xml/index.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import { RosterServiceKey } from '../roster/service.ts';

export const NS_LAST = 'jabber:iq:last';

/** Runs before the presence module's handlers and never consumes the stanza. */
const OBSERVER_PRIORITY = 1000;
/** Longest time a logout waits in memory before it is stored. */
export const FLUSH_MS = 2000;
/** Buffered logouts that trigger an immediate flush. */
const FLUSH_AT = 500;

export interface LastRecord {
  /** When the account's last session closed (epoch ms). */
  at: number;
  /** <status/> of the last unavailable presence sent before it closed ('' if none). */
  status: string;
}

export default defineModule({
  name: 'last',
  specs: [{ xep: 12, version: '2.0', status: 'complete', note: 'full-JID queries go to the client unfiltered' }],
  defaultEnabled: true,
  setup(ctx) {
    const store = ctx.storage.keyval<LastRecord>('last');
    const started = Date.now();
    /** The status text of each session's latest broadcast unavailable presence. */
    const statuses = new WeakMap<Session, string>();
    /** Logouts not stored yet: username → record. */
    let pending = new Map<string, LastRecord>();
    let flushTimer = false;

    const flush = async (): Promise<void> => {
      flushTimer = false;
      if (pending.size === 0) return;
      const batch = pending;
      pending = new Map();
      try {
        await store.setMany(ctx.host, [...batch]);
      } catch (err) {
        // Keep what failed unless a newer logout replaced it; the next logout retries.
        for (const [u, r] of batch) if (!pending.has(u)) pending.set(u, r);
        ctx.log.warn({ err, records: batch.size }, 'last activity: storing logout times failed');
      }
    };
    const record = (username: string, rec: LastRecord): void => {
      pending.delete(username); // re-insert: Map order = age, the newest last
      pending.set(username, rec);
      if (pending.size >= FLUSH_AT) ctx.background('last-activity flush', flush());
      else if (!flushTimer) {
        flushTimer = true;
        ctx.timers.after(FLUSH_MS, flush);
      }
    };
    const lastRecord = async (username: string): Promise<LastRecord | null> => pending.get(username) ?? (await store.get(ctx.host, username));

    // §6: advertised by the server and, as the server answers for them, by account JIDs.
    ctx.disco.feature(NS_LAST);
    ctx.disco.feature(NS_LAST, 'account');

    const seconds = (since: number) => String(Math.max(0, Math.floor((Date.now() - since) / 1000)));

    /** §3 and §8: only the user and contacts allowed to see the user's presence may ask. */
    const authorized = async (s: RoutedStanza): Promise<boolean> => {
      const owner = s.to.bare;
      const requester = s.from.bare;
      if (requester.equals(owner)) return true;
      // RFC 6121 §3: a contact with subscription from/both on the user's roster sees presence.
      const roster = ctx.tryUse(RosterServiceKey);
      const item = roster ? await roster.get(owner, requester) : undefined;
      return item !== undefined && (item.subscription === 'from' || item.subscription === 'both');
    };

    ctx.iq.get(NS_LAST, 'query', async ({ stanza }) => {
      // §5: the server's uptime, without character data.
      if (stanza.addressing === 'host') return x('query', { xmlns: NS_LAST, seconds: seconds(started) });
      // §3: forbidden unless authorized. An account that does not exist has no roster, so the
      // answer is the same forbidden as for an existing one (no account enumeration).
      if (!(await authorized(stanza))) throw new StanzaError('forbidden');
      const owner = stanza.to.bare;
      // §3: a connected or available resource → seconds='0', empty query.
      if (ctx.sessions.resources(owner).length > 0) return x('query', { xmlns: NS_LAST, seconds: '0' });
      const rec = await lastRecord(owner.local);
      // Never logged out since the record was introduced (or never logged in at all).
      if (!rec) throw new StanzaError('item-not-found');
      return x('query', { xmlns: NS_LAST, seconds: seconds(rec.at) }, rec.status || null);
    }, { to: ['host', 'account'] });

    // Watch broadcast presence (no 'to', RFC 6121 §4.2, §4.5) for the unavailable status; an
    // available one clears it (the user came back).
    ctx.presence.on('bare', (s) => {
      if (!s.session || s.el.attr('to') !== undefined) return false;
      if (s.type === 'unavailable') statuses.set(s.session, s.el.getChildText('status', s.el.ns) ?? '');
      else if (s.type === 'available') statuses.delete(s.session);
      return false;
    }, OBSERVER_PRIORITY);

    ctx.on('session:closed', async ({ session }) => {
      if (session.host !== ctx.host) return;
      const status = statuses.get(session) ?? '';
      statuses.delete(session);
      // Only when it was the account's last session (the registry no longer holds it).
      if (ctx.sessions.resources(session.jid.bare).length > 0) return;
      record(session.username, { at: Date.now(), status });
    });

    ctx.on('user:deleted', ({ host, username }) => {
      if (host === ctx.host) pending.delete(username);
    });
    ctx.on('server:sessions-closed', flush);
  },
});
