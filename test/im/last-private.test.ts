// Last Activity (XEP-0012) and Private XML Storage (XEP-0049) through real sockets with
// @xmpp/client, with the real roster and presence modules deciding who may see last activity.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/client';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { login, ping, xml, type XmppClient } from '../clients/xmpp.ts';

const NS_LAST = 'jabber:iq:last';
const NS_PRIVATE = 'jabber:iq:private';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

let srv: TestServer;
const as = (username: string, resource: string) =>
  login({ service: `xmpp://localhost:${srv.ports.c2s}`, username, password: `${username} pw`, resource });

before(async () => {
  srv = await startServer();
  for (const u of ['alice', 'bob', 'carol']) await srv.adduser(`${u}@localhost`, `${u} pw`);
});
after(async () => {
  if (!srv) return;
  assert.equal(await srv.stop(), 0);
  await srv.cleanup();
});

/** The IQ reply, result or error (iqCaller rejects on errors with the <error/> on err.element). */
async function request(c: XmppClient, iq: Element): Promise<Element> {
  try {
    return await c.iqCaller.request(iq, 5000);
  } catch (err) {
    const el = (err as { element?: Element }).element;
    if (el?.name === 'error') return xml('iq', { type: 'error' }, el);
    throw err;
  }
}
const condition = (el: Element) => el.getChild('error')?.children.find((c): c is Element => typeof c !== 'string' && c.attrs.xmlns === NS_STANZAS)?.name;
const lastOf = (c: XmppClient, to?: string) => request(c, xml('iq', { type: 'get', to }, xml('query', { xmlns: NS_LAST })));

test('private XML storage: set, get from another session, others forbidden', async () => {
  const alice = await as('alice', 'one');
  try {
    const bookmarks = xml('storage', { xmlns: 'storage:bookmarks' },
      xml('conference', { jid: 'room@conference.localhost', name: 'Café & <Co>', autojoin: 'true' }, xml('nick', {}, 'alice')));
    const set = await request(alice, xml('iq', { type: 'set' }, xml('query', { xmlns: NS_PRIVATE }, bookmarks)));
    assert.equal(set.attrs.type, 'result');
  } finally {
    await alice.stop();
  }
  const again = await as('alice', 'two');
  const bob = await as('bob', 'x');
  try {
    const got = await request(again, xml('iq', { type: 'get' }, xml('query', { xmlns: NS_PRIVATE }, xml('storage', { xmlns: 'storage:bookmarks' }))));
    assert.equal(got.attrs.type, 'result');
    const conf = got.getChild('query', NS_PRIVATE)!.getChild('storage', 'storage:bookmarks')!.getChild('conference')!;
    assert.equal(conf.attrs.name, 'Café & <Co>');
    assert.equal(conf.getChildText('nick'), 'alice');
    const refused = await request(bob, xml('iq', { type: 'get', to: 'alice@localhost' }, xml('query', { xmlns: NS_PRIVATE }, xml('storage', { xmlns: 'storage:bookmarks' }))));
    assert.equal(condition(refused), 'forbidden');
    const reserved = await request(again, xml('iq', { type: 'set' }, xml('query', { xmlns: NS_PRIVATE }, xml('query', { xmlns: 'jabber:iq:roster' }))));
    assert.equal(condition(reserved), 'not-acceptable');
  } finally {
    await again.stop();
    await bob.stop();
  }
});

test('last activity: uptime; a subscribed contact sees seconds and status, others forbidden', async () => {
  const alice = await as('alice', 'desk');
  const carol = await as('carol', 'desk');
  let bob = await as('bob', 'phone');
  try {
    const uptime = await lastOf(alice, 'localhost');
    assert.equal(uptime.attrs.type, 'result');
    assert.match(uptime.getChild('query', NS_LAST)!.attrs.seconds!, /^\d+$/);

    // alice subscribes to bob's presence and bob approves: alice is 'from' on bob's roster.
    const subscribed = new Promise<void>((resolve) => alice.on('stanza', (el: Element) => {
      if (el.is('presence') && el.attrs.type === 'subscribed') resolve();
    }));
    bob.on('stanza', (el: Element) => {
      if (el.is('presence') && el.attrs.type === 'subscribe') void bob.send(xml('presence', { to: 'alice@localhost', type: 'subscribed' }));
    });
    await bob.send(xml('presence'));
    await alice.send(xml('presence'));
    await alice.send(xml('presence', { to: 'bob@localhost', type: 'subscribe' }));
    await subscribed;

    // Online → seconds 0 (§3).
    const online = await lastOf(alice, 'bob@localhost');
    assert.equal(online.attrs.type, 'result', online.toString());
    assert.equal(online.getChild('query', NS_LAST)!.attrs.seconds, '0');
    assert.equal(condition(await lastOf(carol, 'bob@localhost')), 'forbidden');

    await bob.send(xml('presence', { type: 'unavailable' }, xml('status', {}, 'Heading Home')));
    await ping(bob);
    await bob.stop();
    let reply: Element | undefined;
    for (let i = 0; i < 100; i++) {
      reply = await lastOf(alice, 'bob@localhost');
      if (reply.getChild('query', NS_LAST)?.attrs.seconds !== '0') break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal(reply!.attrs.type, 'result', reply!.toString());
    const q = reply!.getChild('query', NS_LAST)!;
    assert.match(q.attrs.seconds!, /^\d+$/);
    assert.ok(Number(q.attrs.seconds) < 30);
    assert.equal(q.text(), 'Heading Home');
    assert.equal(condition(await lastOf(carol, 'bob@localhost')), 'forbidden', 'no subscription: forbidden');
    assert.equal(condition(await lastOf(carol, 'nobody@localhost')), 'forbidden', 'unknown account: the same answer');

    bob = await as('bob', 'again');
    const own = await lastOf(bob);
    assert.equal(own.getChild('query', NS_LAST)!.attrs.seconds, '0');
  } finally {
    await Promise.all([alice.stop(), carol.stop(), bob.stop().catch(() => undefined)]);
  }
});
