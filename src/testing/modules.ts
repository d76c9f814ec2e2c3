// In-process harness for module tests: the real router, loader, hooks and registry, memory (or
// given) storage, and fake sessions that record what they are sent. No sockets.
import { ModuleLoader, StreamFeatureRegistry } from '../core/modules/loader.ts';
import type { ModuleDefinition } from '../core/modules/define.ts';
import { DiscoRegistry } from '../core/modules/disco.ts';
import { ServiceRegistry } from '../core/modules/services.ts';
import { HookBus } from '../core/hooks.ts';
import { Router } from '../core/router/router.ts';
import { LocalSessionRegistry } from '../core/sessions/registry.ts';
import type { Session } from '../core/sessions/session.ts';
import { createAccountOps } from '../core/accounts.ts';
import { deriveCredentials } from '../core/auth/scram.ts';
import { parseConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import { memoryStorage, type Storage } from '../storage/index.ts';
import { createLogger, silentLogger, type Logger } from '../observability/log.ts';
import { Writable } from 'node:stream';
import { Jid } from '../jid/index.ts';
import type { XmlElement } from '../xml/index.ts';

export interface FakeSession extends Session {
  readonly sent: XmlElement[];
  closedWith: string | undefined;
  /** Remove and return everything sent so far. */
  take(): XmlElement[];
}

let nextId = 0;
export function fakeSession(jid: string, opts: { available?: boolean; priority?: number } = {}): FakeSession {
  const j = Jid.parse(jid);
  const sent: XmlElement[] = [];
  const s: FakeSession = {
    id: `fake-${++nextId}`, kind: 'c2s', jid: j, host: j.domain, username: j.local, ip: '127.0.0.1',
    secure: true, marks: new Set(), available: opts.available ?? false, priority: opts.priority ?? 0, sent,
    closedWith: undefined,
    send(el) { sent.push(el); },
    async close(err) { s.closedWith = err?.condition ?? 'closed'; },
    take() { return sent.splice(0, sent.length); },
  };
  return s;
}

export interface ModuleHarness {
  config: Config;
  log: Logger;
  storage: Storage;
  router: Router;
  registry: LocalSessionRegistry;
  hooks: HookBus;
  loader: ModuleLoader;
  services: ServiceRegistry;
  streamFeatures: StreamFeatureRegistry;
  disco: DiscoRegistry;
  /** Create an account (password 'pw' unless given). */
  addUser(jid: string, password?: string): Promise<void>;
  /** A bound fake session, registered and announced with 'session:bound'. */
  connect(jid: string, opts?: { available?: boolean; priority?: number }): Promise<FakeSession>;
  /** Close a fake session the way a transport does: unregister and emit 'session:closed'. */
  disconnect(s: FakeSession, reason?: string): Promise<void>;
  stop(): Promise<void>;
}

export async function createModuleHarness(defs: readonly ModuleDefinition[], opts: { hosts?: string[]; modules?: Record<string, unknown>; storage?: Storage; config?: Record<string, unknown>; log?: Logger } = {}): Promise<ModuleHarness> {
  const hosts = opts.hosts ?? ['example.test'];
  const log = opts.log ?? silentLogger();
  const config = parseConfig({ hosts, tls: { certificates: [] }, modules: opts.modules ?? {}, ...opts.config }, '/tmp');
  const storage = opts.storage ?? memoryStorage();
  const registry = new LocalSessionRegistry();
  const hooks = new HookBus(log);
  const router = new Router({ log, registry, isLocalHost: (d) => hosts.includes(d) });
  const services = new ServiceRegistry();
  const streamFeatures = new StreamFeatureRegistry();
  const disco = new DiscoRegistry();
  const accounts = createAccountOps({ storage, registry, hooks, log, iterations: 4096 });
  const loader = new ModuleLoader({ config, log, storage, hooks, router, registry, disco, services, accounts, streamFeatures });
  await loader.loadAll(defs);
  return {
    config, log, storage, router, registry, hooks, loader, services, streamFeatures, disco,
    async addUser(jid, password = 'pw') {
      const j = Jid.parse(jid);
      await storage.accounts.create(j.domain, j.local, await deriveCredentials(password, 4096));
      await hooks.emit('user:created', { host: j.domain, username: j.local });
    },
    async connect(jid, o) {
      const s = fakeSession(jid, o);
      // Closing behaves like a transport's: unregister, then run the 'session:closed' handlers.
      s.close = async (err) => {
        if (s.closedWith !== undefined) return;
        s.closedWith = err?.condition ?? 'closed';
        registry.remove(s);
        await hooks.emit('session:closed', { session: s, reason: s.closedWith });
      };
      const old = registry.add(s);
      // The old session got <conflict/>; like the transport, its close is reported later
      // (tests emit 'session:closed' for it when they want to).
      if (old) (old as FakeSession).closedWith ??= 'conflict';
      await hooks.emit('session:bound', { session: s });
      return s;
    },
    async disconnect(s, reason = 'closed') {
      registry.remove(s);
      await hooks.emit('session:closed', { session: s, reason });
    },
    async stop() {
      await loader.unloadAll();
      await storage.close();
    },
  };
}

/** The loader dependencies beyond the basics, for tests that build a ModuleLoader by hand. */
export function extraLoaderDeps(d: { storage: Storage; registry: LocalSessionRegistry; hooks: HookBus; log: Logger }) {
  return {
    services: new ServiceRegistry(),
    streamFeatures: new StreamFeatureRegistry(),
    accounts: createAccountOps({ ...d, iterations: 4096 }),
  };
}

/** A logger that keeps every line as an object in `lines` (for tests that check log lines). */
export function collectingLogger(level: 'trace' | 'debug' | 'info' | 'warn' | 'error' = 'info'): { log: Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const log = createLogger({
    level,
    format: 'json',
    destination: new Writable({ write(chunk: Buffer, _enc, cb) { for (const l of chunk.toString('utf8').split('\n')) if (l) lines.push(JSON.parse(l) as Record<string, unknown>); cb(); } }),
  });
  return { log, lines };
}
