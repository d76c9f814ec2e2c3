// The iteration census: how many accounts of a host store each PBKDF2 iteration count, cached in
// memory for the fake credentials of unknown users (scram.ts fakeIterations). After
// `auth.scramIterations` is raised, accounts created before keep their old count until a PLAIN
// login or a password change re-derives their keys; an unknown name must then show an old count as
// often as an existing name does, or `i=` in SCRAM's server-first-message tells them apart.
//
// Logins never wait for a query, except the very first one of a host after start (one aggregate
// query, shared by concurrent logins): a stale census is returned at once and refreshed in the
// background, at most every `maxAgeMs`, or sooner (not before `minIntervalMs`) after a change
// (account created, deleted, password changed or upgraded).

import type { HookBus } from '../hooks.ts';
import type { Logger } from '../../observability/log.ts';
import { StorageClosedError } from '../../storage/index.ts';

export interface IterationShare {
  iterations: number;
  /** How many accounts store this count. */
  accounts: number;
}

export interface IterationCensusOptions {
  /** Accounts per iteration count of one host (AccountStore.iterationCounts). */
  count(host: string): Promise<Map<number, number>>;
  log: Logger;
  /** Follow `user:created`, `user:deleted` and `user:password-changed` (also sent by the CLI via the control socket). */
  hooks?: HookBus;
  /** A host's census is reloaded when older than this. Default 5 minutes. */
  maxAgeMs?: number;
  /** Never reloaded more often than this, whatever changes; also the retry delay after a failure. Default 30 s. */
  minIntervalMs?: number;
  now?: () => number;
}

interface Entry {
  shares: readonly IterationShare[];
  /** When the current shares were asked for (0: never loaded). */
  loadedAt: number;
  /** A reload starts on the first get() at or after this time. */
  due: number;
  loading: Promise<void> | undefined;
  /** Changed since the current (or running) load asked. */
  dirty: boolean;
}

export class IterationCensus {
  readonly #opts: IterationCensusOptions;
  readonly #maxAgeMs: number;
  readonly #minIntervalMs: number;
  readonly #now: () => number;
  readonly #hosts = new Map<string, Entry>();

  constructor(opts: IterationCensusOptions) {
    this.#opts = opts;
    this.#maxAgeMs = opts.maxAgeMs ?? 5 * 60_000;
    this.#minIntervalMs = Math.min(opts.minIntervalMs ?? 30_000, this.#maxAgeMs);
    this.#now = opts.now ?? Date.now;
    const changed = ({ host }: { host: string }) => this.invalidate(host);
    opts.hooks?.on('user:created', changed);
    opts.hooks?.on('user:deleted', changed);
    opts.hooks?.on('user:password-changed', changed);
  }

  /**
   * The census of `host`, ascending by iteration count; empty if the host has no accounts or it
   * could not be read yet (the caller then uses the configured count). Waits only for the first
   * load of a host; later reloads run in the background and the current census is returned.
   */
  async get(host: string): Promise<readonly IterationShare[]> {
    let e = this.#hosts.get(host);
    if (e === undefined) {
      e = { shares: [], loadedAt: 0, due: 0, loading: undefined, dirty: false };
      this.#hosts.set(host, e);
    }
    if (e.loading === undefined && this.#now() >= e.due) e.loading = this.#load(host, e);
    if (e.loadedAt === 0 && e.loading !== undefined) await e.loading;
    return e.shares;
  }

  /** The census of `host` changed: reload it on the next get(), but not within `minIntervalMs` of the last load. */
  invalidate(host: string): void {
    const e = this.#hosts.get(host);
    if (e === undefined) return;
    e.dirty = true;
    if (e.loadedAt !== 0) e.due = Math.min(e.due, e.loadedAt + this.#minIntervalMs);
  }

  async #load(host: string, e: Entry): Promise<void> {
    const started = this.#now();
    e.dirty = false;
    try {
      const counts = await this.#opts.count(host);
      e.shares = [...counts]
        .filter(([it, n]) => Number.isSafeInteger(it) && it > 0 && Number.isSafeInteger(n) && n > 0)
        .map(([iterations, accounts]) => ({ iterations, accounts }))
        .sort((a, b) => a.iterations - b.iterations);
      e.loadedAt = started;
      // A change while the query ran may be missing from its result.
      e.due = started + (e.dirty ? this.#minIntervalMs : this.#maxAgeMs);
    } catch (err) {
      // Keep what we had (or nothing: fakes get the configured count) and try again later.
      e.due = this.#now() + this.#minIntervalMs;
      if (err instanceof StorageClosedError) return;
      this.#opts.log.warn({ host, err: err instanceof Error ? err.message : String(err) }, 'cannot count the iteration counts of stored accounts; unknown users may show a different count than old accounts');
    } finally {
      e.loading = undefined;
    }
  }
}
