// Parse one serialized element (e.g. a stanza kept in storage) back into an XmlElement, with the
// same parser and restrictions as network input. Throws on anything but exactly one element.
import { XmlStreamParser } from './parser.ts';
import type { XmlElement } from './element.ts';

const STREAM_OPEN = Buffer.from(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`);

export function parseElement(xml: string): XmlElement {
  const found: XmlElement[] = [];
  let failure: Error | undefined;
  const bytes = Buffer.from(xml, 'utf8');
  const parser = new XmlStreamParser({
    streamStart() {},
    stanza(el) { found.push(el); },
    streamEnd() {},
    error(err) { failure ??= err; },
  }, { maxStanzaBytes: bytes.length + 1 });
  parser.write(STREAM_OPEN);
  parser.write(bytes);
  parser.end();
  if (failure) throw new Error(`stored XML does not parse: ${failure.message}`);
  if (found.length !== 1) throw new Error(`stored XML holds ${found.length} elements, expected one`);
  return found[0]!;
}
