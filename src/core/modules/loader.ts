// The module loader: per-host enablement from config, dependency order, config validation
// (all problems reported at once), and unloading by running recorded disposers in reverse.
import type { z } from 'zod';
import type { XmlElement } from '../../xml/index.ts';
import type { Logger } from '../../observability/log.ts';
import type { Config } from '../../config/schema.ts';
import type { Storage } from '../../storage/index.ts';
import type { HookBus } from '../hooks.ts';
import type { Router, IqTarget } from '../router/router.ts';
import type { SessionRegistry } from '../sessions/registry.ts';
import type { DiscoRegistry } from './disco.ts';
import type { ServiceRegistry, AccountOps } from './services.ts';
import type { Session } from '../sessions/session.ts';
import type { ModuleContext, ModuleDefinition } from './define.ts';
import { MODULE_PRESETS } from '../../config/presets.ts';

export interface LoaderDeps {
  config: Config;
  log: Logger;
  storage: Storage;
  hooks: HookBus;
  router: Router;
  registry: SessionRegistry;
  disco: DiscoRegistry;
  services: ServiceRegistry;
  accounts: AccountOps;
  streamFeatures: StreamFeatureRegistry;
}

type FeatureFn = (session: Session) => XmlElement | undefined;

/** Stream features that modules add after authentication, per host. */
export class StreamFeatureRegistry {
  private readonly byHost = new Map<string, FeatureFn[]>();
  add(host: string, fn: FeatureFn): () => void {
    let l = this.byHost.get(host);
    if (!l) this.byHost.set(host, (l = []));
    l.push(fn);
    return () => { const i = l!.indexOf(fn); if (i >= 0) l!.splice(i, 1); };
  }
  for(session: Session): XmlElement[] {
    const out: XmlElement[] = [];
    for (const fn of this.byHost.get(session.host) ?? []) {
      const el = fn(session);
      if (el) out.push(el);
    }
    return out;
  }
}

export class ModuleConfigError extends Error {}

interface Loaded { name: string; host: string; disposers: (() => void)[] }

/** Which modules are enabled, and their parsed config, per the `modules` section. */
export function resolveModules(defs: readonly ModuleDefinition[], modulesConfig: Record<string, unknown>): { def: ModuleDefinition; config: unknown }[] {
  const byName = new Map(defs.map((d) => [d.name, d]));
  const problems: string[] = [];
  // Preset entries name modules of the full product; those not implemented yet are skipped
  // quietly, while any other unknown name is a mistake in the config.
  const planned = new Set(Object.keys(MODULE_PRESETS));
  for (const name of Object.keys(modulesConfig)) {
    if (!byName.has(name) && !planned.has(name)) problems.push(`modules.${name}: unknown module (known: ${[...byName.keys()].sort().join(', ')})`);
  }
  const enabled = new Map<string, { def: ModuleDefinition; config: unknown }>();
  for (const def of defs) {
    const raw = modulesConfig[def.name];
    const on = raw === undefined ? def.defaultEnabled ?? false : raw !== false;
    if (!on) continue;
    let parsed: unknown = {};
    if (def.config) {
      const r = (def.config as z.ZodType).safeParse(typeof raw === 'object' && raw !== null ? raw : {});
      if (!r.success) {
        for (const issue of r.error.issues) problems.push(`modules.${def.name}${issue.path.length ? '.' + issue.path.join('.') : ''}: ${issue.message}`);
        continue;
      }
      parsed = r.data;
    }
    enabled.set(def.name, { def, config: parsed });
  }
  for (const { def } of enabled.values()) {
    for (const dep of def.depends ?? []) {
      if (!enabled.has(dep)) problems.push(`modules.${def.name}: needs module '${dep}', which is not enabled`);
    }
  }
  if (problems.length) throw new ModuleConfigError(`Invalid module configuration:\n  ${problems.join('\n  ')}`);
  // Dependency order (depth-first; the enabled set has no missing deps by now).
  const ordered: { def: ModuleDefinition; config: unknown }[] = [];
  const seen = new Set<string>();
  const visit = (name: string, stack: string[]) => {
    if (seen.has(name)) return;
    if (stack.includes(name)) throw new ModuleConfigError(`Module dependency cycle: ${[...stack, name].join(' -> ')}`);
    const m = enabled.get(name)!;
    for (const dep of m.def.depends ?? []) visit(dep, [...stack, name]);
    seen.add(name);
    ordered.push(m);
  };
  for (const name of enabled.keys()) visit(name, []);
  return ordered;
}

export class ModuleLoader {
  private readonly loaded: Loaded[] = [];
  private readonly tasks = new Set<Promise<unknown>>();
  constructor(private readonly deps: LoaderDeps) {}

  async loadAll(defs: readonly ModuleDefinition[]): Promise<string[]> {
    const modules = resolveModules(defs, this.deps.config.modules as Record<string, unknown>);
    for (const host of this.deps.config.hosts) {
      for (const m of modules) await this.load(host, m.def, m.config);
    }
    return modules.map((m) => m.def.name);
  }

  private async load(host: string, def: ModuleDefinition, config: unknown): Promise<void> {
    const d = this.deps;
    const rec: Loaded = { name: def.name, host, disposers: [] };
    const keep = (dispose: () => void) => { rec.disposers.push(dispose); };
    const log = d.log.child({ module: def.name, host });
    const iq = (type: 'get' | 'set') => (ns: string, names: string | string[], handler: Parameters<Router['registerIq']>[5], opts?: { to?: IqTarget[] }) => {
      for (const name of Array.isArray(names) ? names : [names]) {
        for (const target of opts?.to ?? ['host']) keep(d.router.registerIq(host, type, target, ns, name, handler));
      }
    };
    const ctx: ModuleContext<any> = {
      host,
      config: config as Record<string, unknown>,
      serverConfig: d.config,
      log,
      storage: d.storage,
      sessions: d.registry,
      iq: { get: iq('get'), set: iq('set') },
      message: { on: (addr, h, p) => keep(d.router.registerStanza(host, 'message', addr, h, p)) },
      presence: { on: (addr, h, p) => keep(d.router.registerStanza(host, 'presence', addr, h, p)) },
      on: (event, fn, p) => keep(d.hooks.on(event, fn, p)),
      emit: (event, payload) => d.hooks.emit(event, payload),
      disco: {
        feature: (ns, on = 'host') => keep(d.disco.addFeature(host, on, ns)),
        identity: (id, on = 'host') => keep(d.disco.addIdentity(host, on, id)),
        features: (on = 'host') => d.disco.featuresOf(host, on),
        identities: (on = 'host') => d.disco.identitiesOf(host, on),
        revision: () => d.disco.revision,
      },
      send: (el: XmlElement) => d.router.send(el),
      request: (iq: XmlElement, timeoutMs?: number) => d.router.request(iq, timeoutMs),
      provide: (key, impl) => keep(d.services.provide(host, key, impl)),
      use: (key) => d.services.use(host, key),
      tryUse: (key) => d.services.tryUse(host, key),
      streamFeature: (fn) => keep(d.streamFeatures.add(host, fn)),
      accounts: {
        exists: (u) => d.accounts.exists(host, u),
        setPassword: (u, p) => d.accounts.setPassword(host, u, p),
        delete: (u) => d.accounts.delete(host, u),
      },
      timers: {
        every: (ms, fn) => {
          const t = setInterval(() => ctx.background('timer', Promise.resolve().then(fn)), ms);
          t.unref();
          keep(() => clearInterval(t));
        },
        after: (ms, fn) => {
          // One-shot: its disposer goes once it fired, so a module re-arming a timer (a
          // write-behind flush) does not collect disposers for as long as it runs.
          const dispose = () => clearTimeout(t);
          const t = setTimeout(() => {
            const i = rec.disposers.indexOf(dispose);
            if (i >= 0) rec.disposers.splice(i, 1);
            ctx.background('timer', Promise.resolve().then(fn));
          }, ms);
          t.unref();
          keep(dispose);
        },
      },
      background: (name, task) => {
        const p = task.catch((err: unknown) => log.error({ err, task: name }, 'background task failed'));
        this.tasks.add(p);
        void p.finally(() => this.tasks.delete(p));
      },
    };
    try {
      await def.setup(ctx);
    } catch (err) {
      // A setup that fails half-way must not leave handlers, hooks, features or timers behind.
      for (const dispose of rec.disposers.reverse()) {
        try { dispose(); } catch (e) { log.error({ err: e }, 'unload after failed setup failed'); }
      }
      throw err;
    }
    this.loaded.push(rec);
    log.debug('module loaded');
  }

  /** Unload everything in reverse order and wait for background tasks. */
  async unloadAll(): Promise<void> {
    while (this.loaded.length) {
      const rec = this.loaded.pop()!;
      for (const dispose of rec.disposers.reverse()) {
        try { dispose(); } catch (err) { this.deps.log.error({ err, module: rec.name }, 'unload failed'); }
      }
    }
    await Promise.allSettled([...this.tasks]);
  }
}
