// Memory health under churn (issue 5 item 6): sessions come and go in waves and leave nothing
// behind. Read through the control socket (`amsel stats`, src/admin/health.ts):
//  - the session registry and the connection set return to 0 after every wave;
//  - after a full GC no session object is still alive: every bound session is followed by a
//    FinalizationRegistry, so a module, timer or table that keeps a closed session (the usual
//    leak) shows up as a live object, whatever the tables say;
//  - heapUsed after a full GC does not grow from wave 1 to wave 3 by more than 1.5 MiB (measured:
//    under 0.5 MiB either way; a leak of 2 KiB per session, not holding the session, adds 2 MiB).
// Each wave: 500 sessions (100 accounts × 5 resources) log in (STARTTLS, SCRAM-SHA-1, bind,
// initial presence), send each other a message and a ping, then half close their stream and
// half just drop the socket; plus connections abandoned before TLS, during SASL and after a
// failed login. The same at 10 000 sessions: the bench `aging` scenario (bench/README.md).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { startServer, RawClient, type TestServer } from '../../src/testing/index.ts';
import { openStorage } from '../../src/storage/index.ts';
import { moduleStorageOptions } from '../../src/modules/storage-options.ts';
import { deriveCredentials } from '../../src/core/auth/scram.ts';
import { notifyServer } from '../../src/admin/control.ts';
import type { HealthStats } from '../../src/admin/health.ts';
import { connect, type XmppClient } from '../../bench/load/client.ts';

const ACCOUNTS = 100;
const RESOURCES = 5;
const WAVES = 3;
const PASSWORD = 'health-check pw';
const MiB = 1024 * 1024;

let srv: TestServer;

before(async () => {
  srv = await startServer({
    config: {
      // Everything comes from 127.0.0.1; a slow CI box may have a whole wave connecting at once.
      limits: { maxUnauthenticatedPerIp: 1000 },
      auth: { failureDelayMs: 1, maxFailureDelayMs: 1 },
      log: { level: 'info', format: 'json' },
    },
  });
  // Accounts straight into the database (the server reads them per login; no cache).
  const storage = await openStorage(srv.storage.type === 'sqlite'
    ? { type: 'sqlite', path: srv.storage.path }
    : { type: 'postgres', url: srv.storage.url, poolSize: 1 }, moduleStorageOptions());
  try {
    const creds = await deriveCredentials(PASSWORD, 4096);
    for (let i = 0; i < ACCOUNTS; i++) await storage.accounts.create('localhost', `h${i}`, creds);
  } finally {
    await storage.close();
  }
});
after(async () => {
  await srv.stop();
  await srv.cleanup();
});

async function stats(opts: { gc?: boolean; reset?: boolean } = {}): Promise<HealthStats> {
  const r = await notifyServer(srv.dataDir, { op: 'stats', ...opts });
  assert.ok(r?.ok, `stats: ${JSON.stringify(r)}`);
  return r as unknown as HealthStats;
}

/** Worker pool: fn(0..n-1) with `k` at a time. */
async function pool(n: number, k: number, fn: (i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(Array.from({ length: k }, async () => { while (next < n) await fn(next++); }));
}

/** Connections that never become sessions: dropped before TLS, during SASL, after a failure. */
async function abandoned(n: number): Promise<void> {
  await pool(n, 10, async (i) => {
    const kind = i % 3;
    if (kind === 0) {
      const s = net.connect(srv.ports.c2s, '127.0.0.1');
      await new Promise<void>((r) => { s.once('connect', () => r()); s.once('error', () => r()); });
      s.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
      await delay(20);
      s.destroy();
      return;
    }
    const c = await RawClient.connect(srv.ports.c2sDirectTls, { directTls: true });
    c.header();
    await c.expect(/<\/stream:features>/);
    const auth = kind === 1
      ? `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='SCRAM-SHA-1'>${Buffer.from('n,,n=h1,r=abcdefgh').toString('base64')}</auth>`
      : `<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0h${i % ACCOUNTS}\0wrong`).toString('base64')}</auth>`;
    c.send(auth);
    await c.expect(kind === 1 ? /<challenge/ : /<failure/);
    c.destroy();
  });
}

async function wave(w: number): Promise<void> {
  const address = { domain: 'localhost', ports: { c2s: srv.ports.c2s, directTls: srv.ports.c2sDirectTls }, caFile: srv.caFile };
  const clients: XmppClient[] = [];
  const n = ACCOUNTS * RESOURCES;
  await pool(n, 25, async (i) => {
    const c = await connect({ server: address, user: `h${i % ACCOUNTS}`, password: PASSWORD, resource: `w${w}r${Math.floor(i / ACCOUNTS)}`, presence: true, directTls: i % 2 === 1, stepTimeoutMs: 30_000 });
    clients.push(c);
  });
  // Traffic between them: a message to another session, a ping each.
  await pool(clients.length, 50, async (i) => {
    const c = clients[i]!;
    c.send(`<message to='${clients[(i + 1) % clients.length]!.jid}' type='chat'><body>wave ${w}</body></message>`);
    await c.ping(30_000);
  });
  await abandoned(30);
  await pool(clients.length, 50, async (i) => {
    if (i % 2) clients[i]!.destroy();
    else await clients[i]!.close(30_000).catch(() => clients[i]!.destroy());
  });
}

/** Wait until the server has let go of every session and connection (closing grace included). */
async function settled(): Promise<HealthStats> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const s = await stats();
    if (s.counts.sessions === 0 && s.counts.connections === 0) return s;
    if (Date.now() > deadline) assert.fail(`sessions/connections still open: ${JSON.stringify(s.counts)}`);
    await delay(200);
  }
}

test(`${WAVES} waves of ${ACCOUNTS * RESOURCES} sessions leave no sessions, connections or session objects behind, and no heap growth`, async (t) => {
  const before = await stats({ gc: true, reset: true });
  assert.deepEqual(before.counts, { sessions: 0, connections: 0, unauthenticatedConnections: 0, unauthenticatedAddresses: 0, authThrottleEntries: 0 });
  const heap: number[] = [];
  for (let w = 0; w < WAVES; w++) {
    await wave(w);
    await settled();
    const s = await stats({ gc: true });
    heap.push(s.memory.heapUsed);
    t.diagnostic(`after wave ${w + 1}: heapUsed ${(s.memory.heapUsed / MiB).toFixed(2)} MiB, rss ${(s.memory.rss / MiB).toFixed(1)} MiB, ` +
      `session objects alive ${s.tracked.sessions?.alive} of ${s.tracked.sessions?.total}, throttle entries ${s.counts.authThrottleEntries}, ` +
      `event-loop delay p99 ${s.eventLoopDelayMs.p99} ms max ${s.eventLoopDelayMs.max} ms`);
    assert.equal(s.counts.sessions, 0);
    assert.equal(s.counts.connections, 0);
    assert.equal(s.counts.unauthenticatedConnections, 0, 'every connection left the unauthenticated count');
    assert.equal(s.tracked.sessions?.total, (w + 1) * ACCOUNTS * RESOURCES, 'every login was tracked');
    assert.equal(s.tracked.sessions?.alive, 0, 'no closed session is still referenced after a full GC');
  }
  const growth = heap[WAVES - 1]! - heap[0]!;
  t.diagnostic(`heapUsed before: ${(before.memory.heapUsed / MiB).toFixed(2)} MiB; after each wave: ${heap.map((h) => (h / MiB).toFixed(2)).join(', ')} MiB; growth over the last ${WAVES - 1} waves ${(growth / 1024).toFixed(0)} KiB`);
  assert.ok(growth < 1.5 * MiB, `heapUsed grew by ${(growth / MiB).toFixed(2)} MiB from wave 1 to wave ${WAVES}`);
});
