// `amsel check` and `amsel start` on weak settings and unsafe permissions (issue 5 item 7), and
// `amsel stats` (item 6). Warnings never change the exit code of `check` (0 when there are only
// warnings) and never stop `start`: keys shared through Debian's ssl-cert group or mounted
// container secrets (0644) are deliberate setups; the operator is told, not refused.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { chmod, chown, copyFile, mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { runCli, startServer, testCertificates } from '../../src/testing/index.ts';

let tmp: string;
let certs: { caFile: string; certFile: string; keyFile: string };

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'amsel-seccheck-'));
  certs = await testCertificates();
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A config in its own directory with a copy of the test key at `keyMode`; `extra` merged one level deep. */
async function setup(name: string, keyMode: number, extra: Record<string, Record<string, unknown>> = {}): Promise<{ cfg: string; dir: string; key: string }> {
  const dir = path.join(tmp, name);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const key = path.join(dir, 'key.pem');
  await copyFile(certs.keyFile, key);
  await chmod(key, keyMode);
  const base: Record<string, Record<string, unknown> | unknown> = {
    hosts: ['localhost'],
    dataDir: dir,
    tls: { certificates: [{ cert: certs.certFile, key }] },
    listeners: { c2s: { port: 0, address: '127.0.0.1' }, c2sDirectTls: { port: 0, address: '127.0.0.1' } },
    log: { level: 'info', format: 'json' },
  };
  for (const [k, v] of Object.entries(extra)) base[k] = { ...(base[k] as object | undefined), ...v };
  const cfg = path.join(dir, 'amsel.yaml');
  await writeFile(cfg, stringify(base), { mode: 0o600 });
  return { cfg, dir, key };
}

const securityLines = (stdout: string) => stdout.split('\n').filter((l) => l.startsWith('security'));

test('amsel check: a private key readable by everyone is a warning (exit 0); chmod 600 makes it go away', async () => {
  const { cfg, key } = await setup('key644', 0o644);
  const r = await runCli(['--config', cfg, 'check']);
  assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
  assert.deepEqual(securityLines(r.stdout), [`security tls-key: warn: the private key ${key} is readable by every user on this machine (mode 0644); chmod 600 it`]);

  await chmod(key, 0o600);
  const ok = await runCli(['--config', cfg, 'check']);
  assert.equal(ok.code, 0);
  assert.deepEqual(securityLines(ok.stdout), ['security: ok (settings, key and data permissions)']);
});

test('amsel check: group-writable key, key owned by another user, data directory open to everyone', async (t) => {
  const { cfg, key, dir } = await setup('keyowner', 0o660);
  await chmod(dir, 0o755);
  const owned = process.getuid?.() === 0;
  if (owned) await chown(key, 4242, 4242);
  else t.diagnostic('not root: the foreign-owner case is not checked');
  const r = await runCli(['--config', cfg, 'check']);
  assert.equal(r.code, 0, r.stderr);
  const lines = securityLines(r.stdout).join('\n');
  assert.match(lines, /security tls-key: warn: the private key .* is writable by group \d+ \(mode 0660\)/);
  if (owned) assert.match(lines, /security tls-key: warn: the private key .* is owned by uid 4242, not by the server's user \(uid 0\) or root/);
  assert.match(lines, new RegExp(`security data: warn: the data directory ${dir} is open to every user \\(mode 0755\\)`));
});

test('amsel check: weak settings are named with the reason', async () => {
  const { cfg } = await setup('weak', 0o600, {
    limits: { maxStanzaBytes: 16 * 1024 * 1024, authTimeoutMs: 600_000, maxUnauthenticatedPerIp: 5000, bytesPerSecond: 0 },
    auth: { failureDelayMs: 0, maxFailureDelayMs: 0 },
    log: { level: 'debug' },
  });
  const r = await runCli(['--config', cfg, 'check']);
  assert.equal(r.code, 0, r.stderr);
  const lines = securityLines(r.stdout);
  for (const re of [
    /^security limits: warn: limits\.maxStanzaBytes is 16777216 \(above 1048576\): one client can make the server hold this much per stanza$/,
    /^security limits: warn: limits\.authTimeoutMs is 600000 \(above 120000\)/,
    /^security limits: warn: limits\.maxUnauthenticatedPerIp is 5000 \(above 100\)/,
    /^security limits: warn: limits\.bytesPerSecond is 0 \(no limit\)/,
    /^security auth: warn: auth\.failureDelayMs or auth\.maxFailureDelayMs is 0: failed logins are answered at once/,
    /^security log: warn: log\.level is 'debug'/,
  ]) assert.ok(lines.some((l) => re.test(l)), `${re} in:\n${lines.join('\n')}`);
  assert.equal(lines.length, 6, lines.join('\n'));
});

test('amsel check: a certificate that expires within 14 days is a warning', async () => {
  const dir = path.join(tmp, 'expiring');
  await mkdir(dir, { recursive: true });
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert,
    '-days', '5', '-subj', '/CN=localhost', '-addext', 'subjectAltName=DNS:localhost', '-addext', 'basicConstraints=critical,CA:FALSE'], { stdio: 'ignore' });
  await chmod(key, 0o600);
  const cfg = path.join(dir, 'amsel.yaml');
  await writeFile(cfg, stringify({ hosts: ['localhost'], dataDir: dir, tls: { certificates: [{ cert, key }] } }));
  const r = await runCli(['--config', cfg, 'check']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /certificate localhost: warn: .*cert\.pem: expires in [45] days \(.*\); renew it/);
});

test('amsel start logs the warnings (and runs); amsel stats reads the running server', async () => {
  const { key } = await setup('startwarn', 0o644);
  const srv = await startServer({ config: { tls: { certificates: [{ cert: certs.certFile, key }] }, log: { level: 'info', format: 'json' } } });
  try {
    // The warnings come right after 'server started': the key's, then (after the certificates
    // are read once more) the certificate's.
    const deadline = Date.now() + 10_000;
    const both = () => srv.logs.some((l) => l.check === 'tls-key') && srv.logs.some((l) => l.check === 'certificate');
    while (!both() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
    const w = srv.logs.find((l) => l.check === 'tls-key');
    assert.ok(w, srv.output());
    assert.equal(w.level, 'warn');
    assert.equal(w.msg, `the private key ${key} is readable by every user on this machine (mode 0644); chmod 600 it`);
    assert.ok(srv.logs.some((l) => l.check === 'certificate' && l.level === 'warn'), 'certificate checks too (the test CA is private)');

    const text = await srv.cli(['stats']);
    assert.equal(text.code, 0, text.stderr);
    assert.match(text.stdout, /^sessions: +0$/m);
    assert.match(text.stdout, /^connections: +0$/m);
    assert.match(text.stdout, /^event-loop delay: +p50 [\d.]+ ms, p90 [\d.]+ ms, p99 [\d.]+ ms, max [\d.]+ ms/m);
    assert.match(text.stdout, /^memory: +rss [\d.]+ MiB, heap [\d.]+ MiB used/m);
    const json = await srv.cli(['stats', '--json', '--gc', '--reset']);
    assert.equal(json.code, 0, json.stderr);
    const s = JSON.parse(json.stdout) as { ok: boolean; gc: boolean; counts: Record<string, number>; memory: { heapUsed: number }; eventLoopDelayMs: { p99: number; samples: number } };
    assert.equal(s.ok, true);
    assert.equal(s.gc, true);
    assert.deepEqual(s.counts, { sessions: 0, connections: 0, unauthenticatedConnections: 0, unauthenticatedAddresses: 0, authThrottleEntries: 0 });
    assert.ok(s.memory.heapUsed > 0);
    assert.ok(s.eventLoopDelayMs.samples > 0);
  } finally {
    await srv.stop();
    await srv.cleanup();
  }
  const none = await runCli(['--config', path.join(tmp, 'startwarn', 'amsel.yaml'), 'stats']);
  assert.equal(none.code, 1);
  assert.match(none.stderr, /^amsel: no server is running on /);
});
