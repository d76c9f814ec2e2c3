// Smoke test of the attacker's trial (scripts/attack.ts), small and short: the corpus, a flood of
// 100 connections from 10 loopback addresses, SASL guessing and authenticated floods for 5 s
// against a real server, while the normal client must be served throughout. The lead runs the
// full trial by hand (see the script's header); this keeps the script working.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { startServer, ROOT } from '../../src/testing/index.ts';
import type { AttackReport } from '../../scripts/attack.ts';

test('scripts/attack.ts: a short trial leaves the normal client served throughout', { timeout: 120_000 }, async (t) => {
  const srv = await startServer();
  try {
    await Promise.all([srv.adduser('alice@localhost', 'alice secret'), srv.adduser('mallory@localhost', 'mallory secret')]);
    const args = [
      '--import', 'tsx', path.join(ROOT, 'scripts/attack.ts'), '--port', String(srv.ports.c2s), '--tls-port', String(srv.ports.c2sDirectTls),
      '--domain', 'localhost', '--ca', srv.caFile, '--user', 'alice', '--password', 'alice secret',
      '--attacker-user', 'mallory', '--attacker-password', 'mallory secret',
      '--connections', '100', '--sources', '10', '--duration', '5', '--pid', String(srv.process.pid), '--json',
    ];
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
    const code = await new Promise<number | null>((r) => child.on('close', r));
    const report = JSON.parse(out.trim().split('\n').pop() ?? 'null') as AttackReport;
    t.diagnostic(`normal client: ${report.normalClient.pings} pings, p99 ${report.normalClient.pingMs.p99.toFixed(1)} ms; flood ${report.flood.connected} connected; server RSS ${report.server?.rssStartMB.toFixed(0)} -> peak ${report.server?.rssPeakMB.toFixed(0)} MB`);
    assert.equal(report.servedThroughout, true, `${JSON.stringify(report.normalClient)}\n${err}`);
    assert.equal(code, 0);
    assert.ok(report.normalClient.pings >= 5);
    assert.ok(report.flood.connected > 0);
    assert.equal(report.saslGuessing.outcomes['SUCCESS (!)'], undefined);
    assert.ok(report.saslGuessing.attempts > 0);
    for (const c of report.corpus) {
      // 'eventually' items (megabytes before authentication) are slowed by the read shaper first.
      if (c.expect !== 'prompt') continue;
      // (The attacker's own logins may be throttled or refused: that is no failure of the server.)
      assert.ok(Object.keys(c.outcomes).every((k) => k.startsWith('stream error') || k === 'could not connect or log in'), `${c.name}: ${JSON.stringify(c.outcomes)}`);
    }
    assert.equal(report.server?.alive, true);
  } finally {
    await srv.stop();
    await srv.cleanup();
  }
});
