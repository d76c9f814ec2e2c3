// Shared helpers for tests that log in with @xmpp/client (an independent implementation) and
// with the raw-socket client from src/testing (for exact wire-level assertions).
import { client as xmppClient, xml } from '@xmpp/client';
import { RawClient } from '../../src/testing/index.ts';

export type XmppClient = ReturnType<typeof xmppClient>;
export { xml };

export interface ClientOptions { service: string; username: string; password: string; resource?: string; mechanism?: string; domain?: string }

/** An @xmpp/client configured for tests (no reconnect, generous step timeout), not started yet. */
export function createClient(opts: ClientOptions): XmppClient {
  const c = xmppClient({ service: opts.service, domain: opts.domain ?? 'localhost', username: opts.username, password: opts.password, resource: opts.resource });
  // Never reconnect in tests: a dropped session must stay dropped.
  (c as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
  // @xmpp/connection waits 2 s for each step by default: too little on a loaded test machine.
  (c as unknown as { timeout: number }).timeout = 15_000;
  // @xmpp/iq's request() registers its reply promise, then awaits the send; an error reply that
  // arrives before the send's callback rejects a promise nobody awaits yet, and node:test fails
  // the test on that unhandled rejection. Mark each pending reply as handled; the caller that
  // awaits it still gets the rejection.
  const handlers = (c as unknown as { iqCaller: { handlers: Map<string, { promise: Promise<unknown> }> } }).iqCaller.handlers;
  const set = handlers.set.bind(handlers);
  handlers.set = (id, d) => { d.promise.catch(() => undefined); return set(id, d); };
  if (opts.mechanism) {
    const factory = (c as unknown as { saslFactory: { _mechs: { name: string }[] } }).saslFactory;
    factory._mechs = factory._mechs.filter((m) => m.name === opts.mechanism);
  }
  return c;
}

/**
 * Start a client; rejects with the first error (SASL failures arrive as 'error' events, not as a
 * rejected start()). The error listener stays: an EventEmitter without one throws on later errors.
 */
export async function startClient(c: XmppClient): Promise<void> {
  const failed = new Promise<never>((_, reject) => c.on('error', reject));
  failed.catch(() => undefined);
  try {
    await Promise.race([c.start(), failed]);
  } catch (err) {
    await c.stop().catch(() => undefined);
    throw err;
  }
}

/** Log in with @xmpp/client; rejects with the SASL error (err.condition) on failure. */
export async function login(opts: ClientOptions): Promise<XmppClient> {
  const c = createClient(opts);
  await startClient(c);
  return c;
}

/** Ping the server; resolves with the iq type ('result'). */
export async function ping(c: XmppClient, id = `p${Math.random().toString(36).slice(2)}`): Promise<string> {
  const res = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost', id }, xml('ping', { xmlns: 'urn:xmpp:ping' })), 5000);
  return res.attrs.type ?? '';
}

/** The SASL PLAIN initial response for a user (RFC 4616), base64: what a client puts on the wire. */
export function plainMessage(username: string, password: string): string {
  return Buffer.from(`\0${username}\0${password}`, 'utf8').toString('base64');
}

/**
 * A bound session with the raw client: STARTTLS (or Direct TLS), SASL PLAIN, resource binding.
 * Resolves with the client once bound; the received buffer is cleared.
 */
export async function rawLogin(opts: { port: number; directTls?: boolean; ca: Buffer | string; username: string; password: string; resource: string }): Promise<RawClient> {
  const c = await RawClient.connect(opts.port, opts.directTls ? { directTls: true, ca: opts.ca } : {});
  c.header();
  await c.expect(/<\/stream:features>/);
  if (!opts.directTls) {
    await c.startTls(opts.ca);
    c.header();
    await c.expect(/<\/stream:features>/);
  }
  c.clear();
  c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plainMessage(opts.username, opts.password)}</auth>`);
  const r = await c.expect(/<success[^>]*\/>|<success[^>]*>[\s\S]*?<\/success>|<failure[\s\S]*?<\/failure>/);
  if (r[0].startsWith('<failure')) {
    c.destroy();
    throw new Error(`SASL failure: ${r[0]}`);
  }
  c.clear();
  c.header();
  await c.expect(/<\/stream:features>/);
  c.clear();
  c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${opts.resource}</resource></bind></iq>`);
  await c.expect(/<iq[^>]*id=["']bind1["'][\s\S]*?<\/iq>/);
  c.clear();
  return c;
}
