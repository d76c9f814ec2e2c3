// XEP-0030 Service Discovery on the server, through the real router and module loader.
import { fakeSession as fakeSessionOf } from '../../testing/modules.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extraLoaderDeps } from '../../testing/modules.ts';
import disco from './index.ts';
import ping from '../ping/index.ts';
import { ModuleLoader } from '../../core/modules/loader.ts';
import { defineModule, type ModuleDefinition } from '../../core/modules/define.ts';
import { DiscoRegistry } from '../../core/modules/disco.ts';
import { HookBus } from '../../core/hooks.ts';
import { Router } from '../../core/router/router.ts';
import { LocalSessionRegistry } from '../../core/sessions/registry.ts';
import { parseConfig } from '../../config/load.ts';
import { memoryStorage } from '../../storage/index.ts';
import { silentLogger } from '../../observability/log.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';

const HOST = 'example.test';

/** A bound, available fake session that records what it is sent. */
const fakeSession = (jid: string) => fakeSessionOf(jid, { available: true });

async function start(defs: ModuleDefinition[], modules: Record<string, unknown> = {}) {
  const log = silentLogger();
  const config = parseConfig({ hosts: [HOST], tls: { certificates: [] }, modules }, '/tmp');
  const registry = new LocalSessionRegistry();
  const router = new Router({ log, registry, isLocalHost: (d) => d === HOST });
  const storage = memoryStorage();
  const hooks = new HookBus(log);
  const loader = new ModuleLoader({ config, log, storage, hooks, router, registry, disco: new DiscoRegistry(), ...extraLoaderDeps({ storage, registry, hooks, log }) });
  await loader.loadAll(defs);
  const alice = fakeSession('alice@example.test/desk');
  registry.add(alice);
  return { router, loader, alice };
}

const info = (id: string, attrs: Record<string, string> = {}) =>
  x('iq', { xmlns: NS.CLIENT, type: 'get', id, to: HOST }, x('query', { xmlns: NS.DISCO_INFO, ...attrs }));

test('disco#info on the server lists identity server/im and the loaded features, sorted', async () => {
  const zeta = defineModule({ name: 'zeta', defaultEnabled: true, setup(ctx) {
    ctx.disco.feature('urn:zeta:0');
    ctx.disco.feature('jabber:iq:version');
    ctx.disco.feature('urn:zeta:account', 'account');
  } });
  const { router, alice, loader } = await start([disco, ping, zeta] as ModuleDefinition[]);
  await router.fromClient(alice, info('i1'));
  assert.equal(alice.sent.length, 1);
  const r = alice.sent[0]!;
  assert.equal(r.attr('type'), 'result');
  assert.equal(r.attr('id'), 'i1');
  assert.equal(r.attr('from'), HOST);
  const q = r.getChild('query', NS.DISCO_INFO);
  assert.ok(q, 'a disco#info query in the result');
  const ids = q.getChildren('identity', NS.DISCO_INFO).map((i) => ({ ...i.attrs }));
  assert.deepEqual(ids, [{ category: 'server', type: 'im', name: 'Amsel' }]);
  const features = q.getChildren('feature', NS.DISCO_INFO).map((f) => f.attr('var'));
  assert.deepEqual(features, [NS.DISCO_INFO, NS.DISCO_ITEMS, 'jabber:iq:version', NS.PING, 'urn:zeta:0'].sort());
  assert.deepEqual(features, [...features].sort());
  assert.ok(!features.includes('urn:zeta:account'), 'account features are not server features');
  await loader.unloadAll();
});

test('a disabled module contributes no feature', async () => {
  const { router, alice, loader } = await start([disco, ping] as ModuleDefinition[], { ping: false });
  await router.fromClient(alice, info('i2'));
  const features = alice.sent[0]!.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
  assert.deepEqual(features, [NS.DISCO_INFO, NS.DISCO_ITEMS]);
  await loader.unloadAll();
});

test('disco#info with a node is answered with item-not-found (XEP-0030 §3.2)', async () => {
  const { router, alice, loader } = await start([disco, ping] as ModuleDefinition[]);
  await router.fromClient(alice, info('i3', { node: 'http://example.test/caps#abc' }));
  const r = alice.sent[0]!;
  assert.equal(r.attr('type'), 'error');
  assert.equal(r.attr('id'), 'i3');
  const e = r.getChild('error')!;
  assert.equal(e.attr('type'), 'cancel');
  assert.ok(e.getChild('item-not-found', NS.STANZAS));
  await loader.unloadAll();
});

test('disco#items on the server is an empty list; with a node, item-not-found', async () => {
  const { router, alice, loader } = await start([disco, ping] as ModuleDefinition[]);
  await router.fromClient(alice, x('iq', { xmlns: NS.CLIENT, type: 'get', id: 't1', to: HOST }, x('query', { xmlns: NS.DISCO_ITEMS })));
  await router.fromClient(alice, x('iq', { xmlns: NS.CLIENT, type: 'get', id: 't2', to: HOST }, x('query', { xmlns: NS.DISCO_ITEMS, node: 'n' })));
  const [items, withNode] = alice.sent;
  assert.equal(items!.attr('type'), 'result');
  assert.equal(items!.getChild('query', NS.DISCO_ITEMS)?.elements().length, 0);
  assert.equal(withNode!.attr('type'), 'error');
  assert.ok(withNode!.getChild('error')?.getChild('item-not-found', NS.STANZAS));
  await loader.unloadAll();
});

test('disco#info set is not supported: service-unavailable', async () => {
  const { router, alice, loader } = await start([disco] as ModuleDefinition[]);
  await router.fromClient(alice, x('iq', { xmlns: NS.CLIENT, type: 'set', id: 's1', to: HOST }, x('query', { xmlns: NS.DISCO_INFO })));
  assert.ok(alice.sent[0]!.getChild('error')?.getChild('service-unavailable', NS.STANZAS));
  await loader.unloadAll();
});

test('after unload, disco#info is no longer answered', async () => {
  const { router, alice, loader } = await start([disco, ping] as ModuleDefinition[]);
  await loader.unloadAll();
  await router.fromClient(alice, info('u1'));
  assert.ok(alice.sent[0]!.getChild('error')?.getChild('service-unavailable', NS.STANZAS));
});

// ---- XEP-0128/XEP-0157 extended info and account JIDs (through createModuleHarness) ----

import { createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import { RosterServiceKey, type RosterItem, type RosterService, type Subscription } from '../roster/service.ts';
import { SERVERINFO_FORM_TYPE, serverInfoForm } from './info.ts';

const DATA = 'jabber:x:data';

function formFields(form: XmlElement): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const f of form.getChildren('field', DATA)) out[f.attr('var')!] = f.getChildren('value', DATA).map((v) => v.text());
  return out;
}

test('XEP-0157: the serverinfo form lists only the contact fields that have addresses', async () => {
  const h = await createModuleHarness([disco, ping] as ModuleDefinition[], {
    hosts: [HOST],
    config: { contact: { admin: ['mailto:admin@example.test', 'xmpp:admin@example.test'], security: ['https://example.test/security'] } },
  });
  try {
    const alice = await h.connect(`alice@${HOST}/desk`);
    await h.router.fromClient(alice, info('f1'));
    const q = alice.take()[0]!.getChild('query', NS.DISCO_INFO)!;
    const forms = q.getChildren('x', DATA);
    assert.equal(forms.length, 1);
    assert.equal(forms[0]!.attr('type'), 'result');
    const ft = forms[0]!.getChildren('field', DATA).find((f) => f.attr('var') === 'FORM_TYPE')!;
    assert.equal(ft.attr('type'), 'hidden');
    assert.deepEqual(formFields(forms[0]!), {
      FORM_TYPE: [SERVERINFO_FORM_TYPE],
      'admin-addresses': ['mailto:admin@example.test', 'xmpp:admin@example.test'],
      'security-addresses': ['https://example.test/security'],
    });
  } finally {
    await h.stop();
  }
});

test('XEP-0157: no contact configured → no form at all; every configured kind maps to its field var', async () => {
  assert.equal(serverInfoForm({ admin: [], abuse: [], security: [], support: [] }), undefined);
  const all = serverInfoForm({ admin: ['mailto:a@x'], abuse: ['mailto:b@x'], security: ['mailto:c@x'], support: ['https://x/help'] })!;
  assert.deepEqual(formFields(all), {
    FORM_TYPE: [SERVERINFO_FORM_TYPE], 'abuse-addresses': ['mailto:b@x'], 'admin-addresses': ['mailto:a@x'],
    'security-addresses': ['mailto:c@x'], 'support-addresses': ['https://x/help'],
  });
  const { router, alice, loader } = await start([disco] as ModuleDefinition[]);
  await router.fromClient(alice, info('f2'));
  assert.equal(alice.sent[0]!.getChild('query', NS.DISCO_INFO)!.getChildren('x', DATA).length, 0);
  await loader.unloadAll();
});

/** A stand-in for the roster module: subscriptions set by the test. */
function fakeRoster(subs: Map<string, Subscription>) {
  return defineModule({
    name: 'roster',
    defaultEnabled: true,
    setup(ctx) {
      const svc: Pick<RosterService, 'get'> = {
        async get(owner, contact) {
          const s = subs.get(`${owner.toString()} ${contact.toString()}`);
          return s ? { jid: contact, groups: [], subscription: s, ask: false, approved: false } satisfies RosterItem : undefined;
        },
      };
      ctx.provide(RosterServiceKey, svc as RosterService);
    },
  });
}

interface World { h: ModuleHarness; alice: FakeSession; alice2: FakeSession; bob: FakeSession; carol: FakeSession; subs: Map<string, Subscription> }

async function world(withRoster = true): Promise<World> {
  const subs = new Map<string, Subscription>();
  const defs = [disco, ping, ...(withRoster ? [fakeRoster(subs)] : [])] as ModuleDefinition[];
  const h = await createModuleHarness(defs, { hosts: [HOST] });
  for (const u of ['alice', 'bob', 'carol']) await h.addUser(`${u}@${HOST}`);
  const alice = await h.connect(`alice@${HOST}/desk`, { available: true });
  const alice2 = await h.connect(`alice@${HOST}/phone`, { available: false });
  const bob = await h.connect(`bob@${HOST}/pc`);
  const carol = await h.connect(`carol@${HOST}/pc`);
  return { h, alice, alice2, bob, carol, subs };
}

const q = (ns: string, id: string, to?: string, node?: string) => x('iq', { xmlns: NS.CLIENT, type: 'get', id, to }, x('query', { xmlns: ns, node }));

async function ask(w: World, from: FakeSession, el: XmlElement): Promise<XmlElement> {
  await w.h.router.fromClient(from, el);
  const out = from.take();
  assert.equal(out.length, 1, 'exactly one answer');
  return out[0]!;
}

const errorCondition = (r: XmlElement) => r.getChild('error')?.elements()[0]?.name;

test('account disco#info to oneself (bare JID or no to): account/registered and the account features', async () => {
  const w = await world();
  try {
    for (const to of [`alice@${HOST}`, undefined]) {
      const r = await ask(w, w.alice, q(NS.DISCO_INFO, 'a1', to));
      assert.equal(r.attr('type'), 'result');
      assert.equal(r.attr('from'), `alice@${HOST}`, 'answered on behalf of the bare JID');
      const query = r.getChild('query', NS.DISCO_INFO)!;
      assert.deepEqual(query.getChildren('identity').map((i) => ({ ...i.attrs })), [{ category: 'account', type: 'registered' }]);
      assert.deepEqual(query.getChildren('feature').map((f) => f.attr('var')), [NS.DISCO_INFO, NS.DISCO_ITEMS, NS.PING]);
      assert.equal(query.getChildren('x', DATA).length, 0, 'no server form on accounts');
    }
    // A node on an account: unknown (XEP-0030 §3.2), now that the requester may know the account.
    assert.equal(errorCondition(await ask(w, w.alice, q(NS.DISCO_INFO, 'a2', `alice@${HOST}`, 'urn:x'))), 'item-not-found');
  } finally {
    await w.h.stop();
  }
});

test('account disco#info: strangers get service-unavailable, the same for an unknown account (XEP-0030 §8)', async () => {
  const w = await world();
  try {
    // bob has no subscription from alice; carol has 'to' only (alice does not share presence with her).
    w.subs.set(`alice@${HOST} carol@${HOST}`, 'to');
    const existing = await ask(w, w.bob, q(NS.DISCO_INFO, 's1', `alice@${HOST}`));
    const missing = await ask(w, w.bob, q(NS.DISCO_INFO, 's1', `nobody@${HOST}`));
    const viaTo = await ask(w, w.carol, q(NS.DISCO_INFO, 's1', `alice@${HOST}`));
    const withNode = await ask(w, w.bob, q(NS.DISCO_INFO, 's1', `nobody@${HOST}`, 'n'));
    for (const r of [existing, missing, viaTo, withNode]) assert.equal(errorCondition(r), 'service-unavailable');
    // Byte for byte the same but for the address.
    assert.equal(existing.toString().replaceAll('alice@', 'X@'), missing.toString().replaceAll('nobody@', 'X@'));
  } finally {
    await w.h.stop();
  }
});

test("account disco: a contact with a 'from' or 'both' subscription is answered; without the roster module only oneself", async () => {
  const w = await world();
  try {
    w.subs.set(`alice@${HOST} bob@${HOST}`, 'from');
    w.subs.set(`alice@${HOST} carol@${HOST}`, 'both');
    for (const s of [w.bob, w.carol]) {
      const r = await ask(w, s, q(NS.DISCO_INFO, 'c1', `alice@${HOST}`));
      assert.equal(r.attr('type'), 'result');
      assert.equal(r.getChild('query', NS.DISCO_INFO)!.getChild('identity')!.attr('category'), 'account');
    }
    // The roster says 'from' for a deleted account's leftovers: still not revealed.
    w.subs.set(`gone@${HOST} bob@${HOST}`, 'both');
    assert.equal(errorCondition(await ask(w, w.bob, q(NS.DISCO_INFO, 'c2', `gone@${HOST}`))), 'service-unavailable');
  } finally {
    await w.h.stop();
  }
  const noRoster = await world(false);
  try {
    assert.equal(errorCondition(await ask(noRoster, noRoster.bob, q(NS.DISCO_INFO, 'c3', `alice@${HOST}`))), 'service-unavailable');
    assert.equal((await ask(noRoster, noRoster.alice, q(NS.DISCO_INFO, 'c4'))).attr('type'), 'result');
  } finally {
    await noRoster.h.stop();
  }
});

test('account disco#items: oneself sees every connected resource, a subscriber the available ones, others an empty list', async () => {
  const w = await world();
  try {
    w.subs.set(`alice@${HOST} bob@${HOST}`, 'both');
    const items = (r: XmlElement) => {
      assert.equal(r.attr('type'), 'result');
      return r.getChild('query', NS.DISCO_ITEMS)!.getChildren('item').map((i) => i.attr('jid'));
    };
    assert.deepEqual(items(await ask(w, w.alice, q(NS.DISCO_ITEMS, 'i1'))), [`alice@${HOST}/desk`, `alice@${HOST}/phone`]);
    assert.deepEqual(items(await ask(w, w.bob, q(NS.DISCO_ITEMS, 'i2', `alice@${HOST}`))), [`alice@${HOST}/desk`]);
    // XEP-0030 §8 rule 2: strangers and unknown accounts get an empty result, with or without a node.
    const stranger = await ask(w, w.carol, q(NS.DISCO_ITEMS, 'i3', `alice@${HOST}`));
    const unknown = await ask(w, w.carol, q(NS.DISCO_ITEMS, 'i3', `nobody@${HOST}`));
    assert.deepEqual(items(stranger), []);
    assert.equal(stranger.toString().replaceAll('alice@', 'X@'), unknown.toString().replaceAll('nobody@', 'X@'));
    const strangerNode = await ask(w, w.carol, q(NS.DISCO_ITEMS, 'i4', `alice@${HOST}`, 'urn:x'));
    assert.deepEqual(items(strangerNode), []);
    assert.equal(strangerNode.getChild('query', NS.DISCO_ITEMS)!.attr('node'), 'urn:x', 'the node is mirrored');
    // An authorised requester learns that the node does not exist.
    assert.equal(errorCondition(await ask(w, w.alice, q(NS.DISCO_ITEMS, 'i5', undefined, 'urn:x'))), 'item-not-found');
  } finally {
    await w.h.stop();
  }
});

test('the server itself may query an account (ctx.request from the host)', async () => {
  const w = await world();
  try {
    const r = await w.h.router.request(x('iq', { xmlns: NS.CLIENT, type: 'get', from: HOST, to: `alice@${HOST}` }, x('query', { xmlns: NS.DISCO_INFO })), 2000);
    assert.equal(r.attr('type'), 'result');
    assert.equal(r.getChild('query', NS.DISCO_INFO)!.getChild('identity')!.attr('type'), 'registered');
  } finally {
    await w.h.stop();
  }
});
