// Serialises async work per key (an account) within this process: read-check-write sequences on
// one account's data never interleave. (A cluster needs a shared lock instead; see docs.)

export class KeyedQueue {
  /** key → a promise that settles when the last queued task of that key has finished. */
  private readonly tails = new Map<string, Promise<void>>();

  async run<T>(key: string, task: () => Promise<T>): Promise<T> {
    const prev = this.tails.get(key);
    let release!: () => void;
    const mine = new Promise<void>((resolve) => { release = resolve; });
    // Tails only ever resolve (release() is called in finally), so awaiting them cannot throw.
    const tail = prev ? prev.then(() => mine) : mine;
    this.tails.set(key, tail);
    try {
      if (prev) await prev;
      return await task();
    } finally {
      release();
      if (this.tails.get(key) === tail) this.tails.delete(key);
    }
  }

  /** Keys with queued or running work (for tests: nothing may be left behind). */
  get size(): number {
    return this.tails.size;
  }
}
