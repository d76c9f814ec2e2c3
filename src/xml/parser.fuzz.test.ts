// Property and fuzz tests of the XML stream parser (issue 5 item 3). Inputs: realistic streams
// (bench/xml-parser.ts generateStanzas) and random element trees built to hit namespaces,
// entities, CDATA and the limits, then byte-level mutations (flips, inserted tokens such as
// '<!DOCTYPE', invalid UTF-8 and split multi-byte characters, deletions, duplications,
// truncation), fed in random chunks. Properties:
//  - write() never throws; the only failure is one StreamError through the error handler, and no
//    event follows an error or the stream end;
//  - the events are the same for any chunking (whole buffer, random chunks, byte by byte);
//  - limits hold: with 1-byte writes, no stanza spans more than maxStanzaBytes from the previous
//    boundary, the header no more than maxHeaderBytes, the size error comes at limit+1 bytes,
//    and no delivered element is deeper or has more attributes than allowed;
//  - no hang: a run over a few KiB, byte by byte, takes far less than a second (bound: 2 s).
// Run longer: FUZZ_RUNS=100000 or FUZZ_SECONDS=600 (see test/security/fuzz.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { DEFAULT_LIMITS, XmlStreamParser, serialize, type StreamParserLimits, type XmlElement } from './index.ts';
import { StreamError } from '../xmpp/errors.ts';
import { generateStanzas, STREAM_FOOTER, STREAM_HEADER } from '../../bench/xml-parser.ts';
import { fuzzParams } from '../../test/security/fuzz.ts';

const STREAM_CONDITIONS = new Set([
  'bad-format', 'bad-namespace-prefix', 'invalid-namespace', 'invalid-xml', 'not-well-formed',
  'policy-violation', 'restricted-xml', 'unsupported-encoding',
]);

// --- running the parser ------------------------------------------------------------------------

interface Outcome {
  /** Normalised events: 'start {...}', 'stanza <...>', 'end', 'error <condition>'. */
  events: string[];
  stanzas: XmlElement[];
  /** Bytes written when each event fired (exact with 1-byte writes). */
  offsets: number[];
  problems: string[];
  errorCondition?: string;
}

function feed(chunks: readonly Uint8Array[], limits: StreamParserLimits): Outcome {
  const out: Outcome = { events: [], stanzas: [], offsets: [], problems: [] };
  let fed = 0;
  let current = 0;
  let finished = false;
  const event = (e: string) => {
    if (finished) out.problems.push(`event after the end: ${e}`);
    out.events.push(e);
    out.offsets.push(fed + current);
  };
  const p = new XmlStreamParser({
    streamStart(h) { event(`start ${JSON.stringify(h)}`); },
    stanza(el) { out.stanzas.push(el); event(`stanza ${serialize(el)}`); },
    streamEnd() { event('end'); finished = true; },
    error(err) {
      if (!(err instanceof StreamError)) out.problems.push(`error handler got ${String(err)}`);
      else if (!STREAM_CONDITIONS.has(err.condition)) out.problems.push(`unexpected condition ${err.condition}`);
      event(`error ${err.condition}`);
      out.errorCondition ??= err.condition;
      finished = true;
    },
  }, limits);
  for (const c of chunks) {
    current = c.length;
    try {
      p.write(c);
    } catch (e) {
      out.problems.push(`write threw: ${e instanceof Error ? e.stack : String(e)}`);
      break;
    }
    fed += c.length;
    current = 0;
  }
  return out;
}

function bytewise(buf: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < buf.length; i++) out.push(buf.subarray(i, i + 1));
  return out;
}

function cut(buf: Uint8Array, sizes: readonly number[]): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let off = 0, i = 0; off < buf.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}

function depthOf(el: XmlElement): number {
  let d = 0;
  for (const c of el.children) if (typeof c !== 'string') d = Math.max(d, depthOf(c));
  return d + 1;
}

function maxAttrs(el: XmlElement): number {
  let n = Object.keys(el.attrs).length;
  for (const c of el.children) if (typeof c !== 'string') n = Math.max(n, maxAttrs(c));
  return n;
}

// --- inputs ------------------------------------------------------------------------------------

const HEADERS = [
  STREAM_HEADER, STREAM_HEADER, STREAM_HEADER, STREAM_HEADER,
  `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='example.org' version='1.0'>`,
  `<s:stream xmlns:s='http://etherx.jabber.org/streams' xmlns='jabber:server' xmlns:db='jabber:server:dialback'>`,
  `<?xml version="1.0" encoding="UTF-8"?><stream:stream xmlns="jabber:client" xmlns:stream="http://etherx.jabber.org/streams">`,
  `<stream xmlns='http://etherx.jabber.org/streams'>`,
  `<stream:stream xmlns='jabber:client'>`,
  `<?xml version='1.0' encoding='ISO-8859-1'?><stream:stream xmlns:stream='http://etherx.jabber.org/streams'>`,
  '',
];

// Element trees from two pools: well-formed pieces (prefixes declared where used) that reach deep
// into namespace resolution, and hostile ones (bad names, undeclared or reserved prefixes, bad
// entities, characters XML forbids, duplicate attributes).
const CLEAN = {
  names: ['a', 'b', 'body', 'message', 'iq', 'query', 'x', 'p:a', 'p:b', 'é'],
  attrs: ['id', 'to', 'type', 'xmlns', 'xml:lang', 'p:attr', 'constructor', 'toString'],
  values: ['', 'urn:p', 'urn:q', 'jabber:client', '&amp;', '&lt;', '&#x1F426;', '東', 'x y', '"', "'", '\t\n'],
  texts: ['hi', ' ', '&amp;', '&#233;', '<![CDATA[x]]>', '<![CDATA[<>&]]>', 'é東🐦', '\r\n', '\r', '>'],
};
const HOSTILE = {
  names: ['q:b', 'p:', ':a', 'a:b:c', 'xmlns:a', 'xml:a', 'stream:x', '__proto__', '1a', 'a b'],
  attrs: ['xmlns:p', 'xmlns:q', 'xmlns:xml', 'xmlns:xmlns', 'xmlns:', 'q:attr', 'r:attr', '__proto__', 'a', 'a', 'xmlns', 'xmlns'],
  values: ['http://www.w3.org/XML/1998/namespace', 'http://www.w3.org/2000/xmlns/', '&#0;', '&foo;', '<', '&'],
  texts: ['&#0;', '&#xD800;', ']]>', '&foo;', '&lt', '\u0001', '\uFFFE', '<!-- c -->', '<?pi x?>', '&#x110000;'],
};
type Pool = typeof CLEAN;

function elementArb(pool: Pool, unique: boolean): fc.Arbitrary<string> {
  const attr = fc.tuple(fc.constantFrom(...pool.attrs), fc.constantFrom(...pool.values), fc.constantFrom("'", '"'));
  const attrs = (unique ? fc.uniqueArray(attr, { maxLength: 5, selector: (a) => a[0] }) : fc.array(attr, { maxLength: 5 }))
    .map((list) => list.map(([n, v, q]) => ` ${n}=${q}${v.replaceAll(q, q === "'" ? '&apos;' : '&quot;')}${q}`));
  const { element } = fc.letrec<{ element: string; node: string }>((tie) => ({
    element: fc.record({
      name: fc.constantFrom(...pool.names),
      attrs,
      kids: fc.array(tie('node'), { maxLength: 4 }),
      empty: fc.boolean(),
    }).map(({ name, attrs, kids, empty }) => `<${name}${attrs.join('')}${empty && kids.length === 0 ? '/>' : `>${kids.join('')}</${name}>`}`),
    node: fc.oneof({ maxDepth: 5 }, fc.constantFrom(...pool.texts), tie('element')),
  }));
  return element;
}
// Declares p: on every clean element's root, so that p:a and p:attr resolve.
const cleanElement = elementArb(CLEAN, true).map((e) => e.replace(/^<([^\s/>]+)/, "<$1 xmlns:p='urn:p'"));
const hostileElement = elementArb({
  names: [...CLEAN.names, ...HOSTILE.names], attrs: [...CLEAN.attrs, ...HOSTILE.attrs],
  values: [...CLEAN.values, ...HOSTILE.values], texts: [...CLEAN.texts, ...HOSTILE.texts],
}, false);

/** Nesting bombs around the depth limit (closed or not). */
const nesting = fc.tuple(fc.integer({ min: 1, max: 70 }), fc.boolean())
  .map(([n, close]) => '<a>'.repeat(n) + (close ? '</a>'.repeat(n) : ''));

const realistic = fc.tuple(fc.integer({ min: 1, max: 6 }), fc.integer({ min: 1, max: 1e6 }))
  .map(([n, seed]) => generateStanzas(n, seed).join(''));

const stanzaArb = fc.oneof({ weight: 4, arbitrary: realistic }, { weight: 4, arbitrary: cleanElement }, { weight: 1, arbitrary: hostileElement }, { weight: 1, arbitrary: nesting });
const whitespace = fc.constantFrom('', '', ' ', '\n', '\r\n', '\t  ');

const streamText = fc.tuple(
  fc.constantFrom(...HEADERS),
  fc.array(fc.tuple(whitespace, stanzaArb), { maxLength: 6 }),
  fc.constantFrom('', '', STREAM_FOOTER, '</stream>', '</s:stream>'),
).map(([h, body, f]) => h + body.map(([w, s]) => w + s).join('') + f);

const TOKENS = [
  '<', '>', '/>', '</', "'", '"', '=', '&', ';', ':', ' ', '\n', '\r', '&amp;', '&#0;', '&#x1F426;', '&lol;', ']]>', '<![CDATA[',
  '<!--', '-->', '<?pi?>', '<?xml version="1.0"?>', '<!DOCTYPE x [<!ENTITY lol "lol">]>', '<!ENTITY x SYSTEM "file:///etc/passwd">',
  ' xmlns="urn:x"', " xmlns:p='urn:p'", " xmlns:stream='urn:bad'", ' p:a="1"', '<p:x>', '</p:x>', '</stream:stream>',
  '<stream:stream xmlns:stream="http://etherx.jabber.org/streams">', ' a="1" a="2"', '<a>'.repeat(70),
].map((s) => Buffer.from(s));
const BYTE_TOKENS = [
  [0xc3], [0xa9], [0xe6, 0x9d], [0xf0, 0x9f, 0x90], [0xff], [0xfe], [0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xef, 0xbb, 0xbf], [0x00],
  [0xf4, 0x90, 0x80, 0x80], [0xe2, 0x80, 0xa8],
].map((b) => Buffer.from(b));
const ALL_TOKENS = [...TOKENS, ...BYTE_TOKENS];

const mutation = fc.record({
  op: fc.integer({ min: 0, max: 4 }),
  at: fc.nat(),
  len: fc.integer({ min: 1, max: 24 }),
  tok: fc.nat({ max: ALL_TOKENS.length - 1 }),
  byte: fc.integer({ min: 0, max: 255 }),
});
type Mutation = typeof mutation extends fc.Arbitrary<infer T> ? T : never;

function mutate(buf: Buffer, muts: readonly Mutation[]): Buffer {
  let b = buf;
  for (const m of muts) {
    const at = b.length === 0 ? 0 : m.at % (b.length + 1);
    switch (m.op) {
      case 0: if (at < b.length) { b = Buffer.from(b); b[at] = m.byte; } break; // flip
      case 1: b = Buffer.concat([b.subarray(0, at), ALL_TOKENS[m.tok]!, b.subarray(at)]); break; // insert
      case 2: b = Buffer.concat([b.subarray(0, at), b.subarray(at + m.len)]); break; // delete
      case 3: b = Buffer.concat([b.subarray(0, at + m.len), b.subarray(at)]); break; // duplicate
      default: if (m.len > 20) b = b.subarray(0, at); // truncate (rarely)
    }
  }
  return b;
}

const mutations = fc.oneof(fc.constant([]), fc.array(mutation, { minLength: 1, maxLength: 2 }), fc.array(mutation, { maxLength: 6 }));
const input = fc.tuple(streamText, mutations)
  .map(([s, muts]) => mutate(Buffer.from(s), muts))
  .filter((b) => b.length <= 8192);

// Mostly the defaults, often small limits (so that they are hit), rarely tiny ones.
const limit = (dflt: number, min: number, max: number) =>
  fc.oneof({ weight: 2, arbitrary: fc.constant(dflt) }, { weight: 2, arbitrary: fc.integer({ min, max }) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: min }) });
const limitsArb: fc.Arbitrary<StreamParserLimits> = fc.oneof(fc.constant({ ...DEFAULT_LIMITS }), fc.record({
  maxStanzaBytes: limit(262144, 200, 2000),
  maxDepth: limit(64, 4, 8),
  maxAttributes: limit(64, 6, 10),
  maxHeaderBytes: limit(8192, 140, 400),
}));

const chunkSizes = fc.array(fc.oneof(fc.integer({ min: 1, max: 8 }), fc.integer({ min: 1, max: 600 })), { minLength: 1, maxLength: 40 });

function checkClean(o: Outcome, what: string): void {
  assert.deepEqual(o.problems, [], what);
  assert.ok(o.events.filter((e) => e.startsWith('error')).length <= 1, `${what}: more than one error`);
}

// --- properties --------------------------------------------------------------------------------

test('fuzz: never throws, one StreamError at most, nothing after an error or the end; same events for any chunking', () => {
  fc.assert(fc.property(input, limitsArb, chunkSizes, (buf, limits, sizes) => {
    const whole = feed([buf], limits);
    checkClean(whole, 'whole buffer');
    const chunked = feed(cut(buf, sizes), limits);
    checkClean(chunked, 'random chunks');
    assert.deepEqual(chunked.events, whole.events, 'random chunks vs whole buffer');
  }), fuzzParams(5001, 2500));
});

test('fuzz: limits hold byte by byte (stanza and header bytes, depth, attributes); no hang', () => {
  fc.assert(fc.property(input, limitsArb, (buf, limits) => {
    const t0 = performance.now();
    const o = feed(bytewise(buf), limits);
    const ms = performance.now() - t0;
    checkClean(o, 'byte by byte');
    assert.deepEqual(o.events, feed([buf], limits).events, 'byte by byte vs whole buffer');
    // Where counting starts: after the header or a stanza, and again at a stanza's '<' when only
    // whitespace (keepalives) came between.
    const skipSpace = (at: number) => {
      let i = at;
      while (i < buf.length && (buf[i] === 0x20 || buf[i] === 0x0a || buf[i] === 0x0d || buf[i] === 0x09)) i++;
      return i < buf.length && buf[i] === 0x3c ? i : at;
    };
    let boundary = -1;
    for (let i = 0; i < o.events.length; i++) {
      const e = o.events[i]!;
      const at = o.offsets[i]!;
      if (e.startsWith('start')) {
        assert.ok(at <= limits.maxHeaderBytes, `header of ${at} bytes accepted (limit ${limits.maxHeaderBytes})`);
        boundary = at;
      } else if (e.startsWith('stanza')) {
        const from = skipSpace(boundary);
        assert.ok(at - from <= limits.maxStanzaBytes, `stanza of ${at - from} bytes accepted (limit ${limits.maxStanzaBytes})`);
        boundary = at;
      } else if (e === 'error policy-violation' && boundary >= 0) {
        // A size error comes when the limit is reached (depth/attribute errors earlier).
        assert.ok(at - skipSpace(boundary) <= limits.maxStanzaBytes, `size error after ${at - boundary} bytes (limit ${limits.maxStanzaBytes})`);
      } else if (e === 'error policy-violation') {
        assert.ok(at <= limits.maxHeaderBytes, `header error after ${at} bytes (limit ${limits.maxHeaderBytes})`);
      }
    }
    for (const s of o.stanzas) {
      assert.ok(depthOf(s) <= limits.maxDepth, `stanza of depth ${depthOf(s)} delivered (limit ${limits.maxDepth})`);
      assert.ok(maxAttrs(s) <= limits.maxAttributes, `element with ${maxAttrs(s)} attributes delivered (limit ${limits.maxAttributes})`);
    }
    assert.ok(ms < 2000, `${buf.length} bytes took ${ms.toFixed(0)} ms byte by byte`);
  }), fuzzParams(5002, 1000));
});

test('fuzz: random bytes after a valid header never throw', () => {
  const header = Buffer.from(STREAM_HEADER);
  fc.assert(fc.property(fc.uint8Array({ maxLength: 400 }), chunkSizes, limitsArb, (bytes, sizes, limits) => {
    const buf = Buffer.concat([header, bytes]);
    const whole = feed([buf], limits);
    checkClean(whole, 'whole buffer');
    const chunked = feed(cut(buf, sizes), limits);
    checkClean(chunked, 'random chunks');
    assert.deepEqual(chunked.events, whole.events);
  }), fuzzParams(5003, 3000));
});

// --- regressions found by the properties above ---------------------------------------------------

const LIMITS = { ...DEFAULT_LIMITS, maxStanzaBytes: 100, maxHeaderBytes: 200 };

test('regression: a stanza or header one byte over its limit is refused (was accepted)', () => {
  const stanza = (bytes: number) => `<m>${'x'.repeat(bytes - 7)}</m>`;
  const header = Buffer.from(STREAM_HEADER);
  for (const split of [[1], [7], [100000]]) {
    const at = (s: string) => feed(cut(Buffer.concat([header, Buffer.from(s)]), split), LIMITS);
    assert.deepEqual(at(stanza(100)).stanzas.length, 1, `split ${split}`);
    assert.equal(at(stanza(101)).errorCondition, 'policy-violation', `split ${split}`);
  }
  const h = (bytes: number) => Buffer.from(STREAM_HEADER.replace("to='example.org'", `to='${'a'.repeat(bytes - STREAM_HEADER.length + 11)}'`));
  assert.equal(h(200).length, 200);
  assert.deepEqual(feed([h(200)], LIMITS).events.length, 1);
  assert.equal(feed([h(201)], LIMITS).errorCondition, 'policy-violation');
  assert.equal(feed(bytewise(h(201)), LIMITS).errorCondition, 'policy-violation');
});

test('whitespace keepalives between stanzas never add up against the next stanza; an endless run of them is refused', () => {
  const stanza = `<m>${'x'.repeat(93)}</m>`; // 100 bytes: exactly the limit
  for (const split of [[1], [7], [100000]]) {
    const o = feed(cut(Buffer.from(STREAM_HEADER + stanza + ' \n'.repeat(40) + stanza + '\t'.repeat(99) + stanza), split), LIMITS);
    assert.equal(o.errorCondition, undefined, `split ${split}`);
    assert.equal(o.stanzas.length, 3);
    assert.equal(feed(cut(Buffer.from(STREAM_HEADER + stanza + ' '.repeat(100)), split), LIMITS).errorCondition, 'policy-violation');
    assert.equal(feed(cut(Buffer.from(STREAM_HEADER + ' '.repeat(100)), split), LIMITS).errorCondition, 'policy-violation');
  }
});

test('regression: bytes of a character split across writes count towards the stanza limit (up to 3 were missed)', () => {
  // The 4-byte 🐦 starts right after a stanza boundary, in the same write.
  const head = Buffer.concat([Buffer.from(STREAM_HEADER + '<a/><m>'), Buffer.from([0xf0, 0x9f, 0x90])]);
  for (const size of [100, 101, 103]) {
    const rest = Buffer.from([0xa6, ...Buffer.from(`${'x'.repeat(size - 11)}</m>`)]);
    const o = feed([head, rest], LIMITS);
    assert.equal(Buffer.byteLength(`<m>🐦${'x'.repeat(size - 11)}</m>`), size);
    if (size <= 100) assert.deepEqual(o.events.map((e) => e.split(' ')[0]), ['start', 'stanza', 'stanza'], `${size} bytes`);
    else assert.equal(o.errorCondition, 'policy-violation', `${size} bytes`);
  }
});

test('regression: invalid UTF-8 in the same write as earlier events or errors does not hide them', () => {
  const bad = Buffer.from([0xff]);
  // The stream header completed before the bad byte: its event still comes first.
  assert.deepEqual(feed([Buffer.concat([Buffer.from(STREAM_HEADER), bad])], DEFAULT_LIMITS).events.map((e) => e.split(' ')[0]), ['start', 'error']);
  // A stanza completed before it is delivered, as when the bad byte comes in a later write.
  const o = feed([Buffer.concat([Buffer.from(STREAM_HEADER + '<presence/>'), bad])], DEFAULT_LIMITS);
  assert.deepEqual(o.events.map((e) => e.split(' ')[0]), ['start', 'stanza', 'error']);
  // An earlier violation is the one reported: a comment is restricted-xml, wherever the writes split.
  for (const split of [[1], [100000]]) {
    const c = feed(cut(Buffer.concat([Buffer.from(STREAM_HEADER + '<!-- x -->'), bad]), split), DEFAULT_LIMITS);
    assert.equal(c.errorCondition, 'restricted-xml', `split ${split}`);
  }
  // A byte order mark is dropped only at the very start of the stream (found by a longer run: a
  // U+FEFF inside a piece that also held the bad byte was dropped as if it were a BOM).
  const bom = Buffer.from([0xef, 0xbb, 0xbf]);
  const pi = Buffer.concat([Buffer.from('<?'), bom, Buffer.from("xml version='1.0'?>"), bad]);
  for (const split of [[2, 23], [1], [100000]]) assert.equal(feed(cut(pi, split), DEFAULT_LIMITS).errorCondition, 'restricted-xml', `split ${split}`);
  const lead = Buffer.concat([bom, Buffer.from(STREAM_HEADER), bad]);
  for (const split of [[3], [1], [100000]]) {
    assert.deepEqual(feed(cut(lead, split), DEFAULT_LIMITS).events.map((e) => e.split(' ')[0]), ['start', 'error'], `split ${split}`);
  }
  // A multi-byte character completed before the bad byte is still part of the text.
  const t = feed([Buffer.from(STREAM_HEADER + '<m>é'), Buffer.concat([Buffer.from('é</m><n>'), Buffer.from([0xe6, 0x9d]), Buffer.from('x')])], DEFAULT_LIMITS);
  assert.deepEqual(t.events.map((e) => e.split(' ')[0]), ['start', 'stanza', 'error']);
  assert.equal(t.stanzas[0]!.text(), 'éé');
});
