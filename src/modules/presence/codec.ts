// Presence stanza helpers (RFC 6121 §4.7): priority parsing and the stanzas the server builds.
import { x, type XmlElement } from '../../xml/index.ts';
import type { Jid } from '../../jid/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { StanzaError } from '../../xmpp/errors.ts';

/**
 * RFC 6121 §4.7.2.3: <priority/> is an integer from -128 to +127, 0 when absent. More than one
 * <priority/>, or one that is not such an integer, is a bad-request.
 */
export function parsePriority(el: XmlElement): number {
  const ps = el.getChildren('priority', NS.CLIENT);
  if (ps.length === 0) return 0;
  if (ps.length > 1) throw new StanzaError('bad-request', 'More than one <priority/>');
  const text = ps[0]!.text().trim();
  if (!/^[+-]?\d{1,4}$/.test(text)) throw new StanzaError('bad-request', 'Priority must be an integer from -128 to 127');
  const n = Number(text);
  if (n < -128 || n > 127) throw new StanzaError('bad-request', 'Priority must be an integer from -128 to 127');
  return n === 0 ? 0 : n; // no -0
}

/** A presence stanza built by the server on a user's behalf. */
export function presence(from: Jid, to: Jid, type?: string): XmlElement {
  return x('presence', { xmlns: NS.CLIENT, from: from.toString(), to: to.toString(), type });
}

export const SUBSCRIPTION_TYPES = new Set(['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed']);
