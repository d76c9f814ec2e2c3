// Latency recording and summaries for the load tool.

/** Latency samples in ms (a growable Float64Array: no per-sample allocation). */
export class Samples {
  private a = new Float64Array(1024);
  private n = 0;

  add(v: number): void {
    if (this.n === this.a.length) { const b = new Float64Array(this.a.length * 2); b.set(this.a); this.a = b; }
    this.a[this.n++] = v;
  }

  get count(): number { return this.n; }

  /** Sorted copy of the samples. */
  sorted(): Float64Array { return this.a.slice(0, this.n).sort(); }

  summary(): Summary { return summarize(this.sorted()); }
}

export interface Summary { count: number; p50: number; p90: number; p99: number; max: number; mean: number }

/** Nearest-rank percentile of sorted values (p in 0..100); NaN when empty. */
export function percentile(sorted: ArrayLike<number>, p: number): number {
  const n = sorted.length;
  if (n === 0) return NaN;
  const rank = Math.ceil((p / 100) * n);
  return sorted[Math.min(n - 1, Math.max(0, rank - 1))]!;
}

export function summarize(sorted: ArrayLike<number>): Summary {
  let sum = 0;
  for (let i = 0; i < sorted.length; i++) sum += sorted[i]!;
  return {
    count: sorted.length,
    p50: percentile(sorted, 50),
    p90: percentile(sorted, 90),
    p99: percentile(sorted, 99),
    max: sorted.length ? sorted[sorted.length - 1]! : NaN,
    mean: sorted.length ? sum / sorted.length : NaN,
  };
}

/** Named counters, plus the first few distinct error messages (for the stderr summary). */
export class Counters {
  readonly c: Record<string, number> = {};
  readonly errorSamples: string[] = [];
  private readonly seen = new Set<string>();

  inc(name: string, by = 1): void { this.c[name] = (this.c[name] ?? 0) + by; }
  get(name: string): number { return this.c[name] ?? 0; }

  /** Count an error under `name` and keep its message if it is one of the first 10 kinds. */
  error(name: string, e: unknown): void {
    this.inc(name);
    const msg = e instanceof Error ? e.message : String(e);
    const kind = msg.replace(/\d+/g, 'N');
    if (this.errorSamples.length < 10 && !this.seen.has(kind)) { this.seen.add(kind); this.errorSamples.push(msg); }
  }
}

/** Round for the report: 3 significant digits below 100, integers above. */
export function r3(v: number): number {
  if (!Number.isFinite(v)) return v;
  if (Math.abs(v) >= 100) return Math.round(v);
  return Number(v.toPrecision(3));
}
