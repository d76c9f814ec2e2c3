// Resource limits of the c2s transport over real sockets (issue 5 item 1): unauthenticated
// connections per address and in total, the byte-rate shaper before and after binding,
// resources per account, IQs in flight per session, and the offline queue's byte limit.
// Each limit answers with its stream or stanza error (RFC 6120 §4.9.3, §8.3.3) and a log line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { startServer, RawClient, type TestServer } from '../../src/testing/index.ts';
import { authenticate, plainAuth } from '../clients/raw.ts';

const STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';
const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const BIND = 'urn:ietf:params:xml:ns:xmpp-bind';

const RATE = 256 * 1024; // bytes per second after binding
const BURST = 256 * 1024;
const PRE_RATE = 8192; // before binding
const PRE_BURST = 4096;

/** Connection limits: two per address, three in all (127.0.0.1 and ::1 are two addresses). */
let conns: TestServer;
/** Session limits: shaping, resources, IQs in flight, offline bytes. */
let sessions: TestServer;
/** Output limits (no shaper: the sender should be as fast as it can). */
let output: TestServer;
const OUTPUT_PAUSE = 64 * 1024;
const MAX_OUTPUT = 256 * 1024;
let ca: Buffer;

before(async () => {
  [conns, sessions, output] = await Promise.all([
    startServer({ config: { limits: { maxUnauthenticatedPerIp: 2, maxUnauthenticatedTotal: 3 } } }),
    startServer({
      config: {
        limits: {
          bytesPerSecond: RATE, burstBytes: BURST,
          unauthenticatedBytesPerSecond: PRE_RATE, unauthenticatedBurstBytes: PRE_BURST,
          maxResourcesPerAccount: 2, maxUnauthenticatedPerIp: 100,
        },
        modules: { offline: { maxBytes: 10_000 } },
      },
    }),
    startServer({
      config: { limits: { bytesPerSecond: 0, unauthenticatedBytesPerSecond: 0, outputPauseBytes: OUTPUT_PAUSE, maxOutputBytes: MAX_OUTPUT } },
    }),
  ]);
  ca = await readFile(conns.caFile);
  await Promise.all([
    conns.adduser('alice@localhost', 'alice secret'),
    ...['alice', 'bob', 'carol', 'dave'].map((u) => sessions.adduser(`${u}@localhost`, `${u} secret`)),
    ...['erin', 'frank'].map((u) => output.adduser(`${u}@localhost`, `${u} secret`)),
  ]);
});
after(async () => {
  for (const s of [conns, sessions, output]) {
    assert.equal(await s.stop(), 0, 'server exits cleanly on SIGTERM');
    await s.cleanup();
  }
});

// --- helpers -----------------------------------------------------------------------------------


/** RawClient.connect always dials 127.0.0.1; this one dials ::1, a second source address. */
function connectV6(port: number): Promise<RawClient> {
  const Raw = RawClient as unknown as new (s: net.Socket) => RawClient;
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '::1' });
    s.once('connect', () => resolve(new Raw(s)));
    s.once('error', reject);
  });
}

async function closedWithin(c: RawClient, ms: number): Promise<void> {
  const t = delay(ms).then(() => { throw new Error(`still open after ${ms} ms; received:\n${c.received}`); });
  await Promise.race([c.closed, t]);
}

/** A stream error with this condition, then </stream:stream>, then the socket closes (RFC 6120 §4.9.1.1). */
async function expectStreamError(c: RawClient, condition: string): Promise<void> {
  const m = await c.expect(new RegExp(`<stream:error>\\s*<([a-z-]+) xmlns=['"]${STREAMS}['"]`));
  assert.equal(m[1], condition, `stream error condition; received:\n${c.received}`);
  await c.expect(/<\/stream:error>\s*<\/stream:stream>\s*$/);
  await closedWithin(c, 3000);
}

/** Log lines of a server with this message, once at least `n` are there. */
async function logged(srv: TestServer, msg: string, n = 1): Promise<Record<string, unknown>[]> {
  for (let i = 0; i < 200; i++) {
    const hits = srv.logs.filter((l) => l.msg === msg);
    if (hits.length >= n) return hits;
    await delay(20);
  }
  throw new Error(`no log line '${msg}'`);
}


/** Bind; returns the reply (a result or an error) as text. */
async function bind(c: RawClient, resource: string): Promise<string> {
  c.clear();
  c.send(`<iq type='set' id='bind1'><bind xmlns='${BIND}'><resource>${resource}</resource></bind></iq>`);
  const m = await c.expect(/<iq[^>]*id=["']bind1["'][\s\S]*?<\/iq>/);
  c.clear();
  return m[0];
}

/** A bound session over Direct TLS. */
async function session(srv: TestServer, user: string, resource: string): Promise<RawClient> {
  const c = await RawClient.connect(srv.ports.c2sDirectTls, { directTls: true, ca });
  c.header();
  await c.expect(/<\/stream:features>/);
  await authenticate(c, user, `${user} secret`);
  const reply = await bind(c, resource);
  assert.match(reply, /type=["']result["']/, reply);
  return c;
}

const count = (s: string, re: RegExp) => (s.match(re) ?? []).length;

// --- unauthenticated connections ---------------------------------------------------------------

test('unauthenticated connections: per address <policy-violation/>, in all <resource-constraint/>, at once; Direct TLS dropped before the handshake', async () => {
  const open: RawClient[] = [];
  try {
    // Two from 127.0.0.1 (its limit), one from ::1: three in all (the server-wide limit).
    for (let i = 0; i < 2; i++) {
      const c = await RawClient.connect(conns.ports.c2s);
      c.header();
      await c.expect(/<\/stream:features>/);
      open.push(c);
    }
    const v6 = await connectV6(conns.ports.c2s);
    v6.header();
    await v6.expect(/<\/stream:features>/);
    open.push(v6);

    // A fourth from ::1: within its address's limit, over the total. The error comes without
    // waiting for our stream header: a flood of silent connections holds nothing.
    const overTotal = await connectV6(conns.ports.c2s);
    await expectStreamError(overTotal, 'resource-constraint');
    // On the Direct TLS port no stream error can precede TLS: the connection is dropped.
    await assert.rejects(new Promise<void>((resolve, reject) => {
      const s = tls.connect({ port: conns.ports.c2sDirectTls, host: '::1', servername: 'localhost', ca });
      s.once('secureConnect', () => { s.destroy(); resolve(); });
      s.once('error', reject);
      s.once('close', () => reject(new Error('closed before the handshake')));
    }));
    const [total] = await logged(conns, 'unauthenticated connection limit reached: refusing connections');
    assert.equal(total!.limit, 'maxUnauthenticatedTotal');
    assert.equal(total!.level, 'warn');
    // `amsel stats` shows who is waiting: three connections from two addresses (refused ones not counted).
    const st = await conns.cli(['stats', '--json']);
    assert.equal(st.code, 0, st.stderr);
    const { counts } = JSON.parse(st.stdout) as { counts: Record<string, number> };
    assert.equal(counts.unauthenticatedConnections, 3);
    assert.equal(counts.unauthenticatedAddresses, 2);

    // Binding takes a connection out of the count: one of 127.0.0.1's logs in.
    const first = open[0]!;
    await first.startTls(ca);
    first.header();
    await first.expect(/<\/stream:features>/);
    await authenticate(first, 'alice', 'alice secret');
    assert.match(await bind(first, 'desk'), /type=["']result["']/);

    // A place is free again: ::1 gets in (three unbound in all).
    const again = await connectV6(conns.ports.c2s);
    again.header();
    await again.expect(/<\/stream:features>/);
    open.push(again);
    // With the ::1 ones gone, 127.0.0.1 (one unbound) gets one more in, once the server has
    // seen the closes; until then the total refuses.
    v6.destroy();
    again.destroy();
    let second: RawClient | undefined;
    for (let i = 0; i < 50 && !second; i++) {
      const c = await RawClient.connect(conns.ports.c2s);
      c.header();
      const m = await c.expect(/<\/stream:features>|<stream:error>\s*<([a-z-]+)/);
      if (m[1] === undefined) second = c;
      else { c.destroy(); await delay(20); }
    }
    assert.ok(second, 'admitted once the total has room');
    open.push(second);
    // The next from that address is over its own limit while the total still has room.
    const overIp = await RawClient.connect(conns.ports.c2s);
    await expectStreamError(overIp, 'policy-violation');
    const perIp = (await logged(conns, 'unauthenticated connection limit reached: refusing connections', 2)).find((l) => l.limit === 'maxUnauthenticatedPerIp');
    assert.ok(perIp, 'a log line for the per-address limit');
  } finally {
    for (const c of open) c.destroy();
  }
});

// --- byte-rate shaping -------------------------------------------------------------------------

test('a bound session sending 1 MiB as fast as it can is slowed to the byte rate, not cut off, and nothing is lost', async () => {
  const c = await session(sessions, 'alice', 'shaped');
  try {
    const N = 1024;
    const body = 'x'.repeat(1000);
    let data = '';
    for (let i = 0; i < N; i++) data += `<message to='alice@localhost/shaped' type='chat' id='m${i}'><body>${body}</body></message>`;
    const bytes = Buffer.byteLength(data);
    assert.ok(bytes >= 1024 * 1024, `${bytes} bytes`);
    const expectedMs = ((bytes - BURST) / RATE) * 1000;
    const t0 = performance.now();
    c.send(data);
    await c.expect(new RegExp(`id=["']m${N - 1}["']`), 60_000);
    const ms = performance.now() - t0;
    assert.ok(ms >= 0.8 * expectedMs, `processed in ${ms.toFixed(0)} ms; the rate allows no less than ${expectedMs.toFixed(0)} ms`);
    assert.equal(count(c.received, /<message /g), N, 'every message came back');
    // The session is still up and answers.
    c.clear();
    c.send(`<iq type='get' id='after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await c.expect(/id=["']after["'][^>]*type=["']result["']|type=["']result["'][^>]*id=["']after["']/);
    assert.doesNotMatch(c.received, /<stream:error>/);
    const [line] = await logged(sessions, 'reading slowed: client over its byte rate');
    assert.equal(line!.bound, true);
  } finally {
    c.destroy();
  }
});

test('before binding the rate is lower: 20 KiB of whitespace before <auth/> delays it, the login still succeeds', async () => {
  const c = await RawClient.connect(sessions.ports.c2sDirectTls, { directTls: true, ca });
  try {
    c.header();
    await c.expect(/<\/stream:features>/);
    c.clear();
    const pad = ' '.repeat(20 * 1024);
    const expectedMs = ((pad.length - PRE_BURST) / PRE_RATE) * 1000;
    const t0 = performance.now();
    c.send(pad + plainAuth('bob', 'bob secret'));
    await c.expect(new RegExp(`<success xmlns=['"]${SASL}['"]`), 20_000);
    const ms = performance.now() - t0;
    assert.ok(ms >= 0.8 * expectedMs, `authenticated after ${ms.toFixed(0)} ms; the rate allows no less than ${expectedMs.toFixed(0)} ms`);
  } finally {
    c.destroy();
  }
});

// --- resources per account ---------------------------------------------------------------------

test('binding more resources than maxResourcesPerAccount gets <resource-constraint/> (wait); the stream stays open', async () => {
  const a = await session(sessions, 'carol', 'one');
  const b = await session(sessions, 'carol', 'two');
  const c = await RawClient.connect(sessions.ports.c2sDirectTls, { directTls: true, ca });
  try {
    c.header();
    await c.expect(/<\/stream:features>/);
    await authenticate(c, 'carol', 'carol secret');
    const reply = await bind(c, 'three');
    assert.match(reply, /type=["']error["']/, reply);
    assert.match(reply, new RegExp(`<error type=["']wait["']>\\s*<resource-constraint xmlns=["']${STANZAS}["']`), reply);
    const [line] = await logged(sessions, 'bind refused: too many resources');
    assert.equal(line!.jid, 'carol@localhost');
    // A place freed: the same stream binds.
    a.destroy();
    await delay(200);
    let bound = '';
    for (let i = 0; i < 20 && !/type=["']result["']/.test(bound); i++) { bound = await bind(c, 'three'); await delay(50); }
    assert.match(bound, /type=["']result["']/, bound);
  } finally {
    a.destroy();
    b.destroy();
    c.destroy();
  }
});

// --- IQs in flight -----------------------------------------------------------------------------

test('IQ requests to another session beyond 128 unanswered get <resource-constraint/> (wait) at once, one log line', async () => {
  const alice = await session(sessions, 'alice', 'asker');
  const bob = await session(sessions, 'bob', 'silent');
  try {
    const LIMIT = 128;
    const N = LIMIT + 12;
    let data = '';
    for (let i = 0; i < N; i++) data += `<iq type='get' id='q${i}' to='bob@localhost/silent'><query xmlns='urn:example:slow'/></iq>`;
    alice.send(data);
    await alice.expect(new RegExp(`id=["']q${N - 1}["']`));
    await bob.expect(new RegExp(`id=["']q${LIMIT - 1}["']`));
    await delay(100);
    assert.equal(count(bob.received, /<iq /g), LIMIT, 'bob got the first 128');
    const errors = alice.received.match(/<iq [\s\S]*?<\/iq>/g) ?? [];
    assert.equal(errors.length, N - LIMIT, 'alice got an error for each of the rest');
    for (const e of errors) assert.match(e, new RegExp(`<error type=["']wait["']>\\s*<resource-constraint xmlns=["']${STANZAS}["']`), e);
    assert.equal((await logged(sessions, 'IQs in flight limit reached: refusing requests')).length, 1, 'one log line for the burst');

    // bob answers one: alice may ask again.
    bob.send(`<iq type='result' id='q0' to='alice@localhost/asker'/>`);
    await alice.expect(/id=["']q0["']/);
    alice.clear();
    bob.clear();
    alice.send(`<iq type='get' id='again' to='bob@localhost/silent'><query xmlns='urn:example:slow'/></iq>`);
    await bob.expect(/id=["']again["']/);
    assert.doesNotMatch(alice.received, /resource-constraint/);
  } finally {
    alice.destroy();
    bob.destroy();
  }
});

// --- offline storage ---------------------------------------------------------------------------

test('offline messages beyond modules.offline.maxBytes are bounced with <service-unavailable/>', async () => {
  const alice = await session(sessions, 'alice', 'offline-sender');
  try {
    const body = 'o'.repeat(3000);
    for (let i = 0; i < 4; i++) alice.send(`<message to='dave@localhost' type='chat' id='o${i}'><body>${body}</body></message>`);
    await alice.expect(/id=["']o3["'][\s\S]*?<\/message>/);
    const errors = alice.received.match(/<message [\s\S]*?<\/message>/g) ?? [];
    assert.equal(errors.length, 1, 'three are stored (about 9.3 KB), the fourth is bounced');
    assert.match(errors[0]!, /id=["']o3["']/);
    assert.match(errors[0]!, new RegExp(`<service-unavailable xmlns=["']${STANZAS}["']`));
    const [line] = await logged(sessions, 'offline: storage full, message bounced');
    assert.equal(line!.limit, 'maxBytes');
  } finally {
    alice.destroy();
  }
});

// --- output limits -----------------------------------------------------------------------------

test('a recipient that never reads is closed once limits.maxOutputBytes are unsent; the sender is not affected', { timeout: 60_000 }, async () => {
  const sink = await session(output, 'erin', 'sink');
  const sender = await session(output, 'frank', 'sender');
  // Stop reading: once the kernel's socket buffers are full, the server's writes back up.
  sink.socket.pause();
  const body = 'z'.repeat(50_000);
  const msg = `<message to='erin@localhost/sink' type='chat'><body>${body}</body></message>`;
  let sent = 0;
  const closing = () => output.logs.find((l) => l.msg === 'peer does not read its stream: closing the session');
  const deadline = Date.now() + 40_000;
  while (!closing() && Date.now() < deadline) {
    await new Promise<void>((resolve) => sender.socket.write(msg, () => resolve()));
    sent++;
    if (sent % 20 === 0) await delay(5);
  }
  const line = closing();
  assert.ok(line, `closed after ${sent} messages of 50 KB`);
  assert.equal(line.level, 'warn');
  // The configured limit, not the default 16 MiB: the unsent output at closing is within one
  // message of maxOutputBytes.
  const unsent = line.unsent as number;
  assert.ok(unsent > MAX_OUTPUT && unsent <= MAX_OUTPUT + msg.length + 4096, `unsent ${unsent} bytes at closing`);
  // The sink's connection goes (a read reveals the close)...
  sink.socket.resume();
  await closedWithin(sink, 10_000);
  // ...the sender's session keeps working.
  sender.clear();
  sender.send(`<iq type='get' id='still' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  await sender.expect(/id=["']still["']/);
  sender.destroy();
});
