// Service discovery (XEP-0030), extended info (XEP-0128/XEP-0157), the server's caps in stream
// features (XEP-0115 §6.3), software version (XEP-0092), entity time (XEP-0202) and
// server-initiated pings (XEP-0199 §4.1) through real sockets: @xmpp/client (an independent
// implementation) and the raw client for the wire-level checks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { startServer, RawClient, readCa, type TestServer } from '../../src/testing/index.ts';
import { login, plainMessage, rawLogin, xml, type XmppClient } from '../clients/xmpp.ts';
import type { Element } from '@xmpp/client';

const NS_INFO = 'http://jabber.org/protocol/disco#info';
const NS_ITEMS = 'http://jabber.org/protocol/disco#items';
const NS_CAPS = 'http://jabber.org/protocol/caps';
const NS_DATA = 'jabber:x:data';
const PING_INTERVAL = 10_000; // the smallest the config allows
const PING_TIMEOUT = 2_000;

let srv: TestServer;
let ca: Buffer;

before(async () => {
  srv = await startServer({
    config: {
      contact: { admin: ['mailto:a@b'], abuse: ['xmpp:abuse@localhost', 'mailto:abuse@localhost'] },
      sessions: { pingIntervalMs: PING_INTERVAL },
      modules: { ping: { timeoutMs: PING_TIMEOUT } },
    },
  });
  ca = await readCa(srv.caFile);
  await srv.adduser('alice@localhost', 'alice pw');
  await srv.adduser('bob@localhost', 'bob pw');
  await srv.adduser('carol@localhost', 'carol pw');
});
after(async () => {
  assert.equal(await srv.stop(), 0, 'server exits cleanly on SIGTERM');
  await srv.cleanup();
});

const loginAs = (username: string, password: string, resource?: string) =>
  login({ service: `xmpp://localhost:${srv.ports.c2s}`, username, password, resource });

async function discoInfo(c: XmppClient, to?: string, node?: string): Promise<Element> {
  const res = await c.iqCaller.request(xml('iq', { type: 'get', to }, xml('query', { xmlns: NS_INFO, node })), 5000);
  return res.getChild('query', NS_INFO)!;
}

const featuresOf = (q: Element) => q.getChildren('feature').map((f) => f.attrs.var!);

/**
 * XEP-0115 §5.1, written again here from the XEP (not the server's code), as a client checks a
 * ver (§5.4). Our identities, features and values are ASCII, so JavaScript's sort is i;octet.
 */
function verOf(q: Element): string {
  const ids = q.getChildren('identity').map((i) => [i.attrs.category ?? '', i.attrs.type ?? '', i.attrs['xml:lang'] ?? '', i.attrs.name ?? '']);
  ids.sort((a, b) => (a.slice(0, 3).join('\0') < b.slice(0, 3).join('\0') ? -1 : 1));
  let s = ids.map((i) => `${i.join('/')}<`).join('');
  s += featuresOf(q).sort().map((f) => `${f}<`).join('');
  const forms = q.getChildren('x', NS_DATA).map((form) => {
    const fields = form.getChildren('field').map((f) => ({ v: f.attrs.var!, values: f.getChildren('value').map((v) => v.text()) }));
    return { type: fields.find((f) => f.v === 'FORM_TYPE')!.values[0]!, fields: fields.filter((f) => f.v !== 'FORM_TYPE') };
  }).sort((a, b) => (a.type < b.type ? -1 : 1));
  for (const form of forms) {
    s += `${form.type}<`;
    for (const f of form.fields.sort((a, b) => (a.v < b.v ? -1 : 1))) s += `${f.v}<${f.values.sort().map((v) => `${v}<`).join('')}`;
  }
  return createHash('sha1').update(s, 'utf8').digest('base64');
}

test('server disco#info: identity server/im, the features of the loaded modules and the XEP-0157 serverinfo form', async () => {
  const c = await loginAs('alice', 'alice pw', 'disco');
  try {
    const q = await discoInfo(c, 'localhost');
    assert.deepEqual(q.getChildren('identity').map((i) => `${i.attrs.category}/${i.attrs.type}`), ['server/im']);
    const features = featuresOf(q);
    for (const f of [NS_INFO, NS_ITEMS, NS_CAPS, 'urn:xmpp:ping', 'jabber:iq:version', 'urn:xmpp:time']) {
      assert.ok(features.includes(f), `advertises ${f}`);
    }
    const forms = q.getChildren('x', NS_DATA);
    assert.equal(forms.length, 1);
    assert.equal(forms[0]!.attrs.type, 'result');
    const fields = Object.fromEntries(forms[0]!.getChildren('field').map((f) => [f.attrs.var, f.getChildren('value').map((v) => v.text())]));
    assert.deepEqual(fields, {
      FORM_TYPE: ['http://jabber.org/network/serverinfo'],
      'abuse-addresses': ['xmpp:abuse@localhost', 'mailto:abuse@localhost'],
      'admin-addresses': ['mailto:a@b'],
    });
    const items = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: NS_ITEMS })), 5000);
    assert.equal(items.attrs.type, 'result');
  } finally {
    await c.stop();
  }
});

test("the caps <c/> in the stream features after authentication matches a ver recomputed from disco#info, which also answers on '<node>#<ver>'", async () => {
  // Up to the post-authentication stream features with the raw client, to read them as sent.
  const raw = await RawClient.connect(srv.ports.c2s);
  let c: XmppClient | undefined;
  try {
    raw.header();
    await raw.expect(/<\/stream:features>/);
    assert.doesNotMatch(raw.received, /protocol\/caps/, 'not offered before authentication');
    await raw.startTls(ca);
    raw.header();
    await raw.expect(/<\/stream:features>/);
    raw.clear();
    raw.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plainMessage('bob', 'bob pw')}</auth>`);
    await raw.expect(/<success/);
    raw.clear();
    raw.header();
    const features = (await raw.expect(/<stream:features>[\s\S]*?<\/stream:features>/))[0];
    const cEl = features.match(/<c\s[^>]*\/>/)?.[0];
    assert.ok(cEl, `a <c/> in ${features}`);
    const attr = (n: string) => cEl.match(new RegExp(`\\s${n}=["']([^"']*)["']`))?.[1];
    assert.equal(attr('xmlns'), NS_CAPS);
    assert.equal(attr('hash'), 'sha-1');
    const node = attr('node')!;
    const ver = attr('ver')!;
    assert.match(ver, /^[A-Za-z0-9+/]{27}=$/, 'base64 of a SHA-1');

    c = await loginAs('bob', 'bob pw', 'caps');
    const q = await discoInfo(c, 'localhost');
    assert.equal(verOf(q), ver, 'the ver is the hash of what disco#info says');
    const onNode = await discoInfo(c, 'localhost', `${node}#${ver}`);
    assert.equal(onNode.attrs.node, `${node}#${ver}`);
    assert.equal(verOf(onNode), ver);
  } finally {
    raw.destroy();
    await c?.stop();
  }
});

test('software version and entity time from the server', async () => {
  const c = await loginAs('alice', 'alice pw', 'vt');
  try {
    const pkg = JSON.parse(await readFile(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    const v = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'jabber:iq:version' })), 5000);
    const vq = v.getChild('query', 'jabber:iq:version')!;
    assert.equal(vq.getChildText('name'), 'Amsel');
    assert.equal(vq.getChildText('version'), pkg.version);
    assert.equal(vq.getChild('os'), undefined, 'the OS is hidden by default');

    const t = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('time', { xmlns: 'urn:xmpp:time' })), 5000);
    const tq = t.getChild('time', 'urn:xmpp:time')!;
    assert.match(tq.getChildText('tzo') ?? '', /^[+-]\d\d:\d\d$/);
    const utc = tq.getChildText('utc') ?? '';
    assert.match(utc, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/);
    assert.ok(Math.abs(Date.parse(utc) - Date.now()) < 10_000);
  } finally {
    await c.stop();
  }
});

test('account JIDs: the account itself is answered; a stranger gets service-unavailable, the same as for an unknown account', async () => {
  const alice = await loginAs('alice', 'alice pw', 'acct');
  const bob = await loginAs('bob', 'bob pw', 'acct');
  try {
    const own = await discoInfo(alice, 'alice@localhost');
    assert.deepEqual(own.getChildren('identity').map((i) => `${i.attrs.category}/${i.attrs.type}`), ['account/registered']);
    assert.ok(featuresOf(own).includes(NS_INFO));
    const conditionOf = (to: string) => discoInfo(bob, to).then(() => 'result', (err: Error & { condition?: string }) => err.condition);
    assert.equal(await conditionOf('alice@localhost'), 'service-unavailable');
    assert.equal(await conditionOf('nobody@localhost'), 'service-unavailable');
    const items = await bob.iqCaller.request(xml('iq', { type: 'get', to: 'alice@localhost' }, xml('query', { xmlns: NS_ITEMS })), 5000);
    assert.equal(items.getChild('query', NS_ITEMS)!.getChildren('item').length, 0, 'no resources shown to a stranger');
  } finally {
    await alice.stop();
    await bob.stop();
  }
});

test('server pings (XEP-0199 §4.1): a client that stops answering is closed with <connection-timeout/>; clients that answer stay', async () => {
  const silent = await rawLogin({ port: srv.ports.c2s, ca, username: 'carol', password: 'carol pw', resource: 'silent' });
  const answering = await rawLogin({ port: srv.ports.c2s, ca, username: 'carol', password: 'carol pw', resource: 'answering' });
  // @xmpp/client has no ping handler: it answers service-unavailable, which proves liveness too.
  const lib = await loginAs('carol', 'carol pw', 'lib');
  try {
    // The answering raw client answers every ping, as a client should (to the server, same id).
    const answered = new Set<string>();
    const pong = async () => {
      for (;;) {
        const m = await answering.expect(/<iq\b[^>]*>\s*<ping xmlns=["']urn:xmpp:ping["']\/>\s*<\/iq>/, PING_INTERVAL * 3);
        const id = m[0].match(/\sid=["']([^"']+)["']/)![1]!;
        answering.clear();
        answering.send(`<iq type='result' id='${id}' to='localhost'/>`);
        answered.add(id);
        if (answered.size >= 1) return;
      }
    };
    const ponged = pong();

    const started = Date.now();
    const ping = await silent.expect(/<iq\b[^>]*>\s*<ping xmlns=["']urn:xmpp:ping["']\/>\s*<\/iq>/, PING_INTERVAL + 5000);
    assert.match(ping[0], /\stype=["']get["']/);
    assert.match(ping[0], /\sfrom=["']localhost["']/);
    assert.match(ping[0], /\sto=["']carol@localhost\/silent["']/);
    // No answer: closed after the timeout with a stream error.
    await silent.expect(/<connection-timeout xmlns=["']urn:ietf:params:xml:ns:xmpp-streams["']\/>/, PING_TIMEOUT + 5000);
    await silent.closed;
    assert.ok(Date.now() - started >= PING_TIMEOUT - 100, 'not before the timeout');
    assert.ok(srv.logs.some((l) => l.msg === 'no answer to a server ping: closing the session'), 'logged');

    await ponged;
    // Well after their pings' timeout, the others still work.
    await new Promise((r) => setTimeout(r, PING_TIMEOUT + 1500));
    assert.ok(!answering.isClosed, 'the answering client is still connected');
    answering.clear();
    answering.send(`<iq type='get' id='p-after' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await answering.expect(/<iq\b[^>]*id=["']p-after["'][^>]*type=["']result["']|<iq\b[^>]*type=["']result["'][^>]*id=["']p-after["']/);
    const res = await lib.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('ping', { xmlns: 'urn:xmpp:ping' })), 5000);
    assert.equal(res.attrs.type, 'result');
  } finally {
    silent.destroy();
    answering.destroy();
    await lib.stop();
  }
});
