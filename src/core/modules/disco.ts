// The discovery registry: what loaded modules declare, per host, for XEP-0030 and XEP-0115.
import type { DiscoIdentity } from './define.ts';

export type DiscoTarget = 'host' | 'account';

export class DiscoRegistry {
  private readonly features = new Map<string, Map<string, number>>();
  private readonly identities = new Map<string, DiscoIdentity[]>();
  #revision = 0;

  /** Changes whenever a feature or identity is added or removed (for caches of derived data). */
  get revision(): number { return this.#revision; }

  private key(host: string, on: DiscoTarget) { return `${on}\u0000${host}`; }

  addFeature(host: string, on: DiscoTarget, ns: string): () => void {
    const k = this.key(host, on);
    let m = this.features.get(k);
    if (!m) this.features.set(k, (m = new Map()));
    m.set(ns, (m.get(ns) ?? 0) + 1);
    this.#revision++;
    let disposed = false;
    return () => {
      // Idempotent: a second call must not take away another module's reference.
      if (disposed) return;
      disposed = true;
      this.#revision++;
      const n = (m!.get(ns) ?? 1) - 1;
      if (n <= 0) m!.delete(ns); else m!.set(ns, n);
    };
  }

  addIdentity(host: string, on: DiscoTarget, id: DiscoIdentity): () => void {
    const k = this.key(host, on);
    let l = this.identities.get(k);
    if (!l) this.identities.set(k, (l = []));
    l.push(id);
    this.#revision++;
    return () => { const i = l!.indexOf(id); if (i >= 0) { l!.splice(i, 1); this.#revision++; } };
  }

  /** Sorted features (XEP-0115 §5.1 sorts them for hashing; clients don't mind). */
  featuresOf(host: string, on: DiscoTarget): string[] {
    return [...(this.features.get(this.key(host, on))?.keys() ?? [])].sort();
  }

  identitiesOf(host: string, on: DiscoTarget): DiscoIdentity[] {
    return [...(this.identities.get(this.key(host, on)) ?? [])];
  }
}
