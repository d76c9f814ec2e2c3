// Malicious XML corpus against a real server process over real sockets (issue 5 item 4):
// billion laughs and external entities, a huge attribute and a huge header trickled in 1-byte
// writes, deep nesting, invalid UTF-8 split across reads, namespace tricks, spoofed 'from',
// malformed addresses, and 10 000 IQs with large replies sent without reading them (backpressure:
// the server's memory must stay bounded, and the session must work once the client reads).
// After the corpus the server is still serving and has logged no error.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { startServer, RawClient, type TestServer } from '../../src/testing/index.ts';
import { HEADER_ATTRS, byId, waitStanza } from '../clients/raw.ts';
import type { XmlElement } from '../../src/xml/index.ts';

const STREAMS = 'urn:ietf:params:xml:ns:xmpp-streams';
const STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';
const SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const MAX_STANZA = 10_000; // the smallest the configuration allows
const MAX_HEADER = 1024;
const MAX_DEPTH = 16;

/** Small limits, so that hitting them is quick. */
let srv: TestServer;
/** The default limits (a 256 KiB stanza allows the large replies of the backpressure test). */
let big: TestServer;
let ca: Buffer;

// This file tests the parser limits and output backpressure; the read shaper has its own tests
// (with it, the 10 000 IQs would take 20 s to be read).
const NO_SHAPER = { bytesPerSecond: 0, unauthenticatedBytesPerSecond: 0 };

before(async () => {
  [srv, big] = await Promise.all([
    startServer({
      config: {
        limits: { maxStanzaBytes: MAX_STANZA, maxHeaderBytes: MAX_HEADER, maxDepth: MAX_DEPTH, maxUnauthenticatedPerIp: 100, ...NO_SHAPER },
        modules: { offline: false },
      },
    }),
    startServer({ config: { limits: NO_SHAPER } }),
  ]);
  ca = await readFile(srv.caFile);
  await Promise.all([
    srv.adduser('alice@localhost', 'alice secret'), srv.adduser('bob@localhost', 'bob secret'), big.adduser('alice@localhost', 'alice secret'),
  ]);
});

after(async () => {
  // The servers survived the corpus: they still log in and answer, and logged nothing at error level.
  for (const s of [srv, big]) {
    const { c } = await session('alice', 'alice secret', 'last', s);
    await ping(c, 'last');
    c.destroy();
    const errors = s.logs.filter((l) => l.level === 'error' || l.level === 'fatal');
    assert.deepEqual(errors, [], 'no error was logged');
    assert.equal(await s.stop(), 0, 'server exits cleanly on SIGTERM');
    await s.cleanup();
  }
});

// --- helpers -----------------------------------------------------------------------------------

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');




function stanzaError(el: XmlElement): string | undefined {
  return el.getChild('error')?.elements().find((e) => e.ns === STANZAS && e.name !== 'text')?.name;
}

/** RFC 6120 §4.9.1.1: <stream:error/>, then </stream:stream>, then the connection closes. */
async function expectStreamError(c: RawClient, conditions: string | string[], timeoutMs = 5000): Promise<string> {
  const m = await c.expect(new RegExp(`<stream:error>\\s*<([a-z-]+) xmlns=['"]${STREAMS}['"]`), timeoutMs);
  const ok = Array.isArray(conditions) ? conditions : [conditions];
  assert.ok(ok.includes(m[1]!), `stream error ${m[1]}, expected ${ok.join(' or ')}; received:\n${c.received.slice(-2000)}`);
  await c.expect(/<\/stream:error>\s*<\/stream:stream>\s*$/);
  await within(c.closed, 3000, () => 'still open 3 s after the stream error');
  return m[1]!;
}

/** `p`, or a rejection after `ms` (the timer does not outlive the wait). */
async function within<T>(p: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const t = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(what())), ms); });
  try {
    return await Promise.race([p, t]);
  } finally {
    clearTimeout(timer);
  }
}

async function secureStream(server = srv): Promise<RawClient> {
  const c = await RawClient.connect(server.ports.c2sDirectTls, { directTls: true, ca });
  c.header();
  await c.expect(/<\/stream:features>/);
  c.clear();
  return c;
}

async function session(user: string, pass: string, resource: string, server = srv): Promise<{ c: RawClient; jid: string }> {
  const c = await secureStream(server);
  c.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64(`\0${user}\0${pass}`)}</auth>`);
  await c.expect(/<success/);
  c.clear();
  c.header();
  await c.expect(/<\/stream:features>/);
  c.clear();
  c.send(`<iq type='set' id='bind'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>${resource}</resource></bind></iq>`);
  const res = await waitStanza(c, byId('bind'), 'bind result');
  const jid = res.getChild('bind', 'urn:ietf:params:xml:ns:xmpp-bind')?.getChildText('jid', 'urn:ietf:params:xml:ns:xmpp-bind');
  assert.ok(jid, res.toString());
  // Available, so that messages to the bare JID and directed presence reach this session.
  c.send(`<presence/>`);
  await delay(20);
  c.clear();
  return { c, jid };
}

async function ping(c: RawClient, id: string): Promise<void> {
  c.send(`<iq type='get' id='${id}' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  assert.equal((await waitStanza(c, byId(id), `ping ${id}`)).attr('type'), 'result', 'the stream is still up');
}

/** Write one piece and wait until it is handed to the kernel. */
function write(c: RawClient, data: string | Buffer): Promise<void> {
  return new Promise((resolve) => {
    if (c.socket.destroyed || !c.socket.writable) return resolve();
    c.socket.write(data, () => resolve());
  });
}

/** A server's resident memory, in bytes. */
async function serverRss(server = srv): Promise<number> {
  const status = await readFile(`/proc/${server.process.pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)![1]) * 1024;
}

const loggedCondition = (condition: string) => srv.logs.some((l) => l.condition === condition);

// --- DTDs and entities (RFC 6120 §11.1) ----------------------------------------------------------

const LAUGHS = `<!DOCTYPE lolz [<!ENTITY lol "lol">` +
  Array.from({ length: 9 }, (_, i) => `<!ENTITY lol${i + 1} "${`&lol${i === 0 ? '' : i};`.repeat(10)}">`).join('') + ']>';

test('billion laughs before the stream header gets <restricted-xml/>, nothing expanded', async () => {
  const rss0 = await serverRss();
  const c = await RawClient.connect(srv.ports.c2s);
  c.send(`<?xml version='1.0'?>${LAUGHS}<stream:stream ${HEADER_ATTRS} to='localhost' version='1.0'><message><body>&lol9;</body></message>`);
  await expectStreamError(c, 'restricted-xml');
  assert.doesNotMatch(c.received, /lollol|<stream:features/);
  assert.ok((await serverRss()) - rss0 < 50e6, 'no expansion in memory');
});

test('billion laughs inside an authenticated stream gets <restricted-xml/>', async () => {
  const { c } = await session('alice', 'alice secret', 'laughs');
  c.send(LAUGHS);
  await expectStreamError(c, 'restricted-xml');
});

test('an entity reference without a DTD (&lol9;, &xxe;) gets <restricted-xml/>', async () => {
  const { c } = await session('alice', 'alice secret', 'entity');
  c.send(`<message to='bob@localhost' type='chat'><body>&xxe;</body></message>`);
  await expectStreamError(c, 'restricted-xml');
});

test('external entities (SYSTEM, PUBLIC, parameter entities) get <restricted-xml/> and read nothing', async () => {
  for (const dtd of [
    `<!DOCTYPE foo [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>`,
    `<!DOCTYPE foo [<!ENTITY xxe PUBLIC "-//x//y" "http://127.0.0.1:1/evil.dtd">]>`,
    `<!DOCTYPE foo [<!ENTITY % p SYSTEM "file:///etc/passwd"> %p;]>`,
    `<!DOCTYPE stream:stream SYSTEM "file:///etc/passwd">`,
  ]) {
    const c = await RawClient.connect(srv.ports.c2s);
    c.send(`<?xml version='1.0'?>${dtd}<stream:stream ${HEADER_ATTRS} to='localhost' version='1.0'><message><body>&xxe;</body></message>`);
    await expectStreamError(c, 'restricted-xml');
    assert.doesNotMatch(c.received, /root:|<stream:features/, dtd);
  }
});

// --- sizes and depth -------------------------------------------------------------------------------

test('a huge attribute trickled in 1-byte writes gets <policy-violation/> once the stanza limit is passed, not at the end', async () => {
  const { c } = await session('alice', 'alice secret', 'trickle');
  const rss0 = await serverRss();
  const planned = 10 * MAX_STANZA;
  let written = 0;
  await write(c, `<message to='bob@localhost' type='chat' x='`);
  while (written < planned && !/<stream:error>/.test(c.received) && !c.isClosed) {
    await write(c, 'a');
    written++;
    if (written % 256 === 0) await delay(1); // let the server's answer in
  }
  await expectStreamError(c, 'policy-violation');
  assert.ok(written >= MAX_STANZA - 100, `not before the limit: ${written} bytes`);
  assert.ok(written <= MAX_STANZA + 4096, `soon after the limit: error after ${written} of ${planned} bytes`);
  assert.ok((await serverRss()) - rss0 < 20e6);
  assert.ok(loggedCondition('policy-violation'), 'the limit is logged');
});

test('a huge stream header trickled in 1-byte writes gets <policy-violation/> after the header limit', async () => {
  const c = await RawClient.connect(srv.ports.c2s);
  let written = 0;
  await write(c, `<?xml version='1.0'?><stream:stream ${HEADER_ATTRS} version='1.0' to='`);
  while (written < 10 * MAX_HEADER && !/<stream:error>/.test(c.received) && !c.isClosed) {
    await write(c, 'a');
    written++;
    if (written % 128 === 0) await delay(1);
  }
  await expectStreamError(c, 'policy-violation');
  assert.ok(written <= MAX_HEADER + 1024, `error after ${written} bytes of the 'to' attribute`);
});

test('deep nesting gets <policy-violation/>: one write of 100 000 levels, and trickled one level at a time', async () => {
  const { c } = await session('alice', 'alice secret', 'deep1');
  c.send(`<message to='bob@localhost'>${'<a>'.repeat(100_000)}`);
  await expectStreamError(c, 'policy-violation');

  const { c: d } = await session('alice', 'alice secret', 'deep2');
  await write(d, `<message to='bob@localhost'>`);
  let levels = 0;
  // One level past the limit, then stop and wait: writing on while the error is in flight
  // made the count depend on the machine's load.
  while (levels <= MAX_DEPTH && !/<stream:error>/.test(d.received) && !d.isClosed) {
    await write(d, '<a>');
    levels++;
    await delay(2);
  }
  await expectStreamError(d, 'policy-violation');
  assert.ok(levels <= MAX_DEPTH + 5, `error after ${levels} levels (limit ${MAX_DEPTH})`);

  // Exactly the limit is fine (the stanza itself is level 1).
  const { c: e, jid } = await session('alice', 'alice secret', 'deep3');
  const inner = MAX_DEPTH - 2; // message > x > a^inner
  e.send(`<message to='${jid}' id='ok-depth'><x xmlns='urn:test'>${'<a>'.repeat(inner)}${'</a>'.repeat(inner)}</x></message>`);
  await waitStanza(e, byId('ok-depth'), 'the message to itself');
  e.destroy();
});

// --- invalid UTF-8 ---------------------------------------------------------------------------------

test('invalid UTF-8 split across reads gets <not-well-formed/>; a valid character split across reads arrives intact', async () => {
  const { c: bob } = await session('bob', 'bob secret', 'utf8');
  try {
    const { c } = await session('alice', 'alice secret', 'utf8');
    // Valid: 東 (E6 9D B1) and 🐦 (F0 9F 90 A6), each split across two reads.
    await write(c, Buffer.concat([Buffer.from(`<message to='bob@localhost/utf8' id='u1' type='chat'><body>`), Buffer.from([0xe6, 0x9d])]));
    await delay(50);
    await write(c, Buffer.concat([Buffer.from([0xb1, 0xf0, 0x9f]), Buffer.from('')]));
    await delay(50);
    await write(c, Buffer.concat([Buffer.from([0x90, 0xa6]), Buffer.from(`</body></message>`)]));
    const got = await waitStanza(bob, byId('u1'), 'the message at bob');
    assert.equal(got.getChildText('body'), '東🐦');

    // Invalid: a lead byte, then (in the next read) a byte that does not continue it.
    await write(c, Buffer.concat([Buffer.from(`<message to='bob@localhost/utf8' id='u2'><body>`), Buffer.from([0xe6, 0x9d])]));
    await delay(50);
    await write(c, Buffer.from([0x41]));
    await expectStreamError(c, 'not-well-formed');
    await delay(100);
    assert.doesNotMatch(bob.received, /id=['"]u2['"]/);
  } finally {
    bob.destroy();
  }
});

test('other invalid UTF-8 split across reads (encoded surrogate, overlong, beyond U+10FFFF, lone continuation) gets <not-well-formed/>', async () => {
  for (const [i, [first, second]] of ([
    [[0xed], [0xa0, 0x80]],
    [[0xc0], [0xaf]],
    [[0xf4, 0x90], [0x80, 0x80]],
    [[], [0x80]],
    [[0xf0, 0x9f, 0x90], [0x3c]],
  ] as const).entries()) {
    const { c } = await session('alice', 'alice secret', `bad${i}`);
    await write(c, Buffer.concat([Buffer.from(`<message to='bob@localhost'><body>`), Buffer.from(first)]));
    await delay(30);
    await write(c, Buffer.from(second));
    await expectStreamError(c, 'not-well-formed');
  }
});

// --- namespaces ----------------------------------------------------------------------------------

test('jabber:server as the stream namespace on c2s gets <invalid-namespace/> (both ports, and after the SASL restart)', async () => {
  const server = `<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`;
  const plain = await RawClient.connect(srv.ports.c2s);
  plain.send(server);
  await expectStreamError(plain, 'invalid-namespace');

  const direct = await RawClient.connect(srv.ports.c2sDirectTls, { directTls: true, ca });
  direct.send(server);
  await expectStreamError(direct, 'invalid-namespace');

  const c = await secureStream();
  c.send(`<auth xmlns='${SASL}' mechanism='PLAIN'>${b64('\0alice\0alice secret')}</auth>`);
  await c.expect(/<success/);
  c.clear();
  c.send(server);
  await expectStreamError(c, 'invalid-namespace');

  // A wrong streams namespace, and no default namespace at all.
  const wrong = await RawClient.connect(srv.ports.c2s);
  wrong.send(`<stream:stream xmlns='jabber:client' xmlns:stream='jabber:client' to='localhost' version='1.0'>`);
  await expectStreamError(wrong, 'invalid-namespace');
  const none = await RawClient.connect(srv.ports.c2s);
  none.send(`<stream:stream xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
  await expectStreamError(none, 'invalid-namespace');
});

test('stanzas in another namespace (xmlns override, prefixed) end the stream and are not routed; a prefixed jabber:client stanza is routed', async () => {
  const { c: bob, jid: bobJid } = await session('bob', 'bob secret', 'ns');
  try {
    for (const [id, stanza] of [
      ['ns1', `<message xmlns='jabber:server' to='${bobJid}' from='localhost' id='ns1' type='chat'><body>server-to-server?</body></message>`],
      ['ns2', `<x:message xmlns:x='urn:evil' to='${bobJid}' id='ns2' type='chat'><x:body>prefixed</x:body></x:message>`],
      ['ns3', `<s:message xmlns:s='jabber:server' to='${bobJid}' id='ns3' type='chat'><s:body>prefixed server</s:body></s:message>`],
      ['ns4', `<stream:message to='${bobJid}' id='ns4'><body>in the streams namespace</body></stream:message>`],
    ] as const) {
      const { c } = await session('alice', 'alice secret', id);
      c.send(stanza);
      await expectStreamError(c, ['unsupported-stanza-type', 'invalid-namespace']);
      await delay(50);
      assert.doesNotMatch(bob.received, new RegExp(`id=['"]${id}['"]`), `${id} was routed`);
    }
    // The same stanza with a prefix bound to jabber:client is an ordinary message.
    const { c, jid } = await session('alice', 'alice secret', 'ns-ok');
    c.send(`<c:message xmlns:c='jabber:client' to='${bobJid}' id='ns-ok' type='chat'><c:body>prefixed client</c:body></c:message>`);
    const got = await waitStanza(bob, byId('ns-ok'), 'the prefixed message');
    assert.equal(got.getChildText('body'), 'prefixed client');
    assert.equal(got.attr('from'), jid);
    c.destroy();
  } finally {
    bob.destroy();
  }
});

// --- addresses ---------------------------------------------------------------------------------

test('a spoofed from is always replaced by the sender\'s full JID (message, presence, IQ, error)', async () => {
  const { c: bob, jid: bobJid } = await session('bob', 'bob secret', 'victim');
  const { c: alice, jid: aliceJid } = await session('alice', 'alice secret', 'spoofer');
  try {
    const spoofs = ['bob@localhost/other', 'bob@localhost', 'localhost', '', '@', 'mallory@evil.example/x', 'admin@localhost'];
    for (const [i, from] of spoofs.entries()) {
      alice.send(`<message to='${bobJid}' from='${from}' type='chat' id='sm${i}'><body>trust me</body></message>`);
      alice.send(`<presence to='${bobJid}' from='${from}' id='sp${i}'/>`);
      alice.send(`<iq type='get' to='${bobJid}' from='${from}' id='si${i}'><query xmlns='jabber:iq:version'/></iq>`);
      alice.send(`<message to='${bobJid}' from='${from}' type='error' id='se${i}'><error type='cancel'><item-not-found xmlns='${STANZAS}'/></error></message>`);
      for (const id of [`sm${i}`, `sp${i}`, `si${i}`, `se${i}`]) {
        const got = await waitStanza(bob, byId(id), `${id} at bob`);
        assert.equal(got.attr('from'), aliceJid, `${id} from='${from}': ${got}`);
      }
      // An IQ to the server with a spoofed from: the reply goes to the real sender.
      alice.send(`<iq type='get' to='localhost' from='${from}' id='sv${i}'><ping xmlns='urn:xmpp:ping'/></iq>`);
      const r = await waitStanza(alice, byId(`sv${i}`), 'ping reply');
      assert.equal(r.attr('to'), aliceJid);
    }
    assert.doesNotMatch(bob.received, /mallory|admin@/);
  } finally {
    alice.destroy();
    bob.destroy();
  }
});

test('stanzas to malformed JIDs get a jid-malformed stanza error and the stream stays up', async () => {
  const { c, jid } = await session('alice', 'alice secret', 'malformed');
  try {
    const bad = ['@', '@localhost', 'bob@', 'a@b@c', 'localhost/', 'bob@localhost/', '[::1', 'bob@local host', `${'x'.repeat(1100)}@localhost`,
      'bob@localhost/' + 'r'.repeat(1100), 'bob"@localhost', 'bob@-localhost', 'bob@localhost..', '\u200b@localhost'];
    for (const [i, to] of bad.entries()) {
      for (const kind of ['message', 'iq'] as const) {
        const id = `m${kind[0]}${i}`;
        c.send(kind === 'message'
          ? `<message to='${to}' id='${id}' type='chat'><body>x</body></message>`
          : `<iq to='${to}' id='${id}' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`);
        const r = await waitStanza(c, byId(id), `reply to ${kind} to '${to}'`);
        assert.equal(r.attr('type'), 'error', r.toString());
        assert.equal(stanzaError(r), 'jid-malformed', `${kind} to '${to}': ${r}`);
        assert.equal(r.attr('to'), jid);
      }
    }
    await ping(c, 'still-up');
  } finally {
    c.destroy();
  }
});

test("a stanza to the empty JID (to='') gets jid-malformed (it used to be taken as no 'to')", async () => {
  const { c } = await session('alice', 'alice secret', 'empty');
  try {
    c.send(`<message to='' id='e1' type='chat'><body>x</body></message>`);
    c.send(`<iq to='' id='e2' type='get'><ping xmlns='urn:xmpp:ping'/></iq>`);
    for (const id of ['e1', 'e2']) {
      // The server's error reply (before the fix the message came back to this very session).
      const r = await waitStanza(c, (el) => el.attr('id') === id && el.attr('type') === 'error', `reply to ${id}`, 1500);
      assert.equal(stanzaError(r), 'jid-malformed', r.toString());
    }
    await ping(c, 'still-up');
  } finally {
    c.destroy();
  }
});

// --- backpressure ------------------------------------------------------------------------------

// Found by these tests: C2sConnection used to write every reply whatever its socket held and
// keep reading and answering, so a client that sends requests and never reads made the server
// buffer without bound (+155 MB in one second). Now it stops handling input above 1 MiB of
// unsent output (reading then pauses) and closes a session above 16 MiB.

test('10 000 IQs with large replies, unread: the server stops reading instead of buffering; the session works once the client reads', {
  timeout: 120_000,
}, async (t) => {
  const { c } = await session('alice', 'alice secret', 'flood', big);
  // A 20 KB private XML document (XEP-0049): each 100-byte get returns all of it.
  const blob = 'x'.repeat(20_000);
  c.send(`<iq type='set' id='store'><query xmlns='jabber:iq:private'><blob xmlns='urn:amsel:test'>${blob}</blob></query></iq>`);
  assert.equal((await waitStanza(c, byId('store'), 'stored')).attr('type'), 'result');
  c.clear();
  const rss0 = await serverRss(big);

  // Stop reading: the TLS socket stops pulling from TCP, so the server's writes back up.
  const sock = c.socket;
  sock.removeAllListeners('data');
  sock.pause();
  const N = 10_000;
  const get = (i: number) => `<iq type='get' id='f${i}'><query xmlns='jabber:iq:private'><blob xmlns='urn:amsel:test'/></query></iq>`;
  for (let i = 0; i < N; i += 100) {
    let batch = '';
    for (let j = i; j < i + 100; j++) batch += get(j);
    sock.write(batch);
  }
  // Without backpressure the server would now buffer N × 20 KB = 200 MB of replies. Watch its
  // memory for a while (stop early if it clearly runs away).
  let peak = rss0;
  for (let i = 0; i < 40; i++) {
    await delay(100);
    peak = Math.max(peak, await serverRss(big));
    if (peak - rss0 > 150e6) break;
  }
  const grew = peak - rss0;
  t.diagnostic(`server RSS grew by ${(grew / 1e6).toFixed(1)} MB while the client did not read; ${sock.writableLength} request bytes not taken by the server`);

  // Read everything: every request is answered and the session still works.
  let results = 0;
  let tail = '';
  const done = new Promise<void>((resolve) => {
    sock.on('data', (d: Buffer) => {
      const s = tail + d.toString('latin1');
      results += s.split('</blob>').length - 1;
      tail = s.slice(-6);
      if (results >= N) resolve();
    });
  });
  sock.resume();
  await within(done, 60_000, () => `only ${results} of ${N} replies within 60 s`);
  assert.equal(sock.destroyed, false, 'the connection is still open');
  sock.removeAllListeners('data');
  let text = '';
  sock.on('data', (d: Buffer) => { text += d.toString('utf8'); });
  sock.write(`<iq type='get' id='after-flood' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
  const deadline = Date.now() + 10_000;
  while (!/id=['"]after-flood['"]/.test(text) && Date.now() < deadline) await delay(20);
  assert.match(text, /<iq\b[^>]*\btype=['"]result['"][^>]*>|<iq\b[^>]*\bid=['"]after-flood['"][^>]*\/>/);
  c.destroy();
  assert.ok(grew < 100e6, `server RSS grew by ${(grew / 1e6).toFixed(0)} MB with the client not reading`);
});

test('a recipient that does not read cannot make the server buffer without bound (messages from another session)', {
  timeout: 60_000,
}, async (t) => {
  const { c: sink, jid: sinkJid } = await session('alice', 'alice secret', 'sink', big);
  const { c: sender } = await session('alice', 'alice secret', 'sender', big);
  sink.socket.removeAllListeners('data');
  sink.socket.pause();
  const rss0 = await serverRss(big);
  // 2 000 messages of 100 KB: 200 MB if the server kept them all for the sink.
  const body = 'y'.repeat(100_000);
  let sent = 0;
  let peak = rss0;
  const deadline = Date.now() + 20_000;
  while (sent < 2000 && Date.now() < deadline && !sender.isClosed) {
    await write(sender, `<message to='${sinkJid}' type='chat'><body>${body}</body></message>`);
    sent++;
    if (sent % 50 === 0) {
      peak = Math.max(peak, await serverRss(big));
      if (peak - rss0 > 150e6 || sink.socket.destroyed) break;
    }
  }
  await delay(500);
  peak = Math.max(peak, await serverRss(big));
  const grew = peak - rss0;
  t.diagnostic(`sent ${sent} messages of 100 KB; server RSS grew by ${(grew / 1e6).toFixed(1)} MB`);
  sink.destroy();
  // The sender is not punished for the sink's behaviour.
  sender.clear();
  await ping(sender, 'sender-ok');
  sender.destroy();
  assert.ok(grew < 100e6, `server RSS grew by ${(grew / 1e6).toFixed(0)} MB for a recipient that does not read`);
});
