// The roster module in-process (real router, loader, hooks; fake sessions), on memory, SQLite
// and PostgreSQL: RFC 6121 §2 get/set/remove/pushes/errors and XEP-0237 versioning.
import { describe, test, after } from 'node:test';
import assert from 'node:assert/strict';
import roster, { ROSTER_REQUESTED } from './index.ts';
import { RosterServiceKey } from './service.ts';
import { NS_ROSTER, NS_ROSTERVER, stanzaFromText, stanzaToText } from './codec.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import { collectingLogger, createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import { storageVariants, type OpenedStorage } from '../../testing/storages.ts';

const H = 'example.test';
const ALICE = Jid.parse(`alice@${H}`);

let seq = 0;
const iq = (type: 'get' | 'set', query: XmlElement, to?: string) => x('iq', { xmlns: NS.CLIENT, type, id: `r${++seq}`, to }, query);
const q = (attrs: Record<string, string | undefined> = {}, ...items: XmlElement[]) => x('query', { xmlns: NS_ROSTER, ...attrs }, items);
const item = (jid: string, attrs: Record<string, string | undefined> = {}, ...groups: string[]) =>
  x('item', { jid, ...attrs }, groups.map((g) => x('group', null, g)));
/** Let background work (pushes after the result, hooks) run. */
const settle = async () => { for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r)); };

function errorOf(el: XmlElement): string | undefined {
  return el.getChild('error')?.elements().find((e) => e.ns === NS.STANZAS && e.name !== 'text')?.name;
}
function itemsOf(el: XmlElement): Record<string, string | string[]>[] {
  const query = el.getChild('query', NS_ROSTER);
  return (query?.getChildren('item', NS_ROSTER) ?? []).map((i) => {
    const groups = i.getChildren('group', NS_ROSTER).map((g) => g.text());
    return groups.length ? { ...i.attrs, groups } : { ...i.attrs };
  });
}
function isPush(el: XmlElement): boolean {
  return el.name === 'iq' && el.attr('type') === 'set' && el.getChild('query', NS_ROSTER) !== undefined;
}

for (const variant of storageVariants([roster as ModuleDefinition])) {
  describe(`roster module on ${variant.name}`, { skip: variant.skip }, () => {
    const opened: OpenedStorage[] = [];
    const harnesses: ModuleHarness[] = [];
    let n = 0;

    /** A harness on a fresh database, with alice and bob. */
    async function start(config: Record<string, unknown> = {}) {
      const o = await variant.open();
      opened.push(o);
      const { log, lines } = collectingLogger();
      const h = await createModuleHarness([roster as ModuleDefinition], { hosts: [H], storage: o.storage, modules: { roster: config }, log });
      harnesses.push(h);
      await h.addUser(`alice@${H}`);
      await h.addUser(`bob@${H}`);
      const svc = h.services.use(H, RosterServiceKey);
      return { h, svc, logs: lines };
    }
    after(async () => {
      for (const h of harnesses) await h.stop();
      for (const o of opened) await o.cleanup();
    });

    /** Send from a session; returns what that session got (reply first), after background work. */
    async function send(h: ModuleHarness, s: FakeSession, el: XmlElement): Promise<XmlElement[]> {
      await h.router.fromClient(s, el);
      await settle();
      return s.take();
    }
    async function requestRoster(h: ModuleHarness, s: FakeSession, ver?: string): Promise<XmlElement[]> {
      return send(h, s, iq('get', q({ ver })));
    }

    test('an empty roster; the get marks the session as interested; the stream feature is offered', async () => {
      const { h } = await start();
      const desk = await h.connect(`alice@${H}/desk`);
      const [res, ...rest] = await requestRoster(h, desk);
      assert.equal(res!.attr('type'), 'result');
      assert.ok(res!.getChild('query', NS_ROSTER), 'a query in the result');
      assert.equal(res!.getChild('query', NS_ROSTER)!.attr('ver'), undefined, 'no ver when the client did not ask for versioning');
      assert.deepEqual(itemsOf(res!), []);
      assert.deepEqual(rest, []);
      assert.ok(desk.marks.has(ROSTER_REQUESTED));
      const features = h.streamFeatures.for(desk);
      assert.ok(features.some((f) => f.name === 'ver' && f.ns === NS_ROSTERVER), 'XEP-0237 stream feature');
    });

    test('add, update and remove; result first, then pushes to interested resources only', async () => {
      const { h } = await start();
      const desk = await h.connect(`alice@${H}/desk`);
      const phone = await h.connect(`alice@${H}/phone`);
      const idle = await h.connect(`alice@${H}/idle`); // never asks for the roster
      const bobDesk = await h.connect(`bob@${H}/desk`);
      await requestRoster(h, desk);
      await requestRoster(h, phone);
      await requestRoster(h, bobDesk);

      const set = iq('set', q({}, item(`nurse@${H}`, { name: 'Nurse' }, 'Servants')));
      const got = await send(h, desk, set);
      assert.equal(got.length, 2);
      assert.equal(got[0]!.attr('type'), 'result', 'the result comes first (RFC 6121 §2.3.2)');
      assert.equal(got[0]!.attr('id'), set.attr('id'));
      assert.equal(got[0]!.elements().length, 0);
      const push = got[1]!;
      assert.ok(isPush(push));
      assert.equal(push.attr('from'), `alice@${H}`, 'pushes come from the bare JID');
      assert.equal(push.attr('to'), `alice@${H}/desk`);
      assert.ok(push.attr('id'));
      assert.deepEqual(itemsOf(push), [{ jid: `nurse@${H}`, name: 'Nurse', subscription: 'none', groups: ['Servants'] }]);
      const ver1 = push.getChild('query', NS_ROSTER)!.attr('ver');
      assert.ok(ver1, 'every push carries ver (XEP-0237 §5)');
      const phonePush = phone.take();
      assert.equal(phonePush.length, 1);
      assert.equal(phonePush[0]!.attr('to'), `alice@${H}/phone`);
      assert.notEqual(phonePush[0]!.attr('id'), push.attr('id'), 'a fresh id per push');
      assert.equal(phonePush[0]!.getChild('query', NS_ROSTER)!.attr('ver'), ver1);
      assert.deepEqual(idle.take(), [], 'a resource that never requested the roster gets no push');
      assert.deepEqual(bobDesk.take(), [], "other users' resources get nothing");

      // Update: new name, two groups; the subscription, ask and approved the client sends are ignored.
      const upd = await send(h, phone, iq('set', q({}, item(`nurse@${H}`, { name: 'Nanny', subscription: 'both', ask: 'subscribe', approved: 'true' }, 'Servants', 'Family'))));
      assert.equal(upd[0]!.attr('type'), 'result');
      assert.deepEqual(itemsOf(upd[1]!), [{ jid: `nurse@${H}`, name: 'Nanny', subscription: 'none', groups: ['Servants', 'Family'] }]);
      const ver2 = upd[1]!.getChild('query', NS_ROSTER)!.attr('ver');
      assert.notEqual(ver2, ver1);
      assert.equal(desk.take().length, 1);

      const [full] = await requestRoster(h, desk);
      assert.deepEqual(itemsOf(full!), [{ jid: `nurse@${H}`, name: 'Nanny', subscription: 'none', groups: ['Servants', 'Family'] }]);

      // Remove (§2.5): result, then a push with subscription='remove'.
      const rm = await send(h, desk, iq('set', q({}, item(`nurse@${H}`, { subscription: 'remove' }))));
      assert.equal(rm[0]!.attr('type'), 'result');
      assert.deepEqual(itemsOf(rm[1]!), [{ jid: `nurse@${H}`, subscription: 'remove' }]);
      assert.deepEqual(itemsOf(phone.take()[0]!), [{ jid: `nurse@${H}`, subscription: 'remove' }]);
      const [empty] = await requestRoster(h, desk);
      assert.deepEqual(itemsOf(empty!), []);
      // Removing what is not there → item-not-found (§2.5.3), and no push.
      const again = await send(h, desk, iq('set', q({}, item(`nurse@${H}`, { subscription: 'remove' }))));
      assert.equal(again.length, 1);
      assert.equal(errorOf(again[0]!), 'item-not-found');
      // Setting an unchanged item changes nothing: no new version, no push... but a result.
      await send(h, desk, iq('set', q({}, item(`x@${H}`, { name: 'X' }))));
      phone.take();
      const same = await send(h, desk, iq('set', q({}, item(`x@${H}`, { name: 'X' }))));
      assert.equal(same.length, 1);
      assert.equal(same[0]!.attr('type'), 'result');
      assert.deepEqual(phone.take(), []);
    });

    test('error cases of RFC 6121 §2.3.3', async () => {
      const { h } = await start({ maxNameLength: 5, maxGroupLength: 4, maxGroupsPerItem: 2 });
      const desk = await h.connect(`alice@${H}/desk`);
      await requestRoster(h, desk);
      const cases: [string, XmlElement, string][] = [
        ['two items', q({}, item(`a@${H}`), item(`b@${H}`)), 'bad-request'],
        ['no item', q({}), 'bad-request'],
        ['no jid', q({}, x('item', { name: 'n' })), 'bad-request'],
        ['malformed jid', q({}, item('@bad')), 'jid-malformed'],
        ['full jid', q({}, item(`a@${H}/res`)), 'bad-request'],
        ['own bare jid', q({}, item(`ALICE@${H}`)), 'not-allowed'],
        ['duplicate groups', q({}, item(`a@${H}`, {}, 'G', 'G')), 'bad-request'],
        ['empty group', q({}, item(`a@${H}`, {}, '')), 'not-acceptable'],
        ['long name', q({}, item(`a@${H}`, { name: '123456' })), 'not-acceptable'],
        ['long group', q({}, item(`a@${H}`, {}, 'Grüße')), 'not-acceptable'],
        ['too many groups', q({}, item(`a@${H}`, {}, 'A', 'B', 'C')), 'not-acceptable'],
      ];
      for (const [what, query, condition] of cases) {
        const got = await send(h, desk, iq('set', query));
        assert.equal(got.length, 1, what);
        assert.equal(got[0]!.attr('type'), 'error', what);
        assert.equal(errorOf(got[0]!), condition, what);
      }
      // limits are inclusive, counted in characters
      const ok = await send(h, desk, iq('set', q({}, item(`a@${H}`, { name: '12345' }, 'Grüß', 'B'))));
      assert.equal(ok[0]!.attr('type'), 'result');
      // another user's roster: forbidden, for set and get
      const other = await send(h, desk, iq('set', q({}, item(`c@${H}`)), `bob@${H}`));
      assert.equal(errorOf(other[0]!), 'forbidden');
      const otherGet = await send(h, desk, iq('get', q(), `bob@${H}`));
      assert.equal(errorOf(otherGet[0]!), 'forbidden');
      // addressed to the own bare JID explicitly: fine
      const own = await send(h, desk, iq('get', q(), `alice@${H}`));
      assert.equal(own[0]!.attr('type'), 'result');
      assert.equal(itemsOf(own[0]!).length, 1);
    });

    test('the roster size limit: policy-violation with a text, updates and removals still work', async () => {
      const { h, svc, logs } = await start({ maxItems: 2 });
      const desk = await h.connect(`alice@${H}/desk`);
      await send(h, desk, iq('set', q({}, item(`a@${H}`))));
      await send(h, desk, iq('set', q({}, item(`b@${H}`))));
      const full = await send(h, desk, iq('set', q({}, item(`c@${H}`))));
      assert.equal(errorOf(full[0]!), 'policy-violation');
      assert.match(full[0]!.getChild('error')!.getChildText('text', NS.STANZAS) ?? '', /at most 2 items/);
      const line = logs.find((l) => String(l.msg).startsWith('roster full'));
      assert.equal(line?.owner, `alice@${H}`, 'a log line names the account and the limit');
      assert.equal(line?.limit, 2);
      const upd = await send(h, desk, iq('set', q({}, item(`a@${H}`, { name: 'A' }))));
      assert.equal(upd[0]!.attr('type'), 'result');
      await assert.rejects(svc.modify(ALICE, Jid.parse(`d@${H}`), () => ({ jid: Jid.parse(`d@${H}`), groups: [], subscription: 'none', ask: true, approved: false })),
        (e: unknown) => e instanceof StanzaError && e.condition === 'policy-violation', 'the service enforces it too');
      await send(h, desk, iq('set', q({}, item(`b@${H}`, { subscription: 'remove' }))));
      const now = await send(h, desk, iq('set', q({}, item(`c@${H}`))));
      assert.equal(now[0]!.attr('type'), 'result');
    });

    test("removal emits 'roster:item-removed' with a subscription, ask or pending request, and drops the request", async () => {
      const { h, svc } = await start();
      const events: unknown[] = [];
      const pendingSeen: boolean[] = [];
      h.hooks.on('roster:item-removed', async (e) => {
        events.push({ owner: e.owner.toString(), contact: e.contact.toString(), subscription: e.subscription, ask: e.ask });
        // the listener (presence) still finds the request, to deny it
        pendingSeen.push((await svc.pendingIn(e.owner)).some((p) => p.from.equals(e.contact)));
      });
      const desk = await h.connect(`alice@${H}/desk`);
      const [bob, carol, dave] = ['bob', 'carol', 'dave'].map((u) => Jid.parse(`${u}@${H}`)) as [Jid, Jid, Jid];
      const plain = (j: Jid) => ({ jid: j, groups: [], subscription: 'none' as const, ask: false, approved: false });
      await svc.modify(ALICE, bob, () => ({ ...plain(bob), subscription: 'from', ask: true }));
      await svc.modify(ALICE, carol, () => plain(carol));
      await svc.modify(ALICE, dave, () => plain(dave));
      const subscribe = (j: Jid) => x('presence', { xmlns: NS.CLIENT, type: 'subscribe', from: j.toString(), to: ALICE.toString() });
      await svc.addPendingIn(ALICE, bob, subscribe(bob));
      await svc.addPendingIn(ALICE, carol, subscribe(carol));
      for (const j of [bob, carol, dave]) {
        const got = await send(h, desk, iq('set', q({}, item(j.toString(), { subscription: 'remove' }))));
        assert.equal(got[0]!.attr('type'), 'result');
      }
      assert.deepEqual(events, [
        { owner: ALICE.toString(), contact: bob.toString(), subscription: 'from', ask: true },
        { owner: ALICE.toString(), contact: carol.toString(), subscription: 'none', ask: false },
      ], 'dave had nothing to cancel');
      assert.deepEqual(pendingSeen, [true, true]);
      assert.deepEqual(await svc.pendingIn(ALICE), [], 'the pending requests went with the items');
      // a removal through the service (presence) is no user removal: no hook
      await svc.modify(ALICE, bob, () => ({ ...plain(bob), subscription: 'both' }));
      await svc.modify(ALICE, bob, () => undefined);
      await settle();
      assert.equal(events.length, 2);
    });

    test('the service: get/list/modify with pushes; no-op changes bump nothing; serialised per owner', async () => {
      const { h, svc } = await start();
      const desk = await h.connect(`alice@${H}/desk`);
      await requestRoster(h, desk);
      const bob = Jid.parse(`bob@${H}`);
      const made = await svc.modify(ALICE, Jid.parse(`bob@${H}/phone`), (cur) => {
        assert.equal(cur, undefined);
        return { jid: bob, name: 'Bob', groups: ['G'], subscription: 'to', ask: false, approved: false };
      });
      assert.ok(made?.jid.equals(bob));
      assert.equal(made?.subscription, 'to');
      const pushes = desk.take();
      assert.equal(pushes.length, 1, 'a change through the service is pushed at once');
      assert.deepEqual(itemsOf(pushes[0]!), [{ jid: bob.toString(), name: 'Bob', subscription: 'to', groups: ['G'] }]);
      const got = await svc.get(ALICE, bob);
      assert.deepEqual({ ...got, jid: got?.jid.toString() }, { jid: bob.toString(), name: 'Bob', groups: ['G'], subscription: 'to', ask: false, approved: false });
      assert.equal((await svc.list(ALICE)).length, 1);
      // unchanged → no push
      await svc.modify(ALICE, bob, (cur) => cur);
      assert.deepEqual(desk.take(), []);
      // removing a missing item is a no-op
      assert.equal(await svc.modify(ALICE, Jid.parse(`nobody@${H}`), () => undefined), undefined);
      assert.deepEqual(desk.take(), []);

      // 30 concurrent read-modify-writes on one item: none lost.
      await Promise.all(Array.from({ length: 30 }, (_, i) => svc.modify(ALICE, bob, (cur) => ({ ...cur!, groups: [...cur!.groups, `g${i}`] }))));
      const after = await svc.get(ALICE, bob);
      assert.equal(after?.groups.length, 31);
      const pushed = desk.take();
      assert.equal(pushed.length, 30);
      const vers = pushed.map((p) => p.getChild('query', NS_ROSTER)!.attr('ver')!);
      assert.equal(new Set(vers).size, 30, 'each push has its own version');
      const counts = vers.map((v) => Number(v.split('-')[1]));
      assert.deepEqual(counts, [...counts].sort((a, b) => a - b), 'pushes go out in order of modification');
    });

    test('pending inbound requests are kept apart from the roster, round-trip their stanza, and are limited', async () => {
      const { svc, logs } = await start({ maxPendingIn: 2 });
      const bob = Jid.parse(`bob@${H}/laptop`);
      const stanza = x('presence', { xmlns: NS.CLIENT, type: 'subscribe', from: bob.toString(), to: ALICE.toString() },
        x('status', null, 'Grüße & <hi>'), x('nick', { xmlns: 'http://jabber.org/protocol/nick' }, 'Bobby'));
      await svc.addPendingIn(ALICE, bob, stanza);
      await svc.addPendingIn(ALICE, bob.bare, stanza); // same requester: replaced, not added
      await svc.addPendingIn(ALICE, Jid.parse(`carol@${H}`), x('presence', { xmlns: NS.CLIENT, type: 'subscribe' }));
      await assert.rejects(svc.addPendingIn(ALICE, Jid.parse(`dave@${H}`), x('presence', { xmlns: NS.CLIENT, type: 'subscribe' })),
        (e: unknown) => e instanceof StanzaError && e.condition === 'resource-constraint');
      assert.equal(logs.filter((l) => String(l.msg).startsWith('too many unanswered subscription requests')).length, 1);
      const pending = await svc.pendingIn(ALICE);
      assert.deepEqual(pending.map((p) => p.from.toString()).sort(), [`bob@${H}`, `carol@${H}`]);
      const mine = pending.find((p) => p.from.equals(bob.bare))!;
      assert.equal(mine.stanza.toString(), stanza.toString());
      assert.equal(mine.stanza.getChildText('status'), 'Grüße & <hi>');
      assert.equal(mine.stanza.getChild('nick', 'http://jabber.org/protocol/nick')?.text(), 'Bobby');
      assert.deepEqual(await svc.list(ALICE), [], 'pending requests are not roster items');
      await svc.removePendingIn(ALICE, bob);
      assert.deepEqual((await svc.pendingIn(ALICE)).map((p) => p.from.toString()), [`carol@${H}`]);
      assert.equal(stanzaFromText(stanzaToText(stanza)).toString(), stanza.toString());
    });

    test('XEP-0237: bootstrap, unchanged, interim pushes after several changes incl. removals, unknown versions', async () => {
      const { h } = await start();
      const desk = await h.connect(`alice@${H}/desk`);
      const phone = await h.connect(`alice@${H}/phone`);
      // an empty roster that never changed
      const [boot0] = await requestRoster(h, desk, '');
      const ver0 = boot0!.getChild('query', NS_ROSTER)!.attr('ver');
      assert.ok(ver0 !== undefined);
      const [same0, ...none0] = await requestRoster(h, desk, ver0);
      assert.equal(same0!.elements().length, 0, 'unchanged: an empty result');
      assert.deepEqual(none0, []);

      for (const c of ['a', 'b', 'c', 'd', 'e', 'f']) await send(h, phone, iq('set', q({}, item(`${c}@${H}`, {}, 'G'))));
      desk.take();
      // bootstrap with ver='' → the full roster with the current version
      const [boot] = await requestRoster(h, desk, '');
      const verA = boot!.getChild('query', NS_ROSTER)!.attr('ver')!;
      assert.equal(itemsOf(boot!).length, 6);
      assert.notEqual(verA, ver0);
      // the version the client holds is current → an empty result, no pushes
      const unchanged = await requestRoster(h, desk, verA);
      assert.equal(unchanged.length, 1);
      assert.equal(unchanged[0]!.attr('type'), 'result');
      assert.equal(unchanged[0]!.elements().length, 0);

      // while the desk is away: remove b, rename c, add g, remove d, re-add b, rename c again
      await h.disconnect(desk);
      const steps: XmlElement[] = [
        q({}, item(`b@${H}`, { subscription: 'remove' })),
        q({}, item(`c@${H}`, { name: 'C1' })),
        q({}, item(`g@${H}`, { name: 'G' })),
        q({}, item(`d@${H}`, { subscription: 'remove' })),
        q({}, item(`b@${H}`, { name: 'B again' })),
        q({}, item(`c@${H}`, { name: 'C2' }, 'G', 'H')),
      ];
      const liveVers: string[] = [];
      await requestRoster(h, phone);
      for (const s of steps) {
        const got = await send(h, phone, iq('set', s));
        liveVers.push(got[1]!.getChild('query', NS_ROSTER)!.attr('ver')!);
      }
      const desk2 = await h.connect(`alice@${H}/desk`);
      const [res, ...interim] = await requestRoster(h, desk2, verA);
      assert.equal(res!.attr('type'), 'result');
      assert.equal(res!.elements().length, 0, 'an empty result: the changes follow as pushes');
      assert.ok(interim.every(isPush));
      // each changed item once, in order of its last modification, each with its own version
      assert.deepEqual(interim.map((p) => itemsOf(p)[0]), [
        { jid: `g@${H}`, name: 'G', subscription: 'none' },
        { jid: `d@${H}`, subscription: 'remove' },
        { jid: `b@${H}`, name: 'B again', subscription: 'none' },
        { jid: `c@${H}`, name: 'C2', subscription: 'none', groups: ['G', 'H'] },
      ]);
      const interimVers = interim.map((p) => p.getChild('query', NS_ROSTER)!.attr('ver'));
      assert.deepEqual(interimVers, [liveVers[2], liveVers[3], liveVers[4], liveVers[5]]);
      assert.ok(interim.every((p) => p.attr('to') === `alice@${H}/desk` && p.attr('from') === `alice@${H}`));
      // the client is now at the last version: unchanged
      const again = await requestRoster(h, desk2, liveVers[5]);
      assert.equal(again.length, 1);
      assert.equal(again[0]!.elements().length, 0);
      // a client in the middle gets only what came after
      const desk3 = await h.connect(`alice@${H}/tablet`);
      const mid = await requestRoster(h, desk3, liveVers[3]);
      assert.deepEqual(mid.slice(1).map((p) => itemsOf(p)[0]!.jid), [`b@${H}`, `c@${H}`]);

      // unknown versions → the full roster with the current version
      for (const bad of ['garbage', '0', `${verA.split('-')[0]}-999`, `deadbeef-1`]) {
        const [full, ...extra] = await requestRoster(h, desk2, bad);
        assert.equal(itemsOf(full!).length, 6, bad);
        assert.equal(full!.getChild('query', NS_ROSTER)!.attr('ver'), liveVers[5], bad);
        assert.deepEqual(extra, [], bad);
      }
      // after the interim pushes, live pushes continue
      await send(h, phone, iq('set', q({}, item(`z@${H}`))));
      assert.equal(desk2.take().length, 1);
    });

    test('XEP-0237: more changes than items → the full roster; forgotten removals → the full roster', async () => {
      const { h } = await start({ maxTombstones: 1 });
      const desk = await h.connect(`alice@${H}/desk`);
      const phone = await h.connect(`alice@${H}/phone`);
      for (const c of ['a', 'b', 'c']) await send(h, phone, iq('set', q({}, item(`${c}@${H}`))));
      const [boot] = await requestRoster(h, desk, '');
      const ver = boot!.getChild('query', NS_ROSTER)!.attr('ver')!;
      await send(h, phone, iq('set', q({}, item(`a@${H}`, { subscription: 'remove' }))));
      desk.take();
      // one removal remembered: interim push
      const one = await requestRoster(h, desk, ver);
      assert.equal(one[0]!.elements().length, 0);
      assert.deepEqual(one.slice(1).map((p) => itemsOf(p)[0]), [{ jid: `a@${H}`, subscription: 'remove' }]);
      // a second removal pushes the first tombstone out: a client at `ver` may have missed it
      await send(h, phone, iq('set', q({}, item(`b@${H}`, { subscription: 'remove' }))));
      desk.take();
      const [full, ...extra] = await requestRoster(h, desk, ver);
      assert.deepEqual(itemsOf(full!).map((i) => i.jid), [`c@${H}`]);
      assert.deepEqual(extra, []);
      // more changes than items: the full roster is cheaper
      const verNow = full!.getChild('query', NS_ROSTER)!.attr('ver')!;
      for (const c of ['x', 'y']) await send(h, phone, iq('set', q({}, item(`${c}@${H}`))));
      for (const c of ['x', 'y']) await send(h, phone, iq('set', q({}, item(`${c}@${H}`, { subscription: 'remove' }))));
      desk.take();
      const [cheaper, ...extra2] = await requestRoster(h, desk, verNow);
      assert.deepEqual(itemsOf(cheaper!).map((i) => i.jid), [`c@${H}`]);
      assert.deepEqual(extra2, []);
    });

    test('a live change never overtakes the interim pushes', async () => {
      const { h, svc } = await start();
      const desk = await h.connect(`alice@${H}/desk`);
      for (const c of ['a', 'b', 'c', 'd', 'e']) await svc.modify(ALICE, Jid.parse(`${c}@${H}`), () => ({ jid: Jid.parse(`${c}@${H}`), groups: [], subscription: 'none', ask: false, approved: false }));
      const [boot] = await requestRoster(h, desk, '');
      const ver = boot!.getChild('query', NS_ROSTER)!.attr('ver')!;
      for (const c of ['a', 'b']) await svc.modify(ALICE, Jid.parse(`${c}@${H}`), (cur) => ({ ...cur!, name: 'renamed' }));
      assert.equal(desk.take().length, 2, 'live pushes to the interested desk');
      // the get and a concurrent change, started together
      const get = h.router.fromClient(desk, iq('get', q({ ver })));
      const live = svc.modify(ALICE, Jid.parse(`e@${H}`), (cur) => ({ ...cur!, name: 'live' }));
      await Promise.all([get, live]);
      await settle();
      const got = desk.take();
      assert.equal(got[0]!.attr('type'), 'result');
      const vers = got.slice(1).map((p) => Number(p.getChild('query', NS_ROSTER)!.attr('ver')!.split('-')[1]));
      assert.deepEqual(vers, [...vers].sort((a, b) => a - b), `versions in order: ${vers}`);
      assert.equal(vers.at(-1), 8);
    });

    test('account deletion removes the roster, its versions and pending requests', async () => {
      const { h, svc } = await start();
      const bob = Jid.parse(`bob@${H}`);
      await svc.modify(ALICE, bob, () => ({ jid: bob, groups: ['G'], subscription: 'both', ask: false, approved: false }));
      await svc.modify(ALICE, bob, () => undefined);
      await svc.modify(ALICE, bob, () => ({ jid: bob, groups: [], subscription: 'none', ask: false, approved: false }));
      await svc.addPendingIn(ALICE, Jid.parse(`carol@${H}`), x('presence', { xmlns: NS.CLIENT, type: 'subscribe' }));
      await svc.modify(bob, ALICE, () => ({ jid: ALICE, groups: [], subscription: 'both', ask: false, approved: false }));
      // the account deletion path of the core (AccountOps.delete): purge, then 'user:deleted'
      assert.equal(await h.storage.accounts.delete(H, 'alice'), true);
      await h.hooks.emit('user:deleted', { host: H, username: 'alice' });
      assert.deepEqual(await svc.list(ALICE), []);
      assert.deepEqual(await svc.pendingIn(ALICE), []);
      assert.equal((await svc.list(bob)).length, 1, "other accounts' rosters stay");
      if (h.storage.dialect !== 'memory') {
        for (const t of ['roster_items', 'roster_tombstones', 'roster_versions', 'roster_pending_in']) {
          const rows = await h.storage.db.selectFrom(t).selectAll().where('owner', '=', 'alice').execute();
          assert.deepEqual(rows, [], t);
        }
      }
      // a client of a re-created account with an old version gets the (empty) full roster
      await h.addUser(`alice@${H}`);
      const desk = await h.connect(`alice@${H}/desk`);
      const [res] = await requestRoster(h, desk, 'abcdef12-3');
      assert.deepEqual(itemsOf(res!), []);
      assert.equal(res!.getChild('query', NS_ROSTER)!.attr('ver'), '0');
    });
  });
}

