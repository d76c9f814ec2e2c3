// XEP-0160 offline messages with XEP-0203 delay stamps, in process (real router, loader, hooks),
// on memory, SQLite and PostgreSQL storage. The presence module is not loaded: the tests set
// session availability and emit 'presence:available' themselves, as that module does.
import { describe, test, mock } from 'node:test';
import assert from 'node:assert/strict';
import { createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import { parseElement, x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import offline from './index.ts';
import { NS_DELAY, type StoredMessage } from './stored.ts';
import { storageVariants } from '../../testing/storages.ts';

const HOST = 'example.test';
const ALICE = `alice@${HOST}`;
const BOB = `bob@${HOST}`;
const defs = [offline] as ModuleDefinition[];

const msg = (to: string, body: string | null, attrs: Record<string, string> = {}, ...extra: XmlElement[]) =>
  x('message', { xmlns: NS.CLIENT, to, type: 'chat', ...attrs }, body === null ? null : x('body', null, body), ...extra);

const errorCondition = (el: XmlElement | undefined) =>
  el?.getChild('error')?.elements().find((c) => c.ns === NS.STANZAS)?.name;

/** What the presence module does for initial (or later) available presence. */
async function available(h: ModuleHarness, s: FakeSession, priority = 0, initial = true): Promise<void> {
  s.available = true;
  s.priority = priority;
  await h.hooks.emit('presence:available', { session: s, initial });
}

const stored = (h: ModuleHarness, user = 'bob') => h.storage.archive<StoredMessage>('offline').query(HOST, user);

for (const variant of storageVariants(defs)) {
  describe(`offline messages (${variant.name})`, { skip: variant.skip }, () => {
    async function setup(modules: Record<string, unknown> = {}) {
      const opened = await variant.open();
      const h = await createModuleHarness(defs, { hosts: [HOST], storage: opened.storage, modules });
      await h.addUser(ALICE);
      await h.addUser(BOB);
      const alice = await h.connect(`${ALICE}/desk`, { available: true });
      return {
        h, alice,
        async stop() { await h.stop(); await opened.cleanup(); },
      };
    }

    test('stored while offline, delivered in order on initial presence with delay stamps, then deleted', async () => {
      const { h, alice, stop } = await setup();
      try {
        const before = Date.now();
        for (const body of ['one', 'two', 'three']) await h.router.fromClient(alice, msg(BOB, body, { id: body }));
        await h.router.fromClient(alice, msg(BOB, 'four', { type: 'normal', id: 'four' }));
        await h.router.fromClient(alice, x('message', { xmlns: NS.CLIENT, to: BOB, id: 'five' }, x('body', null, 'five')));
        assert.deepEqual(alice.take(), [], 'no error to the sender');
        assert.equal((await stored(h)).length, 5);

        const bob = await h.connect(`${BOB}/phone`);
        assert.deepEqual(bob.take(), [], 'nothing before initial presence');
        await available(h, bob);
        const got = bob.take();
        assert.deepEqual(got.map((m) => m.getChildText('body')), ['one', 'two', 'three', 'four', 'five']);
        for (const m of got) {
          assert.equal(m.attr('from'), `${ALICE}/desk`, 'from as stamped by the server');
          assert.equal(m.attr('to'), BOB);
          const delays = m.getChildren('delay', NS_DELAY);
          assert.equal(delays.length, 1, 'one and only one delay (XEP-0203 §3)');
          assert.equal(delays[0]!.attr('from'), HOST);
          const stamp = delays[0]!.attr('stamp')!;
          assert.match(stamp, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'XEP-0082 DateTime in UTC with ms');
          assert.ok(Date.parse(stamp) >= before - 1 && Date.parse(stamp) <= Date.now());
        }
        assert.equal(got[3]!.attr('type'), 'normal');
        assert.deepEqual(await stored(h), [], 'deleted after delivery');

        // Later presence from the same session and a new session: nothing again.
        await available(h, bob, 5, false);
        const tablet = await h.connect(`${BOB}/tablet`);
        await available(h, tablet);
        assert.deepEqual(bob.take(), []);
        assert.deepEqual(tablet.take(), []);
      } finally {
        await stop();
      }
    });

    test('an available resource gets messages live; only negative priority means offline', async () => {
      const { h, alice, stop } = await setup();
      try {
        const bob = await h.connect(`${BOB}/phone`);
        await available(h, bob, 1);
        await h.router.fromClient(alice, msg(BOB, 'live'));
        assert.deepEqual(bob.take().map((m) => m.getChildText('body')), ['live']);
        assert.equal((await stored(h)).length, 0);

        // Connected but not available (no initial presence yet): stored.
        const laptop = await h.connect(`${BOB}/laptop`);
        bob.available = false;
        await h.router.fromClient(alice, msg(BOB, 'while connected'));
        assert.equal((await stored(h)).length, 1);
        assert.deepEqual([...bob.take(), ...laptop.take()], []);

        // Negative priority: RFC 6121 §8.5.2.1 never delivers bare-JID messages to it, so store;
        // delivery waits until the session goes non-negative (XEP-0160 §2).
        await available(h, laptop, -1);
        await h.router.fromClient(alice, msg(BOB, 'negative'));
        assert.deepEqual(laptop.take(), []);
        assert.equal((await stored(h)).length, 2);
        await available(h, laptop, 0, false);
        assert.deepEqual(laptop.take().map((m) => m.getChildText('body')), ['while connected', 'negative']);
        assert.equal((await stored(h)).length, 0);
      } finally {
        await stop();
      }
    });

    test('message types (XEP-0160 §3): groupchat bounced, headline and error ignored, none stored', async () => {
      const { h, alice, stop } = await setup();
      try {
        await h.router.fromClient(alice, msg(BOB, 'gc', { type: 'groupchat', id: 'g' }));
        const [err] = alice.take();
        assert.equal(err?.attr('type'), 'error');
        assert.equal(errorCondition(err), 'service-unavailable');
        await h.router.fromClient(alice, msg(BOB, 'news', { type: 'headline' }));
        await h.router.fromClient(alice, msg(BOB, 'oops', { type: 'error' }));
        assert.deepEqual(alice.take(), []);
        assert.equal((await stored(h)).length, 0);
      } finally {
        await stop();
      }
    });

    test('hints and payloads: chat states dropped quietly, no-store bounced, store and no-permanent-store kept', async () => {
      const { h, alice, stop } = await setup();
      try {
        const hint = (name: string) => x(name, { xmlns: 'urn:xmpp:hints' });
        const composing = x('composing', { xmlns: 'http://jabber.org/protocol/chatstates' });
        // XEP-0160 §3: chat-state-only → not stored, and no error for a typing notification.
        await h.router.fromClient(alice, msg(BOB, null, {}, composing));
        await h.router.fromClient(alice, msg(BOB, null, {}, composing, hint('no-store'), x('thread', null, 't1')));
        assert.deepEqual(alice.take(), []);
        assert.equal((await stored(h)).length, 0);
        // XEP-0334 §4.2 no-store: not stored, so the sender learns it was not delivered.
        await h.router.fromClient(alice, msg(BOB, 'secret', { id: 'ns' }, hint('no-store')));
        const [err] = alice.take();
        assert.equal(err?.attr('id'), 'ns');
        assert.equal(errorCondition(err), 'service-unavailable');
        // §4.1 no-permanent-store allows temporary storage for delivery; §4.4 store stores anything.
        await h.router.fromClient(alice, msg(BOB, 'otr', {}, hint('no-permanent-store')));
        await h.router.fromClient(alice, msg(BOB, null, {}, composing, hint('store')));
        await h.router.fromClient(alice, msg(BOB, null, {}, x('received', { xmlns: 'urn:xmpp:receipts', id: 'r1' })));
        assert.deepEqual(alice.take(), []);
        assert.equal((await stored(h)).length, 3);
      } finally {
        await stop();
      }
    });

    test('an unknown account gets service-unavailable and nothing is stored', async () => {
      const { h, alice, stop } = await setup();
      try {
        await h.router.fromClient(alice, msg(`nobody@${HOST}`, 'hello?', { id: 'u1' }));
        const [err] = alice.take();
        assert.equal(err?.attr('id'), 'u1');
        assert.equal(err?.attr('from'), `nobody@${HOST}`);
        assert.equal(errorCondition(err), 'service-unavailable');
        assert.equal((await stored(h, 'nobody')).length, 0);
      } finally {
        await stop();
      }
    });

    test('the per-account limit bounces further messages with service-unavailable, concurrent senders too', async () => {
      const { h, alice, stop } = await setup({ offline: { maxMessages: 3 } });
      try {
        for (const id of ['a', 'b', 'c']) await h.router.fromClient(alice, msg(BOB, id, { id }));
        assert.deepEqual(alice.take(), []);
        await h.router.fromClient(alice, msg(BOB, 'd', { id: 'd' }));
        const [err] = alice.take();
        assert.equal(err?.attr('type'), 'error');
        assert.equal(err?.attr('id'), 'd');
        assert.equal(errorCondition(err), 'service-unavailable');
        assert.equal(err?.getChild('error')?.attr('type'), 'cancel');
        assert.equal(err?.getChildText('body'), 'd', 'the payload is returned (RFC 6120 §8.3.1)');
        assert.equal((await stored(h)).length, 3);

        // Free the queue, then six senders at once: exactly three stored, three bounced.
        const bob = await h.connect(`${BOB}/phone`);
        await available(h, bob);
        assert.equal(bob.take().length, 3);
        await h.disconnect(bob);
        const senders = await Promise.all([1, 2, 3, 4, 5, 6].map((i) => h.connect(`${ALICE}/r${i}`, { available: true })));
        await Promise.all(senders.map((s, i) => h.router.fromClient(s, msg(BOB, `m${i}`))));
        const errors = senders.flatMap((s) => s.take());
        assert.equal(errors.length, 3);
        assert.ok(errors.every((e) => errorCondition(e) === 'service-unavailable'));
        assert.equal((await stored(h)).length, 3);
      } finally {
        await stop();
      }
    });

    test('maxBytes: a message that would take the stored bytes past the limit is bounced like a full queue', async () => {
      const { h, alice, stop } = await setup({ offline: { maxBytes: 10_000 } });
      try {
        const archive = h.storage.archive<StoredMessage>('offline');
        // Stored before (another process lifetime): counted, read from storage on first use.
        const earlier = x('message', { xmlns: NS.CLIENT, from: `${ALICE}/desk`, to: BOB, type: 'chat' }, x('body', null, 'e'.repeat(6000)));
        await archive.append(HOST, 'bob', { value: { stanza: earlier.toString() } });
        const storedBytes = async () => (await stored(h)).reduce((n, i) => n + Buffer.byteLength(i.value.stanza), 0);

        await h.router.fromClient(alice, msg(BOB, 'a'.repeat(3000), { id: 'fits' }));
        assert.deepEqual(alice.take(), []);
        await h.router.fromClient(alice, msg(BOB, 'b'.repeat(1000), { id: 'too-big' }));
        const [err] = alice.take();
        assert.equal(err?.attr('id'), 'too-big');
        assert.equal(errorCondition(err), 'service-unavailable');
        assert.equal(err?.getChild('error')?.attr('type'), 'cancel');
        await h.router.fromClient(alice, msg(BOB, 'small', { id: 'small' }));
        assert.deepEqual(alice.take(), [], 'a smaller one still fits');
        assert.equal((await stored(h)).length, 3);
        assert.ok((await storedBytes()) <= 10_000);
        // Concurrent senders cannot push past the limit either.
        await Promise.all([1, 2, 3, 4].map((i) => h.router.fromClient(alice, msg(BOB, String(i).repeat(300), { id: `c${i}` }))));
        assert.ok((await storedBytes()) <= 10_000, `${await storedBytes()} bytes stored`);
        alice.take();

        // Delivery empties the queue, and the room is back.
        const bob = await h.connect(`${BOB}/phone`);
        await available(h, bob);
        assert.ok(bob.take().length >= 3);
        await h.disconnect(bob);
        await h.router.fromClient(alice, msg(BOB, 'c'.repeat(9000), { id: 'after' }));
        assert.deepEqual(alice.take(), []);
        // A deleted and re-created account starts empty (its usage is forgotten with it).
        assert.equal(await h.storage.accounts.delete(HOST, 'bob'), true);
        await h.hooks.emit('user:deleted', { host: HOST, username: 'bob' });
        await h.addUser(BOB);
        await h.router.fromClient(alice, msg(BOB, 'd'.repeat(9000), { id: 'new-bob' }));
        assert.deepEqual(alice.take(), []);
      } finally {
        await stop();
      }
    });

    test('to a full JID: live resource gets it, a gone resource falls back to storage', async () => {
      const { h, alice, stop } = await setup();
      try {
        const bob = await h.connect(`${BOB}/phone`);
        bob.available = false; // connected, not available: a full-JID message still reaches it
        await h.router.fromClient(alice, msg(`${BOB}/phone`, 'direct'));
        assert.deepEqual(bob.take().map((m) => m.getChildText('body')), ['direct']);
        await h.disconnect(bob);
        // RFC 6121 §8.5.3.2.1: normal/chat to a gone resource → treated as to the bare JID.
        await h.router.fromClient(alice, msg(`${BOB}/phone`, 'after'));
        await h.router.fromClient(alice, msg(`${BOB}/phone`, 'hl', { type: 'headline' }));
        assert.deepEqual(alice.take(), []);
        const items = await stored(h);
        assert.equal(items.length, 1);
        assert.equal(items[0]!.with, ALICE);
        const again = await h.connect(`${BOB}/laptop`);
        await available(h, again);
        const [m] = again.take();
        assert.equal(m?.getChildText('body'), 'after');
        assert.equal(m?.attr('to'), `${BOB}/phone`, 'the original address is kept');
      } finally {
        await stop();
      }
    });

    test('a session that goes away during delivery keeps the rest for the next one; nothing twice', async () => {
      const { h, alice, stop } = await setup();
      try {
        for (const body of ['1', '2', '3', '4']) await h.router.fromClient(alice, msg(BOB, body));
        const bob = await h.connect(`${BOB}/phone`);
        const send = bob.send.bind(bob);
        bob.send = (el) => {
          send(el);
          if (bob.sent.length === 2) h.registry.remove(bob); // the connection drops after two
        };
        await available(h, bob);
        assert.deepEqual(bob.take().map((m) => m.getChildText('body')), ['1', '2']);
        assert.deepEqual((await stored(h)).map((i) => parseElement(i.value.stanza).getChildText('body')), ['3', '4']);
        const next = await h.connect(`${BOB}/laptop`);
        await available(h, next);
        assert.deepEqual(next.take().map((m) => m.getChildText('body')), ['3', '4']);
        assert.equal((await stored(h)).length, 0);
      } finally {
        await stop();
      }
    });

    test('more messages than one delivery batch arrive complete and in order', async () => {
      const { h, alice, stop } = await setup();
      try {
        const bodies = Array.from({ length: 230 }, (_, i) => `m${i}`);
        for (const b of bodies) await h.router.fromClient(alice, msg(BOB, b));
        const bob = await h.connect(`${BOB}/phone`);
        await available(h, bob);
        assert.deepEqual(bob.take().map((m) => m.getChildText('body')), bodies);
        assert.equal((await stored(h)).length, 0);
      } finally {
        await stop();
      }
    });

    test('a delay claiming to be from this server is removed before storing; other payload is kept', async () => {
      const { h, alice, stop } = await setup();
      try {
        const forged = x('delay', { xmlns: NS_DELAY, from: HOST, stamp: '2001-01-01T00:00:00Z' });
        const theirs = x('delay', { xmlns: NS_DELAY, from: ALICE, stamp: '2002-02-02T00:00:00Z' });
        const ext = x('x', { xmlns: 'urn:example:ext', 'xml:lang': 'de' }, x('y', { a: '<&>"' }, 'text & more'));
        await h.router.fromClient(alice, msg(BOB, 'hi <there> & "you"', {}, forged, theirs, ext));
        const bob = await h.connect(`${BOB}/phone`);
        await available(h, bob);
        const [m] = bob.take();
        assert.equal(m?.getChildText('body'), 'hi <there> & "you"');
        const delays = m!.getChildren('delay', NS_DELAY);
        assert.deepEqual(delays.map((d) => d.attr('from')), [ALICE, HOST]);
        assert.notEqual(delays[1]!.attr('stamp'), '2001-01-01T00:00:00Z');
        assert.equal(m!.getChild('x', 'urn:example:ext')?.toString(), ext.toString());
      } finally {
        await stop();
      }
    });

    test('retention: expired messages are never delivered and the daily sweep deletes them', async () => {
      mock.timers.enable({ apis: ['setInterval'] });
      const { h, alice, stop } = await setup({ offline: { retentionDays: 2 } });
      try {
        const archive = h.storage.archive<StoredMessage>('offline');
        const old = x('message', { xmlns: NS.CLIENT, from: `${ALICE}/desk`, to: BOB, type: 'chat' }, x('body', null, 'old'));
        const day = 24 * 60 * 60 * 1000;
        await archive.append(HOST, 'bob', { when: new Date(Date.now() - 3 * day), value: { stanza: old.toString() } });
        await archive.append(HOST, 'alice', { when: new Date(Date.now() - 3 * day), value: { stanza: old.toString() } });
        await h.router.fromClient(alice, msg(BOB, 'new'));
        const bob = await h.connect(`${BOB}/phone`);
        await available(h, bob);
        assert.deepEqual(bob.take().map((m) => m.getChildText('body')), ['new']);
        assert.equal((await stored(h, 'alice')).length, 1);
        mock.timers.tick(day);
        const deadline = Date.now() + 10_000; // real time: only timers are mocked
        while ((await stored(h, 'alice')).length > 0 && Date.now() < deadline) await new Promise((r) => setImmediate(r));
        assert.equal((await stored(h, 'alice')).length, 0, 'swept');
      } finally {
        mock.timers.reset();
        await stop();
      }
    });

    test('deleting the account deletes its stored messages; disco advertises msgoffline', async () => {
      const { h, alice, stop } = await setup();
      try {
        assert.ok(h.disco.featuresOf(HOST, 'host').includes('msgoffline'));
        await h.router.fromClient(alice, msg(BOB, 'bye'));
        assert.equal((await stored(h)).length, 1);
        assert.equal(await h.storage.accounts.delete(HOST, 'bob'), true);
        assert.equal((await stored(h)).length, 0);
      } finally {
        await stop();
      }
    });

    test('messages for another host are not this host’s business', async () => {
      const opened = await variant.open();
      const h = await createModuleHarness(defs, { hosts: [HOST, 'other.test'], storage: opened.storage });
      try {
        await h.addUser(ALICE);
        await h.addUser('bob@other.test');
        const alice = await h.connect(`${ALICE}/desk`, { available: true });
        await h.router.fromClient(alice, msg('bob@other.test', 'cross'));
        assert.deepEqual(alice.take(), []);
        assert.equal((await h.storage.archive<StoredMessage>('offline').query('other.test', 'bob')).length, 1);
        assert.equal((await stored(h)).length, 0);
        const bob = await h.connect('bob@other.test/x');
        await available(h, bob);
        assert.deepEqual(bob.take().map((m) => m.getChildText('body')), ['cross'], 'delivered once, by that host');
      } finally {
        await h.stop();
        await opened.cleanup();
      }
    });
  });
}
