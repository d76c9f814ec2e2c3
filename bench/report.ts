// Turns one comparison run (bench/compare.ts) into the Markdown table and SVG chart of
// docs/benchmarks.md. Pure functions of the results, so they are tested without servers.
import type { ScenarioResult } from './load/types.ts';

export interface RunResult extends ScenarioResult {
  /** Label of the measured server variant, e.g. "amsel", "amsel (jemalloc)", "prosody". */
  label: string;
  version: string;
  notes: string;
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
  { id: 'aging', title: 'CPU per login after 10 000 sessions came and went, vs a fresh process', run: 'aging', figure: 'agedOverFresh', unit: '×', limit: 1.1, decimals: 2 },
];

/** Key that identifies a run within a comparison (scenario plus its distinguishing parameter). */
export function runKey(r: Pick<ScenarioResult, 'scenario' | 'params'>): string {
  const p = r.params;
  if (r.scenario === 'idle') return `idle:${p.n ?? p.sessions}`;
  if (r.scenario === 'chat') return `chat:${p.mode}`;
  return r.scenario;
}

function fmt(v: number | undefined, decimals: number): string {
  if (v === undefined || !Number.isFinite(v)) return '—';
  return v.toFixed(decimals);
}

function find(results: readonly RunResult[], label: string, run: string): RunResult | undefined {
  return results.find((r) => r.label === label && runKey(r) === run);
}

/** Labels in first-seen order, Amsel variants first. */
export function labels(results: readonly RunResult[]): string[] {
  const seen = [...new Set(results.map((r) => r.label))];
  return [...seen.filter((l) => l.startsWith('amsel')), ...seen.filter((l) => !l.startsWith('amsel'))];
}

export function budgetTable(results: readonly RunResult[], subject = 'amsel'): string {
  const ls = labels(results);
  const others = ls.filter((l) => l !== subject);
  const head = ['figure', ...others.map((l) => `${l}`), `**${subject}**`, 'budget', 'met', ...others.filter((l) => !l.startsWith('amsel')).map((l) => `${l} ÷ ${subject}`)];
  const rows = [head, head.map(() => '---')];
  for (const b of BUDGET) {
    const v = (l: string) => find(results, l, b.run)?.figures[b.figure];
    const mine = v(subject);
    const errs = find(results, subject, b.run)?.errors ?? 0;
    const met = mine === undefined ? 'not measured' : errs > 0 ? `invalid (${errs} errors)` : mine <= b.limit ? 'yes' : '**no**';
    rows.push([
      `${b.title} (${b.unit})`,
      ...others.map((l) => fmt(v(l), b.decimals)),
      `**${fmt(mine, b.decimals)}**`,
      `≤ ${b.limit}`,
      met,
      ...others.filter((l) => !l.startsWith('amsel')).map((l) => {
        const o = v(l);
        return o !== undefined && mine !== undefined && mine > 0 && b.unit !== '×' ? `${(o / mine).toFixed(1)}×` : '—';
      }),
    ]);
  }
  return rows.map((r) => `| ${r.join(' | ')} |`).join('\n');
}

/** Every figure of every run, one table per run key. */
export function detailTables(results: readonly RunResult[]): string {
  const keys = [...new Set(results.map(runKey))];
  const out: string[] = [];
  for (const key of keys) {
    const rs = results.filter((r) => runKey(r) === key);
    const figures = [...new Set(rs.flatMap((r) => Object.keys(r.figures)))];
    const params = rs[0]!.params;
    out.push(`### ${key}\n`);
    out.push(`Parameters: ${Object.entries(params).map(([k, v]) => `${k}=${v}`).join(', ')}\n`);
    const head = ['figure', ...rs.map((r) => r.label)];
    const rows = [head, head.map(() => '---')];
    for (const f of figures) rows.push([f, ...rs.map((r) => fmt(r.figures[f], Math.abs(r.figures[f] ?? 0) < 10 ? 3 : 1))]);
    rows.push(['errors', ...rs.map((r) => String(r.errors))]);
    rows.push(['duration (s)', ...rs.map((r) => (r.durationMs / 1000).toFixed(1))]);
    out.push(rows.map((r) => `| ${r.join(' | ')} |`).join('\n') + '\n');
  }
  return out.join('\n');
}

const COLORS = ['#2f6f4f', '#7fb08f', '#c0504d', '#4f81bd', '#8064a2', '#f79646'];

function esc(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * A grouped bar chart: for each budget line, each server's figure relative to the budget limit
 * (1.0 = exactly on budget; lower is better). Plain SVG, no dependencies.
 */
export function budgetChart(results: readonly RunResult[]): string {
  const ls = labels(results);
  const W = 760;
  const rowH = 26 * ls.length + 30;
  const left = 250;
  const plotW = W - left - 60;
  const H = 50 + BUDGET.length * rowH + 30;
  const rel = BUDGET.map((b) => ls.map((l) => {
    const v = find(results, l, b.run)?.figures[b.figure];
    return v === undefined || !Number.isFinite(v) ? undefined : v / b.limit;
  }));
  const maxRel = Math.max(1.2, ...rel.flat().filter((v): v is number => v !== undefined));
  const scale = (v: number) => (Math.min(v, maxRel) / maxRel) * plotW;
  const parts: string[] = [];
  parts.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  parts.push(`<rect width="100%" height="100%" fill="#fff"/>`);
  parts.push(`<text x="10" y="20" font-size="14" font-weight="bold">Figure ÷ Amsel's budget (lower is better; the line is the budget)</text>`);
  ls.forEach((l, i) => {
    parts.push(`<rect x="${10 + i * 150}" y="30" width="12" height="12" fill="${COLORS[i % COLORS.length]}"/><text x="${26 + i * 150}" y="40">${esc(l)}</text>`);
  });
  const budgetX = left + scale(1);
  BUDGET.forEach((b, bi) => {
    const y0 = 55 + bi * rowH;
    parts.push(`<text x="10" y="${y0 + 14}" font-weight="bold">${esc(b.title.length > 38 ? b.title.slice(0, 36) + '…' : b.title)}</text>`);
    parts.push(`<text x="10" y="${y0 + 28}" fill="#555">budget ≤ ${b.limit} ${esc(b.unit)}</text>`);
    ls.forEach((l, i) => {
      const v = rel[bi]![i];
      const y = y0 + 4 + i * 26;
      if (v === undefined) {
        parts.push(`<text x="${left + 4}" y="${y + 15}" fill="#999">not measured</text>`);
        return;
      }
      const raw = find(results, l, b.run)!.figures[b.figure]!;
      parts.push(`<rect x="${left}" y="${y}" width="${Math.max(1, scale(v)).toFixed(1)}" height="20" fill="${COLORS[i % COLORS.length]}"/>`);
      parts.push(`<text x="${left + Math.max(1, scale(v)) + 4}" y="${y + 15}">${raw.toFixed(b.decimals)}${v > maxRel ? ' (off scale)' : ''}</text>`);
    });
  });
  parts.push(`<line x1="${budgetX}" y1="50" x2="${budgetX}" y2="${H - 20}" stroke="#000" stroke-dasharray="4 3"/>`);
  parts.push(`</svg>`);
  return parts.join('\n');
}
