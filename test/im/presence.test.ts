// Presence subscriptions (RFC 6121 §3) and presence exchange (§4) through real sockets with an
// independent client (@xmpp/client), on SQLite and on PostgreSQL: two accounts subscribe to
// each other (one after the other, and both at once), see each other's presence come and go
// (several resources, a clean logout, a connection dropped without </stream:stream>), and a
// pending subscription request is redelivered on the next login.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/client';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { createClient, startClient, xml, type XmppClient } from '../clients/xmpp.ts';

const NS_ROSTER = 'jabber:iq:roster';

interface Client {
  c: XmppClient;
  /** Presence stanzas received, in order. */
  presences: Element[];
  jid: string;
}

async function connect(srv: TestServer, username: string, resource: string, opts: { autoApprove?: boolean } = {}): Promise<Client> {
  const c = createClient({ service: `xmpp://localhost:${srv.ports.c2s}`, username, password: 'pw ' + username, resource });
  const out: Client = { c, presences: [], jid: `${username}@localhost/${resource}` };
  c.on('stanza', (el: Element) => {
    if (el.name !== 'presence') return;
    out.presences.push(el);
    // A client that approves every request it sees, as soon as it sees it.
    if (opts.autoApprove && el.attrs.type === 'subscribe') {
      c.send(xml('presence', { type: 'subscribed', to: el.attrs.from })).catch(() => undefined);
    }
  });
  c.iqCallee.set(NS_ROSTER, 'query', () => true); // roster pushes (RFC 6121 §2.1.6)
  await startClient(c);
  return out;
}

async function until(what: string, cond: () => boolean | Promise<boolean>, ms = 8000): Promise<void> {
  const end = Date.now() + ms;
  while (!(await cond())) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

/** Kill the TCP connection: no unavailable presence, no </stream:stream>. */
function drop(cl: Client): void {
  // After STARTTLS, @xmpp/client's socket is a wrapper around the TLSSocket.
  const s = (cl.c as unknown as { socket: { socket?: { destroy(): void }; destroy?: () => void } }).socket;
  if (s.socket) s.socket.destroy();
  else s.destroy!();
}

const has = (cl: Client, type: string, from: string) =>
  cl.presences.some((p) => (p.attrs.type ?? 'available') === type && p.attrs.from === from);
const sendPresence = (cl: Client, attrs: Record<string, string> = {}, ...children: Element[]) =>
  cl.c.send(xml('presence', attrs, ...children));

/** The client's roster item for `jid`: subscription and ask, as the server reports them. */
async function item(cl: Client, jid: string): Promise<{ subscription?: string; ask?: string } | undefined> {
  const r = await cl.c.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS_ROSTER })), 10_000);
  const it = r.getChild('query', NS_ROSTER)?.getChildren('item').find((i) => i.attrs.jid === jid);
  return it ? { subscription: it.attrs.subscription, ask: it.attrs.ask } : undefined;
}
const subscriptionIs = async (cl: Client, jid: string, sub: string) => {
  const it = await item(cl, jid);
  return it?.subscription === sub && it.ask === undefined;
};

for (const storage of ['sqlite', 'postgres'] as const) {
  describe(`presence over real sockets on ${storage}`, { skip: storage === 'postgres' && process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined }, () => {
    let srv: TestServer;
    const open: Client[] = [];
    const track = (cl: Client) => { open.push(cl); return cl; };

    before(async () => {
      srv = await startServer({ storage });
      for (const u of ['alice', 'bob', 'carol', 'dave', 'erin']) await srv.adduser(`${u}@localhost`, 'pw ' + u);
    });
    after(async () => {
      for (const cl of open) await cl.c.stop().catch(() => undefined);
      assert.equal(await srv.stop(), 0);
      await srv.cleanup();
    });

    test('alice and bob subscribe to each other and see each other come and go', async () => {
      const alice = track(await connect(srv, 'alice', 'desk'));
      const bob = track(await connect(srv, 'bob', 'desk'));
      await sendPresence(alice, {}, xml('priority', {}, '5'));
      await sendPresence(bob, {}, xml('show', {}, 'away'));
      await until('own presence echoed', () => has(alice, 'available', alice.jid) && has(bob, 'available', bob.jid));

      // §3.1: alice asks, bob approves and asks back, alice approves
      await sendPresence(alice, { type: 'subscribe', to: 'bob@localhost' });
      await until('bob gets the request', () => has(bob, 'subscribe', 'alice@localhost'));
      await until('alice\'s roster shows ask', async () => (await item(alice, 'bob@localhost'))?.ask === 'subscribe');
      await sendPresence(bob, { type: 'subscribed', to: 'alice@localhost' });
      await until('alice gets the approval and bob\'s presence', () => has(alice, 'subscribed', 'bob@localhost') && has(alice, 'available', bob.jid));
      const bobsPresence = alice.presences.find((p) => p.attrs.from === bob.jid && !p.attrs.type)!;
      assert.equal(bobsPresence.getChildText('show'), 'away');
      await sendPresence(bob, { type: 'subscribe', to: 'alice@localhost' });
      await until('alice gets bob\'s request', () => has(alice, 'subscribe', 'bob@localhost'));
      await sendPresence(alice, { type: 'subscribed', to: 'bob@localhost' });
      await until('bob sees alice', () => has(bob, 'available', alice.jid));
      await until('both rosters say both', async () => (await subscriptionIs(alice, 'bob@localhost', 'both')) && (await subscriptionIs(bob, 'alice@localhost', 'both')));

      // a second resource of bob's comes (alice sees it, and it sees alice) and goes cleanly
      const phone = await connect(srv, 'bob', 'phone');
      await sendPresence(phone, {}, xml('priority', {}, '-1'));
      await until('alice sees bob/phone', () => has(alice, 'available', phone.jid));
      await until('bob/phone gets alice\'s presence (probe) and bob/desk\'s', () => has(phone, 'available', alice.jid) && has(phone, 'available', bob.jid));
      await until('bob/desk sees its sibling', () => has(bob, 'available', phone.jid));
      await phone.c.stop();
      await until('alice sees bob/phone leave', () => has(alice, 'unavailable', phone.jid));
      await until('bob/desk sees it too', () => has(bob, 'unavailable', phone.jid));

      // §4.5.2: a connection dropped without </stream:stream> (socket destroyed)
      const tablet = await connect(srv, 'bob', 'tablet');
      await sendPresence(tablet);
      await until('alice sees bob/tablet', () => has(alice, 'available', tablet.jid));
      drop(tablet);
      await until('alice sees bob/tablet go offline', () => has(alice, 'unavailable', tablet.jid));
      assert.ok(!has(alice, 'unavailable', bob.jid), 'bob/desk is still online');

      // explicit unavailable with a status
      await sendPresence(bob, { type: 'unavailable' }, xml('status', {}, 'lunch'));
      await until('alice sees bob/desk leave', () => has(alice, 'unavailable', bob.jid));
      const bye = alice.presences.find((p) => p.attrs.from === bob.jid && p.attrs.type === 'unavailable')!;
      assert.equal(bye.getChildText('status'), 'lunch');
    });

    test('carol and dave subscribe to each other at the same moment: both end with "both"', async () => {
      const carol = track(await connect(srv, 'carol', 'x', { autoApprove: true }));
      const dave = track(await connect(srv, 'dave', 'x', { autoApprove: true }));
      await Promise.all([sendPresence(carol), sendPresence(dave)]);
      await Promise.all([
        sendPresence(carol, { type: 'subscribe', to: 'dave@localhost' }),
        sendPresence(dave, { type: 'subscribe', to: 'carol@localhost' }),
      ]);
      await until('both rosters say both', async () => (await subscriptionIs(carol, 'dave@localhost', 'both')) && (await subscriptionIs(dave, 'carol@localhost', 'both')), 10_000);
      await until('each sees the other', () => has(carol, 'available', dave.jid) && has(dave, 'available', carol.jid));
      // and presence changes flow both ways afterwards
      await sendPresence(dave, {}, xml('status', {}, 'after'));
      await until('carol sees dave\'s new status', () => carol.presences.some((p) => p.attrs.from === dave.jid && p.getChildText('status') === 'after'));
    });

    test('a pending subscription request is redelivered on the next login until answered', async () => {
      const alice = track(await connect(srv, 'alice', 'asker'));
      await sendPresence(alice);
      await sendPresence(alice, { type: 'subscribe', to: 'erin@localhost' }, xml('status', {}, 'hello erin'));
      await until('alice\'s roster shows ask', async () => (await item(alice, 'erin@localhost'))?.ask === 'subscribe');

      const erin1 = await connect(srv, 'erin', 'a');
      await sendPresence(erin1);
      await until('erin gets the request at login', () => has(erin1, 'subscribe', 'alice@localhost'));
      assert.equal(erin1.presences.find((p) => p.attrs.type === 'subscribe')!.getChildText('status'), 'hello erin');
      // dropped without an answer (and without </stream:stream>)
      drop(erin1);

      const erin2 = track(await connect(srv, 'erin', 'b'));
      await sendPresence(erin2);
      await until('erin gets it again', () => has(erin2, 'subscribe', 'alice@localhost'));
      await sendPresence(erin2, { type: 'subscribed', to: 'alice@localhost' });
      await until('alice has erin', async () => await subscriptionIs(alice, 'erin@localhost', 'to'));
      await until('alice sees erin', () => has(alice, 'available', erin2.jid));

      const erin3 = track(await connect(srv, 'erin', 'c'));
      await sendPresence(erin3);
      await until('erin/c has its own echo', () => has(erin3, 'available', erin3.jid));
      await new Promise((r) => setTimeout(r, 200));
      assert.ok(!has(erin3, 'subscribe', 'alice@localhost'), 'answered requests are not redelivered');
    });
  });
}
