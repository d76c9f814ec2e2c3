// Unit tests of bench/report.ts (synthetic results, no servers) and of compare.ts's planning.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SaxesParser } from 'saxes';
import { cliArgs, FULL_RUNS, mergeResults, parseCompareArgs, plan, QUICK_RUNS } from './compare.ts';
import {
  BUDGET, budgetChart, budgetTable, detailTables, GENERATED_END, GENERATED_START, generatedSection, labels, runKey,
  spliceGenerated, summaryTable, type ResultsFile, type RunResult,
} from './report.ts';

/** A result of `label` for budget run `run` with the given figures. */
function res(label: string, run: string, figures: Record<string, number>, extra: Partial<RunResult> = {}): RunResult {
  const [scenario, arg] = run.split(':') as [string, string | undefined];
  const params: Record<string, number | string> = scenario === 'idle' ? { n: Number(arg) } : scenario === 'chat' ? { mode: arg! } : {};
  return { label, server: label.split(' ')[0]!, scenario, params, figures, errors: 0, durationMs: 1234, version: '1.0', notes: `${label} notes`, ...extra };
}

/** A full set of budget runs for one label, each figure = factor × its budget limit. */
function allRuns(label: string, factor: number): RunResult[] {
  // One run per scenario, carrying the figures of every budget line measured in it.
  const byRun = new Map<string, Record<string, number>>();
  for (const b of BUDGET) byRun.set(b.run, { ...byRun.get(b.run), [b.figure]: b.limit * factor });
  return [...byRun].map(([run, figures]) => res(label, run, figures));
}

/** The budget table's rows as cell arrays, keyed by the budget line's title. */
function rows(md: string): { head: string[]; byTitle: Map<string, string[]> } {
  const lines = md.split('\n').map((l) => l.slice(2, -2).split(' | '));
  const byTitle = new Map<string, string[]>();
  for (const b of BUDGET) byTitle.set(b.id, lines.find((c) => c[0]!.startsWith(b.title))!);
  return { head: lines[0]!, byTitle };
}

function col(head: string[], name: string): number {
  const i = head.indexOf(name);
  assert.ok(i >= 0, `column ${name} in ${head.join(', ')}`);
  return i;
}

/** Parse with saxes (strict XML); throws on anything not well-formed. */
function parseXml(xml: string): { root: string; texts: string[]; rects: number } {
  const p = new SaxesParser({ xmlns: false });
  let root = '';
  const texts: string[] = [];
  let rects = 0;
  p.on('opentag', (t) => { if (!root) root = t.name; if (t.name === 'rect') rects++; });
  p.on('text', (t) => { if (t.trim()) texts.push(t); });
  p.on('error', (e) => { throw e; });
  p.write(xml).close();
  return { root, texts, rects };
}

describe('report: runKey and labels', () => {
  it('keys idle by session count and chat by mode', () => {
    assert.equal(runKey({ scenario: 'idle', params: { n: 10000 } }), 'idle:10000');
    assert.equal(runKey({ scenario: 'chat', params: { mode: 'rate' } }), 'chat:rate');
    assert.equal(runKey({ scenario: 'aging', params: { churn: 10000 } }), 'aging');
  });
  it('lists Amsel variants first, then the others in first-seen order', () => {
    const rs = [res('prosody', 'login', {}), res('amsel', 'login', {}), res('ejabberd', 'login', {}), res('amsel (jemalloc)', 'login', {})];
    assert.deepEqual(labels(rs), ['amsel', 'amsel (jemalloc)', 'prosody', 'ejabberd']);
  });
  it('every budget line names a run that compare.ts runs, and a run key the full list produces', () => {
    const names = FULL_RUNS.map((r) => r.name);
    for (const b of BUDGET) assert.ok(names.includes(b.run), b.run);
    for (const r of FULL_RUNS) {
      const params = Object.fromEntries(Object.entries(r.args));
      assert.equal(runKey({ scenario: r.scenario, params }), r.name);
    }
  });
});

describe('report: budget table', () => {
  it('says yes when every figure is within budget, and gives reference ÷ amsel ratios', () => {
    const md = budgetTable([...allRuns('amsel', 0.5), ...allRuns('prosody', 2)]);
    const { head, byTitle } = rows(md);
    const met = col(head, 'met'), ratio = col(head, 'prosody ÷ amsel');
    for (const b of BUDGET) {
      const r = byTitle.get(b.id)!;
      assert.equal(r[met], 'yes', b.id);
      // prosody is 4× amsel on every line, except the ratio line where a ratio of ratios is meaningless.
      assert.equal(r[ratio], b.unit === '×' ? '—' : '4.0×', b.id);
    }
  });

  it('says no when a figure is over budget', () => {
    const rs = allRuns('amsel', 0.5);
    rs[0]!.figures.cpuMsPerLogin = 2.5;
    const { head, byTitle } = rows(budgetTable(rs));
    assert.equal(byTitle.get('login-cpu')![col(head, 'met')], '**no**');
    assert.equal(byTitle.get('login-cpu')![col(head, '**amsel**')], '**2.50**');
    assert.equal(byTitle.get('idle-rss')![col(head, 'met')], 'yes');
  });

  it('drops decimals of large figures', () => {
    const rs = allRuns('amsel', 0.5);
    rs.find((r) => runKey(r) === 'chat:rate')!.figures.latencyP99Ms = 5182;
    const { head, byTitle } = rows(budgetTable(rs));
    assert.equal(byTitle.get('chat-p99')![col(head, '**amsel**')], '**5182**');
  });

  it('a figure exactly on the budget meets it', () => {
    const { head, byTitle } = rows(budgetTable(allRuns('amsel', 1)));
    for (const b of BUDGET) assert.equal(byTitle.get(b.id)![col(head, 'met')], 'yes');
  });

  it('marks a run with errors invalid, and gives no ratio against it', () => {
    const rs = [...allRuns('amsel', 0.5), ...allRuns('prosody', 2)];
    rs.find((r) => r.label === 'amsel' && r.scenario === 'login')!.errors = 3;
    rs.find((r) => r.label === 'prosody' && runKey(r) === 'chat:closed')!.errors = 2;
    const { head, byTitle } = rows(budgetTable(rs));
    const login = byTitle.get('login-cpu')!;
    assert.equal(login[col(head, 'met')], 'invalid (3 errors)');
    assert.equal(login[col(head, 'prosody ÷ amsel')], '—');
    const chat = byTitle.get('chat-cpu')!;
    assert.match(chat[col(head, 'prosody')]!, /invalid: 2 errors/);
    assert.equal(chat[col(head, 'prosody ÷ amsel')], '—');
    assert.equal(chat[col(head, 'met')], 'yes');
  });

  it('handles a missing server, a missing run and a failed run', () => {
    const rs = [...allRuns('amsel', 0.5).filter((r) => r.scenario !== 'aging'), ...allRuns('ejabberd', 3).filter((r) => r.scenario !== 'idle')];
    rs.push(res('amsel', 'aging', {}, { error: 'exit code 2, no result: boom', errors: 1 }));
    const { head, byTitle } = rows(budgetTable(rs));
    assert.ok(!head.includes('prosody'));
    assert.equal(byTitle.get('aging')![col(head, 'met')], '**failed**');
    assert.equal(byTitle.get('aging')![col(head, '**amsel**')], '**failed**');
    assert.equal(byTitle.get('idle-rss')![col(head, 'ejabberd')], '—');
    assert.equal(byTitle.get('idle-rss')![col(head, 'ejabberd ÷ amsel')], '—');
    assert.equal(byTitle.get('login-cpu')![col(head, 'ejabberd ÷ amsel')], '6.0×');
    // No Amsel at all: every line "not measured", nothing thrown.
    const none = rows(budgetTable(allRuns('prosody', 1)));
    for (const b of BUDGET) assert.equal(none.byTitle.get(b.id)![col(none.head, 'met')], 'not measured');
  });

  it('puts Amsel variants next to Amsel without a ratio column', () => {
    const { head } = rows(budgetTable([...allRuns('amsel', 0.5), ...allRuns('amsel (jemalloc)', 0.4), ...allRuns('prosody', 2)]));
    assert.deepEqual(head, ['figure', 'amsel (jemalloc)', 'prosody', '**amsel**', 'budget', 'met', 'prosody ÷ amsel']);
  });
});

describe('report: detail and summary tables', () => {
  it('one table per run with every figure, errors and failures', () => {
    const rs = [
      res('amsel', 'login', { cpuMsPerLogin: 1.234, loginsPerSec: 456.7 }),
      res('prosody', 'login', { cpuMsPerLogin: 3.5 }, { errors: 2 }),
      res('ejabberd', 'login', {}, { error: 'exit code 2, no result: cannot start' }),
    ];
    const md = detailTables(rs);
    assert.match(md, /^### login$/m);
    assert.match(md, /\| \*\*cpuMsPerLogin\*\* \| 1\.23 \| 3\.5 \| — \|/);
    assert.match(md, /\| loginsPerSec \| 457 \| — \| — \|/);
    assert.match(md, /\| errors \| 0 \| 2 \| run failed \|/);
    assert.match(md, /ejabberd failed: `exit code 2, no result: cannot start`/);
    assert.doesNotMatch(md, /load average/);
    rs[0]!.loadBefore = 0.25;
    const md4 = detailTables(rs, 4);
    assert.match(md4, /^#### login$/m);
    assert.match(md4, /\| load average before \| 0\.25 \| — \| — \|/);
  });

  it('summary: headline figure per run and label', () => {
    const rs = [res('amsel', 'login', { cpuMsPerLogin: 1.5 }), res('prosody', 'login', { cpuMsPerLogin: 3 }, { errors: 1 }), res('prosody', 'aging', {}, { error: 'x' })];
    const s = summaryTable(rs).split('\n');
    assert.match(s[0]!, /^run\s+figure\s+amsel\s+prosody$/);
    assert.match(s[1]!, /^login\s+cpuMsPerLogin\s+1\.5\s+3 \(1 err\)$/);
    assert.match(s[2]!, /^aging\s+agedOverFresh\s+-\s+FAILED$/);
  });
});

describe('report: SVG chart', () => {
  it('is well-formed XML with a bar per measured figure', () => {
    const rs = [...allRuns('amsel', 0.5), ...allRuns('amsel (jemalloc)', 0.45), ...allRuns('prosody', 2), ...allRuns('ejabberd', 1.5)];
    const svg = budgetChart(rs);
    const x = parseXml(svg);
    assert.equal(x.root, 'svg');
    // Background + one bar per label and budget line.
    assert.equal(x.rects, 1 + 4 * BUDGET.length);
    assert.ok(x.texts.includes('amsel (jemalloc)'));
  });

  it('escapes labels, marks far-off and failed bars, survives no results at all', () => {
    const rs = [...allRuns('amsel', 0.5), ...allRuns('x<&>"y', 40)];
    rs.push(res('amsel', 'aging', {}, { error: 'failed <badly> & "loudly"' }));
    rs.splice(rs.findIndex((r) => r.label === 'amsel' && r.scenario === 'aging' && !r.error), 1);
    const x = parseXml(budgetChart(rs));
    assert.ok(x.texts.includes('x<&>"y'));
    assert.ok(x.texts.some((t) => t.includes('(off scale)')));
    assert.ok(x.texts.includes('failed'));
    assert.equal(parseXml(budgetChart([])).root, 'svg');
  });
});

describe('report: docs/benchmarks.md', () => {
  const file: ResultsFile = {
    date: '2026-01-02T03:04:05.000Z',
    machine: { cpus: 2, cpuModel: 'Test CPU', memoryGiB: 23.5, kernel: '6.1.0', node: 'v20.0.0' },
    command: 'node --import tsx bench/compare.ts',
    quick: false,
    results: [...allRuns('amsel', 0.5), ...allRuns('prosody', 2).map((r) => ({ ...r, notes: 'Debian prosody; provisioned 500 accounts in 12 ms; start-up 340 ms' }))],
  };

  it('generated section: markers, machine, servers, budget, chart, details, how to run, method', () => {
    const g = generatedSection(file, 'benchmarks.svg');
    assert.ok(g.startsWith(GENERATED_START) && g.endsWith(GENERATED_END));
    for (const s of ['2 × Test CPU', '23.5 GiB', 'Linux 6.1.0', 'v20.0.0', '![', '](benchmarks.svg)', '### login', '## How to run', '## Method', 'npm run bench:quick', '/proc/<pid>', '4096', 'P-256']) {
      assert.ok(g.includes(s), s);
    }
    // Run-to-run noise of the adapters' notes stays out of the page.
    assert.ok(g.includes('| prosody | 1.0 |') && !g.includes('provisioned 500'));
  });

  it('creates a page with a hand-written part, and later keeps it', () => {
    const created = spliceGenerated(undefined, generatedSection(file));
    assert.match(created, /^# Benchmarks/);
    assert.match(created, /## What limits each figure/);
    const edited = created.replace('*(To be written.)*', 'Login is bound by SCRAM.');
    const again = spliceGenerated(edited, generatedSection({ ...file, date: '2027-01-01T00:00:00.000Z' }));
    assert.match(again, /Login is bound by SCRAM\./);
    assert.match(again, /Measured 2027-01-01 00:00 UTC/);
    assert.doesNotMatch(again, /Measured 2026/);
    assert.equal(again.split(GENERATED_START).length, 2);
    // A page without markers is kept whole, the generated part appended.
    const plain = spliceGenerated('# Mine\n\ntext\n', generatedSection(file));
    assert.ok(plain.startsWith('# Mine\n\ntext\n\n' + GENERATED_START));
  });
});

describe('compare: arguments and plan', () => {
  it('defaults: three servers, Amsel on jemalloc (its production start-up) and on glibc when the library exists, full runs, docs', () => {
    const o = parseCompareArgs([], true);
    assert.deepEqual(o.servers, ['amsel', 'prosody', 'ejabberd']);
    assert.deepEqual(o.variants, ['glibc']);
    assert.equal(o.quick, false);
    assert.equal(o.writeDocs, true);
    const p = plan(o);
    assert.deepEqual([...new Set(p.map((x) => x.target.label))], ['amsel', 'amsel (glibc malloc)', 'prosody', 'ejabberd']);
    assert.equal(p.length, 4 * FULL_RUNS.length);
    assert.deepEqual(parseCompareArgs([], false).variants, []);
    assert.deepEqual(plan(parseCompareArgs([], false)).find((x) => x.target.label === 'amsel')!.target.env, {}, 'no jemalloc: plain start-up');
  });

  it('the full list has the required runs and counts', () => {
    assert.deepEqual(FULL_RUNS.map((r) => r.name), ['login', 'idle:1000', 'idle:5000', 'idle:10000', 'chat:closed', 'chat:rate', 'roster', 'aging']);
    const login = FULL_RUNS.find((r) => r.name === 'login')!;
    assert.deepEqual(login.args, { logins: 3000, concurrency: 20, warmup: 1000 });
    assert.equal(FULL_RUNS.find((r) => r.name === 'chat:closed')!.args.messages, 100_000);
    assert.ok(!QUICK_RUNS.some((r) => r.name === 'aging'));
  });

  it('--quick, --only, --servers, --variants none, --write-docs', () => {
    const o = parseCompareArgs(['--quick', '--servers', 'amsel,prosody', '--variants=none', '--only', 'login,chat'], true);
    assert.equal(o.writeDocs, false);
    const p = plan(o);
    assert.deepEqual(p.map((x) => `${x.target.label}/${x.run.name}`), ['amsel/login', 'amsel/chat:closed', 'amsel/chat:rate', 'prosody/login', 'prosody/chat:closed', 'prosody/chat:rate']);
    assert.equal(p[0]!.run.args.logins, 300);
    assert.equal(parseCompareArgs(['--quick', '--write-docs'], false).writeDocs, true);
    assert.deepEqual(plan(parseCompareArgs(['--only', 'idle'], false)).map((x) => x.run.name).slice(0, 3), ['idle:1000', 'idle:5000', 'idle:10000']);
  });

  it('rejects unknown servers, variants, runs and arguments', () => {
    assert.throws(() => parseCompareArgs(['--servers', 'openfire']), /unknown server/);
    assert.throws(() => parseCompareArgs(['--variants', 'tcmalloc']), /unknown variant/);
    assert.throws(() => parseCompareArgs(['--quick', '--only', 'aging']), /no run "aging" in quick mode/);
    assert.throws(() => parseCompareArgs(['--fast']), /unknown argument/);
    assert.throws(() => parseCompareArgs(['--only']), /needs a value/);
  });

  it('builds the load-tool command line, with the variant environment', () => {
    const [t] = plan(parseCompareArgs(['--servers', 'amsel', '--only', 'chat:rate'], true)).filter((x) => x.target.label === 'amsel');
    assert.deepEqual(cliArgs(t!.target, t!.run), [
      '--import', 'tsx', 'bench/load/cli.ts', '--server', 'amsel', '--scenario', 'chat',
      '--mode', 'rate', '--rate', '300', '--seconds', '20', '--env', 'LD_PRELOAD=/usr/lib/x86_64-linux-gnu/libjemalloc.so.2',
    ]);
  });

  it('merges a subset over previous results by label and run', () => {
    const prev = [res('amsel', 'login', { cpuMsPerLogin: 2 }), res('prosody', 'login', { cpuMsPerLogin: 3 })];
    const fresh = [res('amsel', 'login', { cpuMsPerLogin: 1 }), res('amsel', 'aging', { agedOverFresh: 1 })];
    const m = mergeResults(prev, fresh);
    assert.deepEqual(m.map((r) => `${r.label}/${runKey(r)}/${Object.values(r.figures)[0]}`), ['amsel/login/1', 'prosody/login/3', 'amsel/aging/1']);
  });
});
