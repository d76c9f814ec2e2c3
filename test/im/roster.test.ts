// Roster management (RFC 6121 §2) and versioning (XEP-0237) through real sockets with an
// independent client (@xmpp/client), on SQLite and on PostgreSQL: two resources of one
// account (a set on one is pushed to the other), errors, versioned retrieval after several
// changes including removals (empty result, then interim pushes that bring a cached roster up
// to date), and account deletion leaving no roster row behind (checked in the database).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import Database from 'better-sqlite3';
import pg from 'pg';
import type { Element } from '@xmpp/client';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { createClient, startClient, xml, type XmppClient } from '../clients/xmpp.ts';

const NS_ROSTER = 'jabber:iq:roster';
const NS_ROSTERVER = 'urn:xmpp:features:rosterver';
const ROSTER_TABLES = ['roster_items', 'roster_tombstones', 'roster_versions', 'roster_pending_in'];

interface Client {
  c: XmppClient;
  /** Roster pushes received (answered with a result, as RFC 6121 §2.1.6 asks). */
  pushes: Element[];
  /** Stream features seen during negotiation. */
  features: Element[];
}

async function connect(srv: TestServer, username: string, resource: string): Promise<Client> {
  const c = createClient({ service: `xmpp://localhost:${srv.ports.c2s}`, username, password: 'pw ' + username, resource });
  const out: Client = { c, pushes: [], features: [] };
  c.on('element', (el: Element) => { if (el.name === 'stream:features') out.features.push(el); });
  c.iqCallee.set(NS_ROSTER, 'query', (ctx) => {
    out.pushes.push((ctx as { stanza: Element }).stanza);
    return true;
  });
  await startClient(c);
  return out;
}

async function until(what: string, cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const getRoster = (cl: Client, ver?: string) =>
  cl.c.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: NS_ROSTER, ver })), 10_000);

const setItem = (cl: Client, jid: string, attrs: Record<string, string> = {}, groups: string[] = []) =>
  cl.c.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_ROSTER },
    xml('item', { jid, ...attrs }, ...groups.map((g) => xml('group', {}, g))))), 10_000);

const verOf = (el: Element) => el.getChild('query', NS_ROSTER)?.attrs.ver;

/** A client's roster cache: what a versioning client keeps between sessions. */
type Cache = Map<string, { name?: string; subscription: string; groups: string[] }>;
function apply(cache: Cache, query: Element): void {
  for (const i of query.getChildren('item')) {
    if (i.attrs.subscription === 'remove') cache.delete(i.attrs.jid!);
    else cache.set(i.attrs.jid!, { name: i.attrs.name, subscription: i.attrs.subscription!, groups: i.getChildren('group').map((g) => g.text()) });
  }
}
const sorted = (cache: Cache) => [...cache.entries()].sort(([a], [b]) => a.localeCompare(b));

for (const storage of ['sqlite', 'postgres'] as const) {
  describe(`roster over real sockets on ${storage}`, { skip: storage === 'postgres' && process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined }, () => {
    let srv: TestServer;
    const open: Client[] = [];
    const track = (cl: Client) => { open.push(cl); return cl; };

    before(async () => {
      srv = await startServer({ storage });
      await srv.adduser('alice@localhost', 'pw alice');
      await srv.adduser('bob@localhost', 'pw bob');
    });
    after(async () => {
      for (const cl of open) await cl.c.stop().catch(() => undefined);
      if (srv) {
        assert.equal(await srv.stop(), 0, 'clean exit');
        await srv.cleanup();
      }
    });

    /** Rows of the roster tables owned by `owner`, read straight from the database. */
    async function rosterRows(owner: string): Promise<Record<string, number>> {
      const counts: Record<string, number> = {};
      const st = srv.storage;
      if (st.type === 'sqlite') {
        const db = new Database(st.path, { readonly: true });
        try {
          for (const t of ROSTER_TABLES) counts[t] = (db.prepare(`SELECT count(*) AS n FROM ${t} WHERE owner = ?`).get(owner) as { n: number }).n;
        } finally {
          db.close();
        }
      } else {
        const db = new pg.Client({ connectionString: st.url });
        await db.connect();
        try {
          for (const t of ROSTER_TABLES) counts[t] = Number((await db.query(`SELECT count(*) AS n FROM ${t} WHERE owner = $1`, [owner])).rows[0].n);
        } finally {
          await db.end();
        }
      }
      return counts;
    }

    test('a set on one resource is pushed to the other interested resource; errors are stanza errors', async () => {
      const desk = track(await connect(srv, 'alice', 'desk'));
      const phone = track(await connect(srv, 'alice', 'phone'));
      const bobC = track(await connect(srv, 'bob', 'desk'));
      assert.ok(desk.features.some((f) => f.getChild('ver', NS_ROSTERVER)), 'XEP-0237 stream feature advertised');

      const r0 = await getRoster(desk);
      assert.equal(r0.attrs.type, 'result');
      assert.deepEqual(r0.getChild('query', NS_ROSTER)!.getChildren('item'), []);
      await getRoster(phone, '');
      await getRoster(bobC);

      const res = await setItem(desk, 'nurse@localhost', { name: 'Nurse' }, ['Servants']);
      assert.equal(res.attrs.type, 'result');
      await until('the push on the phone', () => phone.pushes.length === 1);
      await until('the push on the desk', () => desk.pushes.length === 1);
      const push = phone.pushes[0]!;
      assert.ok(!push.attrs.from || push.attrs.from === 'alice@localhost', 'a push comes from the account (RFC 6121 §2.1.6)');
      const it = push.getChild('query', NS_ROSTER)!.getChild('item')!;
      assert.equal(it.attrs.jid, 'nurse@localhost');
      assert.equal(it.attrs.name, 'Nurse');
      assert.equal(it.attrs.subscription, 'none');
      assert.deepEqual(it.getChildren('group').map((g) => g.text()), ['Servants']);
      assert.ok(verOf(push), 'the push carries ver');
      assert.equal(verOf(push), verOf(desk.pushes[0]!));

      // the full roster on another request
      const r1 = await getRoster(phone);
      assert.deepEqual(r1.getChild('query', NS_ROSTER)!.getChildren('item').map((i) => i.attrs.jid), ['nurse@localhost']);

      // errors (RFC 6121 §2.3.3)
      const condition = (p: Promise<unknown>) => p.then(() => 'no error', (e: { condition?: string }) => e.condition);
      assert.equal(await condition(desk.c.iqCaller.request(xml('iq', { type: 'set' }, xml('query', { xmlns: NS_ROSTER },
        xml('item', { jid: 'a@localhost' }), xml('item', { jid: 'b@localhost' }))), 10_000)), 'bad-request');
      assert.equal(await condition(setItem(desk, 'a@localhost', {}, ['G', 'G'])), 'bad-request');
      assert.equal(await condition(setItem(desk, 'a@localhost', {}, [''])), 'not-acceptable');
      assert.equal(await condition(setItem(desk, 'gone@localhost', { subscription: 'remove' })), 'item-not-found');
      assert.equal(await condition(desk.c.iqCaller.request(xml('iq', { type: 'get', to: 'bob@localhost' }, xml('query', { xmlns: NS_ROSTER })), 10_000)), 'forbidden');
      assert.equal(bobC.pushes.length, 0, "bob's resources saw nothing of alice's roster");

      await Promise.all([desk, phone, bobC].map((cl) => cl.c.stop()));
    });

    test('versioned retrieval after several changes, including removals', async () => {
      const desk = track(await connect(srv, 'alice', 'desk2'));
      const tablet = track(await connect(srv, 'alice', 'tablet'));
      await getRoster(desk);
      // the tablet bootstraps versioning and keeps a cache
      const boot = await getRoster(tablet, '');
      const cache: Cache = new Map();
      apply(cache, boot.getChild('query', NS_ROSTER)!);
      let ver = verOf(boot)!;
      assert.ok(ver);
      // unchanged → an empty result
      const same = await getRoster(tablet, ver);
      assert.equal(same.attrs.type, 'result');
      assert.equal(same.getChild('query', NS_ROSTER), undefined, 'empty IQ result, not an empty query');

      for (const c of ['a', 'b', 'c', 'd', 'e', 'f', 'g']) await setItem(desk, `${c}@localhost`, { name: c.toUpperCase() });
      await until('the tablet is told about the seven items', () => tablet.pushes.length === 7);
      for (const p of tablet.pushes) { apply(cache, p.getChild('query', NS_ROSTER)!); ver = verOf(p)!; }
      await tablet.c.stop();

      // while the tablet is away
      await setItem(desk, 'b@localhost', { subscription: 'remove' });
      await setItem(desk, 'c@localhost', { name: 'Cee' }, ['Friends']);
      await setItem(desk, 'h@localhost', { name: 'H' });
      await setItem(desk, 'nurse@localhost', { subscription: 'remove' });
      await setItem(desk, 'c@localhost', { name: 'Cee' }, ['Friends', 'Work']);
      const full = await getRoster(desk);

      const tablet2 = track(await connect(srv, 'alice', 'tablet'));
      const res = await getRoster(tablet2, ver);
      assert.equal(res.attrs.type, 'result');
      assert.equal(res.getChild('query', NS_ROSTER), undefined, 'an empty result: the changes come as pushes');
      await until('four interim pushes', () => tablet2.pushes.length === 4);
      await new Promise((r) => setTimeout(r, 200));
      assert.equal(tablet2.pushes.length, 4, 'one push per changed item, not per change');
      assert.deepEqual(tablet2.pushes.map((p) => p.getChild('query', NS_ROSTER)!.getChild('item')!.attrs.jid),
        ['b@localhost', 'h@localhost', 'nurse@localhost', 'c@localhost'], 'in order of their last modification');
      for (const p of tablet2.pushes) { apply(cache, p.getChild('query', NS_ROSTER)!); ver = verOf(p)!; }
      const truth: Cache = new Map();
      apply(truth, full.getChild('query', NS_ROSTER)!);
      assert.deepEqual(sorted(cache), sorted(truth), 'the cache is the roster again');
      assert.equal(cache.size, 7);

      // now up to date: empty result, no pushes
      const again = await getRoster(tablet2, ver);
      assert.equal(again.getChild('query', NS_ROSTER), undefined);
      // an unknown version: the full roster with the current version
      const unknown = await getRoster(tablet2, 'not-ours');
      assert.equal(unknown.getChild('query', NS_ROSTER)!.getChildren('item').length, 7);
      assert.equal(verOf(unknown), ver);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(tablet2.pushes.length, 4);
      await Promise.all([desk, tablet2].map((cl) => cl.c.stop()));
    });

    test('deleting the account leaves no roster row', async () => {
      const desk = track(await connect(srv, 'bob', 'desk'));
      await getRoster(desk);
      await setItem(desk, 'x@localhost');
      await setItem(desk, 'y@localhost');
      await setItem(desk, 'x@localhost', { subscription: 'remove' });
      await desk.c.stop();
      const before = await rosterRows('bob');
      assert.equal(before.roster_items, 1);
      assert.equal(before.roster_tombstones, 1);
      assert.equal(before.roster_versions, 1);
      const del = await srv.cli(['deluser', 'bob@localhost']);
      assert.equal(del.code, 0, del.stderr);
      assert.deepEqual(await rosterRows('bob'), Object.fromEntries(ROSTER_TABLES.map((t) => [t, 0])));
      assert.ok((await rosterRows('alice')).roster_items > 0, "alice's roster stays");
    });
  });
}
