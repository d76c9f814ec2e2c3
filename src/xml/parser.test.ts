import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XmlStreamParser, serialize, type XmlElement, type StreamParserLimits } from './index.ts';
import type { StreamError } from '../xmpp/errors.ts';
import { NS } from '../xmpp/ns.ts';
import { chunkify, generateStanzas, prng, STREAM_FOOTER, STREAM_HEADER } from '../../bench/xml-parser.ts';

const HEADER = `<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.com' version='1.0' xml:lang='en'>`;

interface Run {
  parser: XmlStreamParser;
  header?: { name: string; ns: string; defaultNs: string; attrs: Record<string, string> };
  stanzas: XmlElement[];
  errors: StreamError[];
  ended: number;
  events: string[];
}

function run(limits?: Partial<StreamParserLimits>): Run {
  const r: Run = { stanzas: [], errors: [], ended: 0, events: [] } as unknown as Run;
  r.parser = new XmlStreamParser({
    streamStart(h) { r.header = h; r.events.push('start'); },
    stanza(el) { r.stanzas.push(el); r.events.push('stanza'); },
    streamEnd() { r.ended++; r.events.push('end'); },
    error(e) { r.errors.push(e); r.events.push('error:' + e.condition); },
  }, limits);
  return r;
}

function feed(input: string | Uint8Array, limits?: Partial<StreamParserLimits>): Run {
  const r = run(limits);
  r.parser.write(typeof input === 'string' ? Buffer.from(input) : input);
  return r;
}

function expectError(input: string | Uint8Array, condition: string, limits?: Partial<StreamParserLimits>): Run {
  const r = feed(input, limits);
  assert.equal(r.errors.length, 1, `expected one ${condition}, got ${r.events.join(',')}`);
  assert.equal(r.errors[0]!.condition, condition, r.errors[0]!.message);
  return r;
}

test('stream header, stanzas, whitespace keepalives and stream end', () => {
  const r = feed(`${HEADER}\n <message to='a@b'><body>hi</body></message>  \n\n<presence/> </stream:stream>`);
  assert.deepEqual(r.header, {
    name: 'stream', ns: NS.STREAM, defaultNs: 'jabber:client',
    attrs: { to: 'example.com', version: '1.0', 'xml:lang': 'en' },
  });
  assert.deepEqual(r.events, ['start', 'stanza', 'stanza', 'end']);
  assert.equal(r.stanzas[0]!.ns, 'jabber:client');
  assert.equal(r.stanzas[0]!.getChildText('body', 'jabber:client'), 'hi');
  assert.equal(r.stanzas[1]!.name, 'presence');
  // Nothing after </stream:stream> is looked at.
  r.parser.write(Buffer.from('<garbage'));
  assert.equal(r.errors.length, 0);
});

test('header attrs exclude namespace declarations; prefixes on the root', () => {
  const r = feed(`<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:server' xmlns:db='jabber:server:dialback' from='a.example' to='b.example'><db:result to='b.example'>key</db:result><s:features/>`);
  assert.deepEqual(r.header?.attrs, { from: 'a.example', to: 'b.example' });
  assert.equal(r.header?.defaultNs, 'jabber:server');
  assert.equal(r.stanzas[0]!.name, 'result');
  assert.equal(r.stanzas[0]!.ns, 'jabber:server:dialback');
  assert.equal(r.stanzas[1]!.name, 'features');
  assert.equal(r.stanzas[1]!.ns, NS.STREAM);
});

test('namespaces: nested default-ns changes, prefixes, xml:lang', () => {
  const r = feed(`${HEADER}<iq type='set' id='1' xml:lang='fr'><pubsub xmlns='http://jabber.org/protocol/pubsub'><publish node='n'><item><entry xmlns='http://www.w3.org/2005/Atom'><title>t</title></entry></item></publish></pubsub><p:x xmlns:p='urn:p'><p:y/><z/></p:x></iq>`);
  const iq = r.stanzas[0]!;
  assert.equal(iq.attr('xml:lang'), 'fr');
  const pubsub = iq.getChild('pubsub', 'http://jabber.org/protocol/pubsub')!;
  const item = pubsub.getChild('publish', 'http://jabber.org/protocol/pubsub')!.getChild('item', 'http://jabber.org/protocol/pubsub')!;
  const entry = item.getChild('entry', 'http://www.w3.org/2005/Atom')!;
  assert.equal(entry.getChildText('title', 'http://www.w3.org/2005/Atom'), 't');
  assert.equal(pubsub.attr('xmlns'), undefined, 'default xmlns is never an attribute');
  const px = iq.getChild('x', 'urn:p')!;
  assert.equal(px.attr('xmlns:p'), 'urn:p');
  assert.equal(px.getChild('y', 'urn:p')?.name, 'y');
  assert.equal(px.getChild('z', 'jabber:client')?.name, 'z');
  // Serialized alone, the stanza still means the same thing.
  const again = feed(HEADER + serialize(iq, 'jabber:client')).stanzas[0]!;
  assert.deepEqual(again, iq);
});

test('CDATA sections are allowed and merge with surrounding text', () => {
  const r = feed(`${HEADER}<message><body>a<![CDATA[<b>&amp;]]>c</body></message>`);
  assert.equal(r.errors.length, 0);
  const body = r.stanzas[0]!.getChild('body')!;
  assert.deepEqual(body.children, ['a<b>&amp;c']);
});

test('character references and the five predefined entities', () => {
  const r = feed(`${HEADER}<message><body>&lt;&gt;&amp;&apos;&quot;&#x1F426;&#233;</body></message>`);
  assert.equal(r.stanzas[0]!.getChildText('body'), `<>&'"🐦é`);
});

function realisticStream(count: number, seed: number): Buffer {
  return Buffer.from(STREAM_HEADER + generateStanzas(count, seed).join('\n') + STREAM_FOOTER);
}

function collect(chunks: Iterable<Uint8Array>): Run {
  const r = run();
  for (const c of chunks) r.parser.write(c);
  return r;
}

test('chunk boundaries: byte-by-byte and seeded random chunks equal whole-buffer parsing', () => {
  const buf = realisticStream(300, 42);
  const whole = collect([buf]);
  assert.equal(whole.errors.length, 0);
  assert.equal(whole.stanzas.length, 300);
  assert.equal(whole.ended, 1);
  const oneByOne = collect((function* () { for (let i = 0; i < buf.length; i++) yield buf.subarray(i, i + 1); })());
  assert.deepEqual(oneByOne.stanzas, whole.stanzas);
  assert.deepEqual(oneByOne.header, whole.header);
  assert.equal(oneByOne.ended, 1);
  for (const seed of [1, 2, 3, 4, 5]) {
    for (const max of [7, 100, 5000]) {
      const r = collect(chunkify(buf, seed, max));
      assert.equal(r.errors.length, 0);
      assert.deepEqual(r.stanzas, whole.stanzas, `seed ${seed}, max chunk ${max}`);
      assert.equal(r.ended, 1);
    }
  }
  // The generated stream really contains multi-byte text.
  assert.ok(whole.stanzas.some((s) => /[^\x00-\x7f]/.test(s.getChildText('body') ?? '')));
});

test('UTF-8 multi-byte characters split across writes', () => {
  const body = 'é東🐦';
  const bytes = Buffer.from(`${HEADER}<message><body>${body}</body></message>`);
  const start = bytes.indexOf(Buffer.from(body));
  for (let cut = start; cut <= start + Buffer.byteLength(body); cut++) {
    const r = collect([bytes.subarray(0, cut), bytes.subarray(cut)]);
    assert.equal(r.errors.length, 0);
    assert.equal(r.stanzas[0]!.getChildText('body'), body, `cut at ${cut}`);
  }
});

test('invalid UTF-8 is not-well-formed, also when split across writes', () => {
  expectError(Buffer.concat([Buffer.from(`${HEADER}<message><body>`), Buffer.from([0xc3, 0x28]), Buffer.from('</body></message>')]), 'not-well-formed');
  expectError(Buffer.concat([Buffer.from(`${HEADER}<message><body>`), Buffer.from([0xed, 0xa0, 0x80]), Buffer.from('</body></message>')]), 'not-well-formed'); // encoded surrogate
  expectError(Buffer.concat([Buffer.from(`${HEADER}<message><body>`), Buffer.from([0xc0, 0xaf]), Buffer.from('</body></message>')]), 'not-well-formed'); // overlong
  const r = run();
  r.parser.write(Buffer.from(`${HEADER}<message><body>`));
  r.parser.write(Buffer.from([0xe6, 0x9d]));
  r.parser.write(Buffer.from([0x41])); // not a continuation byte
  assert.deepEqual(r.errors.map((e) => e.condition), ['not-well-formed']);
});

test('a non-UTF-8 encoding declaration is unsupported-encoding', () => {
  expectError(`<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, 'unsupported-encoding');
  const ok = feed(`<?xml version='1.0' encoding='UTF-8'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`);
  assert.deepEqual(ok.events, ['start']);
});

test('restricted XML (RFC 6120 §11.1): DOCTYPE, entities, PIs, comments', () => {
  expectError(`<?xml version='1.0'?><!DOCTYPE stream:stream><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, 'restricted-xml');
  // Billion laughs: refused at the DTD, nothing is expanded.
  const laughs = `<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol">` +
    Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('') +
    `]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message><body>&lol9;</body></message>`;
  const r = expectError(laughs, 'restricted-xml');
  assert.equal(r.stanzas.length, 0);
  // External entity.
  expectError(`<?xml version='1.0'?><!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message><body>&xxe;</body></message>`, 'restricted-xml');
  // DOCTYPE inside the stream.
  expectError(`${HEADER}<!DOCTYPE foo>`, 'restricted-xml');
  // Unknown entity reference (no DTD can define it).
  expectError(`${HEADER}<message><body>&foo;</body></message>`, 'restricted-xml');
  // Processing instructions, before the root and inside a stanza.
  expectError(`<?xml version='1.0'?><?xml-stylesheet href='a'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>`, 'restricted-xml');
  expectError(`${HEADER}<message><?php evil()?></message>`, 'restricted-xml');
  // Comments, between and inside stanzas.
  const c = expectError(`${HEADER}<!-- hi --><message/>`, 'restricted-xml');
  assert.equal(c.stanzas.length, 0);
  expectError(`${HEADER}<message><!-- hi --></message>`, 'restricted-xml');
});

test('well-formedness errors are not-well-formed', () => {
  expectError(`${HEADER}<message></presence>`, 'not-well-formed');
  expectError(`${HEADER}<message a='1' a='2'/>`, 'not-well-formed');
  expectError(`${HEADER}<message a='1' xmlns='x' xmlns='y'/>`, 'not-well-formed');
  expectError(`${HEADER}<message a='<'/>`, 'not-well-formed');
  expectError(`${HEADER}<message><body>\u0001</body></message>`, 'not-well-formed');
  expectError(`${HEADER}<message><body>&#0;</body></message>`, 'not-well-formed');
  expectError(`${HEADER}<message a=1/>`, 'not-well-formed');
  expectError(`<?xml version='1.0'?>${HEADER.slice(21)}<?xml version='1.0'?>`, 'not-well-formed');
});

test('text at depth 1 other than whitespace is not-well-formed', () => {
  const r = expectError(`${HEADER}<presence/>hello<message/>`, 'not-well-formed');
  assert.equal(r.stanzas.length, 1);
  expectError(`${HEADER}&amp;<presence/>`, 'not-well-formed');
  expectError(`${HEADER}<presence/>x</stream:stream>`, 'not-well-formed');
  expectError(`${HEADER}<![CDATA[x]]>`, 'not-well-formed');
  assert.equal(feed(`${HEADER} \t\r\n <presence/>\n`).errors.length, 0);
});

test('namespace errors: undeclared prefixes, wrong root', () => {
  expectError(`${HEADER}<foo:message/>`, 'bad-namespace-prefix');
  expectError(`${HEADER}<message><x:y/></message>`, 'bad-namespace-prefix');
  expectError(`${HEADER}<message x:a='1'/>`, 'bad-namespace-prefix');
  expectError(`${HEADER}<message xmlns:p=''/>`, 'bad-namespace-prefix');
  expectError(`<stream:stream xmlns='jabber:client'>`, 'bad-namespace-prefix');
  expectError(`<stream xmlns='jabber:client'>`, 'invalid-namespace');
  expectError(`<stream:stream xmlns:stream='urn:wrong'>`, 'invalid-namespace');
  expectError(`<stream:foo xmlns:stream='http://etherx.jabber.org/streams'>`, 'invalid-namespace');
  // A prefix declared on the stanza is visible to its children only.
  const r = feed(`${HEADER}<message xmlns:p='urn:p'><p:a/></message><p:b/>`);
  assert.deepEqual(r.events, ['start', 'stanza', 'error:bad-namespace-prefix']);
});

test('oversize stanza trickled in 1-byte writes fails near the limit, not at the end', () => {
  const limit = 4096;
  const r = run({ maxStanzaBytes: limit });
  r.parser.write(Buffer.from(HEADER));
  r.parser.write(Buffer.from('<message/>'));
  const big = Buffer.from(`<message><body>${'a'.repeat(100_000)}</body></message>`);
  let at = -1;
  for (let i = 0; i < big.length; i++) {
    r.parser.write(big.subarray(i, i + 1));
    if (r.errors.length > 0 && at < 0) at = i + 1;
  }
  assert.deepEqual(r.errors.map((e) => e.condition), ['policy-violation']);
  assert.ok(at > limit - 10 && at <= limit + 2, `error after ${at} bytes`);
  assert.equal(r.stanzas.length, 1);
});

test('a 10 MB stanza in 64 KiB writes or one write errors once the limit is passed', () => {
  const big = Buffer.concat([Buffer.from(`${HEADER}<message><body>`), Buffer.alloc(10 * 1024 * 1024, 'a'), Buffer.from('</body></message>')]);
  const r = run();
  let writes = 0;
  for (let off = 0; off < big.length && r.errors.length === 0; off += 65536) {
    r.parser.write(big.subarray(off, off + 65536));
    writes++;
  }
  assert.deepEqual(r.errors.map((e) => e.condition), ['policy-violation']);
  assert.ok(writes <= 5, `errored after ${writes} writes`);
  // One huge write: saxes never sees more than the limit + 1 byte.
  const one = feed(big);
  assert.deepEqual(one.errors.map((e) => e.condition), ['policy-violation']);
});

test('many stanzas in one write do not add up against the limit', () => {
  const stanza = `<message><body>${'x'.repeat(900)}</body></message>`;
  const r = feed(HEADER + stanza.repeat(200), { maxStanzaBytes: 1000 });
  assert.equal(r.errors.length, 0);
  assert.equal(r.stanzas.length, 200);
  // Multi-byte text counts in bytes: 400 × 3 bytes > 1000.
  expectError(`${HEADER}<message><body>${'東'.repeat(400)}</body></message>`, 'policy-violation', { maxStanzaBytes: 1000 });
  assert.equal(feed(`${HEADER}<message><body>${'東'.repeat(300)}</body></message>`, { maxStanzaBytes: 1000 }).errors.length, 0);
});

test('oversize stream header is policy-violation', () => {
  expectError(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${'a'.repeat(10000)}'>`, 'policy-violation');
  // Whitespace before the root counts as well.
  const r = run({ maxHeaderBytes: 100 });
  for (let i = 0; i < 200; i++) r.parser.write(Buffer.from(' '));
  assert.deepEqual(r.errors.map((e) => e.condition), ['policy-violation']);
});

test('depth bomb is policy-violation', () => {
  const r = expectError(HEADER + '<a>'.repeat(100000), 'policy-violation');
  assert.equal(r.stanzas.length, 0);
  // Exactly maxDepth levels are fine (the stanza is depth 1).
  const ok = feed(HEADER + '<a>'.repeat(5) + '</a>'.repeat(5), { maxDepth: 5 });
  assert.equal(ok.errors.length, 0);
  assert.equal(ok.stanzas.length, 1);
  expectError(HEADER + '<a>'.repeat(6), 'policy-violation', { maxDepth: 5 });
});

test('attribute count limit is policy-violation', () => {
  const attrs = (n: number) => Array.from({ length: n }, (_, i) => ` a${i}='${i}'`).join('');
  assert.equal(feed(`${HEADER}<message${attrs(64)}/>`).errors.length, 0);
  expectError(`${HEADER}<message${attrs(65)}/>`, 'policy-violation');
  expectError(`${HEADER}<message><x${attrs(65)}/></message>`, 'policy-violation');
});

test('errors fire exactly once and all later input is ignored', () => {
  const r = run();
  r.parser.write(Buffer.from(`${HEADER}<message><!-- a --><!-- b --></message>`));
  r.parser.write(Buffer.from(`<foo:bar/><message/></stream:stream>`));
  r.parser.write(Buffer.from([0xff, 0xfe]));
  r.parser.end();
  assert.deepEqual(r.events, ['start', 'error:restricted-xml']);
});

test('end() stops the parser, also from inside a handler', () => {
  const seen: string[] = [];
  const p: XmlStreamParser = new XmlStreamParser({
    streamStart() {},
    stanza(el) { seen.push(el.name); if (el.name === 'stop') p.end(); },
    streamEnd() { seen.push('end'); },
    error(e) { seen.push('error:' + e.condition); },
  });
  p.write(Buffer.from(`${HEADER}<a/><stop/><b/></stream:stream>`));
  p.write(Buffer.from('<c/>'));
  assert.deepEqual(seen, ['a', 'stop']);
});

test('a throwing handler propagates and leaves the parser finished', () => {
  const p = new XmlStreamParser({
    streamStart() {}, stanza() { throw new Error('boom'); }, streamEnd() {}, error() { assert.fail('no stream error'); },
  });
  assert.throws(() => p.write(Buffer.from(`${HEADER}<a/>`)), /boom/);
  p.write(Buffer.from('<b/>'));
});

test('a handler may feed another parser synchronously', () => {
  const inner = run();
  const outer = new XmlStreamParser({
    streamStart() {}, streamEnd() {}, error(e) { throw e; },
    stanza(el) { inner.parser.write(Buffer.from(HEADER + serialize(el, 'jabber:client'))); },
  });
  outer.write(Buffer.from(`${HEADER}<message><body>x</body></message>`));
  assert.equal(inner.stanzas[0]?.getChildText('body'), 'x');
});

test('random garbage never throws and reports at most one error (seeded fuzz)', () => {
  const rnd = prng(7);
  const alphabet = ['<', '>', '/', '=', "'", '"', '&', ';', 'a', ':', ' ', '!', '?', '-', '[', ']', 'x', 'é', '\u0000', 'xmlns', 'stream'];
  for (let i = 0; i < 300; i++) {
    let s = HEADER;
    const n = Math.floor(rnd() * 60);
    for (let j = 0; j < n; j++) s += alphabet[Math.floor(rnd() * alphabet.length)];
    const r = run({ maxStanzaBytes: 50 });
    for (const c of chunkify(Buffer.from(s), i, 5)) r.parser.write(c);
    assert.ok(r.errors.length <= 1);
    assert.ok(r.ended <= 1);
  }
});
