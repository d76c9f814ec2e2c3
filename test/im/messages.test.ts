// Message routing between two accounts with several resources each (RFC 6121 §8.5), through real
// sockets with an independent client (@xmpp/client): bare-JID delivery with mixed priorities,
// full-JID delivery, a vanished resource, headline and error rules, and chat live then offline.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/client';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { createClient, startClient, xml, type XmppClient } from '../clients/xmpp.ts';

let srv: TestServer;

interface Client { c: XmppClient; messages: Element[]; jid: string }

async function connect(username: string, resource: string, priority?: number): Promise<Client> {
  const c = createClient({ service: `xmpp://localhost:${srv.ports.c2s}`, username, password: `pw ${username}`, resource });
  const out: Client = { c, messages: [], jid: `${username}@localhost/${resource}` };
  c.on('stanza', (el: Element) => { if (el.name === 'message') out.messages.push(el); });
  await startClient(c);
  if (priority !== undefined) {
    await c.send(xml('presence', null, xml('priority', null, String(priority))));
  }
  return out;
}

async function until(what: string, cond: () => boolean, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const settle = () => new Promise((r) => setTimeout(r, 300));
const bodies = (c: Client) => c.messages.map((m) => m.getChildText('body'));

before(async () => {
  srv = await startServer();
  await srv.adduser('alice@localhost', 'pw alice');
  await srv.adduser('bob@localhost', 'pw bob');
});
after(async () => {
  await srv.stop();
  await srv.cleanup();
});

test('a chat to a bare JID reaches the available resources with the highest non-negative priority only', async () => {
  const [a1, a2, a3, a4] = await Promise.all([
    connect('alice', 'desk', 5), connect('alice', 'laptop', 5), connect('alice', 'phone', 1), connect('alice', 'watcher', -1),
  ]);
  const quiet = await connect('alice', 'no-presence'); // bound, never sent presence: not available
  const bob = await connect('bob', 'home', 0);
  try {
    await bob.c.send(xml('message', { to: 'alice@localhost', type: 'chat', id: 'm1' }, xml('body', null, 'to the bare JID')));
    await until('both top-priority resources', () => a1.messages.length === 1 && a2.messages.length === 1);
    await settle();
    assert.deepEqual(bodies(a1), ['to the bare JID']);
    assert.equal(a1.messages[0]!.attrs.from, 'bob@localhost/home', 'from is stamped with the sender full JID');
    assert.deepEqual(bodies(a3), [], 'a lower priority gets nothing');
    assert.deepEqual(bodies(a4), [], 'a negative priority never gets bare-JID messages');
    assert.deepEqual(bodies(quiet), [], 'an unavailable resource gets nothing');

    // A full JID reaches that resource whatever its priority.
    await bob.c.send(xml('message', { to: a4.jid, type: 'chat' }, xml('body', null, 'to the watcher')));
    await until('full-JID delivery', () => a4.messages.length === 1);
    assert.deepEqual(bodies(a4), ['to the watcher']);

    // A full JID whose resource is gone is treated like the bare JID (RFC 6121 §8.5.3.2.1).
    await bob.c.send(xml('message', { to: 'alice@localhost/gone', type: 'chat' }, xml('body', null, 'to a gone resource')));
    await until('fallback to bare', () => a1.messages.length === 2 && a2.messages.length === 2);
    assert.equal(a1.messages[1]!.getChildText('body'), 'to a gone resource');
    await settle();
    assert.equal(a3.messages.length, 0);

    // Groupchat to a gone resource is an error (§8.5.3.2.1); a headline to it vanishes.
    await bob.c.send(xml('message', { to: 'alice@localhost/gone', type: 'headline' }, xml('body', null, 'news')));
    await bob.c.send(xml('message', { to: 'alice@localhost/gone', type: 'groupchat', id: 'g1' }, xml('body', null, 'room?')));
    await until('groupchat error', () => bob.messages.some((m) => m.attrs.id === 'g1'));
    const err = bob.messages.find((m) => m.attrs.id === 'g1')!;
    assert.equal(err.attrs.type, 'error');
    assert.ok(err.getChild('error')?.getChild('service-unavailable'), err.toString());
    await settle();
    assert.ok(!a1.messages.some((m) => m.getChildText('body') === 'news'), 'headline to a gone resource is dropped');
  } finally {
    await Promise.all([a1, a2, a3, a4, quiet, bob].map((x) => x.c.stop().catch(() => undefined)));
  }
});

test('chat live, then offline: stored messages arrive on the next login with a delay stamp', async () => {
  const bob = await connect('bob', 'home', 0);
  let alice = await connect('alice', 'desk', 0);
  try {
    await bob.c.send(xml('message', { to: 'alice@localhost', type: 'chat' }, xml('body', null, 'live 1')));
    await until('live message', () => alice.messages.length === 1);
    assert.equal(alice.messages[0]!.getChild('delay', 'urn:xmpp:delay'), undefined, 'live messages carry no delay');
    await alice.c.stop();
    await new Promise((r) => setTimeout(r, 200));
    await bob.c.send(xml('message', { to: 'alice@localhost', type: 'chat' }, xml('body', null, 'offline 1')));
    await bob.c.send(xml('message', { to: 'alice@localhost', type: 'chat' }, xml('body', null, 'offline 2')));
    await settle();
    assert.ok(!bob.messages.some((m) => m.attrs.type === 'error'), 'nothing bounced while alice is away');
    alice = await connect('alice', 'desk', 0);
    await until('offline messages', () => alice.messages.length === 2);
    assert.deepEqual(bodies(alice), ['offline 1', 'offline 2']);
    for (const m of alice.messages) assert.ok(m.getChild('delay', 'urn:xmpp:delay')?.attrs.stamp, m.toString());
  } finally {
    await Promise.all([alice, bob].map((x) => x.c.stop().catch(() => undefined)));
  }
});

test('a large message with multi-byte text arrives intact (the server writes it in several TLS records)', async () => {
  const bob = await connect('bob', 'big', 0);
  const alice = await connect('alice', 'big', 0);
  try {
    // Well over the per-write size, with 4-byte UTF-8 characters (surrogate pairs) everywhere.
    const text = Array.from({ length: 1500 }, (_, i) => (i % 3 === 0 ? '🐦' : i % 3 === 1 ? 'ü' : `<${i}&>`)).join('');
    await bob.c.send(xml('message', { to: 'alice@localhost/big', type: 'chat' }, xml('body', null, text)));
    await until('the large message', () => alice.messages.length === 1);
    assert.equal(alice.messages[0]!.getChildText('body'), text);
  } finally {
    await Promise.all([alice, bob].map((x) => x.c.stop().catch(() => undefined)));
  }
});
