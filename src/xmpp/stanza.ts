// Stanza helpers (RFC 6120 §8): kinds, error replies, IQ results.
import { EMPTY_CHILDREN, XmlElement, x } from '../xml/index.ts';
import { NS } from './ns.ts';
import type { StanzaError } from './errors.ts';

export type StanzaKind = 'message' | 'presence' | 'iq';

export function isStanzaKind(name: string): name is StanzaKind {
  return name === 'message' || name === 'presence' || name === 'iq';
}

/** The <error/> child for a stanza error (RFC 6120 §8.3.2). */
export function errorChild(err: StanzaError): XmlElement {
  return x('error', { type: err.type },
    x(err.condition, { xmlns: NS.STANZAS }),
    err.text ? x('text', { xmlns: NS.STANZAS, 'xml:lang': 'en' }, err.text) : null,
  );
}

/**
 * The error reply to a stanza (RFC 6120 §8.3.1): addresses swapped, type="error", the
 * original payload kept for messages and IQ gets (it helps the sender), an <error/> appended.
 * `from` overrides the reply's sender (the server answering on behalf of an address).
 */
export function errorReply(original: XmlElement, err: StanzaError): XmlElement {
  // The payload of an IQ set is not echoed: it may carry secrets (a new password, XEP-0077 §3.3
  // SHOULD NOT; tokens), and RFC 6120 §8.3.1 makes including it optional. Presence: never.
  const echo = original.name === 'message' || (original.name === 'iq' && original.attr('type') !== 'set');
  const keep = echo ? original.children.filter((c) => typeof c !== 'string' && c.name !== 'error') : [];
  return original
    .withAttrs({ type: 'error', from: original.attr('to'), to: original.attr('from') })
    .withChildren([...keep, errorChild(err)]);
}

/**
 * An IQ result for a request (RFC 6120 §8.2.3). `from` overrides the request's 'to' as the
 * reply's sender (the router passes the prepared address instead of copying the request).
 */
export function iqResult(request: XmlElement, payload?: XmlElement, from: string | undefined = request.attr('to')): XmlElement {
  // Built directly rather than with x(): this runs once per answered IQ. Same attribute order,
  // undefined values dropped; the payload keeps its namespace (x() would adopt nothing: ns '').
  const attrs: Record<string, string> = { type: 'result' };
  const id = request.attr('id');
  if (id !== undefined) attrs['id'] = id;
  if (from !== undefined) attrs['from'] = from;
  const to = request.attr('from');
  if (to !== undefined) attrs['to'] = to;
  return new XmlElement('iq', '', attrs, payload ? [payload] : EMPTY_CHILDREN);
}
