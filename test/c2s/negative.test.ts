// Negative tests of the c2s stream negotiator and the core stanza rules (RFC 6120), over real
// sockets against a real server process: what well-behaved client libraries never send.
//  - before TLS only STARTTLS (§5.3.1): stanzas and SASL end the stream with <policy-violation/>;
//  - stream header checks (§4.7, §4.8, §4.9.3): namespace, host, version;
//  - restricted and malformed XML (§11.1, §4.9.3): DTD, comments, PIs, bad UTF-8, limits;
//  - no stanzas before authentication and binding (§6, §7); only stanzas after (§4.9.3.22);
//  - stanza errors (§8.2.3, §8.3.3): bad-request, service-unavailable without account
//    enumeration, remote-server-not-found; the server stamps 'from' (§8.1.2.1);
//  - stream closing (§4.4), whitespace keepalives (§4.6.1), SASL failure throttling (§6.4.5).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { startServer, RawClient, type TestServer } from '../../src/testing/index.ts';
import { HEADER_ATTRS, authenticate, byId, parseReceived, plainAuth, waitStanza } from '../clients/raw.ts';
import type { XmlElement } from '../../src/xml/index.ts';
import { scramClient } from '../../src/core/auth/scram-client.ts';

const STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const TLS_NS = 'urn:ietf:params:xml:ns:xmpp-tls';
const BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const PING = 'urn:xmpp:ping';

const MAX_STANZA = 10_000; // the smallest the configuration allows (RFC 6120 §13.12)
const FAILURE_DELAY = 60;

let srv: TestServer;
let ca: Buffer;

before(async () => {
  srv = await startServer({
    config: {
      limits: { maxStanzaBytes: MAX_STANZA, maxUnauthenticatedPerIp: 100 },
      auth: { failureDelayMs: FAILURE_DELAY, maxFailureDelayMs: 8 * FAILURE_DELAY },
      // The core routing rules without offline storage: with the offline module on, a message to an
      // existing account without sessions is stored (XEP-0160), see test/im/offline.test.ts.
      modules: { offline: false },
    },
  });
  ca = await readFile(srv.caFile);
  await Promise.all([
    srv.adduser('alice@localhost', 'alice secret'),
    srv.adduser('bob@localhost', 'bob secret'),
  ]);
});
after(async () => {
  assert.equal(await srv.stop(), 0, 'server exits cleanly on SIGTERM');
  await srv.cleanup();
});

// --- helpers -----------------------------------------------------------------------------------


/** Every complete top-level element in what a client received (stream header stripped). */



async function closedWithin(c: RawClient, ms: number, what = 'the server closes the connection'): Promise<void> {
  const t = delay(ms).then(() => { throw new Error(`${what}: still open after ${ms} ms; received:\n${c.received}`); });
  await Promise.race([c.closed, t]);
}

/**
 * RFC 6120 §4.9.1.1: a stream error is the <stream:error/> element, followed by the closing
 * </stream:stream> tag, followed by the end of the TCP connection.
 */
async function expectStreamError(c: RawClient, condition: string): Promise<void> {
  const m = await c.expect(new RegExp(`<stream:error>\\s*<([a-z-]+) xmlns=['"]${STREAMS}['"]`));
  assert.equal(m[1], condition, `stream error condition; received:\n${c.received}`);
  const rest = c.received.slice(m.index!);
  await c.expect(/<\/stream:error>\s*<\/stream:stream>\s*$/);
  assert.ok(rest.length > 0);
  await closedWithin(c, 3000);
  assert.equal((c.received.match(/<stream:error>/g) ?? []).length, 1, 'exactly one stream error');
}

/** A plain-TCP stream on the STARTTLS port, after the server's features. */
async function plainStream(): Promise<RawClient> {
  const c = await RawClient.connect(srv.ports.c2s);
  c.header();
  await c.expect(/<\/stream:features>/);
  return c;
}

/** A TLS stream (Direct TLS or STARTTLS) after the (pre-authentication) features. */
async function secureStream(via: 'direct' | 'starttls' = 'direct'): Promise<RawClient> {
  let c: RawClient;
  if (via === 'direct') {
    c = await RawClient.connect(srv.ports.c2sDirectTls, { directTls: true, ca });
  } else {
    c = await plainStream();
    await c.startTls(ca);
  }
  c.clear();
  c.header();
  await c.expect(/<\/stream:features>/);
  return c;
}

/** SASL PLAIN (inside TLS) and the stream restart (RFC 6120 §6.4.6). */

async function bindResource(c: RawClient, resource?: string): Promise<string> {
  c.clear();
  const r = resource === undefined ? '' : `<resource>${resource}</resource>`;
  c.send(`<iq type='set' id='bind1'><bind xmlns='${BIND}'>${r}</bind></iq>`);
  const res = await waitStanza(c, byId('bind1'), 'bind result');
  assert.equal(res.attr('type'), 'result', res.toString());
  const jid = res.getChild('bind', BIND)?.getChildText('jid', BIND);
  assert.ok(jid, res.toString());
  c.clear();
  return jid;
}

async function session(user: string, pass: string, resource?: string): Promise<{ c: RawClient; jid: string }> {
  const c = await secureStream();
  await authenticate(c, user, pass);
  const jid = await bindResource(c, resource);
  return { c, jid };
}

/** The defined condition of a stanza error reply. */
function stanzaError(el: XmlElement): { type: string | undefined; condition: string | undefined } {
  const err = el.getChild('error');
  const cond = err?.elements().find((e) => e.ns === STANZAS && e.name !== 'text');
  return { type: err?.attr('type'), condition: cond?.name };
}

/**
 * A successful login clears bob's counter and this address's failures against bob; failures
 * against other accounts stay counted until they decay (an attacker must not reset his address
 * by logging into his own account), so the tests below keep this address under the refusal at 20.
 */
async function resetThrottle(): Promise<void> {
  const c = await secureStream();
  await authenticate(c, 'bob', 'bob secret');
  c.destroy();
}

/** One SASL PLAIN attempt on `c`: the <failure/> element exactly as sent, and how long it took. */
async function failPlain(c: RawClient, user: string, pass: string): Promise<{ bytes: string; ms: number }> {
  c.clear();
  const t0 = performance.now();
  c.send(plainAuth(user, pass));
  const m = await c.expect(/<failure[\s\S]*?<\/failure>/, 10_000);
  return { bytes: m[0], ms: performance.now() - t0 };
}

// --- before TLS --------------------------------------------------------------------------------

test('before TLS the features offer only <starttls><required/></starttls>, no SASL mechanisms', async () => {
  const c = await RawClient.connect(srv.ports.c2s);
  try {
    c.header();
    const m = await c.expect(/<stream:features>([\s\S]*?)<\/stream:features>/);
    const header = /<stream:stream\b[^>]*>/.exec(c.received)![0];
    assert.match(header, /\bfrom=['"]localhost['"]/);
    assert.match(header, /\bversion=['"]1\.0['"]/);
    assert.match(header, /\bid=['"][^'"]{16,}['"]/, 'a stream id with enough entropy (§4.7.3)');
    const features = parseReceived(`<stream:features>${m[1]}</stream:features>`)[0]!;
    assert.deepEqual(features.elements().map((e) => `{${e.ns}}${e.name}`), [`{${TLS_NS}}starttls`]);
    const starttls = features.elements()[0]!;
    assert.deepEqual(starttls.elements().map((e) => e.name), ['required']);
    assert.doesNotMatch(m[1]!, /mechanism/);
  } finally {
    c.destroy();
  }
});

for (const [what, stanza] of [
  ['<message>', `<message to='bob@localhost' type='chat'><body>hi</body></message>`],
  ['<iq>', `<iq type='get' id='p1' to='localhost'><ping xmlns='${PING}'/></iq>`],
  ['<presence>', `<presence/>`],
] as const) {
  test(`a ${what} before STARTTLS ends the stream with <policy-violation/>`, async () => {
    const c = await plainStream();
    c.clear();
    c.send(stanza);
    await expectStreamError(c, 'policy-violation');
    assert.doesNotMatch(c.received, /<iq|<message|<presence/, 'no stanza was answered');
  });
}

test('<auth mechanism="PLAIN"> before TLS ends the stream (policy-violation), never <success/>', async () => {
  const c = await plainStream();
  c.clear();
  c.send(plainAuth('alice', 'alice secret')); // correct credentials: still refused in the clear
  await expectStreamError(c, 'policy-violation');
  assert.doesNotMatch(c.received, /<success|<challenge|<failure/);
});

test('after STARTTLS: no <starttls/>, mechanisms include SCRAM-SHA-1 and PLAIN', async () => {
  const c = await plainStream();
  try {
    await c.startTls(ca);
    c.header();
    const m = await c.expect(/<stream:features>([\s\S]*?)<\/stream:features>/);
    const features = parseReceived(`<stream:features>${m[1]}</stream:features>`)[0]!;
    assert.equal(features.getChild('starttls', TLS_NS), undefined, 'STARTTLS is not offered twice');
    const mechs = features.getChild('mechanisms', SASL)?.getChildren('mechanism', SASL).map((e) => e.text()) ?? [];
    assert.ok(mechs.includes('SCRAM-SHA-1'), mechs.join());
    assert.ok(mechs.includes('PLAIN'), mechs.join());
    assert.ok(mechs.includes('SCRAM-SHA-256'), mechs.join());
  } finally {
    c.destroy();
  }
});

// --- stream header -----------------------------------------------------------------------------

test('a jabber:server stream on the c2s port gets <invalid-namespace/>', async () => {
  const c = await RawClient.connect(srv.ports.c2s);
  c.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
  await expectStreamError(c, 'invalid-namespace');
  assert.match(c.received, /^<\?xml[^>]*\?><stream:stream\b/, 'the server opened its own stream first (§4.9.1.2)');
});

test('a stream header for a domain the server does not serve gets <host-unknown/>', async () => {
  const c = await RawClient.connect(srv.ports.c2s);
  c.header('not-served.example');
  await expectStreamError(c, 'host-unknown');
  assert.doesNotMatch(c.received, /from=['"]not-served\.example['"]/, 'the server does not claim the unknown domain');
});

test('a stream header without version gets <unsupported-version/>', async () => {
  const c = await RawClient.connect(srv.ports.c2s);
  c.send(`<?xml version='1.0'?><stream:stream ${HEADER_ATTRS} to='localhost'>`);
  await expectStreamError(c, 'unsupported-version');
  assert.doesNotMatch(c.received, /<stream:features/);
});

// --- XML restrictions --------------------------------------------------------------------------

test('malformed XML gets <not-well-formed/>, then </stream:stream>, then the socket closes', async () => {
  const c = await plainStream();
  c.clear();
  c.send(`<message><body></message>`);
  await expectStreamError(c, 'not-well-formed');
  assert.match(c.received, /<\/stream:error><\/stream:stream>$/);
});

test('a DOCTYPE gets <restricted-xml/>', async () => {
  const c = await RawClient.connect(srv.ports.c2s);
  c.send(`<?xml version='1.0'?><!DOCTYPE stream:stream [<!ENTITY boom 'boom'>]><stream:stream ${HEADER_ATTRS} to='localhost' version='1.0'>`);
  await expectStreamError(c, 'restricted-xml');
  assert.doesNotMatch(c.received, /<stream:features/);
});

for (const [what, xml] of [
  ['a comment', `<!-- hello -->`],
  ['a processing instruction', `<?evil stuff?>`],
  ['a comment inside a stanza', `<message to='bob@localhost'><!-- x --><body>hi</body></message>`],
] as const) {
  test(`${what} gets <restricted-xml/>`, async () => {
    const c = await plainStream();
    c.clear();
    c.send(xml);
    await expectStreamError(c, 'restricted-xml');
  });
}

test('invalid UTF-8 gets <not-well-formed/>', async () => {
  const { c } = await session('alice', 'alice secret');
  c.send(Buffer.concat([
    Buffer.from(`<message to='bob@localhost' type='chat'><body>`),
    Buffer.from([0xc3, 0x28, 0xff, 0xfe]), // a broken 2-byte sequence, then bytes UTF-8 never uses
    Buffer.from(`</body></message>`),
  ]));
  await expectStreamError(c, 'not-well-formed');
});

test('an oversized stanza gets <policy-violation/> before it was all sent, and the socket closes', async () => {
  const { c } = await session('alice', 'alice secret', 'big');
  const total = 100 * 1024;
  const chunk = 'a'.repeat(1024);
  let written = 0;
  const errorSeen = () => /<stream:error>/.test(c.received);
  const write = (s: string) => new Promise<void>((resolve) => {
    if (c.socket.destroyed || !c.socket.writable) return resolve();
    c.socket.write(s, () => resolve());
  });
  await write(`<message to='bob@localhost' type='chat' id='big1'><body>`);
  while (written < total && !errorSeen() && !c.isClosed) {
    await write(chunk);
    written += chunk.length;
    await delay(5); // let the server answer between writes
  }
  await expectStreamError(c, 'policy-violation');
  assert.ok(written < total, `the error arrived after ${written} of ${total} bytes`);
  assert.ok(written >= MAX_STANZA - 1024, `not before the limit (${written} bytes written)`);
  assert.ok(written <= MAX_STANZA + 8 * 1024, `soon after the limit (${written} bytes written)`);
});

// --- authentication and binding ----------------------------------------------------------------

test('a stanza before authentication ends the stream with <not-authorized/>', async () => {
  const c = await secureStream();
  c.clear();
  c.send(`<message to='bob@localhost' type='chat'><body>hi</body></message>`);
  await expectStreamError(c, 'not-authorized');
});

test('a stanza after SASL but before resource binding ends the stream with <not-authorized/>', async () => {
  const { c: bob, jid: bobJid } = await session('bob', 'bob secret', 'watch');
  try {
    const c = await secureStream();
    await authenticate(c, 'alice', 'alice secret');
    c.clear();
    c.send(`<message to='${bobJid}' type='chat'><body>sneaky</body></message>`);
    await expectStreamError(c, 'not-authorized');
    await delay(100);
    assert.doesNotMatch(bob.received, /sneaky/, 'nothing was routed');
  } finally {
    bob.destroy();
  }
});

test('a non-stanza element after binding gets <unsupported-stanza-type/>', async () => {
  const { c } = await session('alice', 'alice secret');
  c.send(`<foo xmlns='jabber:client'/>`);
  await expectStreamError(c, 'unsupported-stanza-type');
});

test('an IQ without id, and an IQ get with two children, get a bad-request stanza error', async () => {
  const { c, jid } = await session('alice', 'alice secret');
  try {
    c.send(`<iq type='get' to='localhost'><ping xmlns='${PING}'/></iq>`);
    const noId = await waitStanza(c, (el) => el.name === 'iq' && el.attr('type') === 'error', 'error for the IQ without id');
    assert.equal(stanzaError(noId).condition, 'bad-request', noId.toString());
    assert.equal(stanzaError(noId).type, 'modify');
    assert.equal(noId.attr('to'), jid);
    c.clear();

    c.send(`<iq type='get' id='two' to='localhost'><ping xmlns='${PING}'/><query xmlns='http://jabber.org/protocol/disco#info'/></iq>`);
    const two = await waitStanza(c, byId('two'), 'error for the IQ with two children');
    assert.equal(two.attr('type'), 'error', two.toString());
    assert.equal(stanzaError(two).condition, 'bad-request', two.toString());
    c.clear();

    c.send(`<iq type='get' id='zero' to='localhost'/>`);
    const zero = await waitStanza(c, byId('zero'), 'error for the IQ get without payload');
    assert.equal(stanzaError(zero).condition, 'bad-request', zero.toString());
    c.clear();

    // The stream survives stanza errors.
    c.send(`<iq type='get' id='ok' to='localhost'><ping xmlns='${PING}'/></iq>`);
    assert.equal((await waitStanza(c, byId('ok'))).attr('type'), 'result');
  } finally {
    c.destroy();
  }
});

test('an IQ in an unknown namespace gets service-unavailable (to the server, to an existing and a nonexistent account alike)', async () => {
  const { c } = await session('alice', 'alice secret');
  try {
    const replies: XmlElement[] = [];
    for (const [id, to] of [['u1', 'localhost'], ['u2', 'bob@localhost'], ['u3', 'nobody-here@localhost']] as const) {
      c.send(`<iq type='get' id='${id}' to='${to}'><query xmlns='urn:example:unknown'/></iq>`);
      const r = await waitStanza(c, byId(id), `reply to ${id}`);
      assert.equal(r.attr('type'), 'error', r.toString());
      assert.deepEqual(stanzaError(r), { type: 'cancel', condition: 'service-unavailable' }, r.toString());
      assert.equal(r.attr('from'), to);
      replies.push(r);
    }
    const norm = (el: XmlElement) => el.withAttrs({ id: undefined, from: undefined }).toString();
    assert.equal(norm(replies[1]!), norm(replies[2]!), 'an existing and a nonexistent account answer alike');
  } finally {
    c.destroy();
  }
});

test('a message to a nonexistent user and to an offline user get the same service-unavailable', async () => {
  const { c, jid } = await session('alice', 'alice secret');
  try {
    const replies: XmlElement[] = [];
    for (const to of ['bob@localhost', 'nobody-here@localhost']) { // bob exists, has no session
      c.clear();
      c.send(`<message to='${to}' type='chat' id='m1'><body>are you there?</body></message>`);
      const r = await waitStanza(c, (el) => el.name === 'message' && el.attr('id') === 'm1', `bounce from ${to}`);
      assert.equal(r.attr('type'), 'error', r.toString());
      assert.equal(r.attr('from'), to);
      assert.equal(r.attr('to'), jid);
      assert.deepEqual(stanzaError(r), { type: 'cancel', condition: 'service-unavailable' }, r.toString());
      replies.push(r);
    }
    const norm = (el: XmlElement) => el.withAttrs({ from: undefined }).toString();
    assert.equal(norm(replies[0]!), norm(replies[1]!), 'no account enumeration through message errors');
  } finally {
    c.destroy();
  }
});

test('a message to a remote domain gets remote-server-not-found', async () => {
  const { c } = await session('alice', 'alice secret');
  try {
    c.send(`<message to='someone@remote.example' type='chat' id='r1'><body>hi</body></message>`);
    const r = await waitStanza(c, byId('r1'), 'bounce');
    assert.equal(r.attr('type'), 'error');
    assert.equal(r.attr('from'), 'someone@remote.example');
    assert.equal(stanzaError(r).condition, 'remote-server-not-found', r.toString());
  } finally {
    c.destroy();
  }
});

test('a spoofed from is replaced by the real full JID (the server stamps from)', async () => {
  const { c: alice, jid: aliceJid } = await session('alice', 'alice secret', 'spoofer');
  const { c: bob, jid: bobJid } = await session('bob', 'bob secret', 'victim');
  try {
    alice.send(`<iq type='get' id='sp1' to='localhost' from='someone@else/x'><ping xmlns='${PING}'/></iq>`);
    const res = await waitStanza(alice, byId('sp1'), 'ping result');
    assert.equal(res.attr('type'), 'result', res.toString());
    assert.equal(res.attr('to'), aliceJid, 'the reply goes to the real full JID');
    assert.equal(res.attr('from'), 'localhost');

    alice.send(`<message to='${bobJid}' from='mallory@localhost/evil' type='chat' id='sp2'><body>trust me</body></message>`);
    const got = await waitStanza(bob, byId('sp2'), 'the message at bob');
    assert.equal(got.attr('from'), aliceJid, 'the recipient sees who really sent it');
    assert.equal(got.getChildText('body'), 'trust me');
    assert.doesNotMatch(bob.received, /mallory/);
  } finally {
    alice.destroy();
    bob.destroy();
  }
});

test('a closed session leaves the routing table: its full JID then gets service-unavailable', async () => {
  const { c: alice } = await session('alice', 'alice secret', 'asker');
  const { c: bob, jid: bobJid } = await session('bob', 'bob secret', 'leaving');
  try {
    alice.send(`<iq type='get' id='before' to='${bobJid}'><ping xmlns='${PING}'/></iq>`);
    const delivered = await waitStanza(bob, byId('before'), 'the ping at bob');
    assert.equal(delivered.attr('type'), 'get', 'routed to the live session');
    bob.destroy();
    await bob.closed;
    // The server notices the closed socket within a moment; then the JID is unavailable.
    let reply: XmlElement | undefined;
    for (let i = 0; i < 20 && !reply; i++) {
      alice.send(`<iq type='get' id='after${i}' to='${bobJid}'><ping xmlns='${PING}'/></iq>`);
      reply = await waitStanza(alice, byId(`after${i}`), 'bounce', 250).catch(() => undefined);
    }
    assert.ok(reply, `no answer for a ping to a closed session; received:\n${alice.received}`);
    assert.equal(stanzaError(reply).condition, 'service-unavailable', reply.toString());
  } finally {
    alice.destroy();
  }
});

test('closed sessions do not count against maxResourcesPerAccount (11 sequential logins)', async () => {
  for (let i = 0; i < 11; i++) {
    const { c, jid } = await session('bob', 'bob secret', `seq${i}`);
    assert.equal(jid, `bob@localhost/seq${i}`);
    c.send('</stream:stream>');
    await closedWithin(c, 3000);
  }
});

test('binding a resource held by an unresponsive connection replaces it (<conflict/> to the old one)', async (t) => {
  const { c: old } = await session('alice', 'alice secret', 'desk');
  // The old client stops reading (a dead network path): it will never answer the closing handshake.
  old.socket.pause();
  try {
    const c = await secureStream();
    await authenticate(c, 'alice', 'alice secret');
    const t0 = performance.now();
    const jid = await bindResource(c, 'desk');
    const ms = performance.now() - t0;
    assert.equal(jid, 'alice@localhost/desk');
    // The new session does not wait for the old socket to go away (the 2 s closing grace when
    // the old peer is gone, the usual case for a mobile client reconnecting after a network change).
    assert.ok(ms < 1000, `the new session was bound after ${ms.toFixed(0)} ms`);
    c.send(`<iq type='get' id='after-conflict' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    assert.equal((await waitStanza(c, byId('after-conflict'))).attr('type'), 'result');
    c.destroy();
    old.socket.resume();
    await expectStreamError(old, 'conflict');
  } finally {
    old.destroy();
  }
});

test('the server answers </stream:stream> with its own </stream:stream> and closes', async () => {
  const { c } = await session('alice', 'alice secret');
  c.send('</stream:stream>');
  await c.expect(/<\/stream:stream>\s*$/);
  await closedWithin(c, 3000);
  assert.doesNotMatch(c.received, /<stream:error>/);
});

test('whitespace keepalives between stanzas are accepted', async () => {
  const { c } = await session('alice', 'alice secret');
  try {
    c.send(' ');
    c.send('\n');
    c.send(`\r\n\t <iq type='get' id='k1' to='localhost'><ping xmlns='${PING}'/></iq> \n`);
    assert.equal((await waitStanza(c, byId('k1'))).attr('type'), 'result');
    for (let i = 0; i < 5; i++) { c.send(' '); await delay(10); }
    c.send(`<iq type='get' id='k2' to='localhost'><ping xmlns='${PING}'/></iq>`);
    assert.equal((await waitStanza(c, byId('k2'))).attr('type'), 'result');
    assert.equal(c.isClosed, false);
    assert.doesNotMatch(c.received, /<stream:error>/);
  } finally {
    c.destroy();
  }
});

test('whitespace keepalives are also fine before STARTTLS', async () => {
  const c = await plainStream();
  c.send('  \n ');
  await c.startTls(ca); // the stream still works
  c.header();
  await c.expect(/<mechanisms/);
  c.destroy();
});

test('a second <starttls/> after TLS is a stream error', async () => {
  for (const via of ['starttls', 'direct'] as const) {
    const c = await secureStream(via);
    c.clear();
    c.send(`<starttls xmlns='${TLS_NS}'/>`);
    await expectStreamError(c, 'policy-violation');
    assert.doesNotMatch(c.received, /<proceed/);
  }
});

// --- SASL failures -----------------------------------------------------------------------------

test('SASL failures grow slower: the 4th failure from one address waits longer than the 1st', async () => {
  await resetThrottle();
  const c = await secureStream();
  try {
    const times: number[] = [];
    for (let i = 0; i < 4; i++) {
      const f = await failPlain(c, 'alice', `wrong ${i}`);
      assert.match(f.bytes, /<not-authorized\/>/);
      times.push(f.ms);
    }
    // Delays before the answer: 0, 1, 2, 4 × failureDelayMs.
    assert.ok(times[3]! - times[0]! >= 3 * FAILURE_DELAY - 30, `1st ${times[0]!.toFixed(0)} ms vs 4th ${times[3]!.toFixed(0)} ms`);
    assert.ok(times[3]! >= 4 * FAILURE_DELAY - 20, `4th failure after ${times[3]!.toFixed(0)} ms`);
    assert.ok(times[2]! > times[1]! && times[3]! > times[2]!, `monotonic: ${times.map((t) => t.toFixed(0)).join(', ')}`);
    // The delay is per address, not per connection: a new connection does not start over.
    const c2 = await secureStream();
    const f5 = await failPlain(c2, 'nobody-x', 'whatever');
    assert.ok(f5.ms >= 8 * FAILURE_DELAY - 20, `5th failure (new connection) after ${f5.ms.toFixed(0)} ms`);
    c2.destroy();
  } finally {
    c.destroy();
    await resetThrottle();
  }
});

test('an unknown user and a wrong password get byte-identical <failure/> replies (PLAIN and SCRAM)', async () => {
  await resetThrottle();
  try {
    const a = await secureStream();
    const wrong = await failPlain(a, 'alice', 'not the password');
    const b = await secureStream();
    const unknown = await failPlain(b, 'nobody-y', 'not the password');
    assert.equal(unknown.bytes, wrong.bytes);
    assert.equal(wrong.bytes, `<failure xmlns='${SASL}'><not-authorized/></failure>`);
    a.destroy();
    b.destroy();

    // SCRAM-SHA-1: same server-first shape (stable fake salt, same iterations), same failure.
    const scramFailure = async (user: string) => {
      const c = await secureStream();
      const sc = scramClient({ hash: 'SHA-1', username: user, password: 'not the password' });
      c.clear();
      c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-1'>${sc.first().toString('base64')}</auth>`);
      const ch = await c.expect(/<challenge xmlns=['"][^'"]+['"]>([^<]*)<\/challenge>/);
      const serverFirst = Buffer.from(ch[1]!, 'base64').toString('utf8');
      c.clear();
      c.send(`<response xmlns='${SASL}'>${(await sc.final(serverFirst)).toString('base64')}</response>`);
      const f = await c.expect(/<failure[\s\S]*?<\/failure>/, 10_000);
      c.destroy();
      const attrs = Object.fromEntries(serverFirst.split(',').map((kv) => [kv[0], kv.slice(2)]));
      return { failure: f[0], saltLength: Buffer.from(attrs.s!, 'base64').length, iterations: attrs.i };
    };
    const sWrong = await scramFailure('alice');
    const sUnknown = await scramFailure('nobody-y');
    assert.deepEqual(sUnknown, sWrong);
    assert.equal(sWrong.failure, `<failure xmlns='${SASL}'><not-authorized/></failure>`);
  } finally {
    await resetThrottle();
  }
});

test('after 5 failed authentications on one connection the stream is closed', async () => {
  await resetThrottle();
  const c = await secureStream();
  try {
    for (let i = 0; i < 5; i++) {
      const f = await failPlain(c, i % 2 ? 'alice' : 'nobody-z', `wrong ${i}`);
      assert.match(f.bytes, /<not-authorized\/>/);
    }
    await expectStreamError(c, 'policy-violation');
    assert.doesNotMatch(c.received, /<success/);
  } finally {
    c.destroy();
    await resetThrottle();
  }
});

test('SCRAM-SHA-1 over a raw stream: login, server signature verified, then binding', async () => {
  const c = await secureStream('starttls');
  try {
    const sc = scramClient({ hash: 'SHA-1', username: 'alice', password: 'alice secret' });
    c.clear();
    c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-1'>${sc.first().toString('base64')}</auth>`);
    const ch = await c.expect(/<challenge xmlns=['"][^'"]+['"]>([^<]*)<\/challenge>/);
    c.clear();
    c.send(`<response xmlns='${SASL}'>${(await sc.final(Buffer.from(ch[1]!, 'base64'))).toString('base64')}</response>`);
    const ok = await c.expect(/<success xmlns=['"][^'"]+['"]>([^<]*)<\/success>/);
    assert.ok(sc.verifyServerFinal(Buffer.from(ok[1]!, 'base64')), 'the server proved it knows the credential');
    c.clear();
    c.header();
    await c.expect(/<\/stream:features>/);
    assert.equal(await bindResource(c, 'scram'), 'alice@localhost/scram');
  } finally {
    c.destroy();
  }
});
