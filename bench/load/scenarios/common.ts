// Shared pieces of the scenarios: account names, parameters, bounded worker pools, logging.

import type { BenchServer, Provision, ScenarioResult } from '../types.ts';

/** The one password of every bench account. */
export const BENCH_PASSWORD = 'bench-Passw0rd';

/** Localpart of bench account i: u00000, u00001, ... */
export function userName(i: number): string { return `u${String(i).padStart(5, '0')}`; }

export function users(n: number, from = 0): string[] { return Array.from({ length: n }, (_, i) => userName(from + i)); }

export type Params = Record<string, number | string | boolean>;

export interface Scenario<P extends Params = Params> {
  name: string;
  defaults: P;
  /** Accounts (and rosters) this scenario needs with these parameters. */
  provision(p: P): Provision;
  run(server: BenchServer, p: P): Promise<ScenarioResult>;
}

/** Defaults overridden by `given`, each value coerced to the type of its default. */
export function withDefaults<P extends Params>(defaults: P, given: Params = {}): P {
  const out: Params = { ...defaults };
  for (const [k, v] of Object.entries(given)) {
    if (!(k in defaults)) throw new Error(`unknown parameter "${k}" (known: ${Object.keys(defaults).join(', ')})`);
    const d = defaults[k];
    if (typeof d === 'number') {
      const n = Number(v);
      if (!Number.isFinite(n)) throw new Error(`parameter "${k}" must be a number, got "${String(v)}"`);
      out[k] = n;
    } else if (typeof d === 'boolean') out[k] = v === true || v === 'true' || v === '1' || v === 'yes';
    else out[k] = String(v);
  }
  return out as P;
}

/** Human progress, to stderr only (stdout carries the one JSON result line). */
export function log(msg: string): void { process.stderr.write(`[load ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); }

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Run fn(0..total-1) with `concurrency` workers; stops taking new work at the deadline
 * (performance.now() ms). fn must itself be bounded (every network wait has a timeout); the pool
 * also gives up waiting `graceMs` after the deadline so that a stuck call cannot hang the run.
 */
export async function pool(total: number, concurrency: number, deadline: number, fn: (i: number) => Promise<void>, graceMs = 30_000): Promise<{ started: number; timedOut: boolean }> {
  let next = 0;
  let timedOut = false;
  const worker = async () => {
    while (next < total) {
      if (performance.now() >= deadline) { timedOut = true; return; }
      await fn(next++);
    }
  };
  const workers = Promise.all(Array.from({ length: Math.min(concurrency, total) }, worker));
  let timer: NodeJS.Timeout | undefined;
  const guard = new Promise<'stuck'>((r) => { timer = setTimeout(() => r('stuck'), Math.max(0, deadline - performance.now()) + graceMs); });
  const r = await Promise.race([workers, guard]);
  clearTimeout(timer);
  if (r === 'stuck') timedOut = true;
  return { started: next, timedOut };
}

/** Periodic progress line while a phase runs (stderr). */
export function progress(label: string, count: () => string, everyMs = 5000): () => void {
  const t = setInterval(() => log(`${label}: ${count()}`), everyMs);
  t.unref();
  return () => clearInterval(t);
}

export const MiB = 1024 * 1024;

/** /proc CPU has 10 ms resolution: warn when a measured phase burned too little to be precise. */
export function checkCpuResolution(scenario: string, serverCpuMs: number): void {
  if (serverCpuMs < 1000) log(`${scenario}: WARNING: the measured phase burned only ${Math.round(serverCpuMs)} ms of server CPU (10 ms resolution); raise the counts for a per-operation figure good to 1 %`);
}

/**
 * Amsel's event-loop delay during a phase (`amsel stats`): the window is reset when the phase
 * starts and read when it ends (p50/p99/max over every 10 ms tick of the phase); in between it
 * is polled every `everyMs` for the progress line. Empty for servers without stats (Prosody,
 * ejabberd).
 */
export async function pollLoopDelay(server: BenchServer, label: string, everyMs = 5000): Promise<{ stop(): Promise<Record<string, number>> }> {
  const stats = server.stats?.bind(server);
  if (!stats) return { stop: async () => ({}) };
  await stats({ reset: true });
  let busy: Promise<void> | undefined;
  const t = setInterval(() => {
    busy ??= stats().then((s) => {
      if (s) log(`${label}: event-loop delay so far p50 ${s.eventLoopDelayMs.p50} ms, p99 ${s.eventLoopDelayMs.p99} ms, max ${s.eventLoopDelayMs.max} ms; ${s.counts.sessions} sessions`);
    }).finally(() => { busy = undefined; });
  }, everyMs);
  return {
    async stop() {
      clearInterval(t);
      await busy;
      const s = await stats();
      if (!s) return {} as Record<string, number>;
      const d = s.eventLoopDelayMs;
      return { loopDelayP50Ms: d.p50, loopDelayP99Ms: d.p99, loopDelayMaxMs: d.max, loopBusyPct: Math.round(s.eventLoopUtilization * 1000) / 10 };
    },
  };
}
