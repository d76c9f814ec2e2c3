// The `amsel` command line, run as a real process (bin/amsel.js): account commands on a
// stopped server and while a server runs on the same data, configuration errors, `check`,
// `cert` and `--dev`.
//
// Exit codes (documented here, asserted below):
//   0  success; `amsel check` also exits 0 when there are only warnings (a development or
//      privately issued certificate, expiry within 14 days): the server can run.
//   1  any failure: bad arguments (invalid JID, foreign domain), an account that exists or
//      does not exist, an invalid configuration, an unreadable certificate, and `amsel check`
//      finding an error (e.g. a host no certificate covers). The message is one line (or a
//      list of config problems) on stderr prefixed "amsel:", never a stack trace.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile, stat, readFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import { stringify } from 'yaml';
import { runCli, startServer, testCertificates, type CliResult, type TestServer } from '../../src/testing/index.ts';
import { login, ping, rawLogin } from '../clients/xmpp.ts';

let tmp: string;
let certs: { caFile: string; certFile: string; keyFile: string };

before(async () => {
  tmp = await mkdtemp(path.join(os.tmpdir(), 'amsel-cli-'));
  certs = await testCertificates();
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

/** A valid config in its own directory (SQLite there), with overrides merged one level deep. */
async function writeConfig(name: string, extra: Record<string, unknown> = {}, raw?: string): Promise<string> {
  const dir = path.join(tmp, name);
  const file = path.join(dir, 'amsel.yaml');
  await mkdir(dir, { recursive: true });
  const base: Record<string, unknown> = {
    hosts: ['localhost'],
    dataDir: dir,
    tls: { certificates: [{ cert: certs.certFile, key: certs.keyFile }] },
    listeners: { c2s: { port: 0, address: '127.0.0.1' }, c2sDirectTls: { port: 0, address: '127.0.0.1' } },
    log: { level: 'warn', format: 'json' },
  };
  for (const [k, v] of Object.entries(extra)) {
    const b = base[k];
    base[k] = b && typeof b === 'object' && !Array.isArray(b) && v && typeof v === 'object' && !Array.isArray(v) ? { ...b, ...v } : v;
  }
  await writeFile(file, raw ?? stringify(base));
  return file;
}

const NO_STACK = /^\s+at .+:\d+:\d+\)?$/m;

function assertCleanFailure(r: CliResult, pattern: RegExp): void {
  assert.equal(r.code, 1, `exit code 1 expected; stdout: ${r.stdout} stderr: ${r.stderr}`);
  assert.match(r.stderr, /^amsel: /, 'messages are prefixed with the program name');
  assert.match(r.stderr, pattern);
  assert.doesNotMatch(r.stderr, NO_STACK, `no stack trace: ${r.stderr}`);
}

test('account commands on a stopped server: adduser (stdin), duplicate, users, deluser', async () => {
  const cfg = await writeConfig('stopped');
  const cli = (args: string[], stdin?: string) => runCli(['--config', cfg, ...args], { stdin });

  const add = await cli(['adduser', 'alice@localhost'], 'first password\n');
  assert.equal(add.code, 0, add.stderr);
  assert.equal(add.stdout, 'created alice@localhost\n');
  assert.doesNotMatch(add.stderr, /password/i, 'no prompt when stdin is not a terminal');

  const [dup, bob] = await Promise.all([
    cli(['adduser', 'alice@localhost'], 'other\n'),
    cli(['adduser', 'Bob@LOCALHOST'], 'bobs password\n'),
  ]);
  assertCleanFailure(dup, /alice@localhost already exists/);
  assert.equal(bob.code, 0, bob.stderr);
  assert.equal(bob.stdout, 'created bob@localhost\n', 'the JID is normalised (PRECIS, lower-case domain)');

  const users = await cli(['users']);
  assert.equal(users.code, 0);
  assert.deepEqual(users.stdout.trim().split('\n').sort(), ['alice@localhost', 'bob@localhost']);

  // no server runs on this data: deluser deletes in storage directly
  const del = await cli(['deluser', 'bob@localhost']);
  assert.equal(del.code, 0, del.stderr);
  assert.equal(del.stdout, 'deleted bob@localhost\n');
  const [again, after] = await Promise.all([cli(['deluser', 'bob@localhost']), cli(['users'])]);
  assertCleanFailure(again, /bob@localhost does not exist/);
  assert.equal(after.stdout, 'alice@localhost\n');
});

test('invalid JIDs and foreign domains are refused with clear messages', async () => {
  const cfg = await writeConfig('jids');
  const cli = (args: string[]) => runCli(['--config', cfg, ...args], { stdin: 'pw\n' });
  const [bad, noLocal, foreign] = await Promise.all([
    cli(['adduser', 'a@b@localhost']),
    cli(['passwd', 'localhost']),
    cli(['deluser', 'alice@example.org']),
  ]);
  assertCleanFailure(bad, /invalid JID 'a@b@localhost'/);
  assertCleanFailure(noLocal, /'localhost' is not an account address \(expected name@domain\)/);
  assertCleanFailure(foreign, /example\.org is not one of this server's hosts \(localhost\)/);
});

test('account commands while a server runs on the same SQLite data', async () => {
  const srv: TestServer = await startServer();
  try {
    const svc = `xmpp://localhost:${srv.ports.c2s}`;
    const ca = await readFile(srv.caFile);
    // adduser, then log in immediately: the running server sees the new account
    const add = await srv.cli(['adduser', 'dora@localhost'], 'dora one\n');
    assert.equal(add.code, 0, add.stderr);
    const c1 = await login({ service: svc, username: 'dora', password: 'dora one' });
    assert.equal(await ping(c1), 'result');
    await c1.stop();

    // passwd: the old password is refused, the new one accepted
    const pw = await srv.cli(['passwd', 'dora@localhost'], 'dora two\n');
    assert.equal(pw.code, 0, pw.stderr);
    await assert.rejects(rawLogin({ port: srv.ports.c2s, ca, username: 'dora', password: 'dora one', resource: 'r' }), /not-authorized/);
    const c2 = await login({ service: svc, username: 'dora', password: 'dora two', resource: 'desk' });

    // deluser while connected: the server closes the session (stream error) and deletes
    const streamError = new Promise<string>((resolve) => {
      c2.on('error', (err: Error & { condition?: string }) => resolve(err.condition ?? err.message));
    });
    const del = await srv.cli(['deluser', 'dora@localhost']);
    assert.equal(del.code, 0, del.stderr);
    assert.equal(del.stdout, 'deleted dora@localhost\n');
    assert.equal(await streamError, 'not-authorized', 'the session ends with a stream error');
    await c2.stop().catch(() => undefined);
    assert.ok(srv.logs.some((l) => l.msg === 'account deleted' && l.jid === 'dora@localhost'), 'the server did the deletion (control socket)');

    const users = await srv.cli(['users']);
    assert.equal(users.stdout, '', 'the account is gone');
    await assert.rejects(rawLogin({ port: srv.ports.c2s, ca, username: 'dora', password: 'dora two', resource: 'r' }), /not-authorized/);
  } finally {
    assert.equal(await srv.stop(), 0);
    await srv.cleanup();
  }
});

test('invalid configuration files: exit 1, the key is named, no stack trace', async () => {
  const [portCfg, yamlCfg, certCfg] = await Promise.all([
    // two problems in one file: both are reported at once
    writeConfig('bad-port', { listeners: { c2s: { port: 99999 } }, storage: { type: 'sqlite', pathh: 'x.db' } }),
    writeConfig('bad-yaml', {}, 'hosts: [localhost\ndataDir: /tmp\n'),
    writeConfig('bad-cert', { tls: { certificates: [{ cert: path.join(tmp, 'missing.crt'), key: certs.keyFile }] } }),
  ]);
  const [port, yaml, cert] = await Promise.all([
    runCli(['--config', portCfg, 'start']),
    runCli(['--config', yamlCfg, 'start']),
    runCli(['--config', certCfg, 'start']),
  ]);
  assertCleanFailure(port, /listeners\.c2s\.port: must be an integer between 1 and 65535/);
  assert.match(port.stderr, /bad-port\/amsel\.yaml:\d+:\d+/, 'with file:line:col');
  assert.match(port.stderr, /storage\.pathh: unknown key \(did you mean 'path'\?\)/);
  assertCleanFailure(yaml, /YAML syntax error/);
  assert.match(yaml.stderr, /bad-yaml\/amsel\.yaml:\d+:\d+/);
  assertCleanFailure(cert, /missing\.crt: cannot read certificate: file not found/);
});

test('account commands on PostgreSQL: a wrong database is named with storage.url, an unreachable one is said at once (no wait)', { skip: process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined }, async () => {
  const [wrongDb, down] = await Promise.all([
    writeConfig('pg-wrong-db', { storage: { type: 'postgres', url: 'postgres://postgres:s3cret@127.0.0.1:5432/amsel_no_such_database' } }),
    // A port where nothing listens: refused at once.
    writeConfig('pg-down', { storage: { type: 'postgres', url: 'postgres://postgres:s3cret@127.0.0.1:1/test' } }),
  ]);
  const [a, b] = await Promise.all([runCli(['--config', wrongDb, 'users']), runCli(['--config', down, 'adduser', 'x@localhost'], { stdin: 'pw\n' })]);
  assertCleanFailure(a, /cannot open PostgreSQL postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:5432\/amsel_no_such_database: database "amsel_no_such_database" does not exist \(3D000\); check storage\.url/);
  assertCleanFailure(b, /cannot open PostgreSQL .*ECONNREFUSED/);
  for (const r of [a, b]) assert.doesNotMatch(r.stderr + r.stdout, /s3cret/, 'never the password');
});

test('amsel check: ok lines, SRV records, a warning for the development CA; exit 1 on errors', async () => {
  const good = await writeConfig('check-good', { hosts: ['localhost', 'example.test'] });
  const r = await runCli(['--config', good, 'check']);
  assert.equal(r.code, 0, `warnings only: exit 0\n${r.stdout}\n${r.stderr}`);
  assert.match(r.stdout, /^config: ok \(2 hosts\)$/m);
  assert.match(r.stdout, /certificate localhost: warn: .*not a publicly trusted CA/);
  assert.match(r.stdout, /certificate example\.test: warn: .*Amsel development CA/);
  for (const host of ['localhost', 'example.test']) {
    // the configured port (0 here) is what is printed
    assert.match(r.stdout, new RegExp(`^  _xmpp-client\\._tcp\\.${host.replace('.', '\\.')}\\. 3600 IN SRV 0 5 \\d+ ${host.replace('.', '\\.')}\\.$`, 'm'));
    assert.match(r.stdout, new RegExp(`^  _xmpps-client\\._tcp\\.${host.replace('.', '\\.')}\\. 3600 IN SRV 0 5 \\d+ ${host.replace('.', '\\.')}\\.$`, 'm'));
  }
  assert.doesNotMatch(r.stdout, /_xmpp-server/, 's2s is disabled in this config');

  // a host no certificate covers is an error: exit 1, the problem named on stdout and stderr
  const bad = await writeConfig('check-bad', { hosts: ['localhost', 'uncovered.example'] });
  const b = await runCli(['--config', bad, 'check']);
  assert.match(b.stdout, /certificate uncovered\.example: error: no certificate covers uncovered\.example/);
  assert.match(b.stdout, /_xmpp-client\._tcp\.uncovered\.example\./, 'the DNS records are still printed');
  assertCleanFailure(b, /1 certificate problem/);
});

test('amsel cert: a certificate that verifies against the CA, key mode 0600', async () => {
  const caDir = path.join(tmp, 'ca');
  const out = path.join(tmp, 'out');
  const r = await runCli(['cert', 'example.test', 'sub.example.test', '--ca-dir', caDir, '--out', out]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /for development and tests only/);
  const ca = new X509Certificate(await readFile(path.join(caDir, 'ca.crt')));
  const cert = new X509Certificate(await readFile(path.join(out, 'example.test.crt')));
  assert.ok(ca.ca);
  assert.ok(cert.verify(ca.publicKey), 'signed by the CA');
  assert.ok(cert.checkIssued(ca));
  assert.equal(cert.checkHost('example.test'), 'example.test');
  assert.match(cert.subjectAltName ?? '', /DNS:sub\.example\.test\b/);
  assert.equal(cert.checkHost('upload.example.test'), '*.example.test', 'wildcard for subdomains');
  assert.equal(cert.checkHost('example.org'), undefined);
  assert.equal((await stat(path.join(out, 'example.test.key'))).mode & 0o777, 0o600);
  assert.equal((await stat(path.join(caDir, 'ca.key'))).mode & 0o777, 0o600);

  // a second run reuses the CA
  const again = await runCli(['cert', 'other.test', '--ca-dir', caDir, '--out', out]);
  assert.equal(again.code, 0, again.stderr);
  const other = new X509Certificate(await readFile(path.join(out, 'other.test.crt')));
  assert.ok(other.verify(ca.publicKey), 'the same CA issued it');
});

test('--dev: adduser and users create .amsel-dev with a CA, a certificate and the database', async () => {
  // (`--dev start` is not run: it binds the fixed ports 5222/5223, which a parallel test run
  // or a developer's server may hold.)
  const cwd = path.join(tmp, 'devcwd');
  await mkdir(cwd);
  // (NODE_EXTRA_CA_CERTS from test:one is relative to the repository; this cwd is elsewhere)
  const env = { AMSEL_CONFIG: '', NODE_EXTRA_CA_CERTS: certs.caFile };
  const add = await runCli(['--dev', 'adduser', 'alice@localhost'], { cwd, stdin: 'dev pw\n', env });
  assert.equal(add.code, 0, add.stderr);
  assert.match(add.stderr, /created a development CA/);
  const dev = path.join(cwd, '.amsel-dev');
  for (const f of ['tls/dev-ca/ca.crt', 'tls/localhost.crt', 'tls/localhost.key', 'amsel.db']) {
    assert.ok(existsSync(path.join(dev, f)), `${f} exists`);
  }
  assert.equal((await stat(path.join(dev, 'tls/localhost.key'))).mode & 0o777, 0o600);
  const ca = new X509Certificate(await readFile(path.join(dev, 'tls/dev-ca/ca.crt')));
  const cert = new X509Certificate(await readFile(path.join(dev, 'tls/localhost.crt')));
  assert.ok(cert.verify(ca.publicKey));
  assert.equal(cert.checkHost('localhost'), 'localhost');

  const users = await runCli(['--dev', 'users'], { cwd, env });
  assert.equal(users.code, 0, users.stderr);
  assert.equal(users.stdout, 'alice@localhost\n');
  assert.doesNotMatch(users.stderr, /created a development CA/, 'the CA is reused');
});
