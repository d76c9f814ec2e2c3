// The presence module with the real roster module, in-process, on memory, SQLite and PostgreSQL
// storage: subscription races (both sides at once), pre-approval, redelivery of pending
// requests, and roster removal (RFC 6121 §2.5.2) — the states as the roster stores them.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import { freshPgSchema } from '../../testing/index.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import { memoryStorage, openStorage, type Storage } from '../../storage/index.ts';
import { moduleStorageOptions } from '../storage-options.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { RosterServiceKey, type RosterItem, type RosterService } from '../roster/service.ts';
import rosterModule from '../roster/index.ts';
import presenceModule from './index.ts';

const HOST = 'example.test';
const A = `alice@${HOST}`;
const B = `bob@${HOST}`;
const C = `carol@${HOST}`;
const DEFS = [rosterModule, presenceModule] as ModuleDefinition[];

const variants: { name: string; skip?: string; open(): Promise<{ storage: Storage; cleanup(): Promise<void> }> }[] = [
  { name: 'memory', open: async () => ({ storage: memoryStorage(), cleanup: async () => {} }) },
  {
    name: 'sqlite',
    async open() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'amsel-presence-'));
      const storage = await openStorage({ type: 'sqlite', path: path.join(dir, 'amsel.db') }, moduleStorageOptions(DEFS));
      return { storage, cleanup: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'postgres',
    skip: process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined,
    async open() {
      const pg = await freshPgSchema();
      const storage = await openStorage({ type: 'postgres', url: pg.url, poolSize: 4 }, moduleStorageOptions(DEFS));
      return { storage, cleanup: () => pg.drop() };
    },
  },
];

const pres = (attrs: Record<string, string | undefined> = {}, ...children: XmlElement[]) => x('presence', { xmlns: NS.CLIENT, ...attrs }, ...children);
const types = (s: FakeSession, from: string) => s.take().filter((e) => e.name === 'presence' && e.attr('from') === from).map((e) => e.attr('type') ?? 'available');

for (const v of variants) {
  describe(`presence with the real roster on ${v.name}`, { skip: v.skip }, () => {
    async function world(): Promise<{ h: ModuleHarness; roster: RosterService; done(): Promise<void> }> {
      const { storage, cleanup } = await v.open();
      const h = await createModuleHarness(DEFS, { storage });
      for (const u of [A, B, C]) await h.addUser(u);
      return { h, roster: h.services.use(HOST, RosterServiceKey), async done() { await h.stop(); await cleanup(); } };
    }
    const state = async (roster: RosterService, owner: string, contact: string) => {
      const it = await roster.get(Jid.parse(owner), Jid.parse(contact));
      const pending = (await roster.pendingIn(Jid.parse(owner))).some((p) => p.from.toString() === contact);
      return `${it?.subscription ?? 'none'}${it?.ask ? '+out' : ''}${pending ? '+in' : ''}${it?.approved ? '+approved' : ''}`;
    };

    test('both subscribe at once, each approving what it sees: both end with "both"', async () => {
      const w = await world();
      try {
        for (let round = 0; round < 4; round++) {
          const alice = await w.h.connect(`${A}/r${round}`);
          const bob = await w.h.connect(`${B}/r${round}`);
          await Promise.all([w.h.router.fromClient(alice, pres()), w.h.router.fromClient(bob, pres())]);
          const later: Promise<void>[] = [];
          for (const [s, peer] of [[alice, B], [bob, A]] as const) {
            const orig = s.send.bind(s);
            (s as { send: (el: XmlElement) => void }).send = (el) => {
              orig(el);
              if (el.name === 'presence' && el.attr('type') === 'subscribe') later.push(w.h.router.fromClient(s, pres({ type: 'subscribed', to: peer })));
            };
          }
          const ops = [
            () => w.h.router.fromClient(alice, pres({ type: 'subscribe', to: B })),
            () => w.h.router.fromClient(bob, pres({ type: 'subscribe', to: A })),
          ];
          if (round % 2) ops.push(() => w.h.router.fromClient(bob, pres({ type: 'subscribed', to: A }))); // a pre-approval in the mix
          await Promise.all(ops.map((f) => f()));
          while (later.length) await later.shift();
          assert.equal(await state(w.roster, A, B), 'both', `round ${round}`);
          assert.equal(await state(w.roster, B, A), 'both', `round ${round}`);
          alice.take(); bob.take();
          await w.h.router.fromClient(alice, pres({}, x('status', null, 'hi')));
          assert.deepEqual(types(bob, alice.jid.toString()), ['available']);
          // reset for the next round: both cancel everything
          await w.h.router.fromClient(alice, pres({ type: 'unsubscribe', to: B }));
          await w.h.router.fromClient(alice, pres({ type: 'unsubscribed', to: B }));
          assert.equal(await state(w.roster, A, B), 'none');
          assert.equal(await state(w.roster, B, A), 'none');
          await w.h.disconnect(alice);
          await w.h.disconnect(bob);
        }
      } finally {
        await w.done();
      }
    });

    test('initial presence: probes answered from the contacts\' rosters, cached or stored (§4.3.2); changes seen at once', async () => {
      const w = await world();
      try {
        const D = `dave@${HOST}`; // no account, no roster
        const E = `erin@${HOST}`;
        const G = `ghost@${HOST}`;
        await w.h.addUser(E);
        await w.h.addUser(G);
        const set = (owner: string, contact: string, subscription: RosterItem['subscription']) => w.roster.modify(Jid.parse(owner), Jid.parse(contact),
          (cur) => ({ jid: Jid.parse(contact), groups: [], ask: false, approved: false, ...cur, subscription }));
        for (const c of [B, C, D, E, G]) await set(A, c, 'both');
        await set(B, A, 'both'); // online, subscribed: its presence
        await set(C, A, 'to'); // online, not subscribed: unsubscribed
        await set(E, A, 'from'); // offline, subscribed: nothing
        await w.h.storage.accounts.delete(HOST, 'ghost');
        await set(G, A, 'both'); // a row left behind by a deleted account: unsubscribed, as for no account
        const bob = await w.h.connect(`${B}/x`);
        await w.h.router.fromClient(bob, pres());
        const carol = await w.h.connect(`${C}/x`);
        await w.h.router.fromClient(carol, pres());
        const got = (s: FakeSession) => s.take().filter((e) => e.name === 'presence').map((e) => `${e.attr('type') ?? 'available'} ${e.attr('from')}`).sort();

        const desk = await w.h.connect(`${A}/desk`);
        await w.h.router.fromClient(desk, pres());
        assert.deepEqual(got(desk), [`available ${A}/desk`, `available ${B}/x`, `unsubscribed ${C}`, `unsubscribed ${D}`, `unsubscribed ${G}`]);
        for (const [c, sub] of [[B, 'both'], [C, 'from'], [D, 'from'], [E, 'both'], [G, 'from']]) assert.equal(await state(w.roster, A, c!), sub, c);

        // bob's roster (read while he is online) changes: the next probe sees it.
        await set(B, A, 'to');
        const phone = await w.h.connect(`${A}/phone`);
        await w.h.router.fromClient(phone, pres());
        assert.deepEqual(got(phone).filter((t) => !t.endsWith(`${A}/desk`) && !t.endsWith(`${A}/phone`)), [`unsubscribed ${B}`]);
      } finally {
        await w.done();
      }
    });

    test('pending requests survive in storage and are redelivered; pre-approval; roster removal cancels (§2.5.2)', async () => {
      const w = await world();
      try {
        const alice = await w.h.connect(`${A}/desk`);
        await w.h.router.fromClient(alice, pres());
        await w.h.router.fromClient(alice, pres({ type: 'subscribe', to: B }, x('status', null, 'me')));
        assert.equal(await state(w.roster, A, B), 'none+out');
        assert.equal(await state(w.roster, B, A), 'none+in');
        const bob = await w.h.connect(`${B}/x`);
        await w.h.router.fromClient(bob, pres());
        const req = bob.take().find((e) => e.attr('type') === 'subscribe')!;
        assert.equal(req.attr('from'), A);
        assert.equal(req.getChildText('status'), 'me', 'the stored stanza, as sent');
        await w.h.router.fromClient(bob, pres({ type: 'subscribed', to: A }));
        assert.equal(await state(w.roster, A, B), 'to');
        assert.equal(await state(w.roster, B, A), 'from');

        // carol pre-approves alice; alice's request is then approved without asking carol
        const carol = await w.h.connect(`${C}/x`);
        await w.h.router.fromClient(carol, pres());
        await w.h.router.fromClient(carol, pres({ type: 'subscribed', to: A }));
        assert.equal(await state(w.roster, C, A), 'none+approved');
        carol.take();
        await w.h.router.fromClient(alice, pres({ type: 'subscribe', to: C }));
        assert.equal(await state(w.roster, C, A), 'from');
        assert.equal(await state(w.roster, A, C), 'to');
        assert.deepEqual(carol.take().filter((e) => e.attr('type') === 'subscribe'), []);

        // bob removes alice from his roster (an IQ to the roster module): alice loses her subscription
        alice.take();
        await w.h.router.fromClient(bob, x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'rm' }, x('query', { xmlns: 'jabber:iq:roster' }, x('item', { jid: A, subscription: 'remove' }))));
        // the roster module answers, pushes, then emits roster:item-removed in the background
        for (let i = 0; i < 100 && (await state(w.roster, A, B)) !== 'none'; i++) await new Promise((r) => setTimeout(r, 10));
        assert.equal(await state(w.roster, A, B), 'none');
        const got = alice.take().filter((e) => e.name === 'presence').map((e) => `${e.attr('type')} ${e.attr('from')}`);
        assert.deepEqual(got, [`unsubscribed ${B}`, `unavailable ${B}/x`], '§3.2.1: the cancellation, then bob\'s presence taken back');
      } finally {
        await w.done();
      }
    });
  });
}
