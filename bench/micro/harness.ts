// Micro-benchmark runner: a subject and a fixed baseline, measured in interleaved rounds.
//
// The guarded figure is the ratio subject/baseline, not an absolute speed: both sides run on the
// same machine, in the same process, in alternating rounds, so machine speed and load (this is
// a 2-core box where tests run two files at a time) affect both alike and mostly cancel out.
//
// Timing is process CPU time (user + system), not wall time: a round that is preempted by
// another process does not get slower, only later. Each round is paired with the adjacent
// round of the other side; the reported ratio is the median of the per-pair ratios.

/** A fixed amount of work; returns how many units (stanzas) it did. */
export interface Workload {
  run(): number | Promise<number>;
}

export interface MicroBench {
  /** Stable id, the key in figures.json, e.g. 'parser.stream'. */
  name: string;
  /** What one unit is, for the table: 'stanzas'. */
  unit: string;
  description: string;
  /** Average bytes per unit, when a throughput in MB/s makes sense. */
  bytesPerUnit?: number;
  subject(): Workload | Promise<Workload>;
  baseline(): Workload | Promise<Workload>;
}

export interface Timing {
  /** CPU time per side spent warming up (JIT) and calibrating the round size. */
  warmupMs: number;
  /** Target CPU time of one round of one side. */
  roundMs: number;
  /** Timed rounds per side (odd, so the median is one of them). */
  rounds: number;
}

export const FULL_TIMING: Readonly<Timing> = Object.freeze({ warmupMs: 600, roundMs: 150, rounds: 9 });
export const QUICK_TIMING: Readonly<Timing> = Object.freeze({ warmupMs: 120, roundMs: 30, rounds: 7 });

export interface PairResult {
  /** Median units/s of the subject rounds. */
  opsPerSec: number;
  /** Median units/s of the baseline rounds. */
  baselineOpsPerSec: number;
  /** Median of the per-round ratios subject/baseline (adjacent rounds paired). */
  ratio: number;
  ratios: number[];
  /** CPU ms the whole measurement took (warm-up included). */
  cpuMs: number;
}

function cpuNow(): number {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1000;
}

export function median(xs: readonly number[]): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 === 1 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** `reps` calls of the workload: [units done, CPU ms]. Sync results skip the await. */
async function timed(w: Workload, reps: number): Promise<[number, number]> {
  let units = 0;
  const t0 = cpuNow();
  for (let i = 0; i < reps; i++) {
    const r = w.run();
    units += typeof r === 'number' ? r : await r;
  }
  return [units, cpuNow() - t0];
}

/**
 * Run the workload until `ms` of CPU time have passed (at least twice); returns CPU ms per call.
 * This is the warm-up: long enough for V8 to optimise the hot functions.
 */
async function warm(w: Workload, ms: number): Promise<number> {
  let calls = 0;
  let spent = 0;
  while (spent < ms || calls < 2) {
    const [, dt] = await timed(w, 1);
    spent += dt;
    calls++;
  }
  // Per-call cost from a last batch, now that the code is warm.
  const reps = Math.max(1, Math.round(calls / 4));
  const [, dt] = await timed(w, reps);
  return Math.max(dt / reps, 0.001);
}

/** Measure subject against baseline with interleaved, alternating-order rounds. */
export async function measurePair(subject: Workload, baseline: Workload, timing: Timing = FULL_TIMING): Promise<PairResult> {
  const start = cpuNow();
  // Warm up both before timing either, alternating, so neither gets a cold-cache head start.
  const half = timing.warmupMs / 2;
  await warm(baseline, half);
  await warm(subject, half);
  const perCallB = await warm(baseline, half);
  const perCallS = await warm(subject, half);
  const repsB = Math.max(1, Math.round(timing.roundMs / perCallB));
  const repsS = Math.max(1, Math.round(timing.roundMs / perCallS));

  const subj: number[] = [];
  const base: number[] = [];
  const ratios: number[] = [];
  for (let i = 0; i < timing.rounds; i++) {
    // ABBA order: alternate which side goes first so drift during a pair does not favour one.
    let b: [number, number];
    let s: [number, number];
    if (i % 2 === 0) {
      b = await timed(baseline, repsB);
      s = await timed(subject, repsS);
    } else {
      s = await timed(subject, repsS);
      b = await timed(baseline, repsB);
    }
    const sOps = s[0] / (Math.max(s[1], 0.001) / 1000);
    const bOps = b[0] / (Math.max(b[1], 0.001) / 1000);
    subj.push(sOps);
    base.push(bOps);
    ratios.push(sOps / bOps);
  }
  return {
    opsPerSec: median(subj),
    baselineOpsPerSec: median(base),
    ratio: median(ratios),
    ratios,
    cpuMs: cpuNow() - start,
  };
}
