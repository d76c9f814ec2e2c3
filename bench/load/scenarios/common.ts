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
