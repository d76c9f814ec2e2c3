// Server CPU and memory from /proc (Linux). CPU is utime+stime of all the process's threads, in
// clock ticks (CLK_TCK = 100 here, so 10 ms resolution): a measured phase must burn at least
// ~1 s of server CPU for a per-operation figure to be good to 1 %.

import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

let tickMs = 10;
try {
  const hz = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim());
  if (hz > 0) tickMs = 1000 / hz;
} catch { /* keep the Linux default of 100 Hz */ }

/** utime+stime of the process (all threads), in ms. */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
  // Fields after the command name, which is in parentheses and may contain spaces.
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // f[0] is field 3 (state); utime and stime are fields 14 and 15.
  return (Number(f[11]) + Number(f[12])) * tickMs;
}

/** Resident set size (VmRSS) in bytes. */
export function rssBytes(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'latin1');
  const m = /^VmRSS:\s+(\d+) kB/m.exec(status);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** True while the process exists (and is not a zombie). */
export function alive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return stat[stat.lastIndexOf(')') + 2] !== 'Z';
  } catch { return false; }
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** Server CPU per second of wall time over a window (the process left alone meanwhile). */
export async function idleCpu(pid: number, windowMs: number): Promise<{ cpuMs: number; cpuMsPerSec: number; windowMs: number }> {
  const c0 = cpuMs(pid);
  const t0 = performance.now();
  await sleep(windowMs);
  const c1 = cpuMs(pid);
  const w = performance.now() - t0;
  return { cpuMs: c1 - c0, cpuMsPerSec: ((c1 - c0) * 1000) / w, windowMs: w };
}

/**
 * Wait until the server is quiet: at least minMs, then until one 1 s sample burns at most
 * thresholdMs of CPU, or maxMs passed. Returns the time waited and whether it got quiet.
 */
export async function waitQuiet(pid: number, opts: { minMs?: number; maxMs?: number; thresholdMs?: number } = {}): Promise<{ waitedMs: number; quiet: boolean }> {
  const { minMs = 3000, maxMs = 20_000, thresholdMs = 30 } = opts;
  const t0 = performance.now();
  await sleep(Math.max(0, minMs - 1000));
  for (;;) {
    const c0 = cpuMs(pid);
    await sleep(1000);
    const used = cpuMs(pid) - c0;
    const waited = performance.now() - t0;
    if (used <= thresholdMs) return { waitedMs: waited, quiet: true };
    if (waited >= maxMs) return { waitedMs: waited, quiet: false };
  }
}

/** CPU (ms) and wall time of a measured phase, for per-operation figures. */
export class CpuMeter {
  private c0: number;
  private t0: number;
  private client0: NodeJS.CpuUsage;
  constructor(private readonly pid: number) {
    this.c0 = cpuMs(pid);
    this.t0 = performance.now();
    this.client0 = process.cpuUsage();
  }
  stop(): { serverCpuMs: number; wallMs: number; clientCpuMs: number } {
    const u = process.cpuUsage(this.client0);
    return { serverCpuMs: cpuMs(this.pid) - this.c0, wallMs: performance.now() - this.t0, clientCpuMs: (u.user + u.system) / 1000 };
  }
}
