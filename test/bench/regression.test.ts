// CI guard for the hot paths: the XML parser and router micro-benchmarks (bench/micro), in quick
// mode, must not fall far below their recorded ratio to a fixed baseline measured in the same
// run (bench/micro/figures.json). "Far" is 0.5 × recorded: CI machines are noisy, this catches
// an accidental O(n²) or a per-stanza regex compile, not a 10 % drift (npm run bench:micro is
// for that). A benchmark below the line is measured once more before it fails.
//
// The measurements run in a child process: node:test enables async hooks in this one, which
// make every await several times slower (measured: router 1.4 M/s -> 0.3 M/s) and would skew
// the router ratios away from the recorded ones.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runMicro, type MicroResult } from '../../bench/micro/run.ts';

const TOLERANCE = 0.5;

function summary(r: MicroResult): string {
  return `${r.name}: ratio ${r.ratio.toFixed(3)} = ${r.relative?.toFixed(2) ?? 'n/a'} × recorded ${r.recordedRatio ?? 'n/a'} ` +
    `(${Math.round(r.opsPerSec)} vs baseline ${Math.round(r.baselineOpsPerSec)} ${r.unit}/s; ` +
    `rounds ${r.rounds.map((x) => x.map((v) => v.toFixed(2)).join(' ')).join(' | ')}; ${r.attempts} attempt(s))`;
}

test('parser and router micro-benchmarks stay above 0.5 × their recorded ratio to the baseline', async (t) => {
  const report = await runMicro({ quick: true, isolate: true, tolerance: TOLERANCE, log: () => {} });
  for (const r of report.results) t.diagnostic(summary(r));
  assert.equal(report.results.length, 4);
  for (const r of report.results) {
    assert.ok(r.recordedRatio !== undefined, `bench/micro/figures.json has no ratio for ${r.name}`);
  }
  const failed = report.results.filter((r) => !r.ok).map(summary);
  assert.deepEqual(failed, [], 'hot path regression; if it is intended, re-record the figures (bench/README.md)');
});

// The guard can fail: the same comparison, same names and recorded figures, with deliberately
// slowed subjects (parser fed 1-byte writes; a wrapper that JSON-round-trips every stanza
// before the router).
test('the guard reports deliberately slowed parser and router subjects as regressions', async (t) => {
  const report = await runMicro({
    quick: true, isolate: true, tolerance: TOLERANCE, slowed: true, only: ['parser', 'router.message.bare'], log: () => {},
  });
  for (const r of report.results) t.diagnostic(summary(r));
  assert.deepEqual(report.results.map((r) => r.name), ['parser.stream', 'router.message.bare']);
  assert.equal(report.ok, false);
  for (const r of report.results) {
    assert.equal(r.ok, false, `slowed subject not reported: ${summary(r)}`);
    assert.equal(r.attempts, 2, 'a failing comparison is measured a second time before it counts');
  }
});
