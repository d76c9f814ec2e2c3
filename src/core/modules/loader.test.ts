// Module resolution (enablement, dependencies, config validation) and the loader's promise
// that everything a module registers through its context is undone on unload.
import { fakeSession as fakeSessionOf } from '../../testing/modules.ts';
import { test, describe, type TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { collectingLogger, extraLoaderDeps } from '../../testing/modules.ts';
import { z } from 'zod';
import { ModuleLoader, ModuleConfigError, resolveModules } from './loader.ts';
import { defineModule, type ModuleContext, type ModuleDefinition } from './define.ts';
import { DiscoRegistry } from './disco.ts';
import { HookBus } from '../hooks.ts';
import { Router } from '../router/router.ts';
import { LocalSessionRegistry } from '../sessions/registry.ts';
import { parseConfig } from '../../config/load.ts';
import { memoryStorage } from '../../storage/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';

const HOST = 'example.test';
const NS_T = 'urn:test:thing';

const mod = (name: string, extra: Partial<ModuleDefinition> = {}): ModuleDefinition =>
  defineModule({ name, defaultEnabled: true, setup() {}, ...extra }) as ModuleDefinition;
const names = (r: { def: ModuleDefinition }[]) => r.map((m) => m.def.name);

function resolveError(defs: ModuleDefinition[], cfg: Record<string, unknown>): string {
  try {
    resolveModules(defs, cfg);
  } catch (err) {
    assert.ok(err instanceof ModuleConfigError, `expected ModuleConfigError, got ${String(err)}`);
    return err.message;
  }
  assert.fail('expected resolveModules to throw');
}

describe('resolveModules', () => {
  test('an unknown module name is an error naming modules.<name>', () => {
    const msg = resolveError([mod('ping')], { pnig: true });
    assert.match(msg, /modules\.pnig: unknown module/);
    assert.match(msg, /known: ping/);
  });

  test('preset-only names (mam, muc, upload, register) are tolerated', () => {
    const r = resolveModules([mod('ping')], { mam: { retentionDays: 30 }, muc: {}, upload: true, register: false });
    assert.deepEqual(names(r), ['ping']);
  });

  test('the parsed default config (with presets merged) resolves', () => {
    const config = parseConfig({ hosts: [HOST], tls: { certificates: [] } }, '/tmp');
    assert.deepEqual(names(resolveModules([mod('ping')], config.modules as Record<string, unknown>)), ['ping']);
  });

  test('false disables a default-enabled module; true or a mapping enables an opt-in one', () => {
    const optIn = mod('optin', { defaultEnabled: false });
    const optIn2 = mod('optin2', { defaultEnabled: undefined });
    assert.deepEqual(names(resolveModules([mod('ping'), optIn, optIn2], {})), ['ping']);
    assert.deepEqual(names(resolveModules([mod('ping'), optIn, optIn2], { ping: false })), []);
    assert.deepEqual(names(resolveModules([mod('ping'), optIn, optIn2], { optin: true, optin2: {} })), ['ping', 'optin', 'optin2']);
  });

  test('a missing dependency is an error naming both modules', () => {
    const msg = resolveError([mod('a'), mod('b', { depends: ['a'] })], { a: false });
    assert.match(msg, /modules\.b: needs module 'a'/);
    const msg2 = resolveError([mod('b', { depends: ['nonexistent'] })], {});
    assert.match(msg2, /modules\.b: needs module 'nonexistent'/);
  });

  test('dependencies load first, whatever the declaration order', () => {
    const defs = [mod('c', { depends: ['b'] }), mod('d'), mod('b', { depends: ['a'] }), mod('a')];
    const order = names(resolveModules(defs, {}));
    assert.deepEqual([...order].sort(), ['a', 'b', 'c', 'd']);
    assert.ok(order.indexOf('a') < order.indexOf('b'));
    assert.ok(order.indexOf('b') < order.indexOf('c'));
  });

  test('a dependency cycle is an error', () => {
    const msg = resolveError([mod('a', { depends: ['b'] }), mod('b', { depends: ['a'] })], {});
    assert.match(msg, /cycle: a -> b -> a/);
  });

  test('module config is validated by its schema; errors name the key', () => {
    const schema = z.object({ interval: z.number().int().positive().default(60), label: z.string().default('x') });
    const m = mod('timed', { config: schema });
    const msg = resolveError([m], { timed: { interval: 'soon' } });
    assert.match(msg, /modules\.timed\.interval: /);
    const ok = resolveModules([m], { timed: { interval: 5 } });
    assert.deepEqual(ok[0]!.config, { interval: 5, label: 'x' });
    const defaults = resolveModules([m], { timed: true });
    assert.deepEqual(defaults[0]!.config, { interval: 60, label: 'x' });
  });

  test('all problems are reported at once', () => {
    const schema = z.object({ n: z.number() });
    const msg = resolveError([mod('a', { config: schema }), mod('b', { depends: ['zzz'] })], { a: { n: 'x' }, bogus: true });
    assert.match(msg, /modules\.bogus/);
    assert.match(msg, /modules\.a\.n/);
    assert.match(msg, /modules\.b: needs module 'zzz'/);
  });
});

// ---------------------------------------------------------------------------------------
// The loader against a real router, hook bus and disco registry.

/** A bound, available fake session that records what it is sent. */
const fakeSession = (jid: string) => fakeSessionOf(jid, { available: true });

function world(modules: Record<string, unknown> = {}, hosts = [HOST]) {
  const { log, lines } = collectingLogger('debug');
  const config = parseConfig({ hosts, tls: { certificates: [] }, modules }, '/tmp');
  const registry = new LocalSessionRegistry();
  const hostSet = new Set(hosts);
  const router = new Router({ log, registry, isLocalHost: (d) => hostSet.has(d) });
  const hooks = new HookBus(log);
  const disco = new DiscoRegistry();
  const storage = memoryStorage();
  const loader = new ModuleLoader({ config, log, storage, hooks, router, registry, disco, ...extraLoaderDeps({ storage, registry, hooks, log }) });
  const alice = fakeSession(`alice@${hosts[0]}/desk`);
  registry.add(alice);
  return { loader, router, hooks, disco, registry, alice, lines };
}

const errorCondition = (el: XmlElement | undefined) =>
  el?.attr('type') === 'error' ? el.getChild('error')?.elements()[0]?.name : undefined;
/** Let queued callbacks and promise chains run (setImmediate is never mocked here). */
const flush = () => new Promise<void>((r) => setImmediate(r));
/** Timers are mocked where a test depends on them: no wall-clock races on a loaded CI box. */
const mockTimers = (t: TestContext) => t.mock.timers.enable({ apis: ['setInterval', 'setTimeout'] });

describe('ModuleLoader', () => {
  test("unloadAll undoes a module's iq, message, presence, disco, hook and timer registrations", async (t) => {
    mockTimers(t);
    const w = world();
    const calls = { message: 0, presence: 0, hook: 0, every: 0, after: 0 };
    let ctxSeen: ModuleContext | undefined;
    const thing = defineModule({
      name: 'thing',
      defaultEnabled: true,
      setup(ctx) {
        ctxSeen = ctx as ModuleContext;
        ctx.disco.feature(NS_T);
        ctx.disco.feature('urn:test:account-feature', 'account');
        ctx.disco.identity({ category: 'pubsub', type: 'pep' }, 'account');
        ctx.iq.get(NS_T, 'query', () => x('query', { xmlns: NS_T }), { to: ['host', 'account'] });
        ctx.iq.set(NS_T, ['a', 'b'], () => undefined);
        ctx.message.on('host', () => { calls.message++; return true; });
        ctx.presence.on('bare', () => { calls.presence++; return true; });
        ctx.on('user:created', () => { calls.hook++; });
        ctx.timers.every(5, () => { calls.every++; });
        ctx.timers.after(30, () => { calls.after++; });
      },
    });
    const loaded = await w.loader.loadAll([thing as ModuleDefinition]);
    assert.deepEqual(loaded, ['thing']);
    assert.equal(ctxSeen?.host, HOST);

    // everything is live
    await w.router.fromClient(w.alice, x('iq', { type: 'get', id: '1', to: HOST }, x('query', { xmlns: NS_T })));
    await w.router.fromClient(w.alice, x('iq', { type: 'get', id: '2' }, x('query', { xmlns: NS_T })));
    await w.router.fromClient(w.alice, x('iq', { type: 'set', id: '3', to: HOST }, x('b', { xmlns: NS_T })));
    assert.deepEqual(w.alice.sent.map((s) => s.attr('type')), ['result', 'result', 'result']);
    await w.router.fromClient(w.alice, x('message', { type: 'chat', to: HOST }));
    await w.router.fromClient(w.alice, x('presence', {}));
    assert.equal(calls.message, 1);
    assert.equal(calls.presence, 1);
    assert.ok(w.disco.featuresOf(HOST, 'host').includes(NS_T));
    assert.deepEqual(w.disco.featuresOf(HOST, 'account'), ['urn:test:account-feature']);
    assert.equal(w.disco.identitiesOf(HOST, 'account').length, 1);
    assert.deepEqual(ctxSeen!.disco.features(), [NS_T]);
    await w.hooks.emit('user:created', { host: HOST, username: 'bob' });
    assert.equal(calls.hook, 1);
    t.mock.timers.tick(12);
    await flush();
    assert.equal(calls.every, 2, 'interval timer fires while loaded');
    assert.equal(calls.after, 0);

    await w.loader.unloadAll();
    w.alice.sent.length = 0;
    const everyAtUnload = calls.every;

    await w.router.fromClient(w.alice, x('iq', { type: 'get', id: '4', to: HOST }, x('query', { xmlns: NS_T })));
    await w.router.fromClient(w.alice, x('iq', { type: 'get', id: '5' }, x('query', { xmlns: NS_T })));
    await w.router.fromClient(w.alice, x('iq', { type: 'set', id: '6', to: HOST }, x('a', { xmlns: NS_T })));
    assert.deepEqual(w.alice.sent.map(errorCondition), ['service-unavailable', 'service-unavailable', 'service-unavailable']);
    w.alice.sent.length = 0;
    await w.router.fromClient(w.alice, x('message', { type: 'chat', to: HOST }));
    assert.equal(calls.message, 1, 'message handler gone');
    assert.equal(errorCondition(w.alice.sent[0]), 'service-unavailable', 'default processing again');
    await w.router.fromClient(w.alice, x('presence', {}));
    assert.equal(calls.presence, 1, 'presence handler gone');
    assert.deepEqual(w.disco.featuresOf(HOST, 'host'), []);
    assert.deepEqual(w.disco.featuresOf(HOST, 'account'), []);
    assert.deepEqual(w.disco.identitiesOf(HOST, 'account'), []);
    assert.equal(w.hooks.has('user:created'), false);
    await w.hooks.emit('user:created', { host: HOST, username: 'carol' });
    assert.equal(calls.hook, 1);
    t.mock.timers.tick(1000);
    await flush();
    assert.equal(calls.every, everyAtUnload, 'interval cleared');
    assert.equal(calls.after, 0, 'timeout cleared');
  });

  test('modules load per host, in dependency order, and are configured from modules.<name>', async () => {
    const w = world({ b: { greeting: 'hallo' } }, ['example.test', 'other.test']);
    const order: string[] = [];
    const a = defineModule({ name: 'a', defaultEnabled: true, setup(ctx) { order.push(`a@${ctx.host}`); } });
    const b = defineModule({
      name: 'b',
      depends: ['a'],
      config: z.object({ greeting: z.string().default('hi') }),
      setup(ctx) { order.push(`b@${ctx.host}:${ctx.config.greeting}`); },
    });
    assert.deepEqual(await w.loader.loadAll([b, a] as ModuleDefinition[]), ['a', 'b']);
    assert.deepEqual(order, ['a@example.test', 'b@example.test:hallo', 'a@other.test', 'b@other.test:hallo']);
    await w.loader.unloadAll();
  });

  test('a module config error fails loadAll before any setup runs', async () => {
    const w = world({ b: { greeting: 42 } });
    let ran = false;
    const b = defineModule({
      name: 'b', defaultEnabled: true,
      config: z.object({ greeting: z.string().default('hi') }),
      setup() { ran = true; },
    });
    await assert.rejects(w.loader.loadAll([b] as ModuleDefinition[]), (err: Error) => err instanceof ModuleConfigError && /modules\.b\.greeting/.test(err.message));
    assert.equal(ran, false);
  });

  test('a module whose setup fails leaves nothing registered', async (t) => {
    mockTimers(t);
    const w = world();
    let ticks = 0;
    const bad = defineModule({
      name: 'bad',
      defaultEnabled: true,
      setup(ctx) {
        ctx.disco.feature(NS_T);
        ctx.iq.get(NS_T, 'query', () => undefined);
        ctx.on('user:created', () => {});
        ctx.timers.every(5, () => { ticks++; });
        // registering the same IQ twice is a programming error
        ctx.iq.get(NS_T, 'query', () => undefined);
      },
    });
    await assert.rejects(w.loader.loadAll([bad] as ModuleDefinition[]), /already registered/);
    assert.deepEqual(w.disco.featuresOf(HOST, 'host'), []);
    assert.equal(w.hooks.has('user:created'), false);
    await w.router.fromClient(w.alice, x('iq', { type: 'get', id: '1', to: HOST }, x('query', { xmlns: NS_T })));
    assert.equal(errorCondition(w.alice.sent[0]), 'service-unavailable');
    t.mock.timers.tick(100);
    await flush();
    assert.equal(ticks, 0);
    await w.loader.unloadAll();
  });

  test('two modules advertising the same feature: it stays until both are gone', async () => {
    const w = world();
    const m1 = defineModule({ name: 'm1', defaultEnabled: true, setup(ctx) { ctx.disco.feature(NS_T); } });
    const m2 = defineModule({ name: 'm2', defaultEnabled: true, setup(ctx) { ctx.disco.feature(NS_T); } });
    await w.loader.loadAll([m1, m2] as ModuleDefinition[]);
    assert.deepEqual(w.disco.featuresOf(HOST, 'host'), [NS_T]);
    await w.loader.unloadAll();
    assert.deepEqual(w.disco.featuresOf(HOST, 'host'), []);
  });

  test('background task failures are logged and awaited on unload', async (t) => {
    mockTimers(t);
    const w = world();
    let release!: () => void;
    const slow = new Promise<void>((r) => { release = r; });
    const m = defineModule({
      name: 'bg',
      defaultEnabled: true,
      setup(ctx) {
        ctx.background('fails', Promise.reject(new Error('bg boom')));
        ctx.background('slow', slow);
        ctx.timers.after(1, () => { throw new Error('timer boom'); });
      },
    });
    await w.loader.loadAll([m] as ModuleDefinition[]);
    t.mock.timers.tick(5);
    await flush();
    let unloaded = false;
    const unloading = w.loader.unloadAll().then(() => { unloaded = true; });
    await flush();
    assert.equal(unloaded, false, 'unloadAll waits for background tasks');
    release();
    await unloading;
    const failures = w.lines.filter((l) => l.msg === 'background task failed');
    assert.deepEqual(failures.map((l) => l.task).sort(), ['fails', 'timer']);
    assert.ok(failures.every((l) => l.module === 'bg' && l.host === HOST));
  });

  test('ctx.send routes a server-generated stanza', async () => {
    const w = world();
    const m = defineModule({
      name: 'notify',
      defaultEnabled: true,
      async setup(ctx) {
        await ctx.send(x('message', { from: ctx.host, to: 'alice@example.test/desk', type: 'headline' }, x('body', null, 'welcome')));
      },
    });
    await w.loader.loadAll([m] as ModuleDefinition[]);
    assert.equal(w.alice.sent.length, 1);
    assert.equal(w.alice.sent[0]!.attr('from'), HOST);
    await w.loader.unloadAll();
  });
});
