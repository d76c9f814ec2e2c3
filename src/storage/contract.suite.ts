// The storage contract: one suite, run by memory.test.ts, sqlite.test.ts and postgres.test.ts.
// Engine-specific checks (WAL, paths, pools) live in those files.

import assert from 'node:assert/strict';
import { after, afterEach, describe, test } from 'node:test';
import type { StoredCredentials } from '../core/auth/credentials.ts';
import { AccountExistsError } from './accounts.ts';
import { prepared } from './prepared.ts';
import { StorageClosedError, type OpenOptions, type Storage } from './db.ts';
import { ArchiveIdExistsError, UnknownArchiveIdError, newArchiveId } from './kinds/archive.ts';
import { MigrationError, UnknownMigrationError, type Migration } from './migrate.ts';

export interface EngineDb {
  /** Opens (or re-opens) this database. Memory: always the same instance. */
  open(opts?: OpenOptions): Promise<Storage>;
  /** Removes the database (temp file, schema). */
  dispose(): Promise<void>;
}

export interface Engine {
  name: string;
  /** Has a SQL database (row counts, re-open, migrations). */
  sql: boolean;
  /**
   * Several opens of one database can race inside this process. Not for SQLite: better-sqlite3
   * waits for a lock synchronously, blocking the thread that holds it (sqlite.test.ts races
   * separate processes instead, which is the real case: server and CLI).
   */
  inProcessRace?: boolean;
  fresh(): Promise<EngineDb>;
}

export function creds(tag: string): StoredCredentials {
  return {
    'SHA-1': { salt: `c2FsdA${tag}==`, iterations: 4096, storedKey: `sk1-${tag}`, serverKey: `svk1-${tag}` },
    'SHA-256': { salt: `c2FsdB${tag}==`, iterations: 4096, storedKey: `sk256-${tag}`, serverKey: `svk256-${tag}` },
  };
}

/** Rows of a core table matching `where`, counted in the database itself. */
export async function rowCount(s: Storage, table: string, where: Record<string, string> = {}): Promise<number> {
  let q = s.db.selectFrom(table).select((eb: any) => eb.fn.countAll().as('n'));
  for (const [k, v] of Object.entries(where)) q = q.where(k, '=', v);
  const row = (await q.executeTakeFirstOrThrow()) as { n: number | string | bigint };
  return Number(row.n);
}

const T0 = Date.UTC(2024, 0, 1, 12, 0, 0);
const at = (sec: number) => new Date(T0 + sec * 1000);

export function storageContract(engine: Engine): void {
  describe(`storage contract: ${engine.name}`, () => {
    const open: { db: EngineDb; s: Storage }[] = [];
    async function fresh(opts?: OpenOptions): Promise<{ s: Storage; db: EngineDb }> {
      const db = await engine.fresh();
      const s = await db.open(opts);
      const entry = { db, s };
      open.push(entry);
      return entry;
    }
    afterEach(async () => {
      for (const { db, s } of open.splice(0)) {
        await s.close();
        await db.dispose();
      }
    });

    describe('accounts', () => {
      test('create then get returns the record', async () => {
        const { s } = await fresh();
        const before = Date.now();
        await s.accounts.create('example.org', 'alice', creds('a'));
        const after = Date.now();
        const r = await s.accounts.get('example.org', 'alice');
        assert.ok(r);
        assert.equal(r.host, 'example.org');
        assert.equal(r.username, 'alice');
        assert.deepEqual(r.credentials, creds('a'));
        assert.ok(r.createdAt instanceof Date);
        assert.ok(r.createdAt.getTime() >= before && r.createdAt.getTime() <= after, 'createdAt is now (ms)');
      });

      test('get of a missing account is null; host and username are separate keys', async () => {
        const { s } = await fresh();
        await s.accounts.create('example.org', 'alice', creds('a'));
        assert.equal(await s.accounts.get('example.org', 'bob'), null);
        assert.equal(await s.accounts.get('example.net', 'alice'), null);
        assert.equal(await s.accounts.get('example.org', 'Alice'), null, 'stored as given: callers canonicalise');
      });

      test('duplicate create throws AccountExistsError and keeps the first credentials', async () => {
        const { s } = await fresh();
        await s.accounts.create('example.org', 'alice', creds('a'));
        await assert.rejects(s.accounts.create('example.org', 'alice', creds('b')), (e: unknown) => {
          assert.ok(e instanceof AccountExistsError);
          assert.match((e as Error).message, /alice@example\.org/);
          return true;
        });
        assert.deepEqual((await s.accounts.get('example.org', 'alice'))?.credentials, creds('a'));
        await s.accounts.create('example.net', 'alice', creds('c')); // other host: fine
        assert.equal(await s.accounts.count(), 2);
      });

      test('the store keeps its own copy of the credentials', async () => {
        const { s } = await fresh();
        const c = creds('a');
        await s.accounts.create('example.org', 'alice', c);
        c['SHA-256'].storedKey = 'mutated';
        const r = await s.accounts.get('example.org', 'alice');
        assert.equal(r?.credentials['SHA-256'].storedKey, 'sk256-a');
        r!.credentials['SHA-1'].iterations = 1;
        assert.equal((await s.accounts.get('example.org', 'alice'))?.credentials['SHA-1'].iterations, 4096);
      });

      test('list and count, per host and overall, ordered by host then username', async () => {
        const { s } = await fresh();
        assert.deepEqual(await s.accounts.list(), []);
        assert.equal(await s.accounts.count(), 0);
        for (const [h, u] of [['b.example', 'zed'], ['a.example', 'mallory'], ['b.example', 'Bob'], ['b.example', 'alice'], ['a.example', 'carol']] as const) {
          await s.accounts.create(h, u, creds(u));
        }
        const all = await s.accounts.list();
        assert.deepEqual(
          all.map((a) => `${a.username}@${a.host}`),
          ['carol@a.example', 'mallory@a.example', 'Bob@b.example', 'alice@b.example', 'zed@b.example'],
        );
        assert.ok(all.every((a) => a.createdAt instanceof Date && !Number.isNaN(a.createdAt.getTime())));
        assert.ok(all.every((a) => !('credentials' in a)), 'list does not leak credentials');
        assert.deepEqual((await s.accounts.list('a.example')).map((a) => a.username), ['carol', 'mallory']);
        assert.deepEqual(await s.accounts.list('nowhere.example'), []);
        assert.equal(await s.accounts.count(), 5);
        assert.equal(await s.accounts.count('b.example'), 3);
        assert.equal(await s.accounts.count('nowhere.example'), 0);
      });

      test('setCredentials replaces them; false for a missing account', async () => {
        const { s } = await fresh();
        await s.accounts.create('example.org', 'alice', creds('a'));
        const created = (await s.accounts.get('example.org', 'alice'))!.createdAt;
        assert.equal(await s.accounts.setCredentials('example.org', 'alice', creds('new')), true);
        const r = await s.accounts.get('example.org', 'alice');
        assert.deepEqual(r?.credentials, creds('new'));
        assert.equal(r?.createdAt.getTime(), created.getTime(), 'createdAt unchanged');
        assert.equal(await s.accounts.setCredentials('example.org', 'bob', creds('x')), false);
        assert.equal(await s.accounts.get('example.org', 'bob'), null, 'no upsert');
      });

      test('setCredentials with expected credentials is a compare-and-set', async () => {
        const { s } = await fresh();
        await s.accounts.create('example.org', 'alice', creds('a'));
        const read = (await s.accounts.get('example.org', 'alice'))!.credentials;
        // changed meanwhile (a password change): the stale expectation loses, nothing is written
        assert.equal(await s.accounts.setCredentials('example.org', 'alice', creds('b')), true);
        assert.equal(await s.accounts.setCredentials('example.org', 'alice', creds('upgraded'), read), false);
        assert.deepEqual((await s.accounts.get('example.org', 'alice'))?.credentials, creds('b'));
        // what get() returned is still what is stored: replaced
        const now = (await s.accounts.get('example.org', 'alice'))!.credentials;
        assert.equal(await s.accounts.setCredentials('example.org', 'alice', creds('upgraded'), now), true);
        assert.deepEqual((await s.accounts.get('example.org', 'alice'))?.credentials, creds('upgraded'));
        assert.equal(await s.accounts.setCredentials('example.org', 'bob', creds('x'), now), false, 'no such account');
      });

      test('iterationCounts: accounts per SCRAM-SHA-1 iteration count, per host', async () => {
        const { s } = await fresh();
        const withIt = (tag: string, sha1: unknown, sha256 = 4096): StoredCredentials => {
          const c = creds(tag);
          (c['SHA-1'] as { iterations: unknown }).iterations = sha1;
          c['SHA-256'].iterations = sha256;
          return c;
        };
        assert.deepEqual(await s.accounts.iterationCounts('example.org'), new Map());
        for (let i = 0; i < 3; i++) await s.accounts.create('example.org', `old${i}`, withIt(`o${i}`, 4096));
        await s.accounts.create('example.org', 'new0', withIt('n0', 10_000, 10_000));
        await s.accounts.create('example.org', 'mixed', withIt('m', 20_000, 4096)); // the SHA-1 count is the one counted
        await s.accounts.create('example.net', 'other', withIt('x', 50_000));
        // no usable count: left out
        await s.accounts.create('example.org', 'null', withIt('s', null));
        await s.accounts.create('example.org', 'obj', withIt('o', { n: 4096 }));
        await s.accounts.create('example.org', 'zero', withIt('z', 0));
        await s.accounts.create('example.org', 'frac', withIt('f', 4096.5));
        await s.accounts.create('example.org', 'nosha1', { 'SHA-256': creds('y')['SHA-256'] } as unknown as StoredCredentials);
        assert.deepEqual(await s.accounts.iterationCounts('example.org'), new Map([[4096, 3], [10_000, 1], [20_000, 1]]));
        assert.deepEqual(await s.accounts.iterationCounts('example.net'), new Map([[50_000, 1]]));
        assert.deepEqual(await s.accounts.iterationCounts('nowhere.example'), new Map());
        // follows password changes and deletions
        assert.equal(await s.accounts.setCredentials('example.org', 'old0', withIt('o0b', 10_000, 10_000)), true);
        assert.equal(await s.accounts.delete('example.org', 'old1'), true);
        assert.deepEqual(await s.accounts.iterationCounts('example.org'), new Map([[4096, 1], [10_000, 2], [20_000, 1]]));
      });

      test('iterationCounts covers every account of a host, however many (batched on SQL engines)', async () => {
        const { s } = await fresh();
        const n = 4500; // more than two batches
        const c = (i: number): StoredCredentials => {
          const x = creds('b');
          x['SHA-1'].iterations = i % 3 === 0 ? 10_000 : 4096;
          return x;
        };
        if (engine.sql) {
          const rows = Array.from({ length: n }, (_, i) => ({ host: 'big.example', username: `u${String(i).padStart(5, '0')}`, credentials: JSON.stringify(c(i)), created_at: 0 }));
          for (let i = 0; i < n; i += 500) await s.db.insertInto('accounts').values(rows.slice(i, i + 500)).execute();
        } else {
          for (let i = 0; i < n; i++) await s.accounts.create('big.example', `u${i}`, c(i));
        }
        await s.accounts.create('big.examplf', 'next-host', creds('n'));
        assert.deepEqual(await s.accounts.iterationCounts('big.example'), new Map([[4096, 3000], [10_000, 1500]]));
      });

      test('delete removes the account and every kv/archive row it owns, nothing else', async () => {
        const { s } = await fresh();
        const h = 'example.org';
        for (const [host, u] of [[h, 'alice'], [h, 'bob'], ['example.net', 'alice']] as const) {
          await s.accounts.create(host, u, creds(u));
          await s.keyval<{ n: string }>('vcard').set(host, u, { n: u });
          await s.keyval<string[]>('blocklist').set(host, u, ['x@y']);
          await s.archive<string>('mam').append(host, u, { value: `hi ${u}`, with: 'peer@x' });
          await s.archive<string>('mam').append(host, u, { value: `ho ${u}` });
          await s.archive<string>('offline').append(host, u, { value: `off ${u}` });
        }
        // A room on the same host with the same local part is another owner only by convention:
        // it is the same (host, owner) pair, so it goes too. A different owner must stay.
        await s.keyval('x').set(h, 'alice2', 1);

        if (engine.sql) {
          assert.equal(await rowCount(s, 'kv', { host: h, owner: 'alice' }), 2);
          assert.equal(await rowCount(s, 'archive', { host: h, owner: 'alice' }), 3);
          assert.equal(await rowCount(s, 'kv'), 7);
          assert.equal(await rowCount(s, 'archive'), 9);
        }
        assert.equal(await s.accounts.delete(h, 'alice'), true);
        assert.equal(await s.accounts.get(h, 'alice'), null);
        assert.equal(await s.keyval('vcard').get(h, 'alice'), null);
        assert.equal(await s.keyval('blocklist').get(h, 'alice'), null);
        assert.equal(await s.archive('mam').count(h, 'alice'), 0);
        assert.equal(await s.archive('offline').count(h, 'alice'), 0);
        // others untouched
        assert.deepEqual(await s.keyval('vcard').get(h, 'bob'), { n: 'bob' });
        assert.deepEqual(await s.keyval('vcard').get('example.net', 'alice'), { n: 'alice' });
        assert.equal(await s.keyval('x').get(h, 'alice2'), 1);
        assert.equal(await s.archive('mam').count(h, 'bob'), 2);
        assert.equal(await s.archive('mam').count('example.net', 'alice'), 2);
        assert.equal(await s.archive('offline').count('example.net', 'alice'), 1);
        assert.equal(await s.accounts.count(), 2);
        if (engine.sql) {
          assert.equal(await rowCount(s, 'accounts'), 2);
          assert.equal(await rowCount(s, 'kv', { host: h, owner: 'alice' }), 0);
          assert.equal(await rowCount(s, 'archive', { host: h, owner: 'alice' }), 0);
          assert.equal(await rowCount(s, 'kv'), 5, 'only alice@example.org kv rows removed');
          assert.equal(await rowCount(s, 'archive'), 6, 'only alice@example.org archive rows removed');
        }
        assert.equal(await s.accounts.delete(h, 'alice'), false, 'second delete: no such account');
      });

      test('delete of a missing account touches nothing', async () => {
        const { s } = await fresh();
        await s.keyval('vcard').set('example.org', 'ghost', { a: 1 });
        assert.equal(await s.accounts.delete('example.org', 'ghost'), false);
        assert.deepEqual(await s.keyval('vcard').get('example.org', 'ghost'), { a: 1 });
      });

      test('deleteOwner removes all generic-kind rows of one owner', async () => {
        const { s } = await fresh();
        await s.keyval('a').set('h', 'room', 1);
        await s.keyval('b').set('h', 'room', 2);
        await s.keyval('a').set('h', 'other', 3);
        await s.archive('muc').append('h', 'room', { value: 'm' });
        await s.archive('muc').append('h', 'other', { value: 'n' });
        await s.deleteOwner('h', 'room');
        assert.equal(await s.keyval('a').get('h', 'room'), null);
        assert.equal(await s.keyval('b').get('h', 'room'), null);
        assert.equal(await s.archive('muc').count('h', 'room'), 0);
        assert.equal(await s.keyval('a').get('h', 'other'), 3);
        assert.equal(await s.archive('muc').count('h', 'other'), 1);
        await s.deleteOwner('h', 'nobody'); // no-op, no error
      });
    });

    describe('prepared queries', { skip: engine.sql ? false : 'SQL engines only' }, () => {
      test('compiled once, run with each call’s values in the right places', async () => {
        const { s } = await fresh();
        for (const u of ['alice', 'bob', 'carol']) await s.accounts.create('h', u, creds(u));
        await s.accounts.create('other', 'alice', creds('x'));
        const q = prepared<[host: string, after: string, limit: number], { username: string }>(3, (db, host, after, limit) =>
          db.selectFrom('accounts').select('username').where('host', '=', host).where('username', '>', after).orderBy('username').limit(limit));
        assert.deepEqual((await q.all(s.db, 'h', 'alice', 10)).map((r) => r.username), ['bob', 'carol']);
        assert.deepEqual((await q.all(s.db, 'h', '', 1)).map((r) => r.username), ['alice']);
        assert.deepEqual((await q.all(s.db, 'other', '', 5)).map((r) => r.username), ['alice']);
        assert.equal(await q.first(s.db, 'nowhere', '', 5), undefined);
        // Inside a transaction (another Kysely instance) it compiles again and still works.
        await s.db.transaction().execute(async (trx) => {
          assert.equal((await q.first(trx, 'h', 'bob', 5))?.username, 'carol');
        });
      });

      test('a placeholder used to shape the query instead of as a value is refused', async () => {
        const { s } = await fresh();
        const bad = prepared<[column: string]>(1, (db, column) => db.selectFrom('accounts').select(column as 'username'));
        await assert.rejects(bad.all(s.db, 'username'), /uses 0 of its 1 parameters/);
      });
    });

    describe('keyval', () => {
      test('get/set/overwrite/delete', async () => {
        const { s } = await fresh();
        const kv = s.keyval<{ name: string; tags: string[]; n: number | null }>('private');
        assert.equal(await kv.get('h', 'alice'), null);
        await kv.set('h', 'alice', { name: 'Älice 🐦 <x/>', tags: ['a', 'b'], n: null });
        assert.deepEqual(await kv.get('h', 'alice'), { name: 'Älice 🐦 <x/>', tags: ['a', 'b'], n: null });
        await kv.set('h', 'alice', { name: 'second', tags: [], n: 5 });
        assert.deepEqual(await kv.get('h', 'alice'), { name: 'second', tags: [], n: 5 });
        await kv.delete('h', 'alice');
        assert.equal(await kv.get('h', 'alice'), null);
        await kv.delete('h', 'alice'); // absent: no-op
        if (engine.sql) assert.equal(await rowCount(s, 'kv'), 0);
      });

      test('documents are separate per host, owner and store', async () => {
        const { s } = await fresh();
        await s.keyval('one').set('h1', 'u', 'h1-u-one');
        await s.keyval('one').set('h2', 'u', 'h2-u-one');
        await s.keyval('one').set('h1', 'v', 'h1-v-one');
        await s.keyval('two').set('h1', 'u', 'h1-u-two');
        assert.equal(await s.keyval('one').get('h1', 'u'), 'h1-u-one');
        assert.equal(await s.keyval('one').get('h2', 'u'), 'h2-u-one');
        assert.equal(await s.keyval('one').get('h1', 'v'), 'h1-v-one');
        assert.equal(await s.keyval('two').get('h1', 'u'), 'h1-u-two');
        await s.keyval('one').delete('h1', 'u');
        assert.equal(await s.keyval('two').get('h1', 'u'), 'h1-u-two');
        assert.equal(await s.keyval('one').get('h2', 'u'), 'h2-u-one');
      });

      test('values round-trip through JSON on every engine', async () => {
        const { s } = await fresh();
        const kv = s.keyval<any>('j');
        const v = { d: new Date(T0), u: undefined, nested: { arr: [1, 'two', { three: 3 }] }, big: 2 ** 52 };
        await kv.set('h', 'o', v);
        v.nested.arr.push(4); // the stored copy is unaffected
        assert.deepEqual(await kv.get('h', 'o'), { d: new Date(T0).toISOString(), nested: { arr: [1, 'two', { three: 3 }] }, big: 2 ** 52 });
        await kv.set('h', 'o', 0);
        assert.equal(await kv.get('h', 'o'), 0);
        await assert.rejects(kv.set('h', 'o', undefined), TypeError);
      });

      test('setMany writes several owners at once and skips owners without an account', async () => {
        const { s } = await fresh();
        const kv = s.keyval<{ at: number }>('last');
        const owners = Array.from({ length: 450 }, (_, i) => `u${i}`); // more than one chunk
        for (const u of owners) await s.accounts.create('h', u, creds(u));
        await kv.set('h', 'u1', { at: 1 });
        const entries = [...owners.map((u, i) => [u, { at: 1000 + i }] as const), ['gone', { at: 5 }] as const];
        assert.equal(await kv.setMany('h', entries), 450);
        assert.deepEqual(await kv.get('h', 'u1'), { at: 1001 }, 'replaced');
        assert.deepEqual(await kv.get('h', 'u449'), { at: 1449 });
        assert.equal(await kv.get('h', 'gone'), null, 'no account, no document');
        assert.equal(await kv.setMany('h', []), 0);
        // Deleted in between: a late write-behind flush does not bring the data back.
        await s.accounts.delete('h', 'u2');
        assert.equal(await kv.setMany('h', [['u2', { at: 9 }], ['u3', { at: 9 }]]), 1);
        assert.equal(await kv.get('h', 'u2'), null);
        assert.deepEqual(await kv.get('h', 'u3'), { at: 9 });
        if (engine.sql) assert.equal(await rowCount(s, 'kv', { host: 'h', owner: 'u2' }), 0);
      });
    });

    describe('archive', () => {
      async function seed(s: Storage) {
        const a = s.archive<{ body: string }>('mam');
        const ids: string[] = [];
        // 10 items, 10 s apart, alternating partners; one without `with`.
        for (let i = 0; i < 10; i++) {
          const w = i === 9 ? undefined : i % 2 === 0 ? 'romeo@example.net' : 'juliet@example.net';
          ids.push(await a.append('h', 'alice', { value: { body: `m${i}` }, when: at(i * 10), ...(w ? { with: w } : {}) }));
        }
        await a.append('h', 'bob', { value: { body: 'bob' }, when: at(5) }); // other owner
        await s.archive('other').append('h', 'alice', { value: 'x', when: at(5) }); // other store
        return { a, ids };
      }
      const bodies = (items: { value: { body: string } }[]) => items.map((i) => i.value.body);

      test('append returns unique ids; query returns items in time order with all fields', async () => {
        const { s } = await fresh();
        const { a, ids } = await seed(s);
        assert.equal(new Set(ids).size, 10);
        const items = await a.query('h', 'alice');
        assert.deepEqual(bodies(items), ['m0', 'm1', 'm2', 'm3', 'm4', 'm5', 'm6', 'm7', 'm8', 'm9']);
        assert.deepEqual(items.map((i) => i.id), ids);
        assert.deepEqual(items[0], { id: ids[0], host: 'h', owner: 'alice', with: 'romeo@example.net', when: at(0), value: { body: 'm0' } });
        assert.equal('with' in items[9]!, false, 'no with → property absent');
        assert.deepEqual(bodies(await a.query('h', 'bob')), ['bob']);
        assert.deepEqual(await a.query('h', 'nobody'), []);
        assert.deepEqual(await a.query('other-host', 'alice'), []);
      });

      test('generated ids sort by generation time', async () => {
        const ids = Array.from({ length: 1000 }, () => newArchiveId());
        assert.deepEqual([...ids].sort(), ids);
        assert.equal(new Set(ids).size, ids.length);
        assert.match(ids[0]!, /^[0-9A-HJKMNP-TV-Z]{26}$/);
        const a = newArchiveId();
        assert.ok(newArchiveId(T0) > a, 'a clock going back does not make ids go back');
      });

      test('when defaults to now; items sort by when, then append order', async () => {
        const { s } = await fresh();
        const a = s.archive<string>('x');
        const t1 = Date.now();
        await a.append('h', 'o', { value: 'now' });
        const t2 = Date.now();
        await a.append('h', 'o', { value: 'old', when: at(0) });
        await a.append('h', 'o', { value: 'same1', when: at(1) });
        await a.append('h', 'o', { value: 'same2', when: at(1) });
        await a.append('h', 'o', { value: 'same3', when: at(1) });
        const items = await a.query('h', 'o');
        assert.deepEqual(items.map((i) => i.value), ['old', 'same1', 'same2', 'same3', 'now']);
        const nowMs = items[4]!.when.getTime();
        assert.ok(nowMs >= t1 && nowMs <= t2);
        assert.deepEqual((await a.query('h', 'o', { reverse: true })).map((i) => i.value), ['now', 'same3', 'same2', 'same1', 'old']);
        // paging through equal timestamps
        const mid = items[2]!.id;
        assert.deepEqual((await a.query('h', 'o', { after: mid })).map((i) => i.value), ['same3', 'now']);
        assert.deepEqual((await a.query('h', 'o', { before: mid })).map((i) => i.value), ['old', 'same1']);
      });

      test('filters: with, start/end (inclusive), combined', async () => {
        const { s } = await fresh();
        const { a } = await seed(s);
        assert.deepEqual(bodies(await a.query('h', 'alice', { with: 'juliet@example.net' })), ['m1', 'm3', 'm5', 'm7']);
        assert.deepEqual(bodies(await a.query('h', 'alice', { start: at(30), end: at(60) })), ['m3', 'm4', 'm5', 'm6']);
        assert.deepEqual(bodies(await a.query('h', 'alice', { start: at(31) })), ['m4', 'm5', 'm6', 'm7', 'm8', 'm9']);
        // start + limit only (offline delivery's shape, a compiled-once query on SQL engines)
        assert.deepEqual(bodies(await a.query('h', 'alice', { start: at(31), limit: 2 })), ['m4', 'm5']);
        assert.deepEqual(bodies(await a.query('h', 'alice', { start: at(0), limit: 3 })), ['m0', 'm1', 'm2']);
        assert.deepEqual(bodies(await a.query('h', 'bob', { start: at(0), limit: 3 })), ['bob']);
        assert.deepEqual(await a.query('h', 'bob', { start: at(6), limit: 3 }), []);
        assert.deepEqual(bodies(await a.query('h', 'alice', { end: at(19) })), ['m0', 'm1']);
        assert.deepEqual(bodies(await a.query('h', 'alice', { with: 'romeo@example.net', start: at(20), end: at(80), limit: 2 })), ['m2', 'm4']);
        assert.deepEqual(bodies(await a.query('h', 'alice', { with: 'romeo@example.net', start: at(20), end: at(80), limit: 2, reverse: true })), ['m8', 'm6']);
        assert.deepEqual(await a.query('h', 'alice', { with: 'nobody@x' }), []);
        assert.deepEqual(await a.query('h', 'alice', { start: at(50), end: at(40) }), []);
        assert.equal(await a.count('h', 'alice'), 10);
        assert.equal(await a.count('h', 'alice', { with: 'juliet@example.net' }), 4);
        assert.equal(await a.count('h', 'alice', { with: 'romeo@example.net', start: at(20), end: at(80) }), 4);
        assert.equal(await a.count('h', 'nobody'), 0);
      });

      test('RSM paging forwards (after) and backwards (before + reverse)', async () => {
        const { s } = await fresh();
        const { a, ids } = await seed(s);
        // forwards, 3 per page
        const pages: string[][] = [];
        let last: string | undefined;
        for (;;) {
          const page = await a.query('h', 'alice', { limit: 3, ...(last ? { after: last } : {}) });
          if (page.length === 0) break;
          pages.push(bodies(page));
          last = page[page.length - 1]!.id;
        }
        assert.deepEqual(pages, [['m0', 'm1', 'm2'], ['m3', 'm4', 'm5'], ['m6', 'm7', 'm8'], ['m9']]);
        // backwards from the end, 4 per page
        const back: string[][] = [];
        let first: string | undefined;
        for (;;) {
          const page = await a.query('h', 'alice', { limit: 4, reverse: true, ...(first ? { before: first } : {}) });
          if (page.length === 0) break;
          back.push(bodies(page).reverse());
          first = page[page.length - 1]!.id;
        }
        assert.deepEqual(back, [['m6', 'm7', 'm8', 'm9'], ['m2', 'm3', 'm4', 'm5'], ['m0', 'm1']]);
        // after + before together, with a filter
        assert.deepEqual(bodies(await a.query('h', 'alice', { after: ids[1], before: ids[7] })), ['m2', 'm3', 'm4', 'm5', 'm6']);
        assert.deepEqual(bodies(await a.query('h', 'alice', { after: ids[1], before: ids[7], with: 'juliet@example.net' })), ['m3', 'm5']);
        // counts for RSM <count/> and <first index/>
        assert.equal(await a.count('h', 'alice', { before: ids[4] }), 4);
        assert.equal(await a.count('h', 'alice', { after: ids[4], with: 'romeo@example.net' }), 2);
        // limit 0 (RSM count-only) and bad limits
        assert.deepEqual(await a.query('h', 'alice', { limit: 0 }), []);
        await assert.rejects(a.query('h', 'alice', { limit: -1 }), TypeError);
        await assert.rejects(a.query('h', 'alice', { limit: 1.5 }), TypeError);
      });

      test('an unknown after/before id is an error (MAM item-not-found)', async () => {
        const { s } = await fresh();
        const { a, ids } = await seed(s);
        await assert.rejects(a.query('h', 'alice', { after: 'nope' }), UnknownArchiveIdError);
        await assert.rejects(a.query('h', 'alice', { before: 'nope', limit: 0 }), UnknownArchiveIdError);
        await assert.rejects(a.count('h', 'alice', { after: 'nope' }), UnknownArchiveIdError);
        // an id of another owner or store is unknown here
        await assert.rejects(a.query('h', 'bob', { after: ids[0] }), UnknownArchiveIdError);
        await assert.rejects(s.archive('other').query('h', 'alice', { after: ids[0] }), UnknownArchiveIdError);
      });

      test('caller-given ids; a duplicate id in the same store/owner throws', async () => {
        const { s } = await fresh();
        const a = s.archive<number>('x');
        assert.equal(await a.append('h', 'o', { id: 'stanza-id-1', value: 1, when: at(2) }), 'stanza-id-1');
        await assert.rejects(a.append('h', 'o', { id: 'stanza-id-1', value: 2 }), ArchiveIdExistsError);
        assert.equal(await a.append('h', 'o2', { id: 'stanza-id-1', value: 3 }), 'stanza-id-1'); // other owner: fine
        assert.equal(await s.archive<number>('y').append('h', 'o', { id: 'stanza-id-1', value: 4 }), 'stanza-id-1');
        assert.deepEqual((await a.query('h', 'o')).map((i) => i.value), [1]);
        assert.deepEqual((await a.query('h', 'o', { after: 'stanza-id-1' })).map((i) => i.value), []);
      });

      test('delete: all, by ids, by before, both; only this owner and store', async () => {
        const { s } = await fresh();
        const { a, ids } = await seed(s);
        assert.equal(await a.delete('h', 'alice', { ids: [] }), 0);
        assert.equal(await a.delete('h', 'alice', { ids: [ids[0]!, ids[1]!, 'unknown', ids[0]!] }), 2);
        assert.equal(await a.delete('h', 'alice', { before: at(40) }), 2); // m2, m3
        assert.equal(await a.delete('h', 'alice', { ids: [ids[4]!, ids[8]!], before: at(50) }), 1); // m4 only
        assert.deepEqual(bodies(await a.query('h', 'alice')), ['m5', 'm6', 'm7', 'm8', 'm9']);
        assert.equal(await a.delete('h', 'alice'), 5);
        assert.equal(await a.count('h', 'alice'), 0);
        assert.equal(await a.count('h', 'bob'), 1);
        assert.equal(await s.archive('other').count('h', 'alice'), 1);
        assert.equal(await a.delete('h', 'nobody'), 0);
      });

      test('deleteOlderThan sweeps every owner of this store only', async () => {
        const { s } = await fresh();
        const a = s.archive<string>('offline');
        for (const owner of ['u1', 'u2', 'u3']) {
          for (let i = 0; i < 5; i++) await a.append('h', owner, { value: `${owner}-${i}`, when: at(i) });
        }
        await a.append('h2', 'u1', { value: 'h2', when: at(0) });
        await s.archive<string>('mam').append('h', 'u1', { value: 'keep', when: at(0) });
        assert.equal(await a.deleteOlderThan(at(2)), 7); // i = 0, 1 for 3 owners + h2
        assert.equal(await a.count('h', 'u1'), 3);
        assert.equal(await a.count('h', 'u3'), 3);
        assert.deepEqual((await a.query('h', 'u2')).map((i) => i.value), ['u2-2', 'u2-3', 'u2-4']);
        assert.equal(await s.archive('mam').count('h', 'u1'), 1);
        assert.equal(await a.deleteOlderThan(at(2)), 0);
        if (engine.sql) assert.equal(await rowCount(s, 'archive'), 10);
      });

      test('invalid dates are refused', async () => {
        const { s } = await fresh();
        const a = s.archive<number>('x');
        await assert.rejects(a.append('h', 'o', { value: 1, when: new Date('nope') }), TypeError);
        await assert.rejects(a.query('h', 'o', { start: new Date(NaN) }), TypeError);
        await assert.rejects(a.deleteOlderThan(new Date(NaN)), TypeError);
      });

      test('a large page: order and limit hold over many items', async () => {
        const { s } = await fresh();
        const a = s.archive<number>('bulk');
        const n = 500;
        for (let i = 0; i < n; i++) await a.append('h', 'o', { value: i, when: at((i * 7919) % n) }); // shuffled times
        const all = await a.query('h', 'o');
        assert.equal(all.length, n);
        for (let i = 1; i < n; i++) assert.ok(all[i - 1]!.when <= all[i]!.when);
        const last = await a.query('h', 'o', { reverse: true, limit: 50 });
        assert.deepEqual(last.map((i) => i.id), all.slice(-50).reverse().map((i) => i.id));
        assert.equal(await a.delete('h', 'o', { ids: all.slice(0, 450).map((i) => i.id).concat(all.slice(0, 450).map((i) => i.id)) }), 450);
        assert.equal(await a.count('h', 'o'), 50);
      });
    });

    describe('lifecycle', () => {
      test('after close every call throws, nothing is silently dropped', async () => {
        const db = await engine.fresh();
        const s = await db.open();
        try {
          await s.accounts.create('h', 'u', creds('u'));
          await s.close();
          await s.close(); // idempotent
          await assert.rejects(s.accounts.get('h', 'u'), StorageClosedError);
          await assert.rejects(s.accounts.create('h', 'v', creds('v')), StorageClosedError);
          await assert.rejects(s.keyval('k').set('h', 'u', 1), StorageClosedError);
          await assert.rejects(s.archive('a').append('h', 'u', { value: 1 }), StorageClosedError);
          await assert.rejects(s.archive('a').deleteOlderThan(new Date()), StorageClosedError);
          await assert.rejects(s.deleteOwner('h', 'u'), StorageClosedError);
          if (engine.sql) assert.throws(() => s.db, StorageClosedError);
        } finally {
          await db.dispose();
        }
      });

      if (!engine.sql) return;

      test('data survives close and re-open; migrations are applied once (idempotent)', async () => {
        const { db, s } = await fresh();
        await s.accounts.create('h', 'u', creds('u'));
        await s.keyval('k').set('h', 'u', { v: 1 });
        const id = await s.archive('a').append('h', 'u', { value: 'x', when: at(0) });
        const migs = await s.db.selectFrom('schema_migrations').selectAll().orderBy('id').execute();
        assert.deepEqual(migs.map((m: any) => m.id), ['core/001-accounts', 'core/002-kv', 'core/003-archive']);
        assert.equal(typeof migs[0].applied_at, 'number');
        await s.close();
        for (let i = 0; i < 2; i++) {
          const s2 = await db.open();
          try {
            assert.deepEqual((await s2.accounts.get('h', 'u'))?.credentials, creds('u'));
            assert.deepEqual(await s2.keyval('k').get('h', 'u'), { v: 1 });
            assert.deepEqual((await s2.archive('a').query('h', 'u')).map((x) => x.id), [id]);
            assert.deepEqual(await s2.db.selectFrom('schema_migrations').selectAll().orderBy('id').execute(), migs);
          } finally {
            await s2.close();
          }
        }
      });

      test('module migrations run once, after core, each in its own transaction', async () => {
        const calls: string[] = [];
        const m1: Migration = {
          id: 'roster/001-items',
          async up(db, dialect) {
            calls.push(`${this.id}:${dialect}`);
            await db.schema.createTable('roster_items').addColumn('host', 'text', (c) => c.notNull()).addColumn('owner', 'text').execute();
          },
        };
        const { db, s } = await fresh({ migrations: [m1] });
        await s.db.insertInto('roster_items').values({ host: 'h', owner: 'o' }).execute();
        await s.close();
        const bad: Migration = {
          id: 'roster/002-broken',
          async up(db) {
            await db.schema.createTable('half_done').addColumn('x', 'text').execute();
            throw new Error('boom');
          },
        };
        await assert.rejects(db.open({ migrations: [m1, bad] }), (e: unknown) => {
          assert.ok(e instanceof MigrationError);
          assert.match((e as Error).message, /roster\/002-broken failed: boom/);
          return true;
        });
        const s2 = await db.open({ migrations: [m1] });
        try {
          assert.deepEqual(calls.length, 1, 'm1 ran once');
          const ids = (await s2.db.selectFrom('schema_migrations').select('id').orderBy('id').execute()).map((r: any) => r.id);
          assert.deepEqual(ids, ['core/001-accounts', 'core/002-kv', 'core/003-archive', 'roster/001-items']);
          // the failed migration's DDL was rolled back with it
          await assert.rejects(s2.db.selectFrom('half_done').selectAll().execute());
          assert.equal(await rowCount(s2, 'roster_items'), 1);
        } finally {
          await s2.close();
        }
        await assert.rejects(db.open({ migrations: [m1, m1] }), /duplicate migration id/);
        await assert.rejects(db.open({ migrations: [{ id: 'Bad Id', up: async () => {} }] }), /invalid migration id/);
      });

      test('refuses to start on a database migrated by a newer Amsel', async () => {
        const { db, s } = await fresh();
        await s.db.insertInto('schema_migrations').values({ id: 'core/999-from-the-future', applied_at: Date.now() }).execute();
        await s.close();
        await assert.rejects(db.open(), (e: unknown) => {
          assert.ok(e instanceof UnknownMigrationError);
          assert.equal((e as Error).message.startsWith('database is newer than this Amsel (unknown migration core/999-from-the-future)'), true);
          return true;
        });
        // the same applies to a known module's owner
        const s2 = await engine.fresh();
        const st = await s2.open({ migrations: [{ id: 'muc/001-rooms', up: async () => {} }] });
        await st.db.insertInto('schema_migrations').values({ id: 'muc/002-newer', applied_at: Date.now() }).execute();
        await st.close();
        await assert.rejects(s2.open({ migrations: [{ id: 'muc/001-rooms', up: async () => {} }] }), /unknown migration muc\/002-newer/);
        // but ids of a module not loaded in this run (disabled) are left alone
        const st2 = await s2.open();
        await st2.close();
        await s2.dispose();
      });

      test('concurrent opens of one database apply each migration exactly once', { skip: !engine.inProcessRace && 'raced across processes in the engine file' }, async () => {
        const { db, s } = await fresh();
        await s.close();
        let runs = 0;
        const m: Migration = {
          id: 'race/001-t',
          async up(conn) {
            runs++;
            await conn.schema.createTable('race_t').addColumn('x', 'text').execute();
          },
        };
        const all = await Promise.all([db.open({ migrations: [m] }), db.open({ migrations: [m] }), db.open({ migrations: [m] })]);
        for (const x of all) await x.close();
        assert.equal(runs, 1);
      });
      test('deleting an account purges the module tables it owns (ownedTables), nobody else\'s rows', { skip: !engine.sql && 'module tables need SQL' }, async () => {
        const m: Migration = {
          id: 'ownedtest/001-t',
          async up(conn) {
            await conn.schema.createTable('owned_t').addColumn('host', 'text').addColumn('owner', 'text').addColumn('x', 'text').execute();
          },
        };
        const { s } = await fresh({ migrations: [m], ownedTables: [{ table: 'owned_t' }] });
        await s.accounts.create('h.test', 'alice', creds('a'));
        await s.accounts.create('h.test', 'bob', creds('b'));
        await s.db.insertInto('owned_t').values([
          { host: 'h.test', owner: 'alice', x: '1' }, { host: 'h.test', owner: 'alice', x: '2' },
          { host: 'h.test', owner: 'bob', x: '3' }, { host: 'other.test', owner: 'alice', x: '4' },
        ]).execute();
        assert.equal(await s.accounts.delete('h.test', 'alice'), true);
        assert.equal(await rowCount(s, 'owned_t', { owner: 'alice', host: 'h.test' }), 0);
        assert.equal(await rowCount(s, 'owned_t'), 2);
        await s.deleteOwner('other.test', 'alice');
        assert.equal(await rowCount(s, 'owned_t'), 1);
      });
    });
  });
}
