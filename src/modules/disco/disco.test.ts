// XEP-0030 Service Discovery on the server, through the real router and module loader.
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
import type { Session } from '../../core/sessions/session.ts';
import { parseConfig } from '../../config/load.ts';
import { memoryStorage } from '../../storage/index.ts';
import { silentLogger } from '../../observability/log.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';

const HOST = 'example.test';

let nextId = 0;
function fakeSession(jid: string): Session & { sent: XmlElement[] } {
  const j = Jid.parse(jid);
  const sent: XmlElement[] = [];
  return {
    id: `sess-${++nextId}`, kind: 'c2s', jid: j, host: j.domain, username: j.local, ip: '127.0.0.1',
    secure: true, marks: new Set(), available: true, priority: 0, sent,
    send(el) { sent.push(el); },
    async close() {},
  };
}

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
