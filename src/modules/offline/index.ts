// XEP-0160 Best Practices for Handling Offline Messages, with XEP-0203 delay stamps.
//
// A message of type normal/chat (XEP-0160 §3) to a local account with no available resource of
// non-negative priority (§2, RFC 6121 §8.5.2.2) is stored in the generic archive kind
// ('offline', owner = the recipient) and delivered, oldest first, to the first resource that
// sends non-negative available presence (§2; the presence module's 'presence:available' hook).
// Each is deleted only after it was handed to that session; if the session goes away midway,
// the rest stay stored for the next one.
//
// Decisions (see also stored.ts):
// - Full limits: `maxMessages` and `maxBytes` (serialized stanzas) per account; a message that
//   would exceed either is bounced with service-unavailable (XEP-0160 §2: "because the
//   recipient's offline message queue is full, the server returns a service-unavailable error"),
//   without text, so it reads the same as an unknown account. The count and bytes stored per
//   account are read from storage once and then kept in memory (dropped after delivery, on
//   account deletion and after the retention sweep), so a sender hammering a full queue costs
//   no storage read per message.
// - XEP-0334: <no-store/> is not stored (§4.2), so the router bounces it with
//   service-unavailable; <no-permanent-store/> may be stored temporarily for delivery (§4.1:
//   "happy for it to be stored temporarily ... if the recipient is offline"); <store/> (§4.4)
//   stores a message that would otherwise not be.
// - Messages with nothing to deliver later (only chat states, hints, ids, a thread) are consumed
//   and dropped (XEP-0160 §3: chat-state-only messages SHOULD NOT be stored), before the account
//   is looked up, so this reveals nothing about whether it exists. Bouncing them instead would
//   answer every typing notification to an offline contact with an error.
// - Retention: stored messages older than `retentionDays` are not delivered and are deleted by a
//   daily sweep (archive deleteOlderThan). Deleting the account deletes them (archive kind).
// - Count check and append, and delivery, run one at a time per account in this process (so
//   the limit holds under concurrent senders and no message slips between delivery and the
//   resource becoming available). A cluster needs a shared lock here, and a shared usage count.
import { z } from 'zod';
import { defineModule } from '../../core/modules/define.ts';
import type { RoutedStanza } from '../../core/router/router.ts';
import type { Session } from '../../core/sessions/session.ts';
import type { Jid } from '../../jid/index.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import { KeyedLock } from '../../core/util/keyed-lock.ts';
import { fromStored, hasNoStoreHint, hasStorablePayload, storableType, toStored, type StoredMessage } from './stored.ts';

const DAY_MS = 24 * 60 * 60 * 1000;
/** Messages read from storage per round trip while delivering. */
const DELIVERY_BATCH = 100;
/** Below the handlers of other modules (carbons, blocking, ...): storing is the last resort. */
const HANDLER_PRIORITY = -100;
/** Session mark: initial presence had a negative priority, so delivery waits (XEP-0160 §2). */
const MARK_DEFERRED = 'offline:deferred';
/** Accounts whose usage is kept in memory; beyond, the oldest entry is dropped (and re-read when needed). */
const MAX_USAGE_ENTRIES = 10_000;

const ConfigSchema = z.strictObject({
  maxMessages: z.number().int().min(1).default(1000)
    .describe('Messages stored per account while it is offline; further messages are bounced with service-unavailable (XEP-0160 §2).'),
  maxBytes: z.number().int().min(10_000).default(1_048_576)
    .describe('Bytes of stored messages (serialized stanzas) per account; a message that would exceed it is bounced with service-unavailable, like one over `maxMessages`.'),
  retentionDays: z.number().int().min(1).default(30)
    .describe('Stored messages older than this are deleted (daily sweep) and never delivered.'),
});

export default defineModule({
  name: 'offline',
  specs: [
    { xep: 160, version: '1.0.1', status: 'complete', note: 'per-account limit; chat-state-only messages are dropped' },
    { xep: 203, version: '2.0', status: 'complete', note: 'delay stamps on delivered offline messages' },
    { xep: 334, version: '1.0.0', status: 'partial', note: 'offline storage honours no-store and store' },
  ],
  defaultEnabled: true,
  config: ConfigSchema,
  setup(ctx) {
    const archive = ctx.storage.archive<StoredMessage>('offline');
    const queue = new KeyedLock();
    const { maxMessages, maxBytes, retentionDays } = ctx.config;
    const cutoff = () => new Date(Date.now() - retentionDays * DAY_MS);

    /** Messages and bytes stored per account (localpart), as far as known; read under the account's lock. */
    const usage = new Map<string, { count: number; bytes: number }>();
    const usageOf = async (local: string) => {
      let u = usage.get(local);
      if (u !== undefined) return u;
      const items = await archive.query(ctx.host, local);
      u = { count: items.length, bytes: 0 };
      for (const item of items) u.bytes += typeof item.value?.stanza === 'string' ? Buffer.byteLength(item.value.stanza) : 0;
      if (usage.size >= MAX_USAGE_ENTRIES) usage.delete(usage.keys().next().value!);
      usage.set(local, u);
      return u;
    };

    ctx.disco.feature('msgoffline'); // XEP-0160 §4

    const hasAvailableResource = (bare: Jid) =>
      ctx.sessions.resources(bare).some((s) => s.available && s.priority >= 0);

    /** Store a message for an offline account; false lets the router's default rules act. */
    const storeIfOffline = async (s: RoutedStanza): Promise<boolean> => {
      if (!storableType(s.type)) return false; // XEP-0160 §3; the router bounces or ignores
      const owner = s.to.bare;
      return queue.run(owner.toString(), async () => {
        // RFC 6121 §8.5.2.1: an available resource gets it through the router.
        if (hasAvailableResource(owner)) return false;
        if (!hasStorablePayload(s.el)) {
          ctx.log.debug({ sid: s.session?.id }, 'offline: message without storable payload dropped');
          return true;
        }
        if (hasNoStoreHint(s.el)) return false; // XEP-0334 §4.2 → service-unavailable
        // Unknown account: the router answers service-unavailable (RFC 6121 §8.5.1).
        if (!(await ctx.accounts.exists(owner.local))) return false;
        const u = await usageOf(owner.local);
        const value = toStored(s.el, ctx.host);
        const bytes = Buffer.byteLength(value.stanza);
        if (u.count >= maxMessages || u.bytes + bytes > maxBytes) {
          ctx.log.info({ sid: s.session?.id, to: owner.toString(), limit: u.count >= maxMessages ? 'maxMessages' : 'maxBytes' }, 'offline: storage full, message bounced');
          throw new StanzaError('service-unavailable'); // XEP-0160 §2: queue full
        }
        await archive.append(ctx.host, owner.local, { with: s.from.bare.toString(), value });
        u.count++;
        u.bytes += bytes;
        return true;
      });
    };

    ctx.message.on('bare', storeIfOffline, HANDLER_PRIORITY);
    // RFC 6121 §8.5.3.2.1: a normal/chat message to a full JID whose resource is gone is
    // treated as if sent to the bare JID, so it may be stored too.
    ctx.message.on('full', (s) => (ctx.sessions.get(s.to) ? false : storeIfOffline(s)), HANDLER_PRIORITY);

    const isCurrent = (session: Session) => ctx.sessions.get(session.jid) === session;

    /** Hand every stored message to this session, oldest first, deleting each batch once sent. */
    const deliver = (session: Session) => queue.run(session.jid.bare.toString(), async () => {
      const owner = session.username;
      // Read again when next needed (messages may remain: a session gone midway, expired ones).
      usage.delete(owner);
      // Expired messages are never delivered (left to the daily sweep).
      const start = cutoff();
      let delivered = 0;
      for (;;) {
        const items = await archive.query(ctx.host, owner, { start, limit: DELIVERY_BATCH });
        const done: string[] = [];
        let gone = false;
        for (const item of items) {
          if (!isCurrent(session)) { gone = true; break; }
          let el;
          try {
            el = fromStored(item.value, item.when, ctx.host);
          } catch (err) {
            // Unreadable (should never happen): reported, and removed so it cannot block the queue.
            ctx.log.error({ err, id: item.id, sid: session.id }, 'offline: stored message unreadable, deleted');
            done.push(item.id);
            continue;
          }
          session.send(el);
          done.push(item.id);
          delivered++;
        }
        if (done.length) await archive.delete(ctx.host, owner, { ids: done });
        if (gone || items.length < DELIVERY_BATCH) break;
      }
      if (delivered) ctx.log.debug({ sid: session.id, delivered }, 'offline: messages delivered');
    });

    ctx.on('user:deleted', ({ host, username }) => {
      if (host === ctx.host) usage.delete(username);
    });

    ctx.on('presence:available', async ({ session, initial }) => {
      if (session.host !== ctx.host) return;
      if (session.priority < 0) {
        // XEP-0160 §2: delivery waits for non-negative available presence.
        if (initial) session.marks.add(MARK_DEFERRED);
        return;
      }
      if (!initial && !session.marks.has(MARK_DEFERRED)) return;
      session.marks.delete(MARK_DEFERRED);
      await deliver(session);
    });

    // Retention: one sweep a day over the whole 'offline' store.
    ctx.timers.every(DAY_MS, async () => {
      const n = await archive.deleteOlderThan(cutoff());
      usage.clear();
      if (n) ctx.log.info({ deleted: n, retentionDays }, 'offline: expired messages deleted');
    });
  },
});
