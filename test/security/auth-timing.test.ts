// No user enumeration by timing (issue 5 item 2): a failed login for an account that exists
// (wrong password) and for one that does not take the same time, with PLAIN (the server runs
// PBKDF2 with the stored salt, or a stable fake one) and SCRAM-SHA-256 (the first step looks the
// account up, the last one checks the proof against the stored key, or a fake one).
//
// Measured over real TLS sockets with the throttle delays off (auth.failureDelayMs: 0), the two
// kinds interleaved (ABBA per connection, so drift and load from other tests hit both alike);
// each connection comes from its own loopback address so the per-address refusal never
// triggers. The median of the per-connection differences must stay within max(20 %, 1 ms) of
// the median time: a generous bound for a shared 2-core
// box, far below what an unequal path costs (a skipped PBKDF2 is most of a PLAIN failure: the
// server uses 20 000 iterations here, a few ms). The numbers are printed
// as test diagnostics (docs/security.md quotes them).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { median, plainAttempt, saslStream, scramAttempt, type Answer } from './auth-util.ts';

const PER_SIDE = 200;
const PER_CONNECTION = 4; // the server closes a stream after 5 failures
const WARMUP = 20;

let srv: TestServer;
let ca: Buffer;
let nextIp = 0;
/** A fresh loopback source address per connection: 127.0.1.1, 127.0.1.2, ... 127.0.4.x */
const ip = () => { const n = nextIp++; return `127.0.${1 + (n >> 8)}.${1 + (n & 255) % 254}`; };

before(async () => {
  srv = await startServer({
    config: {
      // 20 000 PBKDF2 iterations (a few ms), so that a skipped PBKDF2 would stand far above the bound.
      auth: { failureDelayMs: 0, maxFailureDelayMs: 0, scramIterations: 20_000 },
      // info, as in production (the harness waits for 'server started'): both kinds log one line.
      log: { level: 'info', format: 'json' },
    },
  });
  ca = await readFile(srv.caFile);
  await srv.adduser('alice@localhost', 'the real password');
});
after(async () => {
  await srv.stop();
  await srv.cleanup();
});

interface Sample { known: boolean; conn: number; a: Answer & { firstMs?: number; finalMs?: number } }

/**
 * `2 * perSide` failed attempts, known (alice, wrong password) and unknown (nobodyN) interleaved
 * ABBA / BAAB on successive connections.
 */
async function measure(perSide: number, attempt: (c: Awaited<ReturnType<typeof saslStream>>, user: string) => Promise<Sample['a']>): Promise<Sample[]> {
  const out: Sample[] = [];
  let conn = 0;
  while (out.length < 2 * perSide) {
    const c = await saslStream(srv.ports.c2sDirectTls, ca, ip());
    try {
      const order = ++conn % 2 ? [true, false, false, true] : [false, true, true, false];
      for (const known of order.slice(0, PER_CONNECTION)) {
        const user = known ? 'alice' : `nobody${out.length % 17}`;
        const a = await attempt(c, user);
        assert.equal(a.condition, 'not-authorized', a.xml);
        out.push({ known, conn, a });
      }
    } finally {
      c.destroy();
    }
  }
  return out;
}

interface Comparison { known: number; unknown: number; paired: number; bound: number }

/**
 * Medians of both sides, and the median of the per-connection differences (known − unknown, each
 * connection's two of each averaged): the pairing cancels bursts of load from other processes,
 * which hit both kinds on one connection alike. The paired median must stay within the bound.
 */
function compare(samples: Sample[], pick: (a: Sample['a']) => number): Comparison {
  const known = median(samples.filter((s) => s.known).map((s) => pick(s.a)));
  const unknown = median(samples.filter((s) => !s.known).map((s) => pick(s.a)));
  const byConn = new Map<number, { k: number[]; u: number[] }>();
  for (const s of samples) {
    let e = byConn.get(s.conn);
    if (!e) byConn.set(s.conn, (e = { k: [], u: [] }));
    (s.known ? e.k : e.u).push(pick(s.a));
  }
  const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
  const diffs = [...byConn.values()].filter((e) => e.k.length && e.u.length).map((e) => mean(e.k) - mean(e.u));
  return { known, unknown, paired: median(diffs), bound: Math.max(0.2 * Math.min(known, unknown), 1) };
}

const fmt = (c: Comparison) => `known ${c.known.toFixed(3)} ms, unknown ${c.unknown.toFixed(3)} ms, median paired difference ${c.paired >= 0 ? '+' : ''}${c.paired.toFixed(3)} ms (bound ±${c.bound.toFixed(3)} ms)`;

test('PLAIN: a wrong password and an unknown user fail in the same time', async (t) => {
  const plain = (c: Awaited<ReturnType<typeof saslStream>>, user: string) => plainAttempt(c, user, 'not the password');
  await measure(WARMUP / 2, plain);
  const samples = await measure(PER_SIDE, plain);
  const r = compare(samples, (a) => a.ms);
  t.diagnostic(`PLAIN failure, median of ${PER_SIDE} each: ${fmt(r)}`);
  assert.ok(Math.abs(r.paired) <= r.bound, fmt(r));
});

test('SCRAM-SHA-256: both steps take the same time for a wrong password and an unknown user', async (t) => {
  const scram = (c: Awaited<ReturnType<typeof saslStream>>, user: string) => scramAttempt(c, 'SHA-256', user, 'not the password');
  await measure(WARMUP / 2, scram);
  const samples = await measure(PER_SIDE, scram);
  const first = compare(samples, (a) => a.firstMs!);
  const final = compare(samples, (a) => a.finalMs!);
  t.diagnostic(`SCRAM-SHA-256 server-first, median of ${PER_SIDE} each: ${fmt(first)}`);
  t.diagnostic(`SCRAM-SHA-256 failure after client-final, median of ${PER_SIDE} each: ${fmt(final)}`);
  assert.ok(Math.abs(first.paired) <= first.bound, `server-first: ${fmt(first)}`);
  assert.ok(Math.abs(final.paired) <= final.bound, `final: ${fmt(final)}`);
});

test('no enumeration by content: same <failure/>, and an unknown user gets a stable, real-looking SCRAM salt', async () => {
  const serverFirst = async (hash: 'SHA-1' | 'SHA-256', user: string) => {
    const c = await saslStream(srv.ports.c2sDirectTls, ca, ip());
    try {
      const a = await scramAttempt(c, hash, user, 'not the password');
      const attrs = Object.fromEntries(a.serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
      return { failure: a.xml, salt: attrs.s!, iterations: attrs.i! };
    } finally {
      c.destroy();
    }
  };
  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    const known = await serverFirst(hash, 'alice');
    const unknown = await serverFirst(hash, 'nobody-here');
    assert.equal(unknown.failure, known.failure, 'byte-identical <failure/>');
    assert.equal(known.failure, `<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>`);
    assert.equal(unknown.iterations, known.iterations, 'the same iteration count');
    assert.equal(Buffer.from(unknown.salt, 'base64').length, Buffer.from(known.salt, 'base64').length, 'a salt of the same length');
    // A real account always shows its one salt: so does an unknown one (also in other letter case),
    // and different unknown names get different salts, as different accounts would.
    assert.equal((await serverFirst(hash, 'alice')).salt, known.salt);
    assert.equal((await serverFirst(hash, 'nobody-here')).salt, unknown.salt);
    assert.equal((await serverFirst(hash, 'Nobody-Here')).salt, unknown.salt);
    assert.notEqual((await serverFirst(hash, 'nobody-else')).salt, unknown.salt);
  }
  // PLAIN as well.
  const c = await saslStream(srv.ports.c2sDirectTls, ca, ip());
  const [wrong, unknown] = [await plainAttempt(c, 'alice', 'nope'), await plainAttempt(c, 'nobody-here', 'nope')];
  c.destroy();
  assert.equal(unknown.xml, wrong.xml);
});
