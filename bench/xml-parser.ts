// XML stream parser benchmark: node --import tsx bench/xml-parser.ts [--stanzas N] [--runs N]
//
// Generates a realistic c2s stream (messages with bodies and extensions, presence with caps,
// IQs), feeds it in seeded random-size chunks (1..8191 bytes, so boundaries fall inside tags,
// entities and multi-byte UTF-8) to Amsel's XmlStreamParser and to @xmpp/xml's ltx-based
// parser, and reports throughput plus which safety checks each passes.

import { XmlStreamParser } from '../src/xml/parser.ts';
import type { StreamError } from '../src/xmpp/errors.ts';

/** mulberry32: small, seeded, good enough for test data. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export const STREAM_HEADER =
  "<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' " +
  "to='example.org' version='1.0' xml:lang='en'>";
export const STREAM_FOOTER = '</stream:stream>';

const WORDS = ['hello', 'world', 'wherefore', 'art', 'thou', 'Romeo', 'Grüße', 'naïve', 'café', '東京',
  'привет', '🐦', '&amp;', '&lt;3', 'ok', 'see', 'you', 'tomorrow', 'at', 'the', 'usual', 'place', '&quot;hm&quot;'];

/** A realistic client-to-server stream body (no header/footer), `count` stanzas. */
export function generateStanzas(count: number, seed = 1): string[] {
  const rnd = prng(seed);
  const pick = <T>(a: readonly T[]): T => a[Math.floor(rnd() * a.length)]!;
  const text = (n: number) => Array.from({ length: n }, () => pick(WORDS)).join(' ');
  const id = () => Math.floor(rnd() * 2 ** 40).toString(36);
  const out: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = rnd();
    if (r < 0.55) {
      const to = `${pick(['juliet', 'nurse', 'benvolio', 'mercutio'])}@example.org`;
      let s = `<message to='${to}' type='chat' id='${id()}' xml:lang='en'><body>${text(3 + Math.floor(rnd() * 30))}</body>`;
      s += `<active xmlns='http://jabber.org/protocol/chatstates'/>`;
      if (rnd() < 0.7) s += `<request xmlns='urn:xmpp:receipts'/>`;
      if (rnd() < 0.8) s += `<origin-id xmlns='urn:xmpp:sid:0' id='${id()}-${id()}'/>`;
      if (rnd() < 0.2) s += `<markable xmlns='urn:xmpp:chat-markers:0'/>`;
      if (rnd() < 0.1) s += `<x xmlns='jabber:x:oob'><url>https://upload.example.org/${id()}/photo.jpg</url></x>`;
      out.push(s + '</message>');
    } else if (r < 0.8) {
      let s = `<presence id='${id()}'>`;
      if (rnd() < 0.5) s += `<show>${pick(['away', 'chat', 'dnd', 'xa'])}</show>`;
      if (rnd() < 0.5) s += `<status>${text(1 + Math.floor(rnd() * 6))}</status>`;
      s += `<priority>${Math.floor(rnd() * 10)}</priority>`;
      s += `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='https://conversations.im' ver='${id()}${id()}='/>`;
      if (rnd() < 0.3) s += `<x xmlns='vcard-temp:x:update'><photo>${id()}${id()}${id()}</photo></x>`;
      out.push(s + '</presence>');
    } else {
      const kind = rnd();
      if (kind < 0.3) {
        out.push(`<iq type='get' id='${id()}' to='example.org'><ping xmlns='urn:xmpp:ping'/></iq>`);
      } else if (kind < 0.55) {
        out.push(`<iq type='get' id='${id()}' to='example.org'><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
      } else if (kind < 0.75) {
        out.push(`<iq type='get' id='${id()}'><query xmlns='jabber:iq:roster' ver='ver${Math.floor(rnd() * 99)}'/></iq>`);
      } else {
        out.push(`<iq type='set' id='${id()}'><pubsub xmlns='http://jabber.org/protocol/pubsub'>` +
          `<publish node='urn:xmpp:avatar:metadata'><item id='${id()}'>` +
          `<metadata xmlns='urn:xmpp:avatar:metadata'><info bytes='${Math.floor(rnd() * 99999)}' id='${id()}' ` +
          `height='64' width='64' type='image/png'/></metadata></item></publish></pubsub></iq>`);
      }
    }
  }
  return out;
}

/** Split a buffer into seeded random chunks of 1..maxChunk bytes (views, no copies). */
export function chunkify(buf: Uint8Array, seed: number, maxChunk = 8191): Uint8Array[] {
  const rnd = prng(seed);
  const out: Uint8Array[] = [];
  for (let off = 0; off < buf.length;) {
    const n = 1 + Math.floor(rnd() * maxChunk);
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}

export interface ParserBenchResult { mbPerSec: number; stanzasPerSec: number; stanzas: number; bytes: number; ms: number }

interface Adapter {
  name: string;
  /** Feed the chunks; return the number of stanzas seen. */
  run(chunks: readonly Uint8Array[]): number;
}

export const amsel: Adapter = {
  name: 'amsel XmlStreamParser (saxes 6, xmlns:false)',
  run(chunks) {
    let n = 0;
    const p = new XmlStreamParser({
      streamStart() {}, stanza() { n++; }, streamEnd() {},
      error(e) { throw e; },
    });
    for (const c of chunks) p.write(c);
    return n;
  },
};

async function ltxAdapter(): Promise<Adapter | undefined> {
  try {
    // @xmpp/xml's stream parser (what @xmpp/client uses), on ltx's own SAX parser.
    const mod = (await import('@xmpp/xml/lib/Parser.js' as string)) as { default: new () => LtxStreamParser };
    const Parser = mod.default;
    return {
      name: '@xmpp/xml Parser (ltx 3)',
      run(chunks) {
        let n = 0;
        const p = new Parser();
        p.on('element', () => { n++; });
        p.on('error', (e: unknown) => { throw e; });
        // @xmpp/xml calls chunk.toString() per chunk, garbling split UTF-8; give it correctly
        // decoded text so both parsers do the same work on the same characters.
        const dec = new TextDecoder();
        for (const c of chunks) p.write(dec.decode(c, { stream: true }));
        return n;
      },
    };
  } catch {
    return undefined;
  }
}

interface LtxStreamParser {
  on(ev: string, fn: (...a: any[]) => void): void;
  write(s: string): void;
}

/** CPU time (user + system) of one call, in ms: steadier than wall time on a shared machine. */
function cpuMs(fn: () => void): number {
  const t0 = process.cpuUsage();
  fn();
  const d = process.cpuUsage(t0);
  return (d.user + d.system) / 1000;
}

function measure(adapter: Adapter, chunks: readonly Uint8Array[], bytes: number, expected: number, runs: number): ParserBenchResult {
  // Warm up, then take the median of `runs`.
  for (let i = 0; i < 2; i++) adapter.run(chunks);
  const times: number[] = [];
  for (let i = 0; i < runs; i++) {
    let n = 0;
    times.push(cpuMs(() => { n = adapter.run(chunks); }));
    if (n !== expected) throw new Error(`${adapter.name}: saw ${n} stanzas, expected ${expected}`);
  }
  times.sort((a, b) => a - b);
  const ms = times[Math.floor(times.length / 2)]!;
  return { mbPerSec: bytes / 1e6 / (ms / 1000), stanzasPerSec: expected / (ms / 1000), stanzas: expected, bytes, ms };
}

/** Reusable guard for CI: Amsel's parser on the standard workload. */
export function benchParser(opts: { stanzas?: number; runs?: number; seed?: number } = {}): ParserBenchResult {
  const count = opts.stanzas ?? 20000;
  const buf = Buffer.from(STREAM_HEADER + generateStanzas(count, opts.seed ?? 1).join('') + STREAM_FOOTER);
  const chunks = chunkify(buf, (opts.seed ?? 1) + 1);
  return measure(amsel, chunks, buf.length, count, opts.runs ?? 7);
}

// --- safety checks -------------------------------------------------------------------------

const BAD_INPUTS: Record<string, Uint8Array> = {
  'DOCTYPE': Buffer.from(`<?xml version='1.0'?><!DOCTYPE stream:stream><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message><body>after</body></message>`),
  'billion laughs': Buffer.from(`<?xml version='1.0'?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;"><!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message><body>&lol3;</body></message>`),
  'invalid UTF-8': Buffer.concat([Buffer.from(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message><body>`), Buffer.from([0xc3, 0x28, 0xff]), Buffer.from(`</body></message>`)]),
  'comment': Buffer.from(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><!-- hi --><message><body>after</body></message>`),
  'unknown entity': Buffer.from(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'><message><body>&foo;</body></message>`),
};

/** Passes = the parser reports an error (and, for Amsel, no stanza leaks through). */
function safety(adapter: 'amsel' | 'ltx', ltxParser?: new () => LtxStreamParser): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, bytes] of Object.entries(BAD_INPUTS)) {
    let err: string | undefined;
    let stanzas = 0;
    if (adapter === 'amsel') {
      const p = new XmlStreamParser({
        streamStart() {}, stanza() { stanzas++; }, streamEnd() {},
        error(e: StreamError) { err = e.condition; },
      });
      p.write(bytes);
    } else {
      const p = new ltxParser!();
      p.on('element', () => { stanzas++; });
      p.on('error', (e: Error) => { err = e.message; });
      try { p.write(Buffer.from(bytes).toString()); } catch (e) { err = String(e); }
    }
    out[name] = err !== undefined ? `pass (${err})` : `FAIL (no error, ${stanzas} stanza(s) delivered)`;
  }
  return out;
}

async function main(): Promise<void> {
  const args = process.argv.slice(2);
  const arg = (k: string, d: number) => { const i = args.indexOf(k); return i >= 0 ? Number(args[i + 1]) : d; };
  const count = arg('--stanzas', 20000);
  const runs = arg('--runs', 7);
  const buf = Buffer.from(STREAM_HEADER + generateStanzas(count, 1).join('') + STREAM_FOOTER);
  console.log(`node ${process.version}, ${count} stanzas, ${(buf.length / 1e6).toFixed(2)} MB, median CPU time of ${runs} runs`);
  const ltx = await ltxAdapter();
  for (const [label, maxChunk] of [['random chunks 1..8191 B (seed 2)', 8191], ['random chunks 1..65535 B (seed 2)', 65535], ['random chunks 1..64 B (seed 2)', 64]] as const) {
    const chunks = chunkify(buf, 2, maxChunk);
    console.log(`\n${label}: ${chunks.length} writes`);
    for (const a of [amsel, ltx]) {
      if (!a) continue;
      const r = measure(a, chunks, buf.length, count, runs);
      console.log(`  ${a.name.padEnd(48)} ${r.mbPerSec.toFixed(1).padStart(6)} MB/s ${Math.round(r.stanzasPerSec / 1000).toString().padStart(5)} k stanzas/s  (${r.ms.toFixed(1)} ms)`);
    }
  }
  console.log('\nsafety checks (error reported?)');
  const amselSafety = safety('amsel');
  const ltxMod = ltx ? ((await import('@xmpp/xml/lib/Parser.js' as string)) as { default: new () => LtxStreamParser }).default : undefined;
  const ltxSafety = ltxMod ? safety('ltx', ltxMod) : {};
  for (const k of Object.keys(BAD_INPUTS)) {
    console.log(`  ${k.padEnd(16)} amsel: ${amselSafety[k]!.padEnd(34)} ltx: ${ltxSafety[k] ?? 'n/a'}`);
  }
}

if (import.meta.url === `file://${process.argv[1]}` || process.argv[1]?.endsWith('bench/xml-parser.ts')) {
  await main();
}
