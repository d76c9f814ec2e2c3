// XEP-0012 Last Activity in process (real router, loader, hooks), on memory, SQLite and
// PostgreSQL storage. A stand-in roster module provides RosterService with fixed items.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import { defineModule, type ModuleDefinition } from '../../core/modules/define.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { RosterServiceKey, type RosterItem, type RosterService, type Subscription } from '../roster/service.ts';
import { storageVariants } from '../../testing/storages.ts';
import last, { FLUSH_MS, NS_LAST, type LastRecord } from './index.ts';

const HOST = 'example.test';
const ALICE = `alice@${HOST}`;
const BOB = `bob@${HOST}`;
const CAROL = `carol@${HOST}`;
const DAVE = `dave@${HOST}`;

/** owner bare → contact bare → subscription */
function fakeRoster(items: Record<string, Record<string, Subscription>>): ModuleDefinition {
  const item = (contact: Jid, subscription: Subscription): RosterItem => ({ jid: contact, groups: [], subscription, ask: false, approved: false });
  const service: RosterService = {
    async get(owner, contact) {
      const sub = items[owner.bare.toString()]?.[contact.bare.toString()];
      return sub ? item(contact.bare, sub) : undefined;
    },
    async list() { throw new Error('not used'); },
    async modify() { throw new Error('not used'); },
    async addPendingIn() {},
    async removePendingIn() {},
    async pendingIn() { return []; },
  };
  return defineModule({ name: 'roster', defaultEnabled: true, setup(ctx) { ctx.provide(RosterServiceKey, service); } }) as ModuleDefinition;
}

// Bob's roster: alice may see his presence (from), carol only sees... nothing (to), dave both.
const roster = fakeRoster({ [BOB]: { [ALICE]: 'from', [CAROL]: 'to', [DAVE]: 'both' } });

const query = (id: string, to?: string) => x('iq', { xmlns: NS.CLIENT, type: 'get', id, to }, x('query', { xmlns: NS_LAST }));

async function ask(h: ModuleHarness, from: FakeSession, to: string | undefined): Promise<XmlElement> {
  from.take();
  await h.router.fromClient(from, query('q', to));
  const [reply] = from.take();
  assert.ok(reply, 'an answer');
  return reply;
}
const condition = (el: XmlElement) => el.getChild('error')?.elements().find((c) => c.ns === NS.STANZAS)?.name;
const lastQuery = (el: XmlElement) => el.getChild('query', NS_LAST);

for (const variant of storageVariants([last])) {
  describe(`last activity (${variant.name})`, { skip: variant.skip }, () => {
    /** What a stopping server does once its sessions are closed: store buffered logouts. */
    const flushLast = (h: { hooks: { emit(e: 'server:sessions-closed', p: Record<string, never>): Promise<void> } }) => h.hooks.emit('server:sessions-closed', {});

    async function setup(defs: ModuleDefinition[] = [roster, last as ModuleDefinition]) {
      const opened = await variant.open();
      const h = await createModuleHarness(defs, { hosts: [HOST], storage: opened.storage });
      for (const u of [ALICE, BOB, CAROL, DAVE]) await h.addUser(u);
      const alice = await h.connect(`${ALICE}/desk`, { available: true });
      return { h, alice, async stop() { await h.stop(); await opened.cleanup(); } };
    }

    test('to the server: uptime in seconds, no text (§5); advertised on host and accounts (§6)', async () => {
      const { h, alice, stop } = await setup();
      try {
        const r = await ask(h, alice, HOST);
        assert.equal(r.attr('type'), 'result');
        assert.equal(r.attr('from'), HOST);
        assert.match(lastQuery(r)!.attr('seconds')!, /^\d+$/);
        assert.equal(lastQuery(r)!.text(), '');
        assert.ok(h.disco.featuresOf(HOST, 'host').includes(NS_LAST));
        assert.ok(h.disco.featuresOf(HOST, 'account').includes(NS_LAST));
      } finally {
        await stop();
      }
    });

    test('after logout: seconds since and the last unavailable status, for contacts with from/both only (§3)', async () => {
      const { h, alice, stop } = await setup();
      try {
        const bob = await h.connect(`${BOB}/phone`, { available: true });
        // Online (connected) → seconds 0, also for the user asking about themself without 'to'.
        assert.equal(lastQuery(await ask(h, alice, BOB))!.attr('seconds'), '0');
        assert.equal(lastQuery(await ask(h, bob, undefined))!.attr('seconds'), '0');
        await h.router.fromClient(bob, x('presence', { xmlns: NS.CLIENT, type: 'unavailable' }, x('status', null, 'Heading Home')));
        await h.disconnect(bob);

        const r = await ask(h, alice, BOB);
        assert.equal(r.attr('type'), 'result');
        assert.equal(r.attr('from'), BOB);
        assert.equal(lastQuery(r)!.attr('seconds'), '0');
        assert.equal(lastQuery(r)!.text(), 'Heading Home');

        const dave = await h.connect(`${DAVE}/x`, { available: true });
        assert.equal(lastQuery(await ask(h, dave, BOB))!.text(), 'Heading Home');
        // Subscription 'to' (carol sees nothing of bob), no item, unknown account: all forbidden.
        const carol = await h.connect(`${CAROL}/x`, { available: true });
        assert.equal(condition(await ask(h, carol, BOB)), 'forbidden');
        assert.equal(condition(await ask(h, bob, ALICE)), 'forbidden', 'no item on alice’s roster');
        assert.equal(condition(await ask(h, alice, `nobody@${HOST}`)), 'forbidden', 'same answer as for an existing account');
        const reply = await ask(h, carol, BOB);
        assert.equal(reply.getChild('error')?.attr('type'), 'auth');

        // The time is counted from the stored logout (once the buffered logout is stored).
        await flushLast(h);
        const rec: LastRecord = { at: Date.now() - 903_400, status: 'Heading Home' };
        await h.storage.keyval<LastRecord>('last').set(HOST, 'bob', rec);
        assert.equal(lastQuery(await ask(h, alice, BOB))!.attr('seconds'), '903');
      } finally {
        await stop();
      }
    });

    test('only the last session closing records; a dropped connection records no status', async () => {
      const { h, alice, stop } = await setup();
      try {
        const kv = h.storage.keyval<LastRecord>('last');
        const phone = await h.connect(`${BOB}/phone`, { available: true });
        const laptop = await h.connect(`${BOB}/laptop`, { available: true });
        await h.router.fromClient(phone, x('presence', { xmlns: NS.CLIENT, type: 'unavailable' }, x('status', null, 'phone off')));
        await h.disconnect(phone);
        assert.equal(await kv.get(HOST, 'bob'), null, 'another session is still there');
        assert.equal(lastQuery(await ask(h, alice, BOB))!.attr('seconds'), '0');
        // Unavailable, then available again, then the connection drops: no status.
        await h.router.fromClient(laptop, x('presence', { xmlns: NS.CLIENT, type: 'unavailable' }, x('status', null, 'brb')));
        await h.router.fromClient(laptop, x('presence', { xmlns: NS.CLIENT }));
        // Directed presence is not the user's status.
        await h.router.fromClient(laptop, x('presence', { xmlns: NS.CLIENT, type: 'unavailable', to: ALICE }, x('status', null, 'directed')));
        await h.disconnect(laptop, 'connection lost');
        assert.equal(await kv.get(HOST, 'bob'), null, 'buffered, not stored yet');
        await flushLast(h);
        const rec = await kv.get(HOST, 'bob');
        assert.ok(rec);
        assert.equal(rec.status, '');
        assert.ok(Date.now() - rec.at < 5000);
        const q = lastQuery(await ask(h, alice, BOB))!;
        assert.match(q.attr('seconds')!, /^\d+$/);
        assert.equal(q.children.length, 0);
      } finally {
        await stop();
      }
    });

    test('never logged out: item-not-found for an authorized requester; account deletion removes the record', async () => {
      const { h, alice, stop } = await setup();
      try {
        assert.equal(condition(await ask(h, alice, BOB)), 'item-not-found');
        const bob = await h.connect(`${BOB}/phone`);
        await h.disconnect(bob);
        await flushLast(h);
        assert.ok(await h.storage.keyval<LastRecord>('last').get(HOST, 'bob'));
        await h.storage.accounts.delete(HOST, 'bob');
        assert.equal(await h.storage.keyval<LastRecord>('last').get(HOST, 'bob'), null);
      } finally {
        await stop();
      }
    });

    test('logouts are stored behind: in one batch after FLUSH_MS, answered from the buffer meanwhile', async (t) => {
      const { h, alice, stop } = await setup();
      try {
        t.mock.timers.enable({ apis: ['setTimeout'] });
        const kv = h.storage.keyval<LastRecord>('last');
        const bob = await h.connect(`${BOB}/phone`, { available: true });
        await h.router.fromClient(bob, x('presence', { xmlns: NS.CLIENT, type: 'unavailable' }, x('status', null, 'gone fishing')));
        await h.disconnect(bob);
        const dave = await h.connect(`${DAVE}/x`);
        await h.disconnect(dave);
        assert.equal(await kv.get(HOST, 'bob'), null);
        assert.equal(lastQuery(await ask(h, alice, BOB))!.text(), 'gone fishing', 'answered from the buffer');
        t.mock.timers.tick(FLUSH_MS);
        // The flush is one transaction; on PostgreSQL under load it takes a while (real time:
        // only setTimeout is mocked).
        const deadline = Date.now() + 10_000;
        while (!(await kv.get(HOST, 'dave')) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
        assert.equal((await kv.get(HOST, 'bob'))?.status, 'gone fishing');
        assert.ok(await kv.get(HOST, 'dave'), 'both logouts stored by the one timer');
      } finally {
        await stop();
      }
    });

    test('a deleted account’s buffered logout is never stored', async () => {
      const { h, stop } = await setup();
      try {
        const bob = await h.connect(`${BOB}/phone`);
        await h.disconnect(bob);
        await h.storage.accounts.delete(HOST, 'bob');
        await h.hooks.emit('user:deleted', { host: HOST, username: 'bob' });
        await flushLast(h);
        assert.equal(await h.storage.keyval<LastRecord>('last').get(HOST, 'bob'), null);
        // Deleted without the hook having run yet (a flush racing the deletion): setMany skips it.
        const dave = await h.connect(`${DAVE}/x`);
        await h.disconnect(dave);
        await h.storage.accounts.delete(HOST, 'dave');
        await flushLast(h);
        assert.equal(await h.storage.keyval<LastRecord>('last').get(HOST, 'dave'), null);
      } finally {
        await stop();
      }
    });

    test('without a roster module only the user may ask', async () => {
      const { h, alice, stop } = await setup([last as ModuleDefinition]);
      try {
        const bob = await h.connect(`${BOB}/phone`);
        await h.disconnect(bob);
        assert.equal(condition(await ask(h, alice, BOB)), 'forbidden');
        const bob2 = await h.connect(`${BOB}/laptop`);
        assert.equal(lastQuery(await ask(h, bob2, BOB))!.attr('seconds'), '0');
      } finally {
        await stop();
      }
    });
  });
}
