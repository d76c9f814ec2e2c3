// `npm run bench:quick`: what a developer runs before submitting a hot-path change (under a
// minute). The micro-benchmarks (parser, router) against their recorded ratios, then two short
// load runs against a fresh Amsel process over real TLS sockets: logins and closed-loop chat.
// Prints one summary; exits 1 if a micro-benchmark regressed or a load run lost anything.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runMicro } from './micro/run.ts';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const ROOT = path.resolve(HERE, '..');

interface LoadLine { scenario: string; figures: Record<string, number>; errors: number }

function load(args: string[]): Promise<LoadLine> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', 'tsx', path.join(HERE, 'load/cli.ts'), '--server', 'amsel', ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const line = out.trim().split('\n').pop() ?? '';
      try { resolve(JSON.parse(line) as LoadLine); } catch { reject(new Error(`load run ${args.join(' ')} printed no result (exit ${code})`)); }
    });
  });
}

const micro = await runMicro({ quick: true, isolate: true, log: () => {} });
const runs = [
  await load(['--scenario', 'login', '--logins', '600', '--warmup', '100']),
  await load(['--scenario', 'chat', '--mode', 'closed', '--messages', '30000', '--warmup', '1000']),
];

const rows: string[][] = [['benchmark', 'figure', 'recorded / budget', 'status']];
for (const r of micro.results) {
  rows.push([r.name, `ratio ${r.ratio.toFixed(3)}`, r.recordedRatio === undefined ? '—' : `${r.recordedRatio.toFixed(3)} (now ${(r.relative ?? 0).toFixed(2)}×)`, r.ok ? 'ok' : 'REGRESSED']);
}
const [login, chat] = runs as [LoadLine, LoadLine];
rows.push(['load login', `${login.figures.cpuMsPerLogin} ms CPU/login, p99 ${login.figures.latencyP99Ms} ms`, '≤ 1.5 ms', login.errors ? `${login.errors} errors` : 'ok']);
rows.push(['load chat', `${chat.figures.cpuMsPerMessage} ms CPU/message, p99 ${chat.figures.latencyP99Ms} ms`, '≤ 0.25 ms', chat.errors ? `${chat.errors} errors` : 'ok']);
const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
for (const r of rows) console.log(r.map((c, i) => c.padEnd(widths[i]!)).join('  '));
console.log('(load figures are per operation on a shared machine: compare runs on the same machine, not across machines)');
const ok = micro.ok && runs.every((r) => r.errors === 0);
process.exit(ok ? 0 : 1);
