// What the offline store keeps and how a stored message comes back: which messages are worth
// storing (XEP-0160 §3, XEP-0334 §4), the stored form, and the XEP-0203 delay stamp.
import { parseElement, serialize, x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';

export const NS_DELAY = 'urn:xmpp:delay'; // XEP-0203
export const NS_HINTS = 'urn:xmpp:hints'; // XEP-0334
export const NS_CHATSTATES = 'http://jabber.org/protocol/chatstates'; // XEP-0085
export const NS_SID = 'urn:xmpp:sid:0'; // XEP-0359 (origin-id / stanza-id)

/** One stored message: the stanza as routed (from stamped by the server), serialized. */
export interface StoredMessage { stanza: string }

/**
 * XEP-0160 §3: normal (or no type) and chat are stored; groupchat, headline and error are not.
 * A type we do not know is treated as normal (RFC 6121 §5.2.2).
 */
export function storableType(type: string): boolean {
  return type !== 'groupchat' && type !== 'headline' && type !== 'error';
}

/** XEP-0334 §4.2: the sender asked that the message not be stored, not even temporarily. */
export function hasNoStoreHint(el: XmlElement): boolean {
  return el.getChild('no-store', NS_HINTS) !== undefined;
}

/**
 * Whether the message carries anything a client would want later. Chat states (XEP-0085),
 * hints (XEP-0334), ids (XEP-0359), delay stamps and a <thread/> on their own are transient:
 * XEP-0160 §3 says chat-state-only messages SHOULD NOT be stored. A <store/> hint
 * (XEP-0334 §4.4) makes any message worth storing.
 */
export function hasStorablePayload(el: XmlElement): boolean {
  if (el.getChild('store', NS_HINTS)) return true;
  for (const c of el.elements()) {
    if (c.ns === NS_CHATSTATES || c.ns === NS_HINTS || c.ns === NS_SID || c.ns === NS_DELAY) continue;
    if (c.name === 'thread' && c.ns === NS.CLIENT) continue;
    return true;
  }
  return false;
}

/**
 * The form that goes into the store. A <delay/> claiming to come from this server is removed
 * first: only the server adds its own stamp, on delivery (XEP-0203 §5, forged notations).
 */
export function toStored(el: XmlElement, host: string): StoredMessage {
  const forged = (c: XmlElement | string) => typeof c !== 'string' && c.name === 'delay' && c.ns === NS_DELAY && c.attr('from') === host;
  const clean = el.children.some(forged) ? el.withChildren(el.children.filter((c) => !forged(c))) : el;
  return { stanza: serialize(clean) };
}

/**
 * The stored message as delivered: the original stanza plus one XEP-0203 <delay/> from the
 * server with the time it was stored, in UTC with milliseconds (XEP-0082 §3.2 DateTime), and
 * the reason as text (XEP-0160 §2 example).
 */
export function fromStored(item: StoredMessage, when: Date, host: string): XmlElement {
  const el = parseElement(item.stanza);
  return el.withChildren([...el.children, x('delay', { xmlns: NS_DELAY, from: host, stamp: when.toISOString() }, 'Offline Storage')]);
}

