// The module API (ARCHITECTURE §3): a manifest (data) plus setup(ctx) (behaviour).
// Every registration made through the context is undone when the module unloads.
import type { z } from 'zod';
import type { XmlElement } from '../../xml/index.ts';
import type { Logger } from '../../observability/log.ts';
import type { HookHandler, HookMap, HookName } from '../hooks.ts';
import type { Addressing, IqHandler, IqTarget, StanzaHandler } from '../router/router.ts';
import type { SessionRegistry } from '../sessions/registry.ts';
import type { Session } from '../sessions/session.ts';
import type { ServiceKey } from './services.ts';
import type { Storage, Migration, OwnedTable } from '../../storage/index.ts';
import type { Config } from '../../config/schema.ts';

export interface SpecRef { xep?: number; rfc?: number; version?: string; status: 'complete' | 'partial' | 'planned'; note?: string }

export interface DiscoIdentity { category: string; type: string; name?: string }

export interface ModuleContext<Cfg = Record<string, unknown>> {
  readonly host: string;
  readonly config: Readonly<Cfg>;
  readonly serverConfig: Readonly<Config>;
  readonly log: Logger;
  readonly storage: Storage;
  readonly sessions: SessionRegistry;
  iq: {
    get(ns: string, names: string | string[], handler: IqHandler, opts?: { to?: IqTarget[] }): void;
    set(ns: string, names: string | string[], handler: IqHandler, opts?: { to?: IqTarget[] }): void;
  };
  message: { on(addressing: Exclude<Addressing, 'remote'>, handler: StanzaHandler, priority?: number): void };
  presence: { on(addressing: Exclude<Addressing, 'remote'>, handler: StanzaHandler, priority?: number): void };
  on<K extends HookName>(event: K, fn: HookHandler<K>, priority?: number): void;
  emit<K extends HookName>(event: K, payload: HookMap[K]): Promise<void>;
  disco: {
    /** Advertise a feature on the server ('host') or on account JIDs ('account'). */
    feature(ns: string, on?: 'host' | 'account'): void;
    identity(identity: DiscoIdentity, on?: 'host' | 'account'): void;
    /** What every loaded module declared so far (read by the disco module at query time). */
    features(on?: 'host' | 'account'): string[];
    identities(on?: 'host' | 'account'): DiscoIdentity[];
    /** Changes whenever any module adds or removes a feature or identity (cache key). */
    revision(): number;
  };
  /** Route a stanza (from and to set) as if the server sent it. */
  send(el: XmlElement): Promise<void>;
  /** Send an IQ get/set from the server (from and to set, id optional) and await the result or error reply. */
  request(iq: XmlElement, timeoutMs?: number): Promise<XmlElement>;
  /** Offer a service to other modules on this host / use one (declare the provider in `depends`). */
  provide<T>(key: ServiceKey<T>, impl: T): void;
  use<T>(key: ServiceKey<T>): T;
  tryUse<T>(key: ServiceKey<T>): T | undefined;
  /** Add a stream feature offered to clients after authentication (e.g. XEP-0115 caps, SM). */
  streamFeature(fn: (session: Session) => XmlElement | undefined): void;
  /** Account operations for this host (username = localpart). */
  readonly accounts: {
    exists(username: string): Promise<boolean>;
    setPassword(username: string, password: string): Promise<boolean>;
    delete(username: string): Promise<boolean>;
  };
  timers: { every(ms: number, fn: () => void | Promise<void>): void; after(ms: number, fn: () => void | Promise<void>): void };
  /** Track a background task; failures are logged, never unhandled. */
  background(name: string, task: Promise<unknown>): void;
}

export interface ModuleDefinition<S extends z.ZodType = z.ZodType> {
  name: string;
  /** What this module implements, for docs and the XEP table. */
  specs?: SpecRef[];
  /** Enabled when the config does not say (modules.<name>). */
  defaultEnabled?: boolean;
  depends?: string[];
  /** This module's own tables: migrations, ids '<module>/<nnn>-<slug>' (applied whether or not it is enabled). */
  migrations?: Migration[];
  /** Its tables whose rows belong to one account: purged with the account (also by the offline CLI). */
  ownedTables?: OwnedTable[];
  /** zod schema for modules.<name> (when it is an object); defaults live here. */
  config?: S;
  setup(ctx: ModuleContext<z.infer<S>>): void | Promise<void>;
}

export function defineModule<S extends z.ZodType>(def: ModuleDefinition<S>): ModuleDefinition<S> {
  return def;
}
