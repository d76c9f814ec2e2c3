// The presence module in-process: the real router, loader, hooks and registry, fake sessions,
// and a small in-memory RosterService (the roster module's contract, src/modules/roster/service.ts)
// provided by a test-only module named 'roster'.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import { defineModule, type ModuleDefinition } from '../../core/modules/define.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { RosterServiceKey, type RosterItem, type RosterService } from '../roster/service.ts';
import { KeyedLock } from '../../core/util/keyed-lock.ts';
import presenceModule from './index.ts';

const HOST = 'example.test';
const tick = () => new Promise<void>((r) => setImmediate(r));

/** An in-memory RosterService with real interleavings (every call yields once). */
function fakeRoster() {
  const items = new Map<string, Map<string, RosterItem>>();
  const pending = new Map<string, Map<string, { from: Jid; stanza: XmlElement }>>();
  const pushes: { owner: string; contact: string; item: RosterItem | undefined }[] = [];
  const lock = new KeyedLock();
  let emit: ((owner: Jid, contact: Jid, item: RosterItem) => Promise<void>) | undefined;
  const k = (j: Jid) => j.bare.toString();
  const service: RosterService = {
    async get(owner, contact) { await tick(); return items.get(k(owner))?.get(k(contact)); },
    async list(owner) { await tick(); return [...(items.get(k(owner))?.values() ?? [])]; },
    modify(owner, contact, fn) {
      return lock.run(k(owner), async () => {
        await tick();
        let m = items.get(k(owner));
        if (!m) items.set(k(owner), (m = new Map()));
        const cur = m.get(k(contact));
        const next = fn(cur);
        if (next) m.set(k(contact), next);
        else m.delete(k(contact));
        if (next !== cur) pushes.push({ owner: k(owner), contact: k(contact), item: next });
        return next;
      });
    },
    async addPendingIn(owner, from, stanza) {
      await tick();
      let m = pending.get(k(owner));
      if (!m) pending.set(k(owner), (m = new Map()));
      m.set(k(from), { from: from.bare, stanza });
    },
    async removePendingIn(owner, from) { await tick(); pending.get(k(owner))?.delete(k(from)); },
    async pendingIn(owner) { await tick(); return [...(pending.get(k(owner))?.values() ?? [])]; },
  };
  const module = defineModule({
    name: 'roster',
    defaultEnabled: true,
    setup(ctx) {
      ctx.provide(RosterServiceKey, service);
      emit = (owner, contact, item) => ctx.emit('roster:item-removed', { owner, contact, subscription: item.subscription, ask: item.ask });
    },
  });
  return {
    module, service, pushes,
    /** Set an item directly (test setup). */
    set(owner: string, contact: string, sub: RosterItem['subscription'], more: Partial<RosterItem> = {}) {
      const o = Jid.parse(owner);
      let m = items.get(k(o));
      if (!m) items.set(k(o), (m = new Map()));
      m.set(contact, { jid: Jid.parse(contact), groups: [], subscription: sub, ask: false, approved: false, ...more });
    },
    item(owner: string, contact: string) { return items.get(owner)?.get(contact); },
    pendingOf(owner: string) { return [...(pending.get(owner)?.keys() ?? [])]; },
    /** What the roster module does on <item subscription='remove'/> (RFC 6121 §2.5). */
    async remove(owner: string, contact: string) {
      const item = items.get(owner)?.get(contact);
      assert.ok(item);
      items.get(owner)!.delete(contact);
      await emit!(Jid.parse(owner), Jid.parse(contact), item);
    },
  };
}

interface World { h: ModuleHarness; roster: ReturnType<typeof fakeRoster>; events: { name: string; sid: string; initial?: boolean }[] }

async function world(): Promise<World> {
  const roster = fakeRoster();
  const h = await createModuleHarness([roster.module, presenceModule] as ModuleDefinition[], { hosts: [HOST, 'other.test'] });
  for (const u of ['alice', 'bob', 'carol']) await h.addUser(`${u}@${HOST}`);
  await h.addUser('dave@other.test');
  const events: World['events'] = [];
  h.hooks.on('presence:available', ({ session, initial }) => { events.push({ name: 'available', sid: session.id, initial }); });
  h.hooks.on('presence:unavailable', ({ session }) => { events.push({ name: 'unavailable', sid: session.id }); });
  return { h, roster, events };
}

const pres = (attrs: Record<string, string | undefined> = {}, ...children: XmlElement[]) => x('presence', { xmlns: NS.CLIENT, ...attrs }, ...children);
const prio = (n: string) => x('priority', null, n);
const send = (w: World, s: FakeSession, el: XmlElement) => w.h.router.fromClient(s, el);
/** Presence stanzas a session got, as "type from" strings (type 'available' when absent). */
const seen = (s: FakeSession, filter: (el: XmlElement) => boolean = () => true) =>
  s.take().filter((el) => el.name === 'presence' && filter(el)).map((el) => `${el.attr('type') ?? 'available'} ${el.attr('from')}`);
const A = `alice@${HOST}`;
const B = `bob@${HOST}`;
const C = `carol@${HOST}`;

test('initial presence: broadcast to subscribers and own resources, probes answered, priority set, hook emitted', async () => {
  const w = await world();
  w.roster.set(A, B, 'both');
  w.roster.set(B, A, 'both');
  w.roster.set(A, C, 'to'); // alice sees carol, carol does not see alice
  w.roster.set(C, A, 'from');
  const bob1 = await w.h.connect(`${B}/desk`);
  const bob2 = await w.h.connect(`${B}/idle`); // bound, never sent presence
  const carol = await w.h.connect(`${C}/x`);
  await send(w, bob1, pres({}, x('show', null, 'away')));
  await send(w, carol, pres());
  bob1.take(); carol.take();
  const alice1 = await w.h.connect(`${A}/desk`);
  const alice2 = await w.h.connect(`${A}/phone`);
  await send(w, alice2, pres({}, prio('-1')));
  alice2.take();
  bob1.take();

  await send(w, alice1, pres({}, prio('5'), x('status', null, 'hi')));
  assert.equal(alice1.available, true);
  assert.equal(alice1.priority, 5);
  assert.deepEqual(seen(bob1), [`available ${A}/desk`], 'the subscriber\'s available resource gets it');
  assert.equal(bob1.sent.length, 0);
  assert.deepEqual(seen(bob2), [], 'a resource that sent no presence gets none');
  assert.deepEqual(seen(carol), [], 'carol is not subscribed to alice');
  assert.deepEqual(seen(alice2), [`available ${A}/desk`], 'the user\'s other available resource');
  const got = alice1.take();
  const froms = got.map((el) => `${el.attr('type') ?? 'available'} ${el.attr('from')}`).sort();
  assert.deepEqual(froms, [`available ${A}/desk`, `available ${A}/phone`, `available ${B}/desk`, `available ${C}/x`].sort(),
    'echo, own other resource, and the probed contacts\' resources');
  const fromBob = got.find((el) => el.attr('from') === `${B}/desk`)!;
  assert.equal(fromBob.getChildText('show'), 'away', 'the contact\'s last presence as it was sent');
  assert.equal(fromBob.attr('to'), `${A}/desk`);
  assert.deepEqual(w.events.filter((e) => e.sid === alice1.id), [{ name: 'available', sid: alice1.id, initial: true }]);

  // §4.4: subsequent presence: broadcast again, no probes
  await send(w, alice1, pres({}, x('show', null, 'dnd')));
  assert.deepEqual(seen(alice1), [`available ${A}/desk`]);
  assert.deepEqual(seen(bob1), [`available ${A}/desk`]);
  assert.equal(alice1.priority, 0, 'no <priority/> → 0');
  assert.deepEqual(w.events.filter((e) => e.sid === alice1.id).at(-1), { name: 'available', sid: alice1.id, initial: false });
  await w.h.stop();
});

test('priority: -128..127 accepted, anything else is bad-request and changes nothing', async () => {
  const w = await world();
  const s = await w.h.connect(`${A}/r`);
  for (const bad of ['128', '-129', 'high', '1.5', '']) {
    await send(w, s, pres({ id: `p${bad}` }, prio(bad)));
    const [err] = s.take();
    assert.equal(err?.attr('type'), 'error', `priority '${bad}'`);
    assert.equal(err?.attr('id'), `p${bad}`);
    assert.ok(err?.getChild('error')?.getChild('bad-request', NS.STANZAS));
    assert.equal(s.available, false);
  }
  await send(w, s, pres({}, prio('1'), prio('2')));
  assert.equal(s.take()[0]?.attr('type'), 'error', 'two priorities');
  for (const [good, n] of [['-128', -128], ['127', 127], [' +3 ', 3], ['0', 0]] as const) {
    await send(w, s, pres({}, prio(good)));
    assert.equal(s.priority, n);
    assert.equal(s.available, true);
  }
  await w.h.stop();
});

test('mixed priorities drive bare-JID message delivery (RFC 6121 §8.5.2.1.1)', async () => {
  const w = await world();
  const desk = await w.h.connect(`${A}/desk`);
  const tab = await w.h.connect(`${A}/tab`);
  const phone = await w.h.connect(`${A}/phone`);
  const quiet = await w.h.connect(`${A}/quiet`); // never available
  const bob = await w.h.connect(`${B}/x`);
  await send(w, desk, pres({}, prio('5')));
  await send(w, tab, pres({}, prio('5')));
  await send(w, phone, pres({}, prio('-1')));
  for (const s of [desk, tab, phone, quiet]) s.take();
  await send(w, bob, x('message', { xmlns: NS.CLIENT, to: A, type: 'chat' }, x('body', null, 'hi')));
  assert.deepEqual([desk, tab, phone, quiet].map((s) => s.take().filter((e) => e.name === 'message').length), [1, 1, 0, 0]);
  await send(w, tab, pres({ type: 'unavailable' }));
  await send(w, bob, x('message', { xmlns: NS.CLIENT, to: A, type: 'chat' }, x('body', null, 'again')));
  assert.deepEqual([desk, tab, phone, quiet].map((s) => s.take().filter((e) => e.name === 'message').length), [1, 0, 0, 0]);
  await w.h.stop();
});

test('subscribe → request delivered and stored; subscribed → both rosters updated, presence flows (§3.1)', async () => {
  const w = await world();
  const alice = await w.h.connect(`${A}/desk`);
  const bob1 = await w.h.connect(`${B}/one`);
  const bob2 = await w.h.connect(`${B}/two`);
  for (const s of [alice, bob1, bob2]) await send(w, s, pres());
  for (const s of [alice, bob1, bob2]) s.take();

  await send(w, alice, pres({ type: 'subscribe', to: `${B}/one`, id: 's1' }, x('status', null, 'let me in')));
  assert.deepEqual(w.roster.item(A, B) && { sub: w.roster.item(A, B)!.subscription, ask: w.roster.item(A, B)!.ask }, { sub: 'none', ask: true });
  for (const b of [bob1, bob2]) {
    const [req, ...rest] = b.take();
    assert.equal(rest.length, 0);
    assert.equal(req!.attr('type'), 'subscribe');
    assert.equal(req!.attr('from'), A, '§3.1.2: stamped with the bare JID');
    assert.equal(req!.attr('to'), B, 'to the bare JID');
    assert.equal(req!.getChildText('status'), 'let me in');
  }
  assert.deepEqual(w.roster.pendingOf(B), [A]);
  assert.equal(w.roster.item(B, A), undefined, 'an inbound request creates no roster item');

  await send(w, bob1, pres({ type: 'subscribed', to: A }));
  assert.equal(w.roster.item(B, A)?.subscription, 'from');
  assert.equal(w.roster.item(A, B)?.subscription, 'to');
  assert.equal(w.roster.item(A, B)?.ask, false);
  assert.deepEqual(w.roster.pendingOf(B), []);
  const got = seen(alice).sort();
  assert.deepEqual(got, [`available ${B}/one`, `available ${B}/two`, `subscribed ${B}`], 'approval, then bob\'s current presence (§3.1.5)');

  // now alice's broadcasts do not reach bob (he has no subscription to her), bob's reach alice
  bob1.take(); bob2.take();
  await send(w, alice, pres({}, x('status', null, 'new')));
  assert.deepEqual(seen(bob1), []);
  await send(w, bob2, pres({}, x('status', null, 'new')));
  assert.deepEqual(seen(alice, (e) => e.attr('from') !== `${A}/desk`), [`available ${B}/two`]);
  await w.h.stop();
});

test('a pending request is redelivered on every initial presence until answered (§3.1.3)', async () => {
  const w = await world();
  const alice = await w.h.connect(`${A}/desk`);
  await send(w, alice, pres());
  await send(w, alice, pres({ type: 'subscribe', to: B }));
  alice.take();
  const bob = await w.h.connect(`${B}/x`);
  assert.deepEqual(seen(bob), [], 'nothing before initial presence');
  await send(w, bob, pres());
  assert.deepEqual(seen(bob, (e) => e.attr('type') === 'subscribe'), [`subscribe ${A}`]);
  await send(w, bob, pres({ type: 'unavailable' }));
  await send(w, bob, pres());
  assert.deepEqual(seen(bob, (e) => e.attr('type') === 'subscribe'), [`subscribe ${A}`], 'again after unavailable + initial');
  await send(w, bob, pres({}, x('show', null, 'away')));
  assert.deepEqual(seen(bob, (e) => e.attr('type') === 'subscribe'), [], 'not on subsequent presence');
  // a new resource gets it too
  const bob2 = await w.h.connect(`${B}/y`);
  await send(w, bob2, pres());
  assert.deepEqual(seen(bob2, (e) => e.attr('type') === 'subscribe'), [`subscribe ${A}`]);
  // denied: gone, and alice's ask cleared
  await send(w, bob2, pres({ type: 'unsubscribed', to: A }));
  assert.deepEqual(w.roster.pendingOf(B), []);
  assert.equal(w.roster.item(A, B)?.ask, false);
  assert.deepEqual(seen(alice, (e) => e.attr('type') === 'unsubscribed'), [`unsubscribed ${B}`]);
  await send(w, bob2, pres({ type: 'unavailable' }));
  await send(w, bob2, pres());
  assert.deepEqual(seen(bob2, (e) => e.attr('type') === 'subscribe'), []);
  await w.h.stop();
});

test('pre-approval (§3.4): approved before asked → the request is approved without asking the user', async () => {
  const w = await world();
  const alice = await w.h.connect(`${A}/desk`);
  const bob = await w.h.connect(`${B}/x`);
  await send(w, bob, pres({}, x('status', null, 'here')));
  await send(w, alice, pres());
  alice.take(); bob.take();
  await send(w, bob, pres({ type: 'subscribed', to: A }));
  assert.deepEqual(seen(alice), [], 'a pre-approval is not routed');
  assert.deepEqual({ ...w.roster.item(B, A), jid: undefined }, { jid: undefined, groups: [], subscription: 'none', ask: false, approved: true });
  await send(w, alice, pres({ type: 'subscribe', to: B }));
  assert.deepEqual(seen(bob), [], 'bob is not asked');
  assert.equal(w.roster.item(B, A)?.subscription, 'from');
  assert.equal(w.roster.item(B, A)?.approved, false);
  assert.equal(w.roster.item(A, B)?.subscription, 'to');
  assert.deepEqual(seen(alice).sort(), [`available ${B}/x`, `subscribed ${B}`]);
  // cancelling a pre-approval with unsubscribed
  await send(w, bob, pres({ type: 'subscribed', to: C }));
  assert.equal(w.roster.item(B, C)?.approved, true);
  await send(w, bob, pres({ type: 'unsubscribed', to: C }));
  assert.equal(w.roster.item(B, C)?.approved, false);
  await w.h.stop();
});

test('inbound subscribe when already subscribed → auto-reply subscribed (§3.1.3)', async () => {
  const w = await world();
  w.roster.set(A, B, 'to');
  w.roster.set(B, A, 'from');
  const alice = await w.h.connect(`${A}/desk`);
  const bob = await w.h.connect(`${B}/x`);
  await send(w, bob, pres());
  await send(w, alice, pres());
  alice.take(); bob.take();
  await send(w, alice, pres({ type: 'subscribe', to: B }));
  assert.deepEqual(seen(bob), [], 'not delivered');
  // the auto-reply changes nothing for alice, so it is not delivered (A.3.3); bob's presence comes again
  assert.deepEqual(seen(alice), [`available ${B}/x`]);
  assert.equal(w.roster.item(A, B)?.subscription, 'to');
  // a desynchronised alice (lost her side) gets back to 'to' through the auto-reply
  w.roster.set(A, B, 'none');
  await send(w, alice, pres({ type: 'subscribe', to: B }));
  assert.equal(w.roster.item(A, B)?.subscription, 'to');
  assert.deepEqual(seen(alice).sort(), [`available ${B}/x`, `subscribed ${B}`]);
  await w.h.stop();
});

test('both subscribe at once, several times over: both end with "both", nothing pending', async () => {
  for (let round = 0; round < 8; round++) {
    const w = await world();
    const alice = await w.h.connect(`${A}/desk`);
    const bob = await w.h.connect(`${B}/x`);
    await Promise.all([send(w, alice, pres()), send(w, bob, pres())]);
    // Each client approves every request it sees, as soon as it sees it.
    const approve = (s: FakeSession, peer: string) => {
      const orig = s.send.bind(s);
      (s as { send: (el: XmlElement) => void }).send = (el) => {
        orig(el);
        if (el.name === 'presence' && el.attr('type') === 'subscribe') later.push(send(w, s, pres({ type: 'subscribed', to: peer })));
      };
    };
    const later: Promise<void>[] = [];
    approve(alice, B);
    approve(bob, A);
    const ops = [() => send(w, alice, pres({ type: 'subscribe', to: B })), () => send(w, bob, pres({ type: 'subscribe', to: A }))];
    // On odd rounds the clients also approve up front (before any request arrives): pre-approvals.
    if (round % 2) ops.push(() => send(w, alice, pres({ type: 'subscribed', to: B })), () => send(w, bob, pres({ type: 'subscribed', to: A })));
    if (round % 4 >= 2) ops.reverse();
    await Promise.all(ops.map((f) => f()));
    while (later.length) await later.shift();
    for (const [o, c] of [[A, B], [B, A]] as const) {
      const it = w.roster.item(o, c)!;
      assert.equal(it.subscription, 'both', `round ${round}: ${o} → ${c}`);
      assert.equal(it.ask, false);
    }
    assert.deepEqual(w.roster.pendingOf(A), []);
    assert.deepEqual(w.roster.pendingOf(B), []);
    // and presence flows both ways
    alice.take(); bob.take();
    await send(w, alice, pres({}, x('status', null, 'r')));
    assert.deepEqual(seen(bob), [`available ${A}/desk`]);
    await w.h.stop();
  }
});

test('unavailable goes to subscribers, own resources and directed-presence recipients (§4.5, §4.6)', async () => {
  const w = await world();
  w.roster.set(A, B, 'from');
  w.roster.set(B, A, 'to');
  const alice = await w.h.connect(`${A}/desk`);
  const alice2 = await w.h.connect(`${A}/phone`);
  const bob = await w.h.connect(`${B}/x`);
  const carol = await w.h.connect(`${C}/x`);
  const carol2 = await w.h.connect(`${C}/y`);
  for (const s of [bob, carol, carol2, alice2]) await send(w, s, pres());
  await send(w, alice, pres());
  await send(w, alice, pres({ to: `${C}/x` }, x('status', null, 'psst')));
  await send(w, alice, pres({ to: B })); // a subscriber: not tracked separately
  for (const s of [alice, alice2, bob, carol, carol2]) s.take();
  await send(w, alice, pres({ type: 'unavailable' }, x('status', null, 'bye')));
  assert.deepEqual(seen(bob), [`unavailable ${A}/desk`], 'once, not twice');
  assert.deepEqual(seen(carol), [`unavailable ${A}/desk`], 'the directed-presence recipient');
  assert.deepEqual(seen(carol2), [], 'only the full JID that got directed presence');
  assert.deepEqual(seen(alice2), [`unavailable ${A}/desk`]);
  assert.equal(alice.available, false);
  assert.deepEqual(w.events.filter((e) => e.sid === alice.id).map((e) => e.name), ['available', 'unavailable']);
  // directed unavailable ends the tracking
  await send(w, alice, pres());
  await send(w, alice, pres({ to: C }));
  await send(w, alice, pres({ to: C, type: 'unavailable' }));
  carol.take(); carol2.take();
  await send(w, alice, pres({ type: 'unavailable' }));
  assert.deepEqual(seen(carol), []);
  await w.h.stop();
});

test('a connection that dies without unavailable → contacts and directed recipients get unavailable (§4.5.2)', async () => {
  const w = await world();
  w.roster.set(A, B, 'both');
  w.roster.set(B, A, 'both');
  const alice = await w.h.connect(`${A}/desk`);
  const alice2 = await w.h.connect(`${A}/phone`);
  const bob = await w.h.connect(`${B}/x`);
  const carol = await w.h.connect(`${C}/x`);
  for (const s of [bob, carol, alice2, alice]) await send(w, s, pres());
  await send(w, alice, pres({ to: C }));
  for (const s of [alice, alice2, bob, carol]) s.take();
  await w.h.disconnect(alice, 'socket error');
  assert.deepEqual(seen(bob), [`unavailable ${A}/desk`]);
  assert.deepEqual(seen(carol), [`unavailable ${A}/desk`]);
  assert.deepEqual(seen(alice2), [`unavailable ${A}/desk`]);
  assert.deepEqual(w.events.at(-1), { name: 'unavailable', sid: alice.id });
  // a session that never sent presence closes silently
  const quiet = await w.h.connect(`${A}/quiet`);
  await w.h.disconnect(quiet);
  assert.deepEqual(seen(bob), []);
  assert.notDeepEqual(w.events.at(-1), { name: 'unavailable', sid: quiet.id });
  await w.h.stop();
});

test('a session replaced by a new login with the same resource does not make the resource look offline', async () => {
  const w = await world();
  w.roster.set(A, B, 'both');
  w.roster.set(B, A, 'both');
  const bob = await w.h.connect(`${B}/x`);
  await send(w, bob, pres());
  const carol = await w.h.connect(`${C}/x`);
  await send(w, carol, pres());

  // 1. the new session already sent presence when the old one's close arrives: nothing for bob
  const old = await w.h.connect(`${A}/desk`);
  await send(w, old, pres());
  await send(w, old, pres({ to: C })); // directed presence from the old session only
  bob.take(); carol.take();
  const fresh = await w.h.connect(`${A}/desk`); // replaces `old` in the registry
  assert.equal(w.h.registry.get(old.jid), fresh);
  await send(w, fresh, pres({}, x('status', null, 'new')));
  assert.deepEqual(seen(bob), [`available ${A}/desk`]);
  await w.h.hooks.emit('session:closed', { session: old, reason: 'conflict' });
  assert.deepEqual(seen(bob), [], 'no unavailable for a resource that is online');
  assert.deepEqual(seen(carol), [`unavailable ${A}/desk`], 'the old session\'s directed presence is taken back');
  assert.equal(old.available, false);
  assert.equal(fresh.available, true);

  // 2. the new session has not sent presence yet: the full JID is offline until it does
  const fresh2 = await w.h.connect(`${A}/desk`);
  bob.take();
  await w.h.hooks.emit('session:closed', { session: fresh, reason: 'conflict' });
  assert.deepEqual(seen(bob), [`unavailable ${A}/desk`]);
  await send(w, fresh2, pres());
  assert.deepEqual(seen(bob), [`available ${A}/desk`]);

  // 3. presence from a replaced session that is still draining is ignored
  const fresh3 = await w.h.connect(`${A}/desk`);
  await send(w, fresh2, pres({}, x('status', null, 'ghost')));
  assert.deepEqual(seen(bob), []);
  assert.equal(fresh3.available, false);
  await w.h.stop();
});

test('presence to a non-existent local user reveals nothing', async () => {
  const w = await world();
  const alice = await w.h.connect(`${A}/desk`);
  await send(w, alice, pres());
  alice.take();
  await send(w, alice, pres({ type: 'subscribe', to: `nobody@${HOST}` }));
  assert.equal(w.roster.item(A, `nobody@${HOST}`)?.ask, true, 'the user\'s own roster shows the pending request, as for anyone');
  for (const type of ['subscribed', 'unsubscribe', 'unsubscribed', 'probe', undefined]) {
    await send(w, alice, pres({ type, to: `nobody@${HOST}` }));
  }
  assert.deepEqual(alice.take(), [], 'no error, no answer');
  await w.h.stop();
});

test('probes (§4.3.2): answered with last presence when subscribed, "unsubscribed" otherwise', async () => {
  const w = await world();
  w.roster.set(A, B, 'to');
  w.roster.set(B, A, 'none'); // desynchronised: bob does not share his presence with alice
  w.roster.set(A, C, 'to');
  w.roster.set(C, A, 'from');
  const bob = await w.h.connect(`${B}/x`);
  const carol = await w.h.connect(`${C}/x`);
  await send(w, bob, pres());
  await send(w, carol, pres());
  const alice = await w.h.connect(`${A}/desk`);
  await send(w, alice, pres());
  const got = seen(alice).sort();
  assert.deepEqual(got, [`available ${A}/desk`, `available ${C}/x`, `unsubscribed ${B}`]);
  assert.equal(w.roster.item(A, B)?.subscription, 'none', 'the "unsubscribed" answer resynchronised alice\'s roster');
  await w.h.stop();
});

test('removing a roster item (§2.5.2) sends unsubscribe/unsubscribed and unavailable both ways', async () => {
  const w = await world();
  w.roster.set(A, B, 'both');
  w.roster.set(B, A, 'both');
  const alice = await w.h.connect(`${A}/desk`);
  const bob = await w.h.connect(`${B}/x`);
  await send(w, bob, pres());
  await send(w, alice, pres());
  alice.take(); bob.take();
  await w.roster.remove(A, B);
  assert.equal(w.roster.item(B, A)?.subscription, 'none');
  assert.deepEqual(seen(bob).sort(), [`unavailable ${A}/desk`, `unsubscribe ${A}`, `unsubscribed ${A}`]);
  assert.deepEqual(seen(alice), [`unavailable ${B}/x`], '§3.3.3: bob\'s server takes back his presence');

  // a removed contact with a pending request is denied
  await send(w, bob, pres({ type: 'subscribe', to: C }));
  w.roster.set(C, B, 'none');
  await w.roster.remove(C, B);
  assert.deepEqual(w.roster.pendingOf(C), []);
  assert.equal(w.roster.item(B, C)?.ask, false);
  await w.h.stop();
});

test('unsubscribed from "both" cancels the contact\'s subscription and takes back presence (§3.2)', async () => {
  const w = await world();
  w.roster.set(A, B, 'both');
  w.roster.set(B, A, 'both');
  const alice = await w.h.connect(`${A}/desk`);
  const bob = await w.h.connect(`${B}/x`);
  await send(w, bob, pres());
  await send(w, alice, pres());
  alice.take(); bob.take();
  await send(w, bob, pres({ type: 'unsubscribed', to: A }));
  assert.equal(w.roster.item(B, A)?.subscription, 'to');
  assert.equal(w.roster.item(A, B)?.subscription, 'from');
  assert.deepEqual(seen(alice), [`unsubscribed ${B}`, `unavailable ${B}/x`]);
  // and unsubscribe from alice's side ends the rest
  await send(w, alice, pres({ type: 'unsubscribe', to: B }));
  assert.equal(w.roster.item(A, B)?.subscription, 'from');
  await send(w, alice, pres({ type: 'unsubscribed', to: B }));
  assert.equal(w.roster.item(A, B)?.subscription, 'none');
  assert.equal(w.roster.item(B, A)?.subscription, 'none');
  await w.h.stop();
});

test('presence errors: delivered to the resource, and the sender gets no unavailable later (§4.6.3)', async () => {
  const w = await world();
  const alice = await w.h.connect(`${A}/desk`);
  const carol = await w.h.connect(`${C}/x`);
  await send(w, alice, pres());
  await send(w, carol, pres());
  await send(w, alice, pres({ to: `${C}/x` }));
  alice.take(); carol.take();
  await send(w, carol, pres({ type: 'error', to: `${A}/desk` }, x('error', { type: 'cancel' }, x('service-unavailable', { xmlns: NS.STANZAS }))));
  assert.deepEqual(seen(alice), [`error ${C}/x`]);
  await send(w, alice, pres({ type: 'unavailable' }));
  assert.deepEqual(seen(carol), []);
  await w.h.stop();
});

test('hooks from other hosts are ignored; presence across two local hosts works', async () => {
  const w = await world();
  const D = 'dave@other.test';
  const alice = await w.h.connect(`${A}/desk`);
  const dave = await w.h.connect(`${D}/x`);
  await send(w, alice, pres());
  await send(w, dave, pres());
  alice.take(); dave.take();
  await send(w, alice, pres({ type: 'subscribe', to: D }));
  assert.deepEqual(seen(dave), [`subscribe ${A}`]);
  await send(w, dave, pres({ type: 'subscribed', to: A }));
  assert.equal(w.roster.item(A, D)?.subscription, 'to');
  assert.deepEqual(seen(alice).sort(), [`available ${D}/x`, `subscribed ${D}`]);
  await w.h.disconnect(dave);
  assert.deepEqual(seen(alice), [`unavailable ${D}/x`], 'exactly once, though both hosts\' instances hear the hook');
  // directed presence to another local host is taken back on unavailable and on disconnect
  const dave2 = await w.h.connect(`${D}/y`);
  await send(w, dave2, pres());
  const carol = await w.h.connect(`${C}/x`);
  await send(w, carol, pres({ to: `${D}/y` }));
  await send(w, carol, pres());
  dave2.take();
  await send(w, carol, pres({ type: 'unavailable' }));
  assert.deepEqual(seen(dave2), [`unavailable ${C}/x`]);
  await send(w, carol, pres({ to: D }));
  dave2.take();
  await w.h.disconnect(carol);
  assert.deepEqual(seen(dave2), [`unavailable ${C}/x`]);
  await w.h.stop();
});
