// Shared by the auth security tests: raw SASL exchanges from a chosen loopback source address
// (127.0.0.0/8 is all loopback on Linux, so each test can play several "IP addresses").
import type tls from 'node:tls';
import { RawClient } from '../../src/testing/index.ts';
import { scramClient } from '../../src/core/auth/scram-client.ts';
import type { ScramHashName } from '../../src/core/auth/credentials.ts';

export const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');
const ANSWER = /<success[^>]*\/>|<success[^>]*>[^<]*<\/success>|<failure[\s\S]*?<\/failure>/;

/** A Direct TLS stream from `localAddress`, after the pre-authentication features. */
export async function saslStream(port: number, ca: Buffer, localAddress = '127.0.0.1'): Promise<RawClient> {
  // tls.connect passes localAddress on to net.connect (missing from its option type).
  const c = await RawClient.connect(port, { directTls: true, ca, tlsOptions: { localAddress } as tls.ConnectionOptions });
  c.header();
  await c.expect(/<\/stream:features>/);
  c.clear();
  return c;
}

export interface Answer {
  /** '<success .../>' or the whole '<failure>...</failure>' element as received. */
  xml: string;
  ok: boolean;
  /** The defined condition of a failure ('not-authorized', 'temporary-auth-failure', ...). */
  condition: string | undefined;
  /** From sending <auth> to the answer. */
  ms: number;
}

function answer(xml: string, ms: number): Answer {
  const ok = xml.startsWith('<success');
  return { xml, ok, condition: ok ? undefined : /<failure[^>]*>\s*<([a-z-]+)/.exec(xml)?.[1], ms };
}

/** One SASL PLAIN attempt on `c` (the buffer is cleared first). */
export async function plainAttempt(c: RawClient, user: string, pass: string, timeoutMs = 15_000): Promise<Answer> {
  c.clear();
  const t0 = performance.now();
  c.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${user}\0${pass}`)}</auth>`);
  const m = await c.expect(ANSWER, timeoutMs);
  return answer(m[0], performance.now() - t0);
}

export interface ScramAttempt extends Answer {
  /** The server-first-message (decoded). */
  serverFirst: string;
  /** Time from client-first to server-first, and from client-final to the answer. */
  firstMs: number;
  finalMs: number;
  /** What went over the wire, base64 as sent (for the log checks). */
  wire: string[];
}

/**
 * One SCRAM attempt on `c`. The client's PBKDF2 runs between the two measured round trips, so
 * `firstMs` and `finalMs` are the server's work plus the network only. When the server answers
 * the <auth> with a <failure/> (a refused address), that failure is returned.
 */
export async function scramAttempt(c: RawClient, hash: ScramHashName, user: string, pass: string, timeoutMs = 15_000): Promise<ScramAttempt> {
  const sc = scramClient({ hash, username: user, password: pass });
  const first = sc.first().toString('base64');
  c.clear();
  const t0 = performance.now();
  c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-${hash}'>${first}</auth>`);
  const ch = await c.expect(/<challenge xmlns=['"][^'"]+['"]>([^<]*)<\/challenge>|<failure[\s\S]*?<\/failure>/, timeoutMs);
  const firstMs = performance.now() - t0;
  if (ch[0].startsWith('<failure')) return { ...answer(ch[0], firstMs), serverFirst: '', firstMs, finalMs: 0, wire: [first] };
  const serverFirst = Buffer.from(ch[1]!, 'base64').toString('utf8');
  const final = (await sc.final(serverFirst)).toString('base64');
  c.clear();
  const t1 = performance.now();
  c.send(`<response xmlns='${SASL}'>${final}</response>`);
  const m = await c.expect(ANSWER, timeoutMs);
  const finalMs = performance.now() - t1;
  const wire = [first, ch[1]!, final];
  const v = /<success[^>]*>([^<]*)<\/success>/.exec(m[0]);
  if (v) wire.push(v[1]!);
  return { ...answer(m[0], firstMs + finalMs), serverFirst, firstMs, finalMs, wire };
}

/** Median of a non-empty list. */
export function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}
