// Offline messages (XEP-0160, XEP-0203 delay stamps) through real sockets with an independent
// client (@xmpp/client), on SQLite and PostgreSQL: bob is offline, alice sends three messages,
// bob logs in and sends initial presence → he gets them in order, stamped, exactly once; the
// per-account limit (modules.offline.maxMessages = 3) bounces the fourth to alice with an error.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import type { Element } from '@xmpp/client';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { login, ping, xml, type XmppClient } from '../clients/xmpp.ts';

const NS_DELAY = 'urn:xmpp:delay';
const NS_STANZAS = 'urn:ietf:params:xml:ns:xmpp-stanzas';

/** Every <message/> the client receives, in order. */
function inbox(c: XmppClient): Element[] {
  const got: Element[] = [];
  c.on('stanza', (el: Element) => { if (el.is('message')) got.push(el); });
  return got;
}

async function until(what: string, cond: () => boolean, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const chat = (to: string, body: string, id: string) => xml('message', { to, type: 'chat', id }, xml('body', {}, body));

for (const storage of ['sqlite', 'postgres'] as const) {
  describe(`offline messages over sockets (${storage})`, { skip: storage === 'postgres' && process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined }, () => {
    let srv: TestServer;
    const service = () => `xmpp://localhost:${srv.ports.c2s}`;
    const as = (username: string, resource: string) => login({ service: service(), username, password: `${username} pw`, resource });

    before(async () => {
      srv = await startServer({ storage, config: { modules: { offline: { maxMessages: 3 } } } });
      for (const u of ['alice', 'bob', 'carol']) await srv.adduser(`${u}@localhost`, `${u} pw`);
    });
    after(async () => {
      if (!srv) return;
      assert.equal(await srv.stop(), 0, 'server exits cleanly');
      await srv.cleanup();
    });

    test('stored while bob is offline, delivered in order with delay stamps on initial presence, never twice; the limit bounces', async () => {
      const alice = await as('alice', 'desk');
      const aliceGot = inbox(alice);
      try {
        await alice.send(xml('presence'));
        const sentAt = Date.now();
        for (const n of ['1', '2', '3']) await alice.send(chat('bob@localhost', `message ${n}`, `m${n}`));
        await ping(alice); // the server handles a connection's stanzas in order: all three are stored
        assert.deepEqual(aliceGot.filter((m) => m.attrs.type === 'error'), [], 'no error for the first three');

        // The fourth exceeds maxMessages: XEP-0160 §2, service-unavailable back to alice.
        await alice.send(chat('bob@localhost', 'message 4', 'm4'));
        await until('the bounce', () => aliceGot.some((m) => m.attrs.id === 'm4'));
        const bounce = aliceGot.find((m) => m.attrs.id === 'm4')!;
        assert.equal(bounce.attrs.type, 'error');
        assert.equal(bounce.attrs.from, 'bob@localhost');
        const error = bounce.getChild('error')!;
        assert.equal(error.attrs.type, 'cancel');
        assert.ok(error.getChild('service-unavailable', NS_STANZAS), bounce.toString());

        // bob comes online: nothing before his initial presence, then the three in order.
        const bob = await as('bob', 'phone');
        const bobGot = inbox(bob);
        try {
          await ping(bob);
          assert.equal(bobGot.length, 0, 'offline messages wait for initial presence (XEP-0160 §2)');
          await bob.send(xml('presence'));
          await until('three messages', () => bobGot.length >= 3);
          await ping(bob);
          await new Promise((r) => setTimeout(r, 200));
          assert.deepEqual(bobGot.map((m) => m.getChildText('body')), ['message 1', 'message 2', 'message 3'], 'in order, none twice, not the bounced one');
          for (const m of bobGot) {
            assert.equal(m.attrs.from, 'alice@localhost/desk');
            assert.equal(m.attrs.type, 'chat');
            const delays = m.getChildren('delay', NS_DELAY);
            assert.equal(delays.length, 1, m.toString());
            assert.equal(delays[0]!.attrs.from, 'localhost');
            const stamp = delays[0]!.attrs.stamp!;
            assert.match(stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
            assert.ok(Math.abs(Date.parse(stamp) - sentAt) < 30_000, `stamp ${stamp} is when it was stored`);
          }

          // Now online: live delivery, no delay stamp.
          await alice.send(chat('bob@localhost', 'live', 'm5'));
          await until('the live message', () => bobGot.length === 4);
          assert.equal(bobGot[3]!.getChildText('body'), 'live');
          assert.equal(bobGot[3]!.getChild('delay', NS_DELAY), undefined);
          assert.ok(!srv.output().includes('message 1'), 'no message body in the logs');
        } finally {
          await bob.stop();
        }

        // Another login of bob: nothing is delivered again; the store was emptied.
        const again = await as('bob', 'laptop');
        const againGot = inbox(again);
        try {
          await again.send(xml('presence'));
          await ping(again);
          await new Promise((r) => setTimeout(r, 300));
          assert.deepEqual(againGot.filter((m) => m.getChild('body')), [], 'nothing delivered twice');
        } finally {
          await again.stop();
        }
      } finally {
        await alice.stop();
      }
    });

    test('a resource that is gone, typing notifications and an unknown user', async () => {
      const alice = await as('alice', 'desk2');
      const aliceGot = inbox(alice);
      try {
        await alice.send(xml('presence'));
        // To a full JID whose resource is gone (RFC 6121 §8.5.3.2.1): stored like a bare-JID message.
        await alice.send(chat('carol@localhost/gone', 'to a gone resource', 'g1'));
        // Chat states alone are not stored (XEP-0160 §3) and not bounced either.
        await alice.send(xml('message', { to: 'carol@localhost', type: 'chat', id: 'cs' }, xml('composing', { xmlns: 'http://jabber.org/protocol/chatstates' })));
        // Unknown local user: service-unavailable.
        await alice.send(chat('nobody@localhost', 'hello?', 'u1'));
        await until('the bounce', () => aliceGot.some((m) => m.attrs.id === 'u1'));
        await ping(alice);
        const errors = aliceGot.filter((m) => m.attrs.type === 'error');
        assert.deepEqual(errors.map((m) => m.attrs.id), ['u1']);
        assert.ok(errors[0]!.getChild('error')!.getChild('service-unavailable', NS_STANZAS));

        const carol = await as('carol', 'phone');
        const carolGot = inbox(carol);
        try {
          await carol.send(xml('presence', {}, xml('priority', {}, '1')));
          await until('the stored message', () => carolGot.length >= 1);
          await ping(carol);
          await new Promise((r) => setTimeout(r, 200));
          assert.deepEqual(carolGot.map((m) => m.getChildText('body')), ['to a gone resource']);
          assert.equal(carolGot[0]!.attrs.to, 'carol@localhost/gone');
          assert.ok(carolGot[0]!.getChild('delay', NS_DELAY));
        } finally {
          await carol.stop();
        }
      } finally {
        await alice.stop();
      }
    });

    test('msgoffline is advertised (XEP-0160 §4)', async () => {
      const alice = await as('alice', 'disco');
      try {
        const info = await alice.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })), 5000);
        const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
        assert.ok(features.includes('msgoffline'), features.join(' '));
      } finally {
        await alice.stop();
      }
    });
  });
}
