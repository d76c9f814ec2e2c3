// XEP-0199 XMPP Ping through the real router and module loader (in process, fake sessions).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { extraLoaderDeps } from '../../testing/modules.ts';
import ping from './index.ts';
import disco from '../disco/index.ts';
import { ModuleLoader } from '../../core/modules/loader.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
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

async function start(modules: Record<string, unknown> = {}) {
  const log = silentLogger();
  const config = parseConfig({ hosts: [HOST], tls: { certificates: [] }, modules }, '/tmp');
  const registry = new LocalSessionRegistry();
  const router = new Router({ log, registry, isLocalHost: (d) => d === HOST });
  const discoRegistry = new DiscoRegistry();
  const storage = memoryStorage();
  const hooks = new HookBus(log);
  const loader = new ModuleLoader({ config, log, storage, hooks, router, registry, disco: discoRegistry, ...extraLoaderDeps({ storage, registry, hooks, log }) });
  await loader.loadAll([disco, ping] as ModuleDefinition[]);
  const alice = fakeSession('alice@example.test/desk');
  registry.add(alice);
  return { router, registry, loader, disco: discoRegistry, alice };
}

const pingIq = (id: string, to?: string) => x('iq', { xmlns: NS.CLIENT, type: 'get', id, to }, x('ping', { xmlns: NS.PING }));

test('a ping to the server is answered with an empty result from the server (§4.2)', async () => {
  const { router, alice, loader } = await start();
  await router.fromClient(alice, pingIq('p1', HOST));
  assert.equal(alice.sent.length, 1);
  const r = alice.sent[0]!;
  assert.equal(r.attr('type'), 'result');
  assert.equal(r.attr('id'), 'p1');
  assert.equal(r.attr('from'), HOST);
  assert.equal(r.attr('to'), 'alice@example.test/desk');
  assert.equal(r.elements().length, 0);
  await loader.unloadAll();
});

test("a ping to the user's own bare JID, or without 'to', is answered by the server on the account's behalf", async () => {
  const { router, alice, loader } = await start();
  await router.fromClient(alice, pingIq('p2', 'alice@example.test'));
  await router.fromClient(alice, pingIq('p3'));
  assert.deepEqual(alice.sent.map((r) => [r.attr('type'), r.attr('id')]), [['result', 'p2'], ['result', 'p3']]);
  assert.equal(alice.sent[0]!.attr('from'), 'alice@example.test');
  await loader.unloadAll();
});

test('a ping to a full JID is routed to that client (§4.4) and its answer comes back', async () => {
  const { router, registry, alice, loader } = await start();
  const bob = fakeSession('bob@example.test/phone');
  registry.add(bob);
  await router.fromClient(alice, pingIq('p4', 'bob@example.test/phone'));
  assert.equal(alice.sent.length, 0);
  assert.equal(bob.sent.length, 1);
  assert.equal(bob.sent[0]!.getChild('ping', NS.PING)?.name, 'ping');
  await router.fromClient(bob, x('iq', { xmlns: NS.CLIENT, type: 'result', id: 'p4', to: 'alice@example.test/desk' }));
  assert.equal(alice.sent[0]!.attr('type'), 'result');
  assert.equal(alice.sent[0]!.attr('from'), 'bob@example.test/phone');
  await loader.unloadAll();
});

test('a ping of type set is not a ping: service-unavailable', async () => {
  const { router, alice, loader } = await start();
  await router.fromClient(alice, x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'p5', to: HOST }, x('ping', { xmlns: NS.PING })));
  assert.equal(alice.sent[0]!.attr('type'), 'error');
  assert.equal(alice.sent[0]!.getChild('error')?.getChild('service-unavailable', NS.STANZAS)?.name, 'service-unavailable');
  await loader.unloadAll();
});

test('ping advertises urn:xmpp:ping; disabled, it neither answers nor advertises', async () => {
  const on = await start();
  assert.ok(on.disco.featuresOf(HOST, 'host').includes(NS.PING));
  await on.loader.unloadAll();
  const off = await start({ ping: false });
  assert.ok(!off.disco.featuresOf(HOST, 'host').includes(NS.PING));
  await off.router.fromClient(off.alice, pingIq('p6', HOST));
  assert.equal(off.alice.sent[0]!.attr('type'), 'error');
  await off.loader.unloadAll();
});
