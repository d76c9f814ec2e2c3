// Rosters of accounts with a bound session, in memory by username: a login reads its roster
// once instead of at the roster get, the initial presence broadcast and the logout.
//
// Kept correct by the roster service: every write of an item goes through Roster.change(), which
// invalidates the owner's entry after the write, and a read that overlapped a write is used but
// not kept (it may predate the write). Bounded: the service keeps an entry only while the account
// has a session here, drops it when the last one closes, and when the account is deleted.
import type { RosterItem } from './service.ts';
import type { StoredItem } from './roster.repo.ts';

export interface CachedRoster {
  /** As the repository lists them (sorted by contact). */
  readonly stored: readonly StoredItem[];
  /** The same, as the service hands them out (items with unparsable JIDs left out). */
  readonly items: readonly RosterItem[];
  readonly byContact: ReadonlyMap<string, RosterItem>;
}

export class RosterCache {
  readonly #entries = new Map<string, CachedRoster>();
  /** Reads in flight, by username: a token per read, removed by invalidate(). */
  readonly #loading = new Map<string, symbol>();

  constructor(private readonly toItem: (s: StoredItem) => RosterItem | undefined) {}

  /** The entry, if one is kept. */
  peek(username: string): CachedRoster | undefined {
    return this.#entries.get(username);
  }

  /** The kept entry, or a fresh read (`load`), kept if `keep()` still holds and no write came in meanwhile. */
  async get(username: string, load: () => Promise<StoredItem[]>, keep: () => boolean): Promise<CachedRoster> {
    const hit = this.#entries.get(username);
    if (hit) return hit;
    const token = Symbol(username);
    this.#loading.set(username, token);
    try {
      const stored = await load();
      const items: RosterItem[] = [];
      const byContact = new Map<string, RosterItem>();
      for (const s of stored) {
        const item = this.toItem(s);
        if (!item) continue;
        items.push(item);
        byContact.set(s.contact, item);
      }
      const entry: CachedRoster = { stored, items, byContact };
      if (this.#loading.get(username) === token && keep()) this.#entries.set(username, entry);
      return entry;
    } finally {
      if (this.#loading.get(username) === token) this.#loading.delete(username);
    }
  }

  /** After a write (or when the account goes): forget the entry and any read in flight. */
  invalidate(username: string): void {
    this.#entries.delete(username);
    this.#loading.delete(username);
  }

  /** Entries kept and reads in flight (for tests). */
  get size(): { entries: number; loading: number } {
    return { entries: this.#entries.size, loading: this.#loading.size };
  }
}
