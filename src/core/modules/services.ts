// Typed service tokens (ARCHITECTURE §3): a module provides an implementation under a key,
// others use it. Keys are values, so a typo is a compile error, not a silent miss.
export interface ServiceKey<T> { readonly name: string; readonly __type?: T }

export function serviceKey<T>(name: string): ServiceKey<T> {
  return { name };
}

/** Per-host service table. */
export class ServiceRegistry {
  private readonly map = new Map<string, Map<ServiceKey<unknown>, unknown>>();

  provide<T>(host: string, key: ServiceKey<T>, impl: T): () => void {
    let m = this.map.get(host);
    if (!m) this.map.set(host, (m = new Map()));
    if (m.has(key)) throw new Error(`service ${key.name} already provided on ${host}`);
    m.set(key, impl);
    return () => { if (m!.get(key) === impl) m!.delete(key); };
  }

  use<T>(host: string, key: ServiceKey<T>): T {
    const impl = this.map.get(host)?.get(key);
    if (impl === undefined) throw new Error(`service ${key.name} is not provided on ${host} (is its module enabled and listed in depends?)`);
    return impl as T;
  }

  tryUse<T>(host: string, key: ServiceKey<T>): T | undefined {
    return this.map.get(host)?.get(key) as T | undefined;
  }
}

/** Account operations the core offers to modules (self-service, admin commands). */
export interface AccountOps {
  exists(host: string, username: string): Promise<boolean>;
  /** Replace the stored SCRAM keys (derived off the event loop); false if no such account. */
  setPassword(host: string, username: string, password: string): Promise<boolean>;
  /** Close the account's sessions, purge everything it owns, run `user:deleted`. */
  delete(host: string, username: string): Promise<boolean>;
}
