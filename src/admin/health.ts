// Health figures of a running server for `amsel stats` (control socket op 'stats'): memory, the
// event-loop delay histogram (perf_hooks, sampling every 10 ms from server start: how late a
// timer fires is how long the loop was blocked), event-loop utilisation, and object counts that
// must return to zero when everyone has gone (the real leak check: heap figures move with the
// garbage collector's mood, counts do not). `track()` follows objects through a
// FinalizationRegistry: after everyone left and a full collection, a session object still alive
// is one something still holds (a leak), whatever the tables say.
import { monitorEventLoopDelay, performance, type EventLoopUtilization, type IntervalHistogram } from 'node:perf_hooks';
import v8 from 'node:v8';
import { runInNewContext } from 'node:vm';

export interface HealthStats {
  uptimeS: number;
  /** Live objects by kind (sessions, connections, throttle entries, ...). */
  counts: Record<string, number>;
  memory: { rss: number; heapTotal: number; heapUsed: number; external: number; arrayBuffers: number; heapLimit: number };
  /** How late the 10 ms ticks fired, in milliseconds, since start or the last reset; `samples` is how many ticks. */
  eventLoopDelayMs: { min: number; p50: number; p90: number; p99: number; max: number; mean: number; samples: number; windowS: number };
  /** Share of the window the event loop was busy (0..1). */
  eventLoopUtilization: number;
  /** Whether a full garbage collection ran before the memory figures. */
  gc: boolean;
  /** Objects passed to track(), by kind: how many were tracked, how many are still alive. */
  tracked: Record<string, { total: number; alive: number }>;
}

const RESOLUTION_MS = 10;
/** The histogram records the whole interval between ticks (resolution + delay): keep the delay. */
const ms = (ns: number) => Math.max(0, Math.round(ns / 1000 - RESOLUTION_MS * 1000) / 1000);

let gcFn: (() => void) | undefined;
/** A full collection without --expose-gc on the command line (V8 flag set at runtime, once). */
function fullGc(): void {
  if (!gcFn) {
    v8.setFlagsFromString('--expose-gc');
    gcFn = runInNewContext('gc') as () => void;
  }
  gcFn();
}

export class HealthMonitor {
  private loop: IntervalHistogram | undefined;
  private startedAt = 0;
  private windowStart = 0;
  private elu: EventLoopUtilization | undefined;
  private readonly kinds = new Map<string, { total: number; collected: number }>();
  private readonly finalizers = new FinalizationRegistry<string>((kind) => { this.kinds.get(kind)!.collected++; });

  /** Count `obj` under `kind` until it is garbage-collected. */
  track(kind: string, obj: object): void {
    let k = this.kinds.get(kind);
    if (!k) this.kinds.set(kind, (k = { total: 0, collected: 0 }));
    k.total++;
    this.finalizers.register(obj, kind);
  }

  start(): void {
    this.loop = monitorEventLoopDelay({ resolution: RESOLUTION_MS });
    this.loop.enable();
    this.startedAt = this.windowStart = performance.now();
    this.elu = performance.eventLoopUtilization();
  }

  stop(): void {
    this.loop?.disable();
  }

  async snapshot(counts: () => Record<string, number>, opts: { reset?: boolean; gc?: boolean } = {}): Promise<HealthStats> {
    const now = performance.now();
    const h = this.loop;
    const samples = h?.count ?? 0;
    const eventLoopDelayMs = {
      min: samples ? ms(h!.min) : 0,
      p50: samples ? ms(h!.percentile(50)) : 0,
      p90: samples ? ms(h!.percentile(90)) : 0,
      p99: samples ? ms(h!.percentile(99)) : 0,
      max: samples ? ms(h!.max) : 0,
      mean: samples ? ms(h!.mean) : 0,
      samples,
      windowS: Math.round(now - this.windowStart) / 1000,
    };
    const elu = this.elu ? performance.eventLoopUtilization(this.elu).utilization : 0;
    if (opts.reset) {
      h?.reset();
      this.windowStart = now;
      this.elu = performance.eventLoopUtilization();
    }
    if (opts.gc) {
      fullGc();
      // Finalization callbacks run in later tasks; a second collection catches what the first freed.
      await new Promise((r) => setImmediate(r));
      fullGc();
      await new Promise((r) => setImmediate(r));
    }
    const m = process.memoryUsage();
    const tracked: HealthStats['tracked'] = {};
    for (const [kind, k] of this.kinds) tracked[kind] = { total: k.total, alive: k.total - k.collected };
    return {
      uptimeS: Math.round(now - this.startedAt) / 1000,
      counts: counts(),
      memory: { rss: m.rss, heapTotal: m.heapTotal, heapUsed: m.heapUsed, external: m.external, arrayBuffers: m.arrayBuffers, heapLimit: v8.getHeapStatistics().heap_size_limit },
      eventLoopDelayMs,
      eventLoopUtilization: Math.round(elu * 1000) / 1000,
      gc: opts.gc === true,
      tracked,
    };
  }
}
