// Micro-benchmarks of the hot paths (XML parser, router), each against a fixed baseline.
//
//   node --import tsx bench/micro/run.ts [--quick] [--only parser,router.iq] [--tolerance 0.6]
//                                        [--repeat N] [--isolate] [--record] [--note text]
//                                        [--figures path] [--slowed]
//
// Prints a table, then one JSON line per benchmark. Exit code 1 when a ratio subject/baseline
// falls below tolerance × its recorded ratio (figures.json); a benchmark below it is measured
// once more, in a fresh process, before it counts. --record measures each benchmark in 5 fresh
// processes (--repeat) and writes the median ratios to figures.json instead of checking: V8's
// optimisation decisions differ from process to process, so one process is not enough.
// --slowed swaps in deliberately slowed subjects (a self-test: it must exit 1). --isolate
// measures in a child process. Also usable as a function: runMicro(opts).

import { execFile } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { FULL_TIMING, QUICK_TIMING, measurePair, median, type MicroBench, type PairResult, type Timing } from './harness.ts';
import { parserBench, slowedParserBench } from './parser.ts';
import { routerBench, slowedRouterBench } from './router.ts';

const THIS_FILE = fileURLToPath(import.meta.url);
export const FIGURES_PATH = path.join(path.dirname(THIS_FILE), 'figures.json');
export const DEFAULT_TOLERANCE = 0.6;

export interface RecordedFigure {
  ratio: number;
  /** For orientation only (they depend on the machine and its load): units/s when recorded. */
  opsPerSec: number;
  baselineOpsPerSec: number;
  /** The ratio measured in each process; `ratio` is their median. */
  samples: number[];
}

export interface Figures {
  recorded: string;
  machine: string;
  node: string;
  note: string;
  benchmarks: Record<string, RecordedFigure>;
}

export interface MicroOptions {
  /** Short rounds (QUICK_TIMING): a few seconds in all. */
  quick?: boolean;
  /** Measure and rewrite figures.json instead of checking. */
  record?: boolean;
  /** Fail when ratio < tolerance × recorded (default 0.6). */
  tolerance?: number;
  /** Benchmark names or name prefixes ('parser', 'router.message'). */
  only?: string[];
  /** Measurements per benchmark; their median ratio counts. Default 1, with record 5. */
  repeat?: number;
  /**
   * Measure in a fresh child process (record always does). Use it when the caller's process is
   * not a clean one: async_hooks or AsyncLocalStorage (node:test enables them) make every
   * await several times slower and skew the router ratios.
   */
  isolate?: boolean;
  /** The guard's self-test: deliberately slowed subjects under the same names. */
  slowed?: boolean;
  figuresPath?: string;
  /** Stored with recorded figures: machine, load, anything that explains the numbers. */
  note?: string;
  /** Where the table and JSON lines go (default console.log). () => {} for silence. */
  log?: (line: string) => void;
}

export interface MicroResult {
  name: string;
  unit: string;
  description: string;
  opsPerSec: number;
  baselineOpsPerSec: number;
  mbPerSec?: number;
  ratio: number;
  recordedRatio?: number;
  /** ratio / recordedRatio */
  relative?: number;
  /** False when below tolerance × recorded in every attempt. */
  ok: boolean;
  /** 2 when the first measurement was below tolerance and the benchmark was measured again. */
  attempts: number;
  /** The ratio of each measurement (repeat) of the reported attempt. */
  samples: number[];
  /** Per-round ratios of each measurement, to judge the noise. */
  rounds: number[][];
  cpuMs: number;
}

export interface MicroReport {
  ok: boolean;
  tolerance: number;
  quick: boolean;
  results: MicroResult[];
}

export function microBenches(opts: { slowed?: boolean } = {}): MicroBench[] {
  if (opts.slowed) return [slowedParserBench(), slowedRouterBench('bare'), slowedRouterBench('full'), slowedRouterBench('iq')];
  return [parserBench(), routerBench('bare'), routerBench('full'), routerBench('iq')];
}

export function readFigures(file = FIGURES_PATH): Figures | undefined {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Figures;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

function selectBenches(all: MicroBench[], only?: string[]): MicroBench[] {
  if (!only || only.length === 0) return all;
  const picked = all.filter((b) => only.some((o) => b.name.startsWith(o)));
  if (picked.length === 0) throw new Error(`no micro benchmark matches ${only.join(', ')} (have: ${all.map((b) => b.name).join(', ')})`);
  return picked;
}

const CHILD_MARK = 'MICRO-CHILD ';

/** One measurement of the named benchmarks in a fresh process; cwd-independent. */
async function measureInChild(names: string[], quick: boolean, slowed: boolean): Promise<Record<string, PairResult>> {
  const args = ['--import', import.meta.resolve('tsx'), THIS_FILE, '--child', '--only', names.join(',')];
  if (quick) args.push('--quick');
  if (slowed) args.push('--slowed');
  const { stdout } = await promisify(execFile)(process.execPath, args, { maxBuffer: 1 << 20 });
  const line = stdout.split('\n').find((l) => l.startsWith(CHILD_MARK));
  if (!line) throw new Error(`micro benchmark child printed no result:\n${stdout}`);
  return JSON.parse(line.slice(CHILD_MARK.length)) as Record<string, PairResult>;
}

/** `repeat` measurements of each bench: in this process, or each round of them in a child. */
async function measureAll(benches: MicroBench[], repeat: number, timing: Timing, isolate: boolean, quick: boolean, slowed: boolean,
  progress: (line: string) => void): Promise<Map<string, PairResult[]>> {
  const out = new Map<string, PairResult[]>(benches.map((b) => [b.name, []]));
  for (let i = 0; i < repeat; i++) {
    if (isolate) {
      if (repeat > 1) progress(`measuring in process ${i + 1} of ${repeat}...`);
      const child = await measureInChild(benches.map((b) => b.name), quick, slowed);
      for (const b of benches) out.get(b.name)!.push(child[b.name]!);
    } else {
      for (const b of benches) out.get(b.name)!.push(await measurePair(await b.subject(), await b.baseline(), timing));
    }
  }
  return out;
}

function fmtOps(n: number): string {
  return n >= 1e6 ? `${(n / 1e6).toFixed(2)} M/s` : `${(n / 1e3).toFixed(1)} k/s`;
}

export async function runMicro(opts: MicroOptions = {}): Promise<MicroReport> {
  const log = opts.log ?? ((l: string) => console.log(l));
  const quick = !!opts.quick;
  const timing: Timing = quick ? QUICK_TIMING : FULL_TIMING;
  const tolerance = opts.tolerance ?? DEFAULT_TOLERANCE;
  const figuresPath = opts.figuresPath ?? FIGURES_PATH;
  const figures = readFigures(figuresPath);
  const record = !!opts.record;
  if (record && opts.slowed) throw new Error('--record with --slowed would record a regression');
  const repeat = opts.repeat ?? (record ? 5 : 1);
  const isolate = record || !!opts.isolate;
  const slowed = !!opts.slowed;
  const benches = selectBenches(microBenches({ slowed }), opts.only);

  const summarise = (b: MicroBench, runs: PairResult[], attempts: number): MicroResult => {
    const ratio = median(runs.map((r) => r.ratio));
    const opsPerSec = median(runs.map((r) => r.opsPerSec));
    const recorded = figures?.benchmarks[b.name]?.ratio;
    const relative = recorded === undefined ? undefined : ratio / recorded;
    return {
      name: b.name, unit: b.unit, description: b.description,
      opsPerSec,
      baselineOpsPerSec: median(runs.map((r) => r.baselineOpsPerSec)),
      mbPerSec: b.bytesPerUnit === undefined ? undefined : (opsPerSec * b.bytesPerUnit) / 1e6,
      ratio, recordedRatio: recorded, relative,
      ok: record || relative === undefined || relative >= tolerance,
      attempts,
      samples: runs.map((r) => r.ratio),
      rounds: runs.map((r) => r.ratios),
      cpuMs: runs.reduce((a, r) => a + r.cpuMs, 0),
    };
  };

  const first = await measureAll(benches, repeat, timing, isolate, quick, slowed, log);
  let results = benches.map((b) => summarise(b, first.get(b.name)!, 1));
  // A benchmark below tolerance is measured once more, so one noisy burst does not fail it; in
  // a fresh process, since V8 sometimes optimises one process's code worse (seen: -25 %).
  const again = benches.filter((b, i) => !results[i]!.ok);
  if (again.length > 0) {
    const second = await measureAll(again, repeat, timing, true, quick, slowed, log);
    results = results.map((r, i) => (r.ok ? r : summarise(benches[i]!, second.get(r.name)!, 2)));
  }

  log(`micro benchmarks (${quick ? 'quick' : 'full'}: ${timing.rounds} interleaved rounds of ~${timing.roundMs} ms CPU per side` +
    `${repeat > 1 ? `, median of ${repeat}` : ''}${isolate ? ', in child processes' : ''}${slowed ? ', SLOWED SUBJECTS (self-test)' : ''}; ` +
    `node ${process.version}; load ${os.loadavg().map((l) => l.toFixed(1)).join(' ')})`);
  log(`${'benchmark'.padEnd(22)} ${'subject'.padStart(12)} ${'baseline'.padStart(12)} ${'ratio'.padStart(7)} ${'recorded'.padStart(9)} ${'rel.'.padStart(6)}`);
  for (const r of results) {
    const mb = r.mbPerSec === undefined ? '' : `  ${r.mbPerSec.toFixed(1)} MB/s`;
    const verdict = r.ok ? (r.attempts > 1 ? '  ok on 2nd attempt' : '') : `  REGRESSION (< ${tolerance} × recorded, twice)`;
    log(`${r.name.padEnd(22)} ${fmtOps(r.opsPerSec).padStart(12)} ${fmtOps(r.baselineOpsPerSec).padStart(12)} ${r.ratio.toFixed(3).padStart(7)} ` +
      `${(r.recordedRatio?.toFixed(3) ?? 'n/a').padStart(9)} ${(r.relative?.toFixed(2) ?? 'n/a').padStart(6)}${mb}${verdict}`);
  }
  for (const r of results) {
    log(JSON.stringify({
      bench: r.name, unit: r.unit, opsPerSec: Math.round(r.opsPerSec), baselineOpsPerSec: Math.round(r.baselineOpsPerSec),
      ...(r.mbPerSec === undefined ? {} : { mbPerSec: +r.mbPerSec.toFixed(2) }),
      ratio: +r.ratio.toFixed(4), recordedRatio: r.recordedRatio ?? null,
      ratioVsRecorded: r.relative === undefined ? null : +r.relative.toFixed(3), ok: r.ok, attempts: r.attempts,
    }));
  }

  if (record) {
    const cpus = os.cpus();
    const next: Figures = {
      recorded: new Date().toISOString().slice(0, 10),
      machine: `${cpus.length} × ${cpus[0]?.model ?? 'unknown CPU'}, ${os.platform()} ${os.release()}`,
      node: process.version,
      note: opts.note ?? figures?.note ?? '',
      benchmarks: { ...(figures?.benchmarks ?? {}) },
    };
    for (const r of results) {
      next.benchmarks[r.name] = {
        ratio: +r.ratio.toFixed(4),
        opsPerSec: Math.round(r.opsPerSec),
        baselineOpsPerSec: Math.round(r.baselineOpsPerSec),
        samples: r.samples.map((s) => +s.toFixed(4)),
      };
    }
    writeFileSync(figuresPath, JSON.stringify(next, null, 2) + '\n');
    log(`recorded ${results.length} ratio(s) in ${path.relative(process.cwd(), figuresPath) || figuresPath}`);
  }

  return { ok: results.every((r) => r.ok), tolerance, quick, results };
}

interface CliOptions extends MicroOptions { child?: boolean }

function parseArgs(argv: string[]): CliOptions {
  const o: CliOptions = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const val = () => {
      const v = argv[++i];
      if (v === undefined) throw new Error(`${a} needs a value`);
      return v;
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--record') o.record = true;
    else if (a === '--isolate') o.isolate = true;
    else if (a === '--slowed') o.slowed = true;
    else if (a === '--tolerance') o.tolerance = Number(val());
    else if (a === '--repeat') o.repeat = Number(val());
    else if (a === '--only') o.only = val().split(',');
    else if (a === '--figures') o.figuresPath = path.resolve(val());
    else if (a === '--note') o.note = val();
    else if (a === '--child') o.child = true; // internal: one measurement, result as one line
    else throw new Error(`unknown option ${a}`);
  }
  if (o.tolerance !== undefined && !(o.tolerance > 0 && o.tolerance <= 1)) throw new Error('--tolerance must be in (0, 1]');
  if (o.repeat !== undefined && !(Number.isInteger(o.repeat) && o.repeat >= 1)) throw new Error('--repeat must be a positive integer');
  return o;
}

/** The child side of measureInChild(): measure once here, print the raw results. */
async function childMain(o: CliOptions): Promise<void> {
  const benches = selectBenches(microBenches({ slowed: o.slowed }), o.only);
  const timing = o.quick ? QUICK_TIMING : FULL_TIMING;
  const out: Record<string, PairResult> = {};
  for (const b of benches) out[b.name] = await measurePair(await b.subject(), await b.baseline(), timing);
  console.log(CHILD_MARK + JSON.stringify(out));
}

if (process.argv[1] && path.resolve(process.argv[1]) === THIS_FILE) {
  const o = parseArgs(process.argv.slice(2));
  if (o.child) {
    await childMain(o);
  } else {
    const report = await runMicro(o);
    if (!report.ok) process.exitCode = 1;
  }
}
