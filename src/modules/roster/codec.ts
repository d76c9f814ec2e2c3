// The jabber:iq:roster wire format (RFC 6121 §2.1) and the XEP-0237 version strings.
// Pure functions: parsing a roster set (with the §2.3.3 error cases), building items and
// queries, and (de)serialising stored subscription requests.
import { Jid } from '../../jid/index.ts';
import { parseElement, serialize, x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import type { Subscription } from './service.ts';

export const NS_ROSTER = 'jabber:iq:roster';
/** XEP-0237 §3 stream feature. */
export const NS_ROSTERVER = 'urn:xmpp:features:rosterver';

/** An item as stored: the contact is a prepared bare JID string. */
export interface ItemData {
  readonly contact: string;
  readonly name?: string;
  readonly subscription: Subscription;
  readonly ask: boolean;
  readonly approved: boolean;
  readonly groups: readonly string[];
}

export interface SetLimits {
  maxNameLength: number;
  maxGroupLength: number;
  maxGroupsPerItem: number;
}

/** A parsed roster set: an update (RFC 6121 §2.3, §2.4) or a removal (§2.5). */
export type RosterSet =
  | { kind: 'update'; jid: Jid; name?: string; groups: string[] }
  | { kind: 'remove'; jid: Jid };

/** Length in Unicode code points (what a user would call characters). */
function chars(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Parse the <query/> of a roster set. Throws StanzaError for the error cases of RFC 6121
 * §2.3.3 (which §2.4.3 and §2.5.3 apply to updates and removals too).
 */
export function parseRosterSet(query: XmlElement, limits: SetLimits): RosterSet {
  const items = query.getChildren('item', NS_ROSTER);
  // §2.3.3: "The <query/> element contains more than one <item/> child element" → bad-request
  // (and a set without any item is just as malformed).
  if (items.length !== 1) throw new StanzaError('bad-request', 'A roster set carries exactly one item');
  const item = items[0]!;
  const jidAttr = item.attr('jid');
  if (jidAttr === undefined || jidAttr === '') throw new StanzaError('bad-request', 'The item has no jid');
  // RFC 6120 §8.3.3.8: an address that does not adhere to the syntax → jid-malformed.
  const jid = Jid.tryParse(jidAttr);
  if (!jid) throw new StanzaError('jid-malformed', 'The item jid is not a valid JID');
  // RFC 6121 §2.1.2.3: roster items are bare JIDs (the server routes by bare JID for presence).
  if (!jid.isBare) throw new StanzaError('bad-request', 'A roster item is a bare JID (no resource)');

  // §2.1.2.5: a 'subscription' other than "remove" in a roster set MUST be ignored; §2.1.2.2 and
  // §2.1.2.1: so are 'ask' and 'approved' (only the server sets them).
  if (item.attr('subscription') === 'remove') return { kind: 'remove', jid };

  let name = item.attr('name');
  if (name === '') name = undefined; // an empty name is no name
  // §2.3.3: a name longer than a server-configured limit → not-acceptable
  if (name !== undefined && chars(name) > limits.maxNameLength) {
    throw new StanzaError('not-acceptable', `The name is longer than ${limits.maxNameLength} characters`);
  }
  const groups: string[] = [];
  for (const g of item.getChildren('group', NS_ROSTER)) {
    const text = g.text();
    // §2.3.3: empty group → not-acceptable; longer than a server-configured limit → not-acceptable
    if (text === '') throw new StanzaError('not-acceptable', 'A group name is empty');
    if (chars(text) > limits.maxGroupLength) throw new StanzaError('not-acceptable', `A group name is longer than ${limits.maxGroupLength} characters`);
    // §2.3.3: duplicate groups → bad-request
    if (groups.includes(text)) throw new StanzaError('bad-request', 'The item lists a group twice');
    groups.push(text);
  }
  if (groups.length > limits.maxGroupsPerItem) {
    throw new StanzaError('not-acceptable', `An item is in at most ${limits.maxGroupsPerItem} groups`);
  }
  return { kind: 'update', jid, name, groups };
}

/** One <item/> as in a roster result or push (RFC 6121 §2.1.2). */
export function itemElement(item: ItemData): XmlElement {
  return x('item', {
    jid: item.contact,
    name: item.name,
    subscription: item.subscription,
    ask: item.ask ? 'subscribe' : undefined, // §2.1.2.2
    approved: item.approved ? 'true' : undefined, // §2.1.2.1 (pre-approval, §3.4)
  }, item.groups.map((g) => x('group', null, g)));
}

/** The item of a removal push (RFC 6121 §2.5.2). */
export function removedElement(contact: string): XmlElement {
  return x('item', { jid: contact, subscription: 'remove' });
}

export function queryElement(ver: string | undefined, items: XmlElement[]): XmlElement {
  return x('query', { xmlns: NS_ROSTER, ver }, items);
}

/** A roster push (RFC 6121 §2.1.6): an IQ set from the user's bare JID with a fresh id. */
export function pushStanza(from: Jid, to: Jid, id: string, ver: string, item: XmlElement): XmlElement {
  return x('iq', { xmlns: NS.CLIENT, type: 'set', id, from: from.bare.toString(), to: to.toString() }, queryElement(ver, [item]));
}

// --- XEP-0237 versions ---------------------------------------------------------------------
// A version is "<epoch>-<n>": n counts the owner's roster changes, the epoch is random per
// version counter, so a counter that restarts (account deleted and created again, database
// restored) never makes an old client version look valid. "0" is the roster that was never
// changed (no counter yet): always empty.

export interface Version { readonly epoch: string; readonly n: number }

export const EMPTY_VERSION = '0';

export function formatVersion(v: Version | undefined): string {
  return v ? `${v.epoch}-${v.n}` : EMPTY_VERSION;
}

/** The parts of a version this server issued, or undefined for anything else. */
export function parseVersion(s: string): Version | undefined {
  const m = /^([0-9a-f]{1,32})-([1-9][0-9]{0,15})$/.exec(s);
  if (!m) return undefined;
  const n = Number(m[2]);
  return Number.isSafeInteger(n) ? { epoch: m[1]!, n } : undefined;
}

// --- stored subscription requests ----------------------------------------------------------

/** Serialise a stanza for storage (with its namespace, so it parses back alone). */
export function stanzaToText(el: XmlElement): string {
  return serialize(el.ns === '' ? el.withAttrs({ xmlns: NS.CLIENT }) : el);
}

/** Parse a stored stanza back (it was written by stanzaToText). Throws on corrupt data. */
export function stanzaFromText(text: string): XmlElement {
  return parseElement(text);
}
