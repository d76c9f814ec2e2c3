// SCRAM with channel binding over real TLS connections (RFC 5802 §6 -PLUS, RFC 9266 tls-exporter,
// RFC 5929 §4 tls-server-end-point), the XEP-0440 <sasl-channel-binding/> advertisement, downgrade
// protection (the 'y' GS2 flag), and resource binding afterwards (RFC 6120 §7).
// The channel binding data is computed on the client side of the TLS connection, independently
// of the server's own computation.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type tls from 'node:tls';
import { startServer, RawClient, type TestServer } from '../../src/testing/index.ts';
import { scramClient, type ScramClientOptions } from '../../src/core/auth/scram-client.ts';

const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const SASL_CB = 'urn:xmpp:sasl-cb:0';
const BIND = 'urn:ietf:params:xml:ns:xmpp-bind';

let srv: TestServer;
let ca: Buffer;

before(async () => {
  srv = await startServer();
  ca = await readFile(srv.caFile);
  await srv.adduser('alice@localhost', 'correct horse');
});
after(async () => {
  assert.equal(await srv.stop(), 0, 'server exits cleanly on SIGTERM');
  await srv.cleanup();
});

// --- helpers -----------------------------------------------------------------------------------

type Via = 'direct' | 'starttls';
interface Stream {
  c: RawClient;
  tls: tls.TLSSocket;
  mechanisms: string[];
  /** XEP-0440 channel binding types, in advertised order (undefined: no <sasl-channel-binding/>). */
  bindings: string[] | undefined;
}

/** A TLS stream after the pre-authentication features. */
async function open(via: Via, version: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<Stream> {
  const v = { minVersion: version, maxVersion: version } as const;
  let c: RawClient;
  let s: tls.TLSSocket;
  if (via === 'direct') {
    c = await RawClient.connect(srv.ports.c2sDirectTls, { directTls: true, ca, tlsOptions: v });
    s = c.socket as tls.TLSSocket;
  } else {
    c = await RawClient.connect(srv.ports.c2s);
    c.header();
    await c.expect(/<\/stream:features>/);
    s = await c.startTls(ca, v);
  }
  assert.equal(s.getProtocol(), version);
  c.clear();
  c.header();
  const f = (await c.expect(/<stream:features>([\s\S]*?)<\/stream:features>/))[1]!;
  const mechanisms = [...f.matchAll(/<mechanism>([^<]+)<\/mechanism>/g)].map((m) => m[1]!);
  const cb = /<sasl-channel-binding xmlns=['"]([^'"]+)['"]>([\s\S]*?)<\/sasl-channel-binding>/.exec(f);
  if (cb) assert.equal(cb[1], SASL_CB);
  const bindings = cb ? [...cb[2]!.matchAll(/<channel-binding type=['"]([^'"]+)['"]\s*\/>/g)].map((m) => m[1]!) : undefined;
  c.clear();
  return { c, tls: s, mechanisms, bindings };
}

/** RFC 9266: the TLS 1.3 exporter, computed by the client. */
function exporter(s: tls.TLSSocket): Buffer {
  return s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
}

/** RFC 5929 §4.1: hash of the server certificate (its signature uses SHA-256, so SHA-256). */
function endPoint(s: tls.TLSSocket): Buffer {
  const cert = s.getPeerCertificate();
  assert.equal(cert.asn1Curve, 'prime256v1', 'the test certificate is ECDSA P-256 with SHA-256');
  return createHash('sha256').update(cert.raw).digest();
}

type Result = { ok: true; verified: boolean } | { ok: false; failure: string; condition: string };

/** A complete SCRAM exchange: <auth/> with the client-first message, <response/>, then success or failure. */
async function scram(st: Stream, mechanism: string, opts: Omit<ScramClientOptions, 'username' | 'password'> & { username?: string; password?: string }): Promise<Result> {
  const { c } = st;
  const sc = scramClient({ username: 'alice', password: 'correct horse', ...opts });
  c.clear();
  c.send(`<auth xmlns='${SASL}' mechanism='${mechanism}'>${sc.first().toString('base64')}</auth>`);
  let m = await c.expect(/<challenge[^>]*>([^<]*)<\/challenge>|<failure[\s\S]*?<\/failure>/);
  if (m[0].startsWith('<failure')) return failed(m[0]);
  c.clear();
  c.send(`<response xmlns='${SASL}'>${(await sc.final(Buffer.from(m[1]!, 'base64'))).toString('base64')}</response>`);
  m = await c.expect(/<success[^>]*>([^<]*)<\/success>|<failure[\s\S]*?<\/failure>/);
  if (m[0].startsWith('<failure')) return failed(m[0]);
  return { ok: true, verified: sc.verifyServerFinal(Buffer.from(m[1]!, 'base64')) };
}

function failed(xml: string): Result {
  assert.match(xml, new RegExp(`^<failure xmlns=['"]${SASL}['"]>`));
  return { ok: false, failure: xml, condition: /<failure[^>]*>\s*<([a-z-]+)/.exec(xml)![1]! };
}

/** Stream restart after <success/> (RFC 6120 §6.4.6), then resource binding (§7). */
async function bind(st: Stream, resource: string | null): Promise<string> {
  const { c } = st;
  c.clear();
  c.header();
  const f = (await c.expect(/<stream:features>([\s\S]*?)<\/stream:features>/))[1]!;
  assert.match(f, new RegExp(`<bind xmlns=['"]${BIND}['"]`));
  assert.doesNotMatch(f, /<mechanisms/, 'no SASL after authentication');
  c.clear();
  c.send(`<iq type='set' id='b1'><bind xmlns='${BIND}'>${resource === null ? '' : `<resource>${resource}</resource>`}</bind></iq>`);
  const m = await c.expect(/<iq[^>]*>[\s\S]*?<\/iq>/);
  assert.match(m[0], /type=['"]result['"]/, m[0]);
  assert.match(m[0], /id=['"]b1['"]/, m[0]);
  return /<jid>([^<]+)<\/jid>/.exec(m[0])![1]!;
}

async function ping(st: Stream): Promise<void> {
  st.c.clear();
  st.c.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const m = await st.c.expect(/<iq[^>]*id=['"]p1['"][^>]*>|<iq[^>]*id=['"]p1['"][^>]*\/>/);
  assert.match(m[0], /type=['"]result['"]/);
}

// --- advertisement -----------------------------------------------------------------------------

for (const via of ['direct', 'starttls'] as const) {
  test(`${via}, TLS 1.3: -PLUS mechanisms and XEP-0440 <sasl-channel-binding/> with tls-exporter and tls-server-end-point`, async () => {
    const st = await open(via);
    try {
      assert.ok(st.mechanisms.includes('SCRAM-SHA-256-PLUS'), st.mechanisms.join());
      assert.ok(st.mechanisms.includes('SCRAM-SHA-1-PLUS'), st.mechanisms.join());
      assert.ok(st.mechanisms.indexOf('SCRAM-SHA-256-PLUS') < st.mechanisms.indexOf('SCRAM-SHA-256'), 'PLUS preferred');
      assert.deepEqual(st.bindings, ['tls-exporter', 'tls-server-end-point']);
    } finally {
      st.c.destroy();
    }
  });
}

test('TLS 1.2: tls-exporter is not offered (RFC 9266 §3), tls-server-end-point is', async () => {
  const st = await open('direct', 'TLSv1.2');
  try {
    assert.deepEqual(st.bindings, ['tls-server-end-point']);
    assert.ok(st.mechanisms.includes('SCRAM-SHA-256-PLUS'), st.mechanisms.join());
    const r = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'p', cbName: 'tls-exporter', cbData: randomBytes(32) });
    assert.equal(r.ok, false);
    assert.equal((r as { condition: string }).condition, 'not-authorized', 'a binding type not offered is refused');
  } finally {
    st.c.destroy();
  }
});

// --- successful -PLUS logins -------------------------------------------------------------------

test('SCRAM-SHA-256-PLUS with tls-exporter (Direct TLS, TLS 1.3), then a chosen resource', async () => {
  const st = await open('direct');
  try {
    const r = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'p', cbName: 'tls-exporter', cbData: exporter(st.tls) });
    assert.deepEqual(r, { ok: true, verified: true });
    assert.equal(await bind(st, 'laptop'), 'alice@localhost/laptop');
    await ping(st);
  } finally {
    st.c.destroy();
  }
});

test('SCRAM-SHA-1-PLUS with tls-exporter (STARTTLS, TLS 1.3), then an empty resource (server-generated)', async () => {
  const st = await open('starttls');
  try {
    const r = await scram(st, 'SCRAM-SHA-1-PLUS', { hash: 'SHA-1', flag: 'p', cbName: 'tls-exporter', cbData: exporter(st.tls) });
    assert.deepEqual(r, { ok: true, verified: true });
    const jid = await bind(st, null);
    assert.match(jid, /^alice@localhost\/\S{8,}$/, 'a server-generated resource with some entropy');
    await ping(st);
  } finally {
    st.c.destroy();
  }
});

test('an explicitly empty <resource/> also gets a server-generated resource, different each time', async () => {
  const jids: string[] = [];
  for (let i = 0; i < 2; i++) {
    const st = await open('direct');
    try {
      const r = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'p', cbName: 'tls-exporter', cbData: exporter(st.tls) });
      assert.deepEqual(r, { ok: true, verified: true });
      jids.push(await bind(st, ''));
    } finally {
      st.c.destroy();
    }
  }
  for (const j of jids) assert.match(j, /^alice@localhost\/\S{8,}$/);
  assert.notEqual(jids[0], jids[1]);
});

for (const via of ['direct', 'starttls'] as const) {
  for (const [mech, hash] of [['SCRAM-SHA-256-PLUS', 'SHA-256'], ['SCRAM-SHA-1-PLUS', 'SHA-1']] as const) {
    test(`${mech} with tls-server-end-point (${via}, TLS 1.3)`, async () => {
      const st = await open(via);
      try {
        const r = await scram(st, mech, { hash, flag: 'p', cbName: 'tls-server-end-point', cbData: endPoint(st.tls) });
        assert.deepEqual(r, { ok: true, verified: true });
      } finally {
        st.c.destroy();
      }
    });
  }
}

test('SCRAM-SHA-256-PLUS with tls-server-end-point over TLS 1.2', async () => {
  const st = await open('starttls', 'TLSv1.2');
  try {
    const r = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'p', cbName: 'tls-server-end-point', cbData: endPoint(st.tls) });
    assert.deepEqual(r, { ok: true, verified: true });
  } finally {
    st.c.destroy();
  }
});

// --- failures ----------------------------------------------------------------------------------

test('wrong channel binding data is refused with not-authorized', async () => {
  const st = await open('direct');
  try {
    const r = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'p', cbName: 'tls-exporter', cbData: randomBytes(32) });
    assert.equal(r.ok, false);
    assert.equal((r as { condition: string }).condition, 'not-authorized');
  } finally {
    st.c.destroy();
  }
});

test('channel binding data of another TLS connection is refused (a relayed exchange fails)', async () => {
  const other = await open('direct');
  const st = await open('direct');
  try {
    const borrowed = exporter(other.tls);
    assert.notDeepEqual(borrowed, exporter(st.tls), 'each connection has its own exporter');
    const r1 = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'p', cbName: 'tls-exporter', cbData: borrowed });
    assert.equal((r1 as { condition?: string }).condition, 'not-authorized');
    // The right data on the same connection works afterwards: the failure was the binding.
    const r2 = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'p', cbName: 'tls-exporter', cbData: exporter(st.tls) });
    assert.deepEqual(r2, { ok: true, verified: true });
  } finally {
    other.c.destroy();
    st.c.destroy();
  }
});

test("the 'y' flag while the server advertises -PLUS fails (downgrade protection)", async () => {
  for (const [mech, hash] of [['SCRAM-SHA-256', 'SHA-256'], ['SCRAM-SHA-1', 'SHA-1']] as const) {
    const st = await open('direct');
    try {
      assert.ok(st.mechanisms.includes(`${mech}-PLUS`));
      const r = await scram(st, mech, { hash, flag: 'y' });
      assert.equal(r.ok, false, `${mech} with 'y' must fail`);
      assert.equal((r as { condition: string }).condition, 'not-authorized');
      // Control: the same mechanism with 'n' (client does not support binding) succeeds.
      const ok = await scram(st, mech, { hash, flag: 'n' });
      assert.deepEqual(ok, { ok: true, verified: true });
    } finally {
      st.c.destroy();
    }
  }
});

test("-PLUS without the 'p' flag, and 'p' with a non-PLUS mechanism, are refused", async () => {
  const st = await open('direct');
  try {
    const r1 = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'n' });
    assert.equal(r1.ok, false);
    const r2 = await scram(st, 'SCRAM-SHA-256', { hash: 'SHA-256', flag: 'p', cbName: 'tls-exporter', cbData: exporter(st.tls) });
    assert.equal(r2.ok, false);
    const r3 = await scram(st, 'SCRAM-SHA-256-PLUS', { hash: 'SHA-256', flag: 'p', cbName: 'tls-unique', cbData: randomBytes(12) });
    assert.equal(r3.ok, false, 'tls-unique is not offered');
  } finally {
    st.c.destroy();
  }
});
