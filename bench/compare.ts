// The whole comparison in one command:
//
//   node --import tsx bench/compare.ts [--servers amsel,prosody,ejabberd] [--variants glibc|none]
//        [--only login,idle:10000,...] [--quick] [--write-docs] [--no-merge] [--render FILE]
//
// For each server (and variant, e.g. Amsel with jemalloc) and each run of a fixed list, one
// load-tool process (bench/load/cli.ts) that starts a fresh server, runs one scenario and prints
// one JSON line. One process per run keeps the client's memory and the server's state from
// leaking between runs. A run that fails is recorded as an error row; the comparison goes on.
// Results go to bench/results/<date>.json and latest.json (a subset of runs is merged over the
// previous latest.json), then docs/benchmarks.md and docs/benchmarks.svg are regenerated.
// --quick: small counts, results in bench/results/quick-*.json only (docs with --write-docs).

import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { budgetChart, budgetTable, generatedSection, runKey, spliceGenerated, summaryTable, type MachineInfo, type ResultsFile, type RunResult } from './report.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RESULTS_DIR = path.join(ROOT, 'bench/results');
const DOCS_MD = path.join(ROOT, 'docs/benchmarks.md');
const DOCS_SVG = path.join(ROOT, 'docs/benchmarks.svg');
export const JEMALLOC = '/usr/lib/x86_64-linux-gnu/libjemalloc.so.2';

export const SERVERS = ['amsel', 'prosody', 'ejabberd'] as const;

/** One run: a name matching report.ts runKey(), the scenario and its load-tool parameters. */
export interface RunSpec {
  name: string;
  scenario: string;
  args: Record<string, string | number>;
}

/** A measured server configuration: its label in the report, the adapter, extra environment. */
export interface Target {
  label: string;
  server: string;
  env: Record<string, string>;
}

export const FULL_RUNS: readonly RunSpec[] = [
  { name: 'login', scenario: 'login', args: { logins: 3000, concurrency: 20, warmup: 1000 } },
  { name: 'idle:1000', scenario: 'idle', args: { n: 1000 } },
  { name: 'idle:5000', scenario: 'idle', args: { n: 5000 } },
  { name: 'idle:10000', scenario: 'idle', args: { n: 10_000 } },
  // 100 000 messages: Amsel needs that many to burn ≥ 1 s of server CPU (10 ms ticks). Bounded
  // at 120 s: Prosody and ejabberd (MAM in SQLite) deliver ~100/s and would need ~20 min; what
  // they deliver in 120 s is still many seconds of server CPU.
  { name: 'chat:closed', scenario: 'chat', args: { mode: 'closed', messages: 100_000, timeoutS: 120 } },
  { name: 'chat:rate', scenario: 'chat', args: { mode: 'rate', rate: 300, seconds: 20 } },
  { name: 'roster', scenario: 'roster', args: {} },
  { name: 'aging', scenario: 'aging', args: { churn: 10_000, wave: 1000 } },
];

export const QUICK_RUNS: readonly RunSpec[] = [
  { name: 'login', scenario: 'login', args: { logins: 300, concurrency: 20 } },
  { name: 'idle:1000', scenario: 'idle', args: { n: 1000 } },
  { name: 'chat:closed', scenario: 'chat', args: { mode: 'closed', messages: 5000 } },
  { name: 'chat:rate', scenario: 'chat', args: { mode: 'rate', rate: 300, seconds: 5 } },
  { name: 'roster', scenario: 'roster', args: { logins: 100 } },
];

/**
 * Named variants: a label and how it differs from its server's default configuration. Amsel's
 * default here is its production start-up, the systemd unit's: jemalloc preloaded (when the
 * library is installed); the variant shows the same server on glibc's malloc.
 */
export const VARIANTS: Readonly<Record<string, Target>> = {
  glibc: { label: 'amsel (glibc malloc)', server: 'amsel', env: {} },
};

export interface CompareOptions {
  servers: string[];
  /** libjemalloc is installed: Amsel runs with it, as its systemd unit does. */
  jemalloc: boolean;
  variants: string[];
  quick: boolean;
  /** Run names or scenario names; undefined = all. */
  only: string[] | undefined;
  writeDocs: boolean;
  /** Merge a subset's results over the previous latest.json. */
  merge: boolean;
  /** Only rewrite the docs from this results file. */
  render: string | undefined;
  /** Hard bound of one run (load-tool process), minutes. */
  runTimeoutMin: number;
}

const list = (v: string) => v.split(',').map((s) => s.trim()).filter(Boolean);

/** Parse compare.ts's arguments; `hasJemalloc` decides the default variants. */
export function parseCompareArgs(argv: readonly string[], hasJemalloc = existsSync(JEMALLOC)): CompareOptions {
  const o: CompareOptions = {
    servers: [...SERVERS], jemalloc: hasJemalloc, variants: hasJemalloc ? ['glibc'] : [], quick: false, only: undefined,
    writeDocs: false, merge: true, render: undefined, runTimeoutMin: 60,
  };
  let writeDocs: boolean | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const key = eq >= 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      if (eq >= 0) return a.slice(eq + 1);
      const v = argv[++i];
      if (v === undefined || v.startsWith('--')) throw new Error(`${key} needs a value`);
      return v;
    };
    switch (key) {
      case '--servers': o.servers = list(value()); break;
      case '--variants': { const v = list(value()); o.variants = v.length === 1 && v[0] === 'none' ? [] : v; break; }
      case '--only': o.only = list(value()); break;
      case '--quick': o.quick = true; break;
      case '--write-docs': writeDocs = true; break;
      case '--no-docs': writeDocs = false; break;
      case '--no-merge': o.merge = false; break;
      case '--render': o.render = value(); break;
      case '--run-timeout-min': o.runTimeoutMin = Number(value()); break;
      default: throw new Error(`unknown argument "${a}"\n${USAGE}`);
    }
  }
  for (const s of o.servers) if (!(SERVERS as readonly string[]).includes(s)) throw new Error(`--servers: unknown server "${s}" (known: ${SERVERS.join(', ')})`);
  for (const v of o.variants) if (!VARIANTS[v]) throw new Error(`--variants: unknown variant "${v}" (known: ${Object.keys(VARIANTS).join(', ')}, none)`);
  if (!(o.runTimeoutMin > 0)) throw new Error('--run-timeout-min must be a positive number');
  const runs = o.quick ? QUICK_RUNS : FULL_RUNS;
  for (const n of o.only ?? []) if (!runs.some((r) => matches(r, n))) throw new Error(`--only: no run "${n}" in ${o.quick ? 'quick' : 'full'} mode (runs: ${runs.map((r) => r.name).join(', ')})`);
  o.writeDocs = writeDocs ?? !o.quick;
  return o;
}

const matches = (r: RunSpec, name: string) => r.name === name || r.scenario === name;

/** The targets to measure, in order: the servers, each followed by its selected variants. */
export function targets(o: Pick<CompareOptions, 'servers' | 'variants' | 'jemalloc'>): Target[] {
  const out: Target[] = [];
  for (const s of o.servers) {
    out.push({ label: s, server: s, env: s === 'amsel' && o.jemalloc ? { LD_PRELOAD: JEMALLOC } : {} });
    for (const v of o.variants) if (VARIANTS[v]!.server === s) out.push(VARIANTS[v]!);
  }
  return out;
}

/** The runs to do, per target, in order. */
export function plan(o: Pick<CompareOptions, 'servers' | 'variants' | 'jemalloc' | 'quick' | 'only'>): { target: Target; run: RunSpec }[] {
  const runs = (o.quick ? QUICK_RUNS : FULL_RUNS).filter((r) => !o.only || o.only.some((n) => matches(r, n)));
  return targets(o).flatMap((target) => runs.map((run) => ({ target, run })));
}

/** The load-tool command line (after `node`) of one run. */
export function cliArgs(target: Target, run: RunSpec): string[] {
  const args = ['--import', 'tsx', 'bench/load/cli.ts', '--server', target.server, '--scenario', run.scenario];
  for (const [k, v] of Object.entries(run.args)) args.push(`--${k}`, String(v));
  for (const [k, v] of Object.entries(target.env)) args.push('--env', `${k}=${v}`);
  return args;
}

/** Replace results of the same label and run; keep the others (order: previous, then new). */
export function mergeResults(previous: readonly RunResult[], fresh: readonly RunResult[]): RunResult[] {
  const id = (r: RunResult) => `${r.label}\u0000${runKey(r)}`;
  const replaced = new Map(fresh.map((r) => [id(r), r]));
  const out = previous.map((r) => replaced.get(id(r)) ?? r);
  const have = new Set(out.map(id));
  for (const r of fresh) if (!have.has(id(r))) out.push(r);
  return out;
}

// ---------------------------------------------------------------------------------------------

const USAGE = 'usage: node --import tsx bench/compare.ts [--servers amsel,prosody,ejabberd] [--variants glibc|none] [--only run,...] [--quick] [--write-docs] [--no-merge] [--render FILE] [--run-timeout-min 60]';

function log(msg: string): void { process.stderr.write(`[compare ${new Date().toISOString().slice(11, 19)}] ${msg}\n`); }

export function machineInfo(): MachineInfo {
  let cpuModel = 'unknown';
  try {
    const m = /^model name\s*:\s*(.+)$/m.exec(readFileSync('/proc/cpuinfo', 'utf8'));
    if (m) cpuModel = m[1]!.trim();
  } catch { /* not Linux */ }
  return {
    cpus: os.availableParallelism(),
    cpuModel,
    memoryGiB: os.totalmem() / 2 ** 30,
    kernel: os.release(),
    node: process.version,
  };
}

/** Params of a run that produced no result: enough for runKey() and the report. */
function specParams(run: RunSpec): Record<string, number | string | boolean> {
  return Object.fromEntries(Object.entries(run.args).map(([k, v]) => [k, typeof v === 'string' && v !== '' && Number.isFinite(Number(v)) ? Number(v) : v]));
}

/** Run one load-tool process; never throws (a failure becomes an error row). */
async function runOne(target: Target, run: RunSpec, timeoutMin: number, prefix: string): Promise<RunResult> {
  const t0 = Date.now();
  const loadBefore = Math.round(os.loadavg()[0]! * 100) / 100;
  const child = spawn(process.execPath, cliArgs(target, run), { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const tail: string[] = [];
  let partial = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d; });
  child.stderr.setEncoding('utf8').on('data', (d: string) => {
    const lines = (partial + d).split('\n');
    partial = lines.pop()!;
    for (const l of lines) {
      process.stderr.write(`  ${prefix} ${l}\n`);
      tail.push(l);
      if (tail.length > 20) tail.shift();
    }
  });
  // Bound every run: the load tool has its own watchdog, this one covers a wedged tool.
  let killedByUs = false;
  const timer = setTimeout(() => {
    killedByUs = true;
    log(`${prefix} no result after ${timeoutMin} min: SIGTERM`);
    child.kill('SIGTERM');
    setTimeout(() => child.kill('SIGKILL'), 30_000).unref();
  }, timeoutMin * 60_000);
  const code = await new Promise<number | null>((resolve) => {
    child.once('error', (e) => { tail.push(`spawn: ${e.message}`); resolve(null); });
    child.once('close', (c) => resolve(c));
  });
  clearTimeout(timer);
  if (partial) tail.push(partial);
  const measuredAt = new Date().toISOString();
  const line = stdout.split('\n').reverse().find((l) => l.startsWith('{'));
  if (line) {
    try {
      const r = JSON.parse(line) as Omit<RunResult, 'label'>;
      return { ...r, label: target.label, version: r.version ?? '', notes: r.notes ?? '', measuredAt, loadBefore };
    } catch { /* fall through: error row */ }
  }
  const why = killedByUs ? `timed out after ${timeoutMin} min` : `exit code ${code}`;
  const last = tail.filter((l) => /error|fail|cannot|refused|watchdog/i.test(l)).at(-1) ?? tail.at(-1) ?? '';
  return {
    label: target.label, server: target.server, scenario: run.scenario, params: specParams(run),
    figures: {}, errors: 1, durationMs: Date.now() - t0, version: '', notes: '',
    error: `${why}, no result${last ? `: ${last.replace(/^\[load [\d:]+\] /, '')}` : ''}`, measuredAt, loadBefore,
  };
}

async function readResults(file: string): Promise<ResultsFile | undefined> {
  try { return JSON.parse(await readFile(file, 'utf8')) as ResultsFile; } catch { return undefined; }
}

async function writeDocs(file: ResultsFile): Promise<void> {
  await mkdir(path.dirname(DOCS_MD), { recursive: true });
  const existing = await readFile(DOCS_MD, 'utf8').catch(() => undefined);
  await writeFile(DOCS_SVG, budgetChart(file.results));
  await writeFile(DOCS_MD, spliceGenerated(existing, generatedSection(file, path.basename(DOCS_SVG))));
  log(`wrote ${path.relative(ROOT, DOCS_MD)} and ${path.relative(ROOT, DOCS_SVG)}`);
}

async function main(): Promise<number> {
  const argv = process.argv.slice(2);
  if (argv.includes('--help') || argv.includes('-h')) { process.stderr.write(USAGE + '\n'); return 0; }
  const o = parseCompareArgs(argv);

  if (o.render) {
    const file = await readResults(path.resolve(o.render));
    if (!file) throw new Error(`cannot read results from ${o.render}`);
    await writeDocs(file);
    process.stdout.write(summaryTable(file.results) + '\n');
    return 0;
  }

  const todo = plan(o);
  if (todo.length === 0) throw new Error('nothing to run');
  const command = `node --import tsx bench/compare.ts${argv.length ? ' ' + argv.join(' ') : ''}`;
  log(`${todo.length} runs: ${[...new Set(todo.map((t) => t.target.label))].join(', ')} × ${[...new Set(todo.map((t) => t.run.name))].join(', ')}`);
  const started = Date.now();
  const results: RunResult[] = [];
  for (const [i, { target, run }] of todo.entries()) {
    const prefix = `[${target.label} ${run.name}]`;
    log(`(${i + 1}/${todo.length}) ${target.label} ${run.name}: node ${cliArgs(target, run).join(' ')}`);
    const t0 = Date.now();
    const r = await runOne(target, run, o.runTimeoutMin, prefix);
    results.push(r);
    const hl = Object.entries(r.figures).slice(0, 4).map(([k, v]) => `${k}=${v}`).join(' ');
    log(`(${i + 1}/${todo.length}) ${target.label} ${run.name}: ${r.error ? `FAILED (${r.error})` : `errors ${r.errors}; ${hl}`} [${Math.round((Date.now() - t0) / 1000)} s]`);
  }
  const date = new Date().toISOString();
  log(`all runs done in ${Math.round((Date.now() - started) / 60_000 * 10) / 10} min`);

  const machine = machineInfo();
  const stamp = date.slice(0, 19).replace(/:/g, '-') + 'Z';
  await mkdir(RESULTS_DIR, { recursive: true });
  const own: ResultsFile = { date, machine, command, quick: o.quick, results };
  const prefix = o.quick ? 'quick-' : '';
  const dated = path.join(RESULTS_DIR, `${prefix}${stamp}.json`);
  await writeFile(dated, JSON.stringify(own, null, 2) + '\n');
  // A subset (fewer servers or runs) is merged over the previous full picture.
  const latestFile = path.join(RESULTS_DIR, `${prefix}latest.json`);
  const previous = o.merge ? await readResults(latestFile) : undefined;
  const merged: ResultsFile = previous ? { ...own, results: mergeResults(previous.results, results) } : own;
  await writeFile(latestFile, JSON.stringify(merged, null, 2) + '\n');
  log(`wrote ${path.relative(ROOT, dated)} and ${path.relative(ROOT, latestFile)}${previous ? ` (merged with ${previous.results.length} previous results)` : ''}`);
  if (o.writeDocs) await writeDocs(merged);

  process.stdout.write(summaryTable(results) + '\n');
  if (merged.results.some((r) => r.label === 'amsel')) process.stdout.write('\n' + budgetTable(merged.results) + '\n');
  return results.some((r) => r.error !== undefined || r.errors > 0) ? 1 : 0;
}

// Only when run as a script: the tests import the argument parsing and the plan.
if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  main().then(
    (code) => process.exit(code),
    (e: unknown) => { log(`error: ${e instanceof Error ? e.message : String(e)}`); process.exit(2); },
  );
}
