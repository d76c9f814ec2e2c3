// The roster repository contract, on memory, SQLite and PostgreSQL.
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import roster from './index.ts';
import { MemoryRosterRepo, SqlRosterRepo, type RosterRepo } from './roster.repo.ts';
import type { ItemData } from './codec.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import type { Storage } from '../../storage/index.ts';
import { storageVariants, type OpenedStorage } from '../../testing/storages.ts';
import { deriveCredentials } from '../../core/auth/scram.ts';

const H = 'example.test';
const item = (contact: string, extra: Partial<ItemData> = {}): ItemData => ({
  contact, subscription: 'none', ask: false, approved: false, groups: [], ...extra,
});

for (const variant of storageVariants([roster as ModuleDefinition])) {
  describe(`roster repo on ${variant.name}`, { skip: variant.skip }, () => {
    let opened: OpenedStorage;
    let storage: Storage;
    let repo: RosterRepo;
    let n = 0;
    /** A fresh owner per test: tests share one database. */
    const owner = () => `user${++n}`;

    before(async () => {
      opened = await variant.open();
      storage = opened.storage;
      repo = storage.dialect === 'memory'
        ? new MemoryRosterRepo(async (host, o) => (await storage.accounts.get(host, o)) !== null)
        : new SqlRosterRepo(() => storage.db);
    });
    after(async () => {
      await storage.close();
      await opened.cleanup();
    });

    test('put, get, list and count; each change bumps the version; the epoch stays', async () => {
      const o = owner();
      assert.equal(await repo.version(H, o), undefined, 'no counter before the first change');
      assert.deepEqual(await repo.list(H, o), []);
      const v1 = await repo.put(H, o, item('b@x.test', { name: 'Bé 🐦', groups: ['Friends', 'Ünïcode'], subscription: 'to', ask: true }));
      assert.equal(v1.n, 1);
      assert.match(v1.epoch, /^[0-9a-f]{8}$/);
      assert.equal(v1.purged, 0);
      const v2 = await repo.put(H, o, item('a@x.test', { approved: true }));
      assert.deepEqual({ ...v2 }, { epoch: v1.epoch, n: 2, purged: 0 });
      assert.deepEqual(await repo.get(H, o, 'b@x.test'), {
        contact: 'b@x.test', name: 'Bé 🐦', groups: ['Friends', 'Ünïcode'], subscription: 'to', ask: true, approved: false, ver: 1,
      });
      const a = await repo.get(H, o, 'a@x.test');
      assert.equal(a?.name, undefined);
      assert.equal(a?.approved, true);
      assert.deepEqual((await repo.list(H, o)).map((i) => i.contact), ['a@x.test', 'b@x.test'], 'sorted by contact');
      assert.equal(await repo.count(H, o), 2);
      assert.deepEqual(await repo.version(H, o), v2);
    });

    test('put replaces an item and stamps it with the new version', async () => {
      const o = owner();
      await repo.put(H, o, item('c@x.test', { name: 'old', groups: ['G'] }));
      const v = await repo.put(H, o, item('c@x.test', { name: 'new', subscription: 'both' }));
      assert.equal(v.n, 2);
      assert.deepEqual(await repo.get(H, o, 'c@x.test'), { ...item('c@x.test', { name: 'new', subscription: 'both' }), ver: 2 });
      assert.equal(await repo.count(H, o), 1);
    });

    test('remove leaves a tombstone; since() gives what changed after a version', async () => {
      const o = owner();
      await repo.put(H, o, item('a@x.test')); // 1
      await repo.put(H, o, item('b@x.test')); // 2
      await repo.put(H, o, item('c@x.test')); // 3
      assert.equal(await repo.remove(H, o, 'nobody@x.test', Date.now(), 10), undefined, 'no such item: nothing changes');
      assert.equal((await repo.version(H, o))?.n, 3);
      const v4 = await repo.remove(H, o, 'b@x.test', Date.now(), 10); // 4
      assert.equal(v4?.n, 4);
      await repo.put(H, o, item('a@x.test', { name: 'A' })); // 5
      assert.equal(await repo.get(H, o, 'b@x.test'), undefined);
      const s = await repo.since(H, o, 2);
      assert.equal(s.version?.n, 5);
      assert.deepEqual(s.items.map((i) => [i.contact, i.ver]).sort(), [['a@x.test', 5], ['c@x.test', 3]]);
      assert.deepEqual(s.removed, [{ contact: 'b@x.test', ver: 4 }]);
      assert.deepEqual((await repo.since(H, o, 5)).items, []);
      // re-adding a removed contact drops its tombstone
      await repo.put(H, o, item('b@x.test')); // 6
      const s2 = await repo.since(H, o, 0);
      assert.deepEqual(s2.removed, []);
      assert.equal(s2.items.length, 3);
    });

    test('at most keepTombstones per owner: the oldest go and `purged` remembers them', async () => {
      const o = owner();
      for (const c of ['a', 'b', 'c', 'd']) await repo.put(H, o, item(`${c}@x.test`)); // 1..4
      for (const c of ['a', 'b', 'c']) await repo.remove(H, o, `${c}@x.test`, Date.now(), 2); // 5, 6, 7
      const v = await repo.version(H, o);
      assert.equal(v?.n, 7);
      assert.equal(v?.purged, 5, 'the tombstone of version 5 was dropped');
      assert.deepEqual((await repo.since(H, o, 0)).removed.map((t) => t.ver).sort(), [6, 7]);
      const none = owner();
      await repo.put(H, none, item('z@x.test'));
      await repo.remove(H, none, 'z@x.test', Date.now(), 0);
      assert.equal((await repo.version(H, none))?.purged, 2, 'keepTombstones 0 keeps none');
      assert.deepEqual((await repo.since(H, none, 0)).removed, []);
    });

    test('purgeTombstones purges by age per host, raising `purged`', async () => {
      const o1 = owner();
      const o2 = owner();
      const t0 = 1_700_000_000_000;
      for (const c of ['a', 'b', 'c']) await repo.put(H, o1, item(`${c}@x.test`)); // 1..3
      await repo.remove(H, o1, 'a@x.test', t0, 100); // 4, old
      await repo.remove(H, o1, 'b@x.test', t0 + 10_000, 100); // 5, new
      await repo.put(H, o2, item('a@x.test'));
      await repo.remove(H, o2, 'a@x.test', t0, 100); // o2: 2, old
      await repo.put('other.test', o1, item('a@x.test'));
      await repo.remove('other.test', o1, 'a@x.test', t0, 100);
      const purged = await repo.purgeTombstones(H, t0 + 5000);
      assert.ok(purged >= 2, `purged ${purged}`);
      assert.deepEqual((await repo.since(H, o1, 0)).removed, [{ contact: 'b@x.test', ver: 5 }]);
      assert.equal((await repo.version(H, o1))?.purged, 4);
      assert.equal((await repo.version(H, o2))?.purged, 2);
      assert.equal((await repo.since('other.test', o1, 0)).removed.length, 1, 'other hosts untouched');
      assert.equal((await repo.version('other.test', o1))?.purged, 0);
    });

    test('owners and hosts are separate', async () => {
      const o = owner();
      await repo.put(H, o, item('a@x.test'));
      await repo.put('other.test', o, item('b@x.test'));
      assert.deepEqual((await repo.list(H, o)).map((i) => i.contact), ['a@x.test']);
      assert.deepEqual((await repo.list('other.test', o)).map((i) => i.contact), ['b@x.test']);
      assert.equal((await repo.version(H, o))?.n, 1);
      assert.equal((await repo.version('other.test', o))?.n, 1);
    });

    test('concurrent puts to one owner get unique versions, none lost', async () => {
      const o = owner();
      const vs = await Promise.all(Array.from({ length: 20 }, (_, i) => repo.put(H, o, item(`c${i}@x.test`))));
      assert.deepEqual(vs.map((v) => v.n).sort((a, b) => a - b), Array.from({ length: 20 }, (_, i) => i + 1));
      assert.equal(new Set(vs.map((v) => v.epoch)).size, 1);
      assert.equal(await repo.count(H, o), 20);
    });

    test('pending inbound requests: add (replacing), list oldest first, remove, count, purge by age', async () => {
      const o = owner();
      await repo.addPendingIn(H, o, 'b@x.test', '<presence type="subscribe" n="1"/>', 2000);
      await repo.addPendingIn(H, o, 'a@x.test', '<presence type="subscribe"/>', 3000);
      await repo.addPendingIn(H, o, 'c@x.test', '<presence type="subscribe"/>', 1000);
      await repo.addPendingIn(H, o, 'b@x.test', '<presence type="subscribe" n="2"/>', 2500);
      assert.deepEqual((await repo.pendingIn(H, o)).map((p) => [p.from, p.receivedAt]), [['c@x.test', 1000], ['b@x.test', 2500], ['a@x.test', 3000]]);
      assert.equal((await repo.pendingIn(H, o))[1]!.stanza, '<presence type="subscribe" n="2"/>');
      assert.equal(await repo.countPendingIn(H, o), 3);
      assert.deepEqual(await repo.getPendingIn(H, o, 'a@x.test'), { from: 'a@x.test', stanza: '<presence type="subscribe"/>', receivedAt: 3000 });
      assert.equal(await repo.removePendingIn(H, o, 'a@x.test'), true);
      assert.equal(await repo.removePendingIn(H, o, 'a@x.test'), false);
      assert.equal(await repo.getPendingIn(H, o, 'a@x.test'), undefined);
      assert.deepEqual(await repo.list(H, o), [], 'requests are not roster items');
      assert.equal(await repo.purgePendingIn(H, 2000), 1);
      assert.deepEqual((await repo.pendingIn(H, o)).map((p) => p.from), ['b@x.test']);
    });

    test('subscriptions: each owner\'s state with a contact, for owners that are accounts; in chunks', async () => {
      const creds = await deriveCredentials('pw', 4096);
      const owners = Array.from({ length: 6 }, owner);
      for (const o of owners.slice(0, 5)) await storage.accounts.create(H, o, creds);
      const subs = ['both', 'from', 'to', 'none'] as const;
      for (let i = 0; i < 4; i++) await repo.put(H, owners[i]!, item('c@x.test', { subscription: subs[i] }));
      await repo.put(H, owners[4]!, item('d@x.test', { subscription: 'both' })); // another contact only
      await repo.put(H, owners[5]!, item('c@x.test', { subscription: 'both' })); // left behind: no account
      const expected = new Map(subs.map((s, i) => [owners[i]!, s]));
      assert.deepEqual(await repo.subscriptions(H, [...owners, owners[0]!, 'nobody'], 'c@x.test'), expected);
      assert.deepEqual(await repo.subscriptions(H, [], 'c@x.test'), new Map());
      assert.deepEqual(await repo.subscriptions(H, owners.slice(0, 3), 'c@x.test'), new Map(subs.slice(0, 3).map((s, i) => [owners[i]!, s])), 'three (padded)');
      // More owners than one statement takes: the owners with items at both ends of the list.
      const many = [owners[1]!, ...Array.from({ length: 1100 }, (_, i) => `stranger${i}`), owners[0]!];
      assert.deepEqual(await repo.subscriptions(H, many, 'c@x.test'), new Map([[owners[1]!, 'from'], [owners[0]!, 'both']]));
    });

    test('deleteOwner removes everything of one account only', async () => {
      const o = owner();
      const keep = owner();
      await repo.put(H, o, item('a@x.test'));
      await repo.put(H, o, item('b@x.test'));
      await repo.remove(H, o, 'b@x.test', Date.now(), 10);
      await repo.addPendingIn(H, o, 'c@x.test', '<presence/>', 1);
      await repo.put(H, keep, item('a@x.test'));
      await repo.deleteOwner(H, o);
      assert.deepEqual(await repo.list(H, o), []);
      assert.equal(await repo.version(H, o), undefined);
      assert.deepEqual(await repo.pendingIn(H, o), []);
      assert.deepEqual((await repo.since(H, o, 0)).removed, []);
      assert.equal(await repo.count(H, keep), 1);
    });

    if (variant.name !== 'memory') {
      test('the account purge (ownedTables) empties every roster table of the account', async () => {
        const o = owner();
        await repo.put(H, o, item('a@x.test'));
        await repo.put(H, o, item('b@x.test'));
        await repo.remove(H, o, 'b@x.test', Date.now(), 10);
        await repo.addPendingIn(H, o, 'c@x.test', '<presence/>', 1);
        await storage.deleteOwner(H, o);
        for (const t of ['roster_items', 'roster_tombstones', 'roster_versions', 'roster_pending_in']) {
          const r = await storage.db.selectFrom(t).select((eb: any) => eb.fn.countAll().as('n')).where('host', '=', H).where('owner', '=', o).executeTakeFirstOrThrow();
          assert.equal(Number((r as { n: number }).n), 0, t);
        }
      });
    }
  });
}
