// Helpers of the durability and storage-fault tests (test/ops/durability.test.ts,
// test/ops/storage-faults.test.ts): raw sessions that send a batch and wait until the server has
// handled it, and parsing of what came back.
import { readFile } from 'node:fs/promises';
import type { RawClient, TestServer } from '../../src/testing/index.ts';
import { rawLogin } from '../clients/xmpp.ts';

export const password = (user: string) => `${user} durable pw`;

export async function session(srv: TestServer, user: string, resource = 'r', pw = password(user)): Promise<RawClient> {
  return rawLogin({ port: srv.ports.c2s, ca: await readFile(srv.caFile), username: user, password: pw, resource });
}

let seq = 0;

/**
 * Send the stanzas, then a ping, and wait for the ping's answer: a connection's stanzas are
 * handled in order, one at a time, so everything before the ping has been handled (stored, or
 * answered with an error) when its result arrives.
 */
export async function sendAndSync(c: RawClient, stanzas: string[], timeoutMs = 20_000): Promise<void> {
  const id = `sync${++seq}`;
  c.send(stanzas.join('') + `<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await c.expect(new RegExp(`<iq[^>]*id="${id}"[^>]*type="result"|<iq[^>]*type="result"[^>]*id="${id}"`), timeoutMs);
}

export const chat = (to: string, id: string, body: string) => `<message to='${to}' type='chat' id='${id}'><body>${body}</body></message>`;

export interface Bounce { id: string; type: string; condition: string }

/** The error replies among the messages received so far. */
export function bounces(received: string): Bounce[] {
  const out: Bounce[] = [];
  for (const m of received.matchAll(/<message\b([^>]*)>([\s\S]*?)<\/message>/g)) {
    const attrs = m[1]!;
    if (!/type="error"/.test(attrs)) continue;
    const err = /<error\b[^>]*type="([^"]+)"[^>]*>\s*<([a-z-]+)\s+xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/.exec(m[2]!);
    out.push({ id: /\bid="([^"]*)"/.exec(attrs)?.[1] ?? '', type: err?.[1] ?? '', condition: err?.[2] ?? '' });
  }
  return out;
}

/** The <body/> texts of the messages (not errors) received so far, in order. */
export function bodies(received: string): string[] {
  const out: string[] = [];
  for (const m of received.matchAll(/<message\b([^>]*)>([\s\S]*?)<\/message>/g)) {
    if (/type="error"/.test(m[1]!)) continue;
    const b = /<body>([^<]*)<\/body>/.exec(m[2]!);
    if (b) out.push(b[1]!);
  }
  return out;
}

/** The error reply to the IQ with this id ({type, condition}), or undefined if it was a result. */
export async function iqAnswer(c: RawClient, id: string, timeoutMs = 20_000): Promise<Bounce | undefined> {
  const m = await c.expect(new RegExp(`<iq\\b[^>]*\\bid="${id}"[^>]*?(?:/>|>[\\s\\S]*?</iq>)`), timeoutMs);
  if (!/type="error"/.test(m[0])) return undefined;
  const err = /<error\b[^>]*type="([^"]+)"[^>]*>\s*<([a-z-]+)\s+xmlns="urn:ietf:params:xml:ns:xmpp-stanzas"/.exec(m[0]);
  return { id, type: err?.[1] ?? '', condition: err?.[2] ?? '' };
}

export async function until(what: string, cond: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Log in as `user`, send initial presence and collect the stored messages until `n` have come. */
export async function collectOffline(srv: TestServer, user: string, n: number, pw?: string): Promise<{ c: RawClient; got: string[] }> {
  const c = await session(srv, user, 'collect', pw);
  c.send('<presence/>');
  await until(`${n} offline messages for ${user}`, () => bodies(c.received).length >= n);
  // Anything more (a duplicate) would come in the same burst: give it a moment, then sync.
  await sendAndSync(c, []);
  return { c, got: bodies(c.received) };
}
