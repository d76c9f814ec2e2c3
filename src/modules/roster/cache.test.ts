// The roster cache: reads overlapping writes are not kept (unit), and with the real module on
// memory, SQLite and PostgreSQL: entries live only while the account has a session, every change
// (roster set and remove, subscription changes through modify()) is seen at once, and account
// deletion drops the entry.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import roster from './index.ts';
import { RosterCache } from './cache.ts';
import { RosterServiceKey, type RosterItem, type RosterService } from './service.ts';
import { NS_ROSTER } from './codec.ts';
import type { StoredItem } from './roster.repo.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import { createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import { storageVariants, type OpenedStorage } from '../../testing/storages.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';

const H = 'example.test';
const ALICE = Jid.parse(`alice@${H}`);
const BOB = Jid.parse(`bob@${H}`);
const CAROL = Jid.parse(`carol@${H}`);

const stored = (contact: string, subscription: StoredItem['subscription'] = 'none'): StoredItem =>
  ({ contact, subscription, ask: false, approved: false, groups: [], ver: 1 });
const toItem = (s: StoredItem): RosterItem | undefined => {
  const jid = Jid.tryParse(s.contact);
  return jid ? { jid, groups: s.groups, subscription: s.subscription, ask: s.ask, approved: s.approved } : undefined;
};
function deferred<T>() {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => { resolve = res; reject = rej; });
  return { promise, resolve, reject };
}

describe('RosterCache', () => {
  test('a read is kept when keep() holds, and then served without reading again', async () => {
    const c = new RosterCache(toItem);
    let reads = 0;
    const load = async () => { reads++; return [stored('b@x.test', 'both'), stored('not a jid@@')] };
    const e = await c.get('alice', load, () => true);
    assert.deepEqual(e.items.map((i) => i.jid.toString()), ['b@x.test'], 'unparsable JIDs left out');
    assert.equal(e.byContact.get('b@x.test')?.subscription, 'both');
    assert.equal(await c.get('alice', load, () => true), e);
    assert.equal(reads, 1);
    assert.deepEqual(c.size, { entries: 1, loading: 0 });
    c.invalidate('alice');
    assert.equal(c.peek('alice'), undefined);
    assert.deepEqual(c.size, { entries: 0, loading: 0 });
  });

  test('not kept when keep() fails (no session); a failed read leaves nothing behind', async () => {
    const c = new RosterCache(toItem);
    await c.get('alice', async () => [stored('b@x.test')], () => false);
    assert.deepEqual(c.size, { entries: 0, loading: 0 });
    await assert.rejects(c.get('alice', async () => { throw new Error('db down'); }, () => true), /db down/);
    assert.deepEqual(c.size, { entries: 0, loading: 0 });
  });

  test('a read that overlaps a write is returned but not kept', async () => {
    const c = new RosterCache(toItem);
    const d = deferred<StoredItem[]>();
    const pending = c.get('alice', () => d.promise, () => true);
    assert.deepEqual(c.size, { entries: 0, loading: 1 });
    c.invalidate('alice'); // a write landed while the read was in flight
    d.resolve([stored('b@x.test', 'both')]);
    assert.equal((await pending).items.length, 1);
    assert.deepEqual(c.size, { entries: 0, loading: 0 }, 'the read may predate the write: not kept');
  });

  test('of two overlapping reads only the later one is kept', async () => {
    const c = new RosterCache(toItem);
    const first = deferred<StoredItem[]>();
    const second = deferred<StoredItem[]>();
    const a = c.get('alice', () => first.promise, () => true);
    const b = c.get('alice', () => second.promise, () => true);
    second.resolve([stored('new@x.test')]);
    await b;
    first.resolve([stored('old@x.test')]);
    await a;
    assert.deepEqual(c.peek('alice')?.items.map((i) => i.jid.toString()), ['new@x.test']);
    assert.deepEqual(c.size, { entries: 1, loading: 0 });
  });
});

const settle = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };
let seq = 0;
const iq = (type: 'get' | 'set', ...items: XmlElement[]) => x('iq', { xmlns: NS.CLIENT, type, id: `c${++seq}` }, x('query', { xmlns: NS_ROSTER }, items));
const itemsOf = (el: XmlElement | undefined) =>
  (el?.getChild('query', NS_ROSTER)?.getChildren('item', NS_ROSTER) ?? []).map((i) => `${i.attr('jid')} ${i.attr('subscription')}${i.attr('name') ? ` ${i.attr('name')}` : ''}`);
const setSub = (svc: RosterService, owner: Jid, contact: Jid, subscription: RosterItem['subscription']) =>
  svc.modify(owner, contact, (cur) => ({ jid: contact, groups: [], ask: false, approved: false, ...cur, subscription }));

for (const variant of storageVariants([roster as ModuleDefinition])) {
  describe(`the roster cache on ${variant.name}`, { skip: variant.skip }, () => {
    const opened: OpenedStorage[] = [];
    const harnesses: ModuleHarness[] = [];
    after(async () => {
      for (const h of harnesses) await h.stop();
      for (const o of opened) await o.cleanup();
    });
    async function start() {
      const o = await variant.open();
      opened.push(o);
      const h = await createModuleHarness([roster as ModuleDefinition], { hosts: [H], storage: o.storage });
      harnesses.push(h);
      for (const u of [ALICE, BOB, CAROL]) await h.addUser(u.toString());
      const svc = h.services.use(H, RosterServiceKey);
      return { h, svc, cache: (svc as unknown as { cache: RosterCache }).cache };
    }
    async function send(h: ModuleHarness, s: FakeSession, el: XmlElement): Promise<XmlElement[]> {
      await h.router.fromClient(s, el);
      await settle();
      return s.take();
    }

    test('kept only while the account has a session here; freed when its last session closes', async () => {
      const { h, svc, cache } = await start();
      await setSub(svc, ALICE, BOB, 'both');
      assert.equal((await svc.list(ALICE)).length, 1);
      assert.deepEqual(cache.size, { entries: 0, loading: 0 }, 'no session: read through');
      const desk = await h.connect(`${ALICE}/desk`);
      const phone = await h.connect(`${ALICE}/phone`);
      assert.equal((await svc.list(ALICE)).length, 1);
      assert.ok(cache.peek('alice'));
      await h.disconnect(desk);
      assert.ok(cache.peek('alice'), 'another session is left');
      await h.disconnect(phone);
      assert.deepEqual(cache.size, { entries: 0, loading: 0 });
    });

    test('roster sets and removals, and subscription changes, are seen at once', async () => {
      const { h, svc, cache } = await start();
      const desk = await h.connect(`${ALICE}/desk`);
      assert.deepEqual(itemsOf((await send(h, desk, iq('get')))[0]), []);
      assert.ok(cache.peek('alice'), 'the roster get filled the cache');

      await send(h, desk, iq('set', x('item', { jid: BOB.toString(), name: 'Bob' })));
      assert.deepEqual(itemsOf((await send(h, desk, iq('get')))[0]), [`${BOB} none Bob`]);
      assert.equal((await svc.get(ALICE, BOB))?.name, 'Bob');

      await setSub(svc, ALICE, BOB, 'to'); // as the presence module does (RFC 6121 §3)
      assert.equal((await svc.get(ALICE, BOB))?.subscription, 'to');
      assert.deepEqual((await svc.list(ALICE)).map((i) => i.subscription), ['to']);
      assert.deepEqual(itemsOf((await send(h, desk, iq('get')))[0]), [`${BOB} to Bob`]);
      assert.deepEqual(await svc.subscriptions!([ALICE], BOB), new Map([[ALICE.toString(), 'to']]));

      await svc.modify(ALICE, CAROL, () => ({ jid: CAROL, groups: ['G'], subscription: 'from', ask: false, approved: false }));
      assert.deepEqual((await svc.list(ALICE)).map((i) => `${i.jid} ${i.subscription}`), [`${BOB} to`, `${CAROL} from`]);

      await send(h, desk, iq('set', x('item', { jid: BOB.toString(), subscription: 'remove' })));
      assert.equal(await svc.get(ALICE, BOB), undefined);
      assert.deepEqual((await svc.list(ALICE)).map((i) => i.jid.toString()), [CAROL.toString()]);
      assert.deepEqual(await svc.subscriptions!([ALICE], BOB), new Map());
    });

    test('account deletion drops the entry, with the roster', async () => {
      const { h, svc, cache } = await start();
      const desk = await h.connect(`${ALICE}/desk`);
      await setSub(svc, ALICE, BOB, 'both');
      assert.equal((await svc.list(ALICE)).length, 1);
      assert.ok(cache.peek('alice'));
      // What the account deletion does after closing the sessions (left open here, to see the hook act).
      await h.storage.accounts.delete(H, 'alice');
      await h.hooks.emit('user:deleted', { host: H, username: 'alice' });
      assert.equal(cache.peek('alice'), undefined);
      assert.deepEqual(await svc.list(ALICE), []);
      await h.disconnect(desk);
      assert.deepEqual(cache.size, { entries: 0, loading: 0 });
    });

    test('subscriptions(): cached and stored rosters answer alike; owners that are no account have none', async () => {
      const { h, svc } = await start();
      await setSub(svc, BOB, ALICE, 'both');
      await setSub(svc, CAROL, ALICE, 'to');
      const ghost = Jid.parse(`ghost@${H}`); // no account: its row is left behind (orphaned)
      await setSub(svc, ghost, ALICE, 'both');
      const owners = [BOB, CAROL, ghost, Jid.parse(`nobody@${H}`), Jid.parse(`bob@elsewhere.test`), Jid.parse(H)];
      const expected = new Map([[BOB.toString(), 'both'], [CAROL.toString(), 'to']]);
      assert.deepEqual(await svc.subscriptions!(owners, ALICE), expected, 'from storage');
      await h.connect(`${BOB}/x`);
      await h.connect(`${CAROL}/x`);
      await svc.list(BOB);
      await svc.list(CAROL);
      assert.deepEqual(await svc.subscriptions!(owners, ALICE), expected, 'from the cache');
    });
  });
}
