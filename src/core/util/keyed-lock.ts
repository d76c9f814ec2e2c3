// Per-key mutual exclusion within this process (a promise chain per key, dropped when idle):
// read-check-write sequences on one account's data never interleave. A cluster needs a shared
// lock instead (ARCHITECTURE §6: cluster seams).
export class KeyedLock {
  readonly #tails = new Map<string, Promise<void>>();

  /** Wait for the key; resolves with the release function (idempotent). */
  async acquire(key: string): Promise<() => void> {
    const prev = this.#tails.get(key) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => { release = r; });
    // Tails only ever resolve, so awaiting them cannot throw.
    const tail = prev.then(() => mine);
    this.#tails.set(key, tail);
    await prev;
    let done = false;
    return () => {
      if (done) return;
      done = true;
      release();
      if (this.#tails.get(key) === tail) this.#tails.delete(key);
    };
  }

  async run<T>(key: string, fn: () => Promise<T>): Promise<T> {
    const release = await this.acquire(key);
    try {
      return await fn();
    } finally {
      release();
    }
  }

  /** Keys with queued or running work (tests: nothing may be left behind). */
  get size(): number {
    return this.#tails.size;
  }
}
