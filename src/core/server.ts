// The composition root (ARCHITECTURE §1): createServer(config) builds every service.
// No globals: tests can run several servers in one process.
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { createLogger, type Logger } from '../observability/log.ts';
import { openStorageWhenReachable, type Storage } from '../storage/index.ts';
import { TlsManager } from '../tls/index.ts';
import { AuthThrottle } from './auth/throttle.ts';
import { IterationCensus } from './auth/census.ts';
import { HookBus } from './hooks.ts';
import { Router } from './router/router.ts';
import { LocalSessionRegistry } from './sessions/registry.ts';
import type { Session } from './sessions/session.ts';
import { DiscoRegistry } from './modules/disco.ts';
import { ModuleLoader, StreamFeatureRegistry } from './modules/loader.ts';
import { ServiceRegistry } from './modules/services.ts';
import { createAccountOps } from './accounts.ts';
import type { ModuleDefinition } from './modules/define.ts';
import { StreamError } from '../xmpp/errors.ts';
import { C2sListeners } from '../transports/c2s/listener.ts';
import type { C2sServices } from '../transports/c2s/services.ts';
import { builtinModules } from '../modules/index.ts';
import { moduleStorageOptions } from '../modules/storage-options.ts';
import { listenControl, type ControlRequest, type ControlReply } from '../admin/control.ts';
import { HealthMonitor } from '../admin/health.ts';

export interface ServerOptions {
  log?: Logger;
  modules?: readonly ModuleDefinition[];
  /** Listen on the control socket in the data directory (the CLI talks to it). Default true. */
  control?: boolean;
  /** Ends a wait for an unreachable PostgreSQL at start-up (SIGTERM): createServer rejects with its reason. */
  signal?: AbortSignal;
}

export interface Server {
  readonly config: Config;
  readonly log: Logger;
  readonly storage: Storage;
  readonly hooks: HookBus;
  readonly registry: LocalSessionRegistry;
  /** Ports actually bound, by listener name (useful with port 0). */
  readonly ports: Record<string, number>;
  start(): Promise<void>;
  /** Graceful stop: close every stream with <system-shutdown/>, unload modules, close storage. */
  stop(): Promise<void>;
  /** Re-read certificates (SIGHUP); open sessions are untouched. */
  reloadTls(): Promise<void>;
  /** Delete an account: close its sessions, remove everything it owns, run module hooks. */
  deleteUser(host: string, username: string): Promise<boolean>;
}


/** A per-installation secret (fake SCRAM salts for unknown users), kept in the data directory. */
async function installationSecret(dataDir: string): Promise<Buffer> {
  const file = path.join(dataDir, 'secret.key');
  try {
    const b = Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
    if (b.length >= 32) return b;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  const b = randomBytes(32);
  await mkdir(dataDir, { recursive: true, mode: 0o750 });
  await writeFile(file, b.toString('base64') + '\n', { mode: 0o600, flag: 'wx' }).catch(async (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EEXIST') throw err;
  });
  return Buffer.from((await readFile(file, 'utf8')).trim(), 'base64');
}

export async function createServer(config: Config, opts: ServerOptions = {}): Promise<Server> {
  const log = opts.log ?? createLogger({ level: config.log.level, format: config.log.format });
  const hosts = new Set(config.hosts);
  const isLocalHost = (d: string) => hosts.has(d);
  const tlsManager = await TlsManager.create(config.tls, config.hosts);
  const modules = opts.modules ?? builtinModules;
  // PostgreSQL not reachable yet (booting, restarting): waits here, before any listener opens.
  const storage = await openStorageWhenReachable(config.storage.type === 'sqlite'
    ? { type: 'sqlite', path: config.storage.path }
    : { type: 'postgres', url: config.storage.url, poolSize: config.storage.poolSize },
  { ...moduleStorageOptions(modules), onPoolError: (err) => log.warn({ err: err.message }, 'PostgreSQL connection lost; reconnecting on next use') },
  { log, signal: opts.signal });
  const hooks = new HookBus(log);
  const registry = new LocalSessionRegistry();
  const router = new Router({ log, registry, isLocalHost, maxIqsInFlight: config.limits.maxIqsInFlight });
  const disco = new DiscoRegistry();
  const throttle = new AuthThrottle({
    baseDelayMs: config.auth.failureDelayMs,
    maxDelayMs: config.auth.maxFailureDelayMs,
    refuseAfter: config.auth.refuseAfterFailures,
    refuseForMs: config.auth.refuseForMs,
    decayMs: config.auth.failureMemoryMs,
    onRefuse: (ip, failures, refuseForMs) => log.warn({ ip, failures, refuseForMs }, 'too many failed authentications from this address: refused for a while'),
  });
  const serviceRegistry = new ServiceRegistry();
  const streamFeatures = new StreamFeatureRegistry();
  const accounts = createAccountOps({ storage, registry, hooks, log, iterations: config.auth.scramIterations });
  const loader = new ModuleLoader({ config, log, storage, hooks, router, registry, disco, services: serviceRegistry, accounts, streamFeatures });
  const fakeSaltSecret = await installationSecret(config.dataDir);
  const iterationCensus = new IterationCensus({ count: (host) => storage.accounts.iterationCounts(host), log, hooks });
  const ports: Record<string, number> = {};
  // Event-loop delay from start, memory, live counts: `amsel stats` (src/admin/health.ts).
  const health = new HealthMonitor();

  const services: C2sServices = {
    config, log, storage, tls: tlsManager, throttle, router, registry, fakeSaltSecret, iterationCensus, isLocalHost,
    streamFeatures: (session) => streamFeatures.for(session),
    sessionBound: (session: Session) => {
      health.track('sessions', session);
      return hooks.emit('session:bound', { session });
    },
    connectionClosed: async (conn, wasBound, reason) => {
      if (!wasBound) return;
      registry.remove(conn);
      await hooks.emit('session:closed', { session: conn, reason });
    },
  };
  const c2s = new C2sListeners(services);
  let started = false;
  let closeControl: (() => Promise<void>) | undefined;

  const control = async (req: ControlRequest): Promise<ControlReply> => {
    switch (req.op) {
      case 'status': return { ok: true, sessions: registry.size };
      case 'stats': {
        const counts = () => {
          const waiting = c2s.unauthenticated;
          return {
            sessions: registry.size,
            connections: c2s.connections.size,
            unauthenticatedConnections: waiting.connections,
            unauthenticatedAddresses: waiting.addresses,
            authThrottleEntries: throttle.size,
          };
        };
        return { ok: true, ...(await health.snapshot(counts, { reset: req.reset === true, gc: req.gc === true })) };
      }
      case 'deluser': return { ok: await server.deleteUser(req.host, req.username) };
      case 'passwd-changed':
        await hooks.emit('user:password-changed', { host: req.host, username: req.username });
        return { ok: true };
      default: return { ok: false, error: 'unknown operation' };
    }
  };

  const server: Server = {
    config, log, storage, hooks, registry, ports,
    async start() {
      // Fix: the control socket is taken first. It is also the "one server per data
      // directory" lock; taken last, a second server on the same dataDir had already opened
      // its listeners when it failed, and its process hung instead of exiting.
      if (opts.control !== false) closeControl = await listenControl(config.dataDir, control);
      health.start();
      tlsManager.startTicketKeyRotation({ onError: (err) => log.warn({ err: err.message }, 'TLS session-ticket key rotation failed; the old keys stay in use') });
      try {
        const loaded = await loader.loadAll(modules);
        for (const [name, l] of Object.entries(config.listeners)) {
          if (!l.enabled || (name !== 'c2s' && name !== 'c2sDirectTls')) continue;
          ports[name] = await c2s.listen({ kind: name, port: l.port, addresses: l.address });
        }
        started = true;
        log.info({ hosts: config.hosts, modules: loaded, storage: storage.dialect }, 'server started');
      } catch (err) {
        // A failed start (port in use, a module failing to load) releases what it took, so
        // that the process can exit with the error.
        await c2s.stopListening().catch(() => undefined);
        health.stop();
        tlsManager.stopTicketKeyRotation();
        await closeControl?.().catch(() => undefined);
        closeControl = undefined;
        await loader.unloadAll().catch(() => undefined);
        await storage.close().catch(() => undefined);
        throw err;
      }
      await hooks.emit('server:started', { hosts: config.hosts });
    },
    async stop() {
      log.info({ sessions: registry.size }, 'server stopping');
      tlsManager.stopTicketKeyRotation();
      if (started) await hooks.emit('server:stopping', {});
      await closeControl?.();
      // Fix: net.Server.close() stops accepting at once but calls back only when every
      // connection has ended, so awaiting it before closing the connections hung the stop
      // (SIGTERM with connected clients never finished). Stop accepting, close the streams
      // with <system-shutdown/>, then wait for the listeners.
      const listenersClosed = c2s.stopListening();
      await Promise.all([...c2s.connections].map((c: { close(e: StreamError): Promise<void> }) => c.close(new StreamError('system-shutdown', 'The server is shutting down'))));
      await listenersClosed;
      if (started) await hooks.emit('server:sessions-closed', {});
      await loader.unloadAll();
      await storage.close();
      health.stop();
      log.info('server stopped');
    },
    async reloadTls() {
      await tlsManager.reload();
      log.info({ certificates: tlsManager.certificates().map((c) => ({ names: c.names, notAfter: c.notAfter })) }, 'certificates reloaded');
    },
    deleteUser: (host, username) => accounts.delete(host, username),
  };
  return server;
}
