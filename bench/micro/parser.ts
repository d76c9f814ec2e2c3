// Micro-benchmark: stanzas/s through XmlStreamParser, the c2s stream of bench/xml-parser.ts
// fed in seeded random-size chunks (1..8191 bytes, so boundaries fall inside tags, entities and
// multi-byte UTF-8). Baseline: raw saxes on the same chunks (baseline.ts).

import { XmlStreamParser } from '../../src/xml/parser.ts';
import { chunkify, generateStanzas, STREAM_HEADER } from '../xml-parser.ts';
import { saxesBaseline } from './baseline.ts';
import type { MicroBench, Workload } from './harness.ts';

export interface ParserInput {
  /** Header + stanzas (no footer: a c2s stream stays open). */
  buf: Buffer;
  chunks: Uint8Array[];
  stanzas: number;
}

/** 2000 stanzas (~550 kB): one pass takes a few ms, fine-grained enough for short rounds. */
export function parserInput(opts: { stanzas?: number; seed?: number; maxChunk?: number } = {}): ParserInput {
  const stanzas = opts.stanzas ?? 2000;
  const seed = opts.seed ?? 1;
  const buf = Buffer.from(STREAM_HEADER + generateStanzas(stanzas, seed).join(''));
  return { buf, chunks: chunkify(buf, seed + 1, opts.maxChunk ?? 8191), stanzas };
}

/** A fresh parser per pass (as per connection); throws if a stanza went missing. */
export function parserWorkload(input: ParserInput, chunks: readonly Uint8Array[] = input.chunks): Workload {
  const expected = input.stanzas;
  return {
    run() {
      let n = 0;
      const p = new XmlStreamParser({
        streamStart() {},
        stanza() { n++; },
        streamEnd() {},
        error(e) { throw e; },
      });
      for (let i = 0; i < chunks.length; i++) p.write(chunks[i]!);
      if (n !== expected) throw new Error(`parser bench: ${n} stanzas, expected ${expected}`);
      return n;
    },
  };
}

export function parserBench(): MicroBench {
  const input = parserInput();
  return {
    name: 'parser.stream',
    unit: 'stanzas',
    description: 'XmlStreamParser, c2s stream in random 1..8191-byte chunks',
    bytesPerUnit: input.buf.length / input.stanzas,
    subject: () => parserWorkload(input),
    baseline: () => saxesBaseline(input.chunks, input.stanzas),
  };
}

/**
 * The guard's self-test: the same benchmark (same name, same recorded figure) with the parser
 * fed one byte per write(), so per-write overhead dominates (about 10x slower). The guard must
 * report it as a regression (run.ts --slowed, test/bench/regression.test.ts).
 */
export function slowedParserBench(): MicroBench {
  const normal = parserBench();
  // The first 250 stanzas of the same stream: still stanzas/s, at an eighth of the time per call.
  const input = parserInput({ stanzas: 250 });
  return {
    ...normal,
    description: `${normal.description} [SLOWED: 1-byte writes]`,
    subject: () => ({
      run() {
        let n = 0;
        const p = new XmlStreamParser({ streamStart() {}, stanza() { n++; }, streamEnd() {}, error(e) { throw e; } });
        const buf = input.buf;
        for (let i = 0; i < buf.length; i++) p.write(buf.subarray(i, i + 1));
        if (n !== input.stanzas) throw new Error(`parser bench: ${n} stanzas, expected ${input.stanzas}`);
        return n;
      },
    }),
  };
}
