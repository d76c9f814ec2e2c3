// XEP-0199 XMPP Ping through the real router and module loader (in process, fake sessions).
import { fakeSession as fakeSessionOf } from '../../testing/modules.ts';
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
import { parseConfig } from '../../config/load.ts';
import { memoryStorage } from '../../storage/index.ts';
import { silentLogger } from '../../observability/log.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';

const HOST = 'example.test';

/** A bound, available fake session that records what it is sent. */
const fakeSession = (jid: string) => fakeSessionOf(jid, { available: true });

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

// ---- server-initiated pings (XEP-0199 §4.1), with mocked timers ----

import type { TestContext } from 'node:test';
import { createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';

const INTERVAL = 10_000;
const TIMEOUT = 2_000;

/** Let promise chains run (setImmediate is not mocked). */
async function flush(rounds = 5): Promise<void> {
  for (let i = 0; i < rounds; i++) await new Promise<void>((r) => setImmediate(r));
}

async function pingHarness(t: TestContext, opts: { interval?: number } = {}): Promise<ModuleHarness & { advance(ms: number): Promise<void>; end(): Promise<void> }> {
  t.mock.timers.enable({ apis: ['setInterval', 'setTimeout', 'Date'] });
  const h = await createModuleHarness([disco, ping] as ModuleDefinition[], {
    hosts: [HOST, 'other.test'],
    config: { sessions: { pingIntervalMs: opts.interval ?? INTERVAL } },
    modules: { ping: { timeoutMs: TIMEOUT } },
  });
  return Object.assign(h, {
    /** Advance the mocked clock one second at a time, letting the work of each tick finish. */
    async advance(ms: number) {
      for (let left = ms; left > 0; left -= 1000) {
        t.mock.timers.tick(Math.min(1000, left));
        await flush();
      }
    },
    async end() {
      await h.hooks.emit('server:stopping', {});
      await h.stop();
    },
  });
}

const serverPings = (s: FakeSession) => s.take().filter((el) => el.name === 'iq' && el.attr('type') === 'get' && el.getChild('ping', NS.PING));

/** The client answers a server ping; `how` picks the shape of the answer. */
async function answer(h: ModuleHarness, s: FakeSession, p: XmlElement, how: 'result' | 'no-to' | 'error' = 'result') {
  const id = p.attr('id')!;
  const reply = how === 'error'
    ? x('iq', { xmlns: NS.CLIENT, type: 'error', id, to: HOST }, x('ping', { xmlns: NS.PING }), x('error', { type: 'cancel' }, x('service-unavailable', { xmlns: NS.STANZAS })))
    : x('iq', { xmlns: NS.CLIENT, type: 'result', id, to: how === 'no-to' ? undefined : HOST });
  await h.router.fromClient(s, reply);
}

test('a bound session is pinged after the interval, from the server to its full JID (§4.1); answering keeps it', async (t) => {
  const h = await pingHarness(t);
  try {
    const s = await h.connect(`alice@${HOST}/desk`);
    await h.advance(INTERVAL - 1000);
    assert.deepEqual(serverPings(s), [], 'not before the interval');
    await h.advance(1000);
    const [p] = serverPings(s);
    assert.ok(p, 'pinged');
    assert.equal(p.attr('from'), HOST);
    assert.equal(p.attr('to'), `alice@${HOST}/desk`);
    assert.match(p.attr('id')!, /^amsel-/);
    await answer(h, s, p);
    await h.advance(TIMEOUT + 1000);
    assert.equal(s.closedWith, undefined, 'an answered ping keeps the session');
    // Pinged again one interval after the answer, not before.
    await h.advance(INTERVAL - TIMEOUT - 2000);
    assert.deepEqual(serverPings(s), []);
    await h.advance(2000);
    assert.equal(serverPings(s).length, 1);
  } finally {
    await h.end();
  }
});

test('no answer within timeoutMs: the session is closed with <connection-timeout/>', async (t) => {
  const h = await pingHarness(t);
  try {
    const s = await h.connect(`alice@${HOST}/desk`);
    await h.advance(INTERVAL);
    assert.equal(serverPings(s).length, 1);
    await h.advance(TIMEOUT - 1000);
    assert.equal(s.closedWith, undefined);
    await h.advance(1000);
    assert.equal(s.closedWith, 'connection-timeout');
  } finally {
    await h.end();
  }
});

test('an error answer (service-unavailable) or an answer without "to" proves the connection alive', async (t) => {
  const h = await pingHarness(t);
  try {
    const a = await h.connect(`alice@${HOST}/a`);
    const b = await h.connect(`alice@${HOST}/b`);
    await h.advance(INTERVAL);
    await answer(h, a, serverPings(a)[0]!, 'error');
    await h.advance(1000); // two sessions: one ping per tick (the budget)
    await answer(h, b, serverPings(b)[0]!, 'no-to');
    await h.advance(TIMEOUT + 1000);
    assert.equal(a.closedWith, undefined);
    assert.equal(b.closedWith, undefined);
    assert.equal(b.take().length, 0, 'the to-less answer is not bounced back');
  } finally {
    await h.end();
  }
});

test('an answer from another session with the same id does not count', async (t) => {
  const h = await pingHarness(t);
  try {
    const victim = await h.connect(`alice@${HOST}/desk`);
    await h.advance(1000);
    const mallory = await h.connect(`mallory@${HOST}/x`);
    await h.advance(INTERVAL - 1000);
    const p = serverPings(victim)[0]!;
    await answer(h, mallory, p);
    await h.advance(TIMEOUT);
    assert.equal(victim.closedWith, 'connection-timeout');
  } finally {
    await h.end();
  }
});

test('a session that goes away is not pinged, nor closed when its ping times out; the stop does not wait for pings', async (t) => {
  const h = await pingHarness(t);
  const gone = await h.connect(`alice@${HOST}/gone`);
  const inFlight = await h.connect(`alice@${HOST}/flight`);
  await h.disconnect(gone);
  await h.advance(INTERVAL);
  assert.deepEqual(serverPings(gone), []);
  assert.equal(serverPings(inFlight).length, 1);
  await h.disconnect(inFlight);
  await h.advance(TIMEOUT + 1000);
  assert.equal(inFlight.closedWith, undefined);
  // A ping in flight for a live session: the stop ends it at once (no timer advance needed).
  const live = await h.connect(`alice@${HOST}/live`);
  await h.advance(INTERVAL);
  assert.equal(serverPings(live).length, 1);
  await h.end();
  assert.equal(live.closedWith, undefined);
});

test('sessions of each host are pinged by that host; a burst of bindings is spread over the interval', async (t) => {
  const h = await pingHarness(t);
  try {
    const many: FakeSession[] = [];
    for (let i = 0; i < 100; i++) many.push(await h.connect(`u${i}@${HOST}/r`));
    const other = await h.connect(`z@other.test/r`);
    await h.advance(INTERVAL - 1000);
    const perTick: number[] = [];
    const seen = new Set<string>();
    for (let tick = 0; tick < 8; tick++) {
      await h.advance(1000);
      let n = 0;
      for (const s of many) {
        for (const p of serverPings(s)) {
          n++;
          seen.add(s.jid.toString());
          await answer(h, s, p);
        }
      }
      perTick.push(n);
    }
    // Budget: twice the steady rate, ceil(2 × 100 sessions × 1 s / 10 s) = 20 per tick.
    assert.ok(Math.max(...perTick) <= 20, `at most 20 pings per tick, got ${perTick.join(',')}`);
    assert.ok(perTick.filter((n) => n > 0).length >= 5, `spread over several ticks: ${perTick.join(',')}`);
    assert.equal(seen.size, 100, 'every session pinged once');
    const op = serverPings(other)[0]!;
    assert.equal(op.attr('from'), 'other.test', "a session is pinged from its own host's name");
    assert.ok(many.every((s) => s.closedWith === undefined));
  } finally {
    await h.end();
  }
});

test('sessions.pingIntervalMs: 0 turns server pings off', async (t) => {
  const h = await pingHarness(t, { interval: 0 });
  try {
    const s = await h.connect(`alice@${HOST}/desk`);
    await h.advance(600_000);
    assert.deepEqual(serverPings(s), []);
    assert.equal(s.closedWith, undefined);
  } finally {
    await h.end();
  }
});
