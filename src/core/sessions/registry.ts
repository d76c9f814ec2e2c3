// Local session table: bare JID -> resource -> session. The cluster seam (ARCHITECTURE §6):
// a Redis-backed registry implements the same interface later.
import type { Jid } from '../../jid/index.ts';
import type { Session } from './session.ts';

export interface SessionRegistry {
  /** Add a bound session; returns the session it replaces (same full JID), if any. */
  add(session: Session): Session | undefined;
  remove(session: Session): void;
  get(full: Jid): Session | undefined;
  /** All sessions of one account (bare JID), in binding order. */
  resources(bare: Jid): Session[];
  all(): IterableIterator<Session>;
  readonly size: number;
  /** Sessions of one account (bare JID string) currently bound. */
  countFor(bare: Jid): number;
}

export class LocalSessionRegistry implements SessionRegistry {
  private readonly byBare = new Map<string, Map<string, Session>>();
  private readonly byId = new Map<string, Session>();

  add(session: Session): Session | undefined {
    const key = session.jid.bare.toString();
    let m = this.byBare.get(key);
    if (!m) this.byBare.set(key, (m = new Map()));
    const old = m.get(session.jid.resource);
    if (old) {
      this.byId.delete(old.id);
      m.delete(session.jid.resource); // re-insert so resources() stays in binding order
    }
    m.set(session.jid.resource, session);
    this.byId.set(session.id, session);
    return old;
  }

  remove(session: Session): void {
    if (this.byId.get(session.id) !== session) return;
    this.byId.delete(session.id);
    const key = session.jid.bare.toString();
    const m = this.byBare.get(key);
    if (!m) return;
    if (m.get(session.jid.resource) === session) m.delete(session.jid.resource);
    if (m.size === 0) this.byBare.delete(key);
  }

  get(full: Jid): Session | undefined {
    return this.byBare.get(full.bare.toString())?.get(full.resource);
  }

  resources(bare: Jid): Session[] {
    const m = this.byBare.get(bare.bare.toString());
    return m ? [...m.values()] : [];
  }

  countFor(bare: Jid): number {
    return this.byBare.get(bare.bare.toString())?.size ?? 0;
  }

  all(): IterableIterator<Session> {
    return this.byId.values();
  }

  get size(): number {
    return this.byId.size;
  }
}
