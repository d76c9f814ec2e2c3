// Reading what a RawClient received as stanzas, for tests that assert on the wire.
import { setTimeout as delay } from 'node:timers/promises';
import type { RawClient } from '../../src/testing/index.ts';
import { XmlStreamParser, type XmlElement } from '../../src/xml/index.ts';
import { plainMessage } from './xmpp.ts';

/** The namespaces of a client stream header. */
export const HEADER_ATTRS = `xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'`;

/** Every complete stanza in `text` (everything a RawClient received), parsed. */
export function parseReceived(text: string): XmlElement[] {
  const body = text.replace(/<\?xml[^>]*\?>/g, '').replace(/<stream:stream\b[^>]*>/g, '');
  const out: XmlElement[] = [];
  const p = new XmlStreamParser(
    { streamStart() {}, stanza: (el) => out.push(el), streamEnd() {}, error() {} },
    { maxStanzaBytes: 1 << 24 },
  );
  p.write(Buffer.from(`<stream:stream ${HEADER_ATTRS}>${body}`, 'utf8'));
  return out;
}

/** The first received stanza matching `pred`; rejects when the connection closes or time runs out. */
export async function waitStanza(c: RawClient, pred: (el: XmlElement) => boolean, what = 'stanza', timeoutMs = 5000): Promise<XmlElement> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const hit = parseReceived(c.received).find(pred);
    if (hit) return hit;
    if (c.isClosed) throw new Error(`connection closed while waiting for ${what}; received:\n${c.received}`);
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; received:\n${c.received}`);
    await delay(10);
  }
}

export const byId = (id: string) => (el: XmlElement) => el.attr('id') === id;

const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';

/** The SASL PLAIN <auth/> element a client sends. */
export const plainAuth = (user: string, pass: string) => `<auth xmlns='${SASL}' mechanism='PLAIN'>${plainMessage(user, pass)}</auth>`;

/** PLAIN on a secured stream, then the restart after <success/>: ready to bind. */
export async function authenticate(c: RawClient, user: string, pass: string): Promise<void> {
  c.clear();
  c.send(plainAuth(user, pass));
  await c.expect(new RegExp(`<success xmlns=['"]${SASL}['"]`));
  c.clear();
  c.header();
  await c.expect(/<\/stream:features>/);
}
