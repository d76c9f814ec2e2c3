// Turns one comparison run (bench/compare.ts) into the Markdown tables and SVG chart of
// docs/benchmarks.md. Pure functions of the results, so they are tested without servers.
import type { ScenarioResult } from './load/types.ts';

export interface RunResult extends ScenarioResult {
  /** Label of the measured server variant, e.g. "amsel", "amsel (jemalloc)", "prosody". */
  label: string;
  version: string;
  notes: string;
  /** Set when the run produced no result (the load tool failed); figures are then empty. */
  error?: string;
  /** When the run finished (ISO 8601); runs of one document may come from several invocations. */
  measuredAt?: string;
  /** 1-minute load average just before the run: other work on the 2 cores skews the figures. */
  loadBefore?: number;
}

/** The machine a comparison ran on. */
export interface MachineInfo {
  cpus: number;
  cpuModel: string;
  memoryGiB: number;
  kernel: string;
  node: string;
}

/** What bench/compare.ts writes to bench/results/*.json. */
export interface ResultsFile {
  /** When the comparison (the last invocation contributing to it) finished, ISO 8601. */
  date: string;
  machine: MachineInfo;
  /** The command line that produced it. */
  command: string;
  quick: boolean;
  results: RunResult[];
}

/** One line of the performance budget: which figure of which scenario, and Amsel's limit. */
export interface BudgetLine {
  id: string;
  title: string;
  /** Run key: scenario plus the distinguishing parameter, as produced by runKey(). */
  run: string;
  figure: string;
  unit: string;
  /** Amsel must reach at most this value (all budget figures are lower-is-better). */
  limit: number;
  decimals: number;
}

export const BUDGET: readonly BudgetLine[] = [
  { id: 'login-cpu', title: 'server CPU per login + logout', run: 'login', figure: 'cpuMsPerLogin', unit: 'ms', limit: 1.5, decimals: 2 },
  { id: 'idle-rss', title: 'RSS per idle authenticated TLS session, 10 000 sessions', run: 'idle:10000', figure: 'rssPerSessionKiB', unit: 'KiB', limit: 32, decimals: 1 },
  { id: 'chat-cpu', title: 'server CPU per delivered chat message', run: 'chat:closed', figure: 'cpuMsPerMessage', unit: 'ms', limit: 0.25, decimals: 3 },
  { id: 'chat-p99', title: 'chat latency p99 at 300 messages/s', run: 'chat:rate', figure: 'latencyP99Ms', unit: 'ms', limit: 3, decimals: 2 },
  { id: 'loop-p99', title: 'event-loop delay p99 at saturation (chat closed loop; Amsel only)', run: 'chat:closed', figure: 'loopDelayP99Ms', unit: 'ms', limit: 50, decimals: 1 },
  { id: 'aging', title: 'CPU per login after 10 000 sessions came and went, vs a fresh process', run: 'aging', figure: 'agedOverFresh', unit: '×', limit: 1.1, decimals: 2 },
];

/** The figure that sums up each run in the compact summary (and the chart's unit). */
export const HEADLINE: Readonly<Record<string, string>> = {
  login: 'cpuMsPerLogin',
  idle: 'rssPerSessionKiB',
  'chat:closed': 'cpuMsPerMessage',
  'chat:rate': 'latencyP99Ms',
  roster: 'cpuMsPerLogin',
  aging: 'agedOverFresh',
};

/** Key that identifies a run within a comparison (scenario plus its distinguishing parameter). */
export function runKey(r: Pick<ScenarioResult, 'scenario' | 'params'>): string {
  const p = r.params;
  if (r.scenario === 'idle') return `idle:${p.n ?? p.sessions}`;
  if (r.scenario === 'chat') return `chat:${p.mode}`;
  return r.scenario;
}

function headlineOf(key: string): string | undefined {
  return HEADLINE[key] ?? HEADLINE[key.split(':')[0]!];
}

function fmt(v: number | undefined, decimals: number): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  // "5182.00 ms" reads worse than "5182 ms": large values need no decimals.
  const a = Math.abs(v);
  return v.toFixed(a >= 1000 ? 0 : a >= 100 ? Math.min(decimals, 1) : decimals);
}

/** Table cells must not break the Markdown table. */
function cell(s: string): string {
  return s.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

function table(rows: string[][]): string {
  return rows.map((r) => `| ${r.map(cell).join(' | ')} |`).join('\n');
}

function find(results: readonly RunResult[], label: string, run: string): RunResult | undefined {
  return results.find((r) => r.label === label && runKey(r) === run);
}

/** Labels in first-seen order, Amsel variants first. */
export function labels(results: readonly RunResult[]): string[] {
  const seen = [...new Set(results.map((r) => r.label))];
  return [...seen.filter((l) => l.startsWith('amsel')), ...seen.filter((l) => !l.startsWith('amsel'))];
}

/** A run's figure, or why there is none: a failed run, or errors (a figure with errors is not valid). */
function valueCell(r: RunResult | undefined, figure: string, decimals: number): string {
  if (!r) return '—';
  if (r.error !== undefined) return 'failed';
  const v = fmt(r.figures[figure], decimals);
  return r.errors > 0 ? `${v} (invalid: ${r.errors} errors)` : v;
}

export function budgetTable(results: readonly RunResult[], subject = 'amsel'): string {
  const ls = labels(results);
  const others = ls.filter((l) => l !== subject);
  const refs = others.filter((l) => !l.startsWith('amsel'));
  const head = ['figure', ...others, `**${subject}**`, 'budget', 'met', ...refs.map((l) => `${l} ÷ ${subject}`)];
  const rows = [head, head.map(() => '---')];
  for (const b of BUDGET) {
    const mineRun = find(results, subject, b.run);
    const mine = mineRun?.error === undefined ? mineRun?.figures[b.figure] : undefined;
    const errs = mineRun?.errors ?? 0;
    const met = mineRun?.error !== undefined ? '**failed**'
      : mine === undefined || !Number.isFinite(mine) ? 'not measured'
      : errs > 0 ? `invalid (${errs} errors)`
      : mine <= b.limit ? 'yes' : '**no**';
    rows.push([
      `${b.title} (${b.unit})`,
      ...others.map((l) => valueCell(find(results, l, b.run), b.figure, b.decimals)),
      `**${mineRun ? valueCell(mineRun, b.figure, b.decimals) : '—'}**`,
      `≤ ${b.limit}`,
      met,
      // How many times Amsel's figure the reference needs; meaningless for a ratio figure.
      ...refs.map((l) => {
        const r = find(results, l, b.run);
        const o = r && r.error === undefined && r.errors === 0 ? r.figures[b.figure] : undefined;
        return o !== undefined && mine !== undefined && mine > 0 && errs === 0 && b.unit !== '×' ? `${(o / mine).toFixed(1)}×` : '—';
      }),
    ]);
  }
  return table(rows);
}

/** A detail figure to 3 significant digits (as the load tool rounds them), integers whole. */
function detailFmt(v: number | undefined): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  if (Number.isInteger(v) || Math.abs(v) >= 100) return String(Math.round(v));
  return String(Number(v.toPrecision(3)));
}

/** Every figure of every run, one table per run key; `level` is the Markdown heading level of each. */
export function detailTables(results: readonly RunResult[], level = 3): string {
  const keys = [...new Set(results.map(runKey))];
  const order = labels(results);
  const out: string[] = [];
  for (const key of keys) {
    const rs = results.filter((r) => runKey(r) === key).sort((a, b) => order.indexOf(a.label) - order.indexOf(b.label));
    const figures = [...new Set(rs.flatMap((r) => Object.keys(r.figures)))];
    const params = (rs.find((r) => r.error === undefined) ?? rs[0]!).params;
    out.push(`${'#'.repeat(level)} ${key}\n`);
    out.push(`Parameters: ${Object.entries(params).map(([k, v]) => `${k}=${v}`).join(', ')}\n`);
    const head = ['figure', ...rs.map((r) => r.label)];
    const rows = [head, head.map(() => '---')];
    const hl = headlineOf(key);
    for (const f of figures) rows.push([f === hl ? `**${f}**` : f, ...rs.map((r) => detailFmt(r.figures[f]))]);
    rows.push(['errors', ...rs.map((r) => (r.error !== undefined ? 'run failed' : String(r.errors)))]);
    rows.push(['duration (s)', ...rs.map((r) => (r.error !== undefined ? '—' : (r.durationMs / 1000).toFixed(1)))]);
    if (rs.some((r) => r.loadBefore !== undefined)) rows.push(['load average before', ...rs.map((r) => (r.loadBefore === undefined ? '—' : r.loadBefore.toFixed(2)))]);
    out.push(table(rows) + '\n');
    for (const r of rs) if (r.error !== undefined) out.push(`${r.label} failed: \`${r.error.replace(/`/g, "'").slice(0, 300)}\`\n`);
  }
  return out.join('\n');
}

/** Plain-text table for the terminal: each run's headline figure per label. */
export function summaryTable(results: readonly RunResult[]): string {
  const ls = labels(results);
  const keys = [...new Set(results.map(runKey))];
  const rows: string[][] = [['run', 'figure', ...ls]];
  for (const key of keys) {
    const hl = headlineOf(key) ?? '';
    rows.push([key, hl, ...ls.map((l) => {
      const r = find(results, l, key);
      if (!r) return '-';
      if (r.error !== undefined) return 'FAILED';
      const v = detailFmt(r.figures[hl]);
      return r.errors > 0 ? `${v} (${r.errors} err)` : v;
    })]);
  }
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ').trimEnd()).join('\n');
}

const COLORS = ['#2f6f4f', '#7fb08f', '#c0504d', '#4f81bd', '#8064a2', '#f79646'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

/** Bars end at this multiple of the budget; longer ones are cut and marked, so Amsel's stay readable. */
const MAX_REL = 4;

/**
 * A grouped bar chart: for each budget line, each server's figure relative to the budget limit
 * (1.0 = exactly on budget; lower is better). Plain SVG, no dependencies.
 */
export function budgetChart(results: readonly RunResult[]): string {
  const ls = labels(results);
  const W = 760;
  const barH = 18, gap = 5;
  const left = 140; // server labels left of the bars
  const plotW = W - left - 150;
  const titleH = 24;
  const groupH = titleH + (barH + gap) * Math.max(1, ls.length) + 14;
  const top = 34;
  const H = top + BUDGET.length * groupH + 24;
  const rel = BUDGET.map((b) => ls.map((l) => {
    const r = find(results, l, b.run);
    const v = r && r.error === undefined ? r.figures[b.figure] : undefined;
    return v === undefined || !Number.isFinite(v) ? undefined : v / b.limit;
  }));
  const maxRel = Math.min(MAX_REL, Math.max(1.2, ...rel.flat().filter((v): v is number => v !== undefined)));
  const scale = (v: number) => (Math.min(v, maxRel) / maxRel) * plotW;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  parts.push(`<text x="10" y="20" font-size="14" font-weight="bold">Figure ÷ Amsel's budget (lower is better; the dashed line is the budget)</text>`);
  const budgetX = left + scale(1);
  BUDGET.forEach((b, bi) => {
    const y0 = top + bi * groupH;
    parts.push(`<text x="10" y="${y0 + 16}"><tspan font-weight="bold">${esc(b.title)}</tspan><tspan dx="10" fill="#555">budget ≤ ${b.limit} ${esc(b.unit)}</tspan></text>`);
    // The budget line per group, so that it does not cross the titles.
    parts.push(`<line x1="${budgetX.toFixed(1)}" y1="${y0 + titleH - 3}" x2="${budgetX.toFixed(1)}" y2="${y0 + titleH + ls.length * (barH + gap)}" stroke="#000" stroke-dasharray="4 3"/>`);
    ls.forEach((l, i) => {
      const y = y0 + titleH + i * (barH + gap);
      const color = COLORS[i % COLORS.length];
      parts.push(`<text x="${left - 6}" y="${y + 13}" text-anchor="end" fill="#333">${esc(l)}</text>`);
      const r = find(results, l, b.run);
      const v = rel[bi]![i];
      if (v === undefined) {
        parts.push(`<text x="${left + 4}" y="${y + 13}" fill="#999">${r?.error !== undefined ? 'failed' : 'not measured'}</text>`);
        return;
      }
      const raw = r!.figures[b.figure]!;
      const w = Math.max(1, scale(v));
      const note = (v > maxRel ? ' (off scale)' : '') + (r!.errors > 0 ? ` (invalid: ${r!.errors} errors)` : '');
      parts.push(`<rect x="${left}" y="${y}" width="${w.toFixed(1)}" height="${barH}" fill="${color}"${r!.errors > 0 ? ' fill-opacity="0.4"' : ''}><title>${esc(`${l}: ${raw} ${b.unit}`)}</title></rect>`);
      parts.push(`<text x="${(left + w + 4).toFixed(1)}" y="${y + 13}">${esc(fmt(raw, b.decimals) + note)}</text>`);
    });
  });
  parts.push(`<text x="${budgetX.toFixed(1)}" y="${H - 8}" text-anchor="middle" fill="#555">budget</text>`);
  parts.push(`</svg>`);
  return parts.join('\n') + '\n';
}

// ---------------------------------------------------------------------------------------------
// docs/benchmarks.md

export const GENERATED_START = '<!-- generated:start -->';
export const GENERATED_END = '<!-- generated:end -->';

/** Adapter-specific noise that differs from run to run (provisioning time, random node names). */
function stableNotes(notes: string): string {
  return notes
    .replace(/; provisioned \d+ accounts in \d+ ms; start-up \d+ ms/, '')
    .replace(/Erlang node ejabberd_bench_[0-9a-f]+@/, 'Erlang node ejabberd_bench_…@');
}

/** One row per label: version, notes (from a successful run), and when it was measured. */
export function serversTable(results: readonly RunResult[]): string {
  const rows = [['server', 'version', 'measured', 'configuration'], ['---', '---', '---', '---']];
  for (const l of labels(results)) {
    const rs = results.filter((r) => r.label === l);
    const ok = rs.find((r) => r.error === undefined && r.notes) ?? rs[0]!;
    const dates = [...new Set(rs.map((r) => r.measuredAt?.slice(0, 10)).filter((d): d is string => !!d))].sort();
    rows.push([l, ok.version || '?', dates.length ? dates.join(', ') : '?', stableNotes(ok.notes || '')]);
  }
  return table(rows);
}

export function machineTable(m: MachineInfo): string {
  return table([
    ['machine', ''], ['---', '---'],
    ['CPU', `${m.cpus} × ${m.cpuModel}`],
    ['memory', `${m.memoryGiB.toFixed(1)} GiB`],
    ['kernel', `Linux ${m.kernel}`],
    ['Node', m.node],
  ]);
}

/**
 * The generated part of docs/benchmarks.md (between the markers). `chartFile` is the SVG's path
 * relative to the Markdown file.
 */
export function generatedSection(file: ResultsFile, chartFile = 'benchmarks.svg'): string {
  const failed = file.results.filter((r) => r.error !== undefined || r.errors > 0);
  const lines = [
    GENERATED_START,
    `<!-- Written by bench/compare.ts from bench/results/latest.json; edits between these markers are overwritten. -->`,
    '',
    `## Results`,
    '',
    `Measured ${file.date.slice(0, 16).replace('T', ' ')} UTC${file.quick ? ' (**quick mode**: small counts, indicative only)' : ''}.`,
    '',
    machineTable(file.machine),
    '',
    serversTable(file.results),
    '',
    '### Budget',
    '',
    'Amsel\'s figure against its budget; the reference servers\' figures under the same load, and how',
    'many times Amsel\'s figure they need (higher means Amsel is cheaper). Every figure is lower-is-better.',
    '',
    budgetTable(file.results),
    '',
    `![Each budget figure divided by its budget, per server](${chartFile})`,
    '',
    ...(failed.length
      ? ['Runs that failed or saw errors (their figures are not valid):', '', ...failed.map((r) => `- ${r.label}, ${runKey(r)}: ${r.error !== undefined ? `failed: ${r.error.split('\n')[0]!.slice(0, 200)}` : `${r.errors} errors`}`), '']
      : []),
    '### All figures',
    '',
    'The headline figure of each run is in bold. Figures end in their unit (`Ms` milliseconds,',
    '`KiB`/`MiB` resident memory, `PerSec` per second of wall time, `Pct` percent).',
    '',
    detailTables(file.results, 4),
    '## How to run',
    '',
    '```sh',
    'bench/setup-reference-servers.sh                  # once: installs Prosody and ejabberd (Debian packages)',
    'node --import tsx bench/compare.ts                # everything (~25 min): results in bench/results/, this page',
    'node --import tsx bench/compare.ts --servers amsel --only login,aging   # a subset, merged into latest.json',
    'node --import tsx bench/compare.ts --quick        # small counts, no aging: bench/results/quick-*.json only',
    'npm run bench:quick                               # the quick check before hot-path changes (bench/README.md)',
    '```',
    '',
    'Options of `bench/compare.ts`: `--servers amsel,prosody,ejabberd`, `--variants jemalloc|none`,',
    '`--only login,idle,chat:rate,...` (a name, or a scenario for all its runs), `--quick`, `--write-docs`',
    '(docs also in quick mode), `--no-merge` (do not merge a subset into the previous results),',
    '`--render FILE` (rewrite this page from a results file without measuring). One run by hand:',
    '`node --import tsx bench/load/cli.ts --server amsel --scenario login --logins 3000`.',
    '',
    '## Method',
    '',
    '- **One fresh server per run.** Every run starts its own server process (a new data directory,',
    '  accounts and rosters written straight into its SQLite database before start), and its own load',
    '  tool process (`bench/load/cli.ts`), so that neither the server nor the client carries memory or',
    '  warm caches from one run to the next.',
    '- **Server CPU and RSS from `/proc/<pid>`**: utime + stime of all the server process\'s threads',
    '  (`/proc/<pid>/stat`, 10 ms ticks; each measured phase burns at least ~1 s of server CPU) and',
    '  VmRSS (`/proc/<pid>/status`). For Prosody and ejabberd the pid is the Lua interpreter and the',
    '  Erlang VM (beam.smp) themselves, not their wrapper scripts.',
    '- **Per-operation figures and ratios, not throughput.** The load tool and the server share the',
    `  same ${file.machine.cpus} cores, so logins/s or messages/s measure the client as much as the server;`,
    '  server CPU per login or per message, memory per session and the aged/fresh ratio do not depend on',
    '  how fast the client is. Throughput figures appear in the detail tables as information only.',
    '- **Same work for every server**: the same TLS certificate (ECDSA P-256, signed by the bench dev',
    '  CA), STARTTLS required, TLS 1.2+; SCRAM-SHA-1 with the same iteration count (4096) for every',
    '  account; traffic shapers and rate limits disabled on the reference servers (Amsel\'s per-IP',
    '  pre-auth cap raised: all load comes from 127.0.0.1); log level warn everywhere. The reference',
    '  servers are set up as a public service would run them (SQLite storage, MAM archiving every',
    '  one-to-one message, carbons, stream management); see the configuration column.',
    '- **Noise.** On this 2-core machine one measurement varies by about ±10 %. The aging scenario',
    '  therefore measures each side in several rounds and uses the median (spreads in its table);',
    '  a budget missed or met by less than that needs a rerun before it means anything. The load',
    '  average before each run is in the detail tables: above ~0.5, other work shared the cores.',
    '- **Scenarios** (`bench/load/scenarios/`): *login* — full logins (TCP, STARTTLS, SCRAM-SHA-1,',
    '  bind, presence, ping, close) by 20 concurrent connectors after a warm-up; *idle* — N sessions held',
    '  open, RSS growth over a warmed baseline divided by N, and idle CPU; *chat* — one-to-one messages',
    '  between 50 online pairs, closed loop (one in flight per pair, bounded at 120 s) for CPU per',
    '  message, fixed rate for latency, every message checked to arrive exactly once (a message still',
    '  in flight 10 s after the last send counts as lost); *roster* — logins of accounts with',
    '  100-contact rosters, half of the contacts online (presence probes and fan-out); *aging* — CPU per',
    '  login on a fresh server, then again after 10 000 sessions came and went in waves of 1000.',
    GENERATED_END,
  ];
  return lines.join('\n');
}

const HAND_WRITTEN_HEAD = `# Benchmarks

How Amsel compares with Prosody and ejabberd under the same load on the same machine, and how it
stands against its performance budget. Everything between the "generated" markers is rewritten
by \`bench/compare.ts\`; the rest of this page is written by hand.
`;

const HAND_WRITTEN_TAIL = `
## What limits each figure

*(To be written.)*
`;

/**
 * Replace the generated part of an existing docs/benchmarks.md, keeping everything around it;
 * without a file (or markers), a new page with both parts.
 */
export function spliceGenerated(existing: string | undefined, generated: string): string {
  if (existing !== undefined) {
    const a = existing.indexOf(GENERATED_START);
    const b = existing.indexOf(GENERATED_END, a);
    if (a >= 0 && b >= 0) return existing.slice(0, a) + generated + existing.slice(b + GENERATED_END.length);
    // A page without markers: keep it all, the generated part goes at the end.
    return `${existing.trimEnd()}\n\n${generated}\n`;
  }
  return `${HAND_WRITTEN_HEAD}\n${generated}\n${HAND_WRITTEN_TAIL}`;
}
