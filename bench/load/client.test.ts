// Tests of the load tool's XMPP client: the stanza splitter and SCRAM on their own, then logins,
// pings and messages against a real Amsel process (STARTTLS and Direct TLS).
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { prng } from '../xml-parser.ts';
import { connect, isNamed, parseXml, rawAttr, ScramSha1, StanzaSplitter, stanzaName, type ServerAddress, type SplitterSink } from './client.ts';

function collect(): SplitterSink & { headers: string[]; stanzas: string[]; ends: number; errors: string[] } {
  const s = {
    headers: [] as string[], stanzas: [] as string[], ends: 0, errors: [] as string[],
    xHeader: (raw: Buffer) => { s.headers.push(raw.toString('utf8')); },
    xStanza: (raw: Buffer) => { s.stanzas.push(raw.toString('utf8')); },
    xEnd: () => { s.ends++; },
    xError: (m: string) => { s.errors.push(m); },
  };
  return s;
}

describe('StanzaSplitter', () => {
  const header = `<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' from='localhost' id='a>b' version='1.0'>`;
  const stanzas = [
    `<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls></stream:features>`,
    `<message from='a@b/c' to="d@e/f" id='x/>y' type='chat'><body>Grüße 東京 🐦 &lt;3 a > b</body><thread>t</thread></message>`,
    `<presence from='a@b/c'/>`,
    `<iq type="result" id='p1'/>`,
    `<message id='cd'><body><![CDATA[<not a tag/> ]] >]]></body></message>`,
    `<iq type='result' id='r'><query xmlns='jabber:iq:roster'><item jid='x@y' subscription='both'><group>G</group></item><item jid='z@y'/></query></iq>`,
  ];
  const doc = `<?xml version='1.0'?>${header}${stanzas[0]}\n ${stanzas.slice(1).join(' ')}</stream:stream>`;

  test('one read', () => {
    const c = collect();
    new StanzaSplitter(c).feed(Buffer.from(doc));
    assert.deepEqual(c.headers, [header]);
    assert.deepEqual(c.stanzas, stanzas);
    assert.equal(c.ends, 1);
    assert.deepEqual(c.errors, []);
  });

  test('random splits, including inside tags, quotes, CDATA and multi-byte characters', () => {
    const bytes = Buffer.from(doc);
    for (let seed = 1; seed <= 300; seed++) {
      const rnd = prng(seed);
      const c = collect();
      const sp = new StanzaSplitter(c);
      for (let i = 0; i < bytes.length;) {
        const n = 1 + Math.floor(rnd() * (seed % 3 === 0 ? 3 : 40));
        sp.feed(bytes.subarray(i, i + n));
        i += n;
      }
      assert.deepEqual(c.headers, [header], `seed ${seed}`);
      assert.deepEqual(c.stanzas, stanzas, `seed ${seed}`);
      assert.equal(c.ends, 1);
    }
  });

  test('a split element is copied out of the read buffer', () => {
    const c = collect();
    const sp = new StanzaSplitter(c);
    const a = Buffer.from(`${header}<presence id='1'/><message id='2'>`);
    const b = Buffer.from(`<body>x</body></message>`);
    sp.feed(a);
    a.fill(0x20); // the caller may reuse its buffer
    sp.feed(b);
    assert.deepEqual(c.stanzas, [`<presence id='1'/>`, `<message id='2'><body>x</body></message>`]);
  });

  test('bounded: an element over maxBytes is an error', () => {
    const c = collect();
    const sp = new StanzaSplitter(c, 1000);
    sp.feed(Buffer.from(`${header}<message><body>`));
    for (let i = 0; i < 20; i++) sp.feed(Buffer.alloc(100, 0x61));
    assert.equal(c.errors.length, 1);
    assert.match(c.errors[0]!, /larger than 1000/);
  });

  test('reset restarts the stream with the bytes that follow', () => {
    const c = collect();
    const sp = new StanzaSplitter({ ...c, xStanza: (raw) => { c.xStanza(raw); if (isNamed(raw, 'success')) sp.reset(); } });
    sp.feed(Buffer.from(`${header}<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>${header}<stream:features/>`));
    assert.equal(c.headers.length, 2);
    assert.deepEqual(c.stanzas.map((s) => parseXml(s).name), ['success', 'stream:features']);
  });
});

describe('raw helpers and parseXml', () => {
  test('rawAttr, stanzaName, isNamed', () => {
    const raw = Buffer.from(`<message from='a@b/c' to="d@e" id='x&amp;y' type='chat'><body id='no'/></message>`);
    assert.equal(stanzaName(raw), 'message');
    assert.ok(isNamed(raw, 'message'));
    assert.ok(!isNamed(raw, 'mess'));
    assert.equal(rawAttr(raw, 'to'), 'd@e');
    assert.equal(rawAttr(raw, 'id'), 'x&y');
    assert.equal(rawAttr(raw, 'type'), 'chat');
    assert.equal(rawAttr(raw, 'body'), undefined);
    assert.equal(rawAttr(Buffer.from(`<presence/>`), 'type'), undefined);
  });

  test('parseXml', () => {
    const el = parseXml(`<iq type='result' id='b'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><jid>u@d/r&amp;s</jid></bind></iq>`);
    assert.equal(el.name, 'iq');
    assert.equal(el.children[0]!.attrs.xmlns, 'urn:ietf:params:xml:ns:xmpp-bind');
    assert.equal(el.children[0]!.children[0]!.text, 'u@d/r&s');
  });
});

test('SCRAM-SHA-1: the RFC 5802 §5 example', async () => {
  const s = new ScramSha1('user', 'pencil', 'fyko+d2lbbFgONRv9qkxdawL');
  assert.equal(s.clientFirst(), 'n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL');
  const final = await s.clientFinal('r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
  assert.equal(final, 'c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts=');
  s.verifyServerFinal('v=rmF9pqV8S7suAoZWja4dJRkFsKQ=');
  assert.throws(() => s.verifyServerFinal('v=AAAAAAAAAAAAAAAAAAAAAAAAAAA='), /signature does not verify/);
  assert.throws(() => s.verifyServerFinal('e=invalid-proof'), /server error "invalid-proof"/);
  const other = new ScramSha1('user', 'pencil', 'abc');
  await assert.rejects(other.clientFinal('r=xyz123,s=QSXCR+Q6sek8bf92,i=4096'), /nonce/);
});

describe('against a real Amsel server', () => {
  let srv: TestServer;
  let server: ServerAddress;
  before(async () => {
    srv = await startServer();
    await srv.adduser('u00000@localhost', 'pw');
    await srv.adduser('u00001@localhost', 'pw');
    server = { domain: 'localhost', ports: { c2s: srv.ports.c2s, directTls: srv.ports.c2sDirectTls }, caFile: srv.caFile };
  });
  after(async () => {
    await srv?.stop();
    await srv?.cleanup();
  });

  test('STARTTLS login, ping, clean close', async () => {
    const marks: number[] = [];
    const c = await connect({ server, user: 'u00000', password: 'pw', resource: 'load', presence: true, roster: true, marks });
    assert.equal(c.jid, 'u00000@localhost/load');
    assert.equal(c.rosterSize, 0);
    assert.equal(marks.length, 6);
    await c.ping();
    const version = await c.iq(`<iq type='get' to='localhost'><query xmlns='jabber:iq:version'/></iq>`);
    assert.equal(version.attrs.type, 'result');
    await c.close();
    assert.ok(c.closed);
    assert.equal(c.error, undefined);
  });

  test('Direct TLS login', async () => {
    const c = await connect({ server, user: 'u00001', password: 'pw', resource: 'dt', directTls: true });
    assert.equal(c.jid, 'u00001@localhost/dt');
    await c.ping();
    await c.close();
    assert.equal(c.error, undefined);
  });

  test('messages between two clients arrive once, in order', async () => {
    const got: string[] = [];
    const b = await connect({ server, user: 'u00001', password: 'pw', resource: 'b', presence: true });
    let done!: () => void;
    const all = new Promise<void>((r) => { done = r; });
    b.onStanza((raw) => { if (isNamed(raw, 'message')) { got.push(rawAttr(raw, 'id')!); if (got.length === 50) done(); } });
    const a = await connect({ server, user: 'u00000', password: 'pw', resource: 'a', presence: true });
    for (let i = 0; i < 50; i++) a.send(`<message to='${b.jid}' type='chat' id='m${i}'><body>hello ${i} Grüße</body></message>`);
    await Promise.race([all, new Promise((_, rej) => setTimeout(() => rej(new Error(`only ${got.length} arrived`)), 5000))]);
    assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => `m${i}`));
    await Promise.all([a.close(), b.close()]);
  });

  test('a wrong password is rejected with the SASL condition', async () => {
    await assert.rejects(connect({ server, user: 'u00000', password: 'wrong' }), /login u00000@localhost: SASL: authentication failed: not-authorized/);
  });

  test('an unknown port fails at TCP connect, clearly', async () => {
    await assert.rejects(connect({ server: { ...server, ports: { c2s: 1 } }, user: 'u00000', password: 'pw' }), /TCP connect: .*ECONNREFUSED/);
  });

  test('the server certificate is verified against the given CA and the domain', async () => {
    const otherCa = { ...server, caFile: '/etc/ssl/certs/ca-certificates.crt' };
    await assert.rejects(connect({ server: otherCa, user: 'u00000', password: 'pw' }), /STARTTLS handshake: (unable to verify|self-signed certificate)/);
    await assert.rejects(connect({ server: otherCa, user: 'u00000', password: 'pw', directTls: true }), /Direct TLS handshake: (unable to verify|self-signed certificate)/);
    await assert.rejects(connect({ server: { ...server, domain: 'wrong.example' }, user: 'u00000', password: 'pw', directTls: true }), /Direct TLS handshake: Hostname\/IP does not match/);
  });
});
