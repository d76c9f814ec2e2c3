// Operating the server process: graceful stop on SIGTERM, certificate reload on SIGHUP (good
// and broken certificates), the control socket, one server per data directory, and the
// privacy rule that passwords never reach the log.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { existsSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { AMSEL_BIN, ROOT, TEST_DIR, TEST_DOMAINS, startServer, testCertificates, type TestServer } from '../../src/testing/index.ts';
import { issueDevCert } from '../../src/tls/index.ts';
import { login, ping, plainMessage, rawLogin } from '../clients/xmpp.ts';

let ca: Buffer;
let tmp: string;

before(async () => {
  ca = await readFile((await testCertificates()).caFile);
  tmp = await mkdtemp(path.join(os.tmpdir(), 'amsel-ops-'));
});
after(async () => {
  await rm(tmp, { recursive: true, force: true });
});

async function waitFor<T>(what: string, fn: () => T | undefined | false, timeoutMs = 5000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** The fingerprint of the certificate a new Direct TLS connection is served. */
function servedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ port, host: '127.0.0.1', servername: 'localhost', ca, ALPNProtocols: ['xmpp-client'] });
    s.once('secureConnect', () => { const fp = s.getPeerX509Certificate()!.fingerprint256; s.destroy(); resolve(fp); });
    s.once('error', reject);
  });
}

test('SIGTERM: every session gets <system-shutdown/> and </stream:stream>; exit 0', async () => {
  const srv = await startServer();
  try {
    await srv.adduser('alice@localhost', 'term pw');
    const a = await rawLogin({ port: srv.ports.c2s, ca, username: 'alice', password: 'term pw', resource: 'a' });
    const b = await rawLogin({ port: srv.ports.c2sDirectTls, directTls: true, ca, username: 'alice', password: 'term pw', resource: 'b' });
    const t0 = Date.now();
    srv.process.kill('SIGTERM');
    for (const c of [a, b]) {
      const m = await c.expect(/<stream:error><system-shutdown xmlns=['"]urn:ietf:params:xml:ns:xmpp-streams['"]\/>[\s\S]*?<\/stream:error><\/stream:stream>/);
      assert.ok(m);
      await c.closed;
    }
    const code = await srv.stop(); // already stopping: waits for the exit
    assert.equal(code, 0);
    assert.ok(Date.now() - t0 < 5000, `stopped within 5 s (${Date.now() - t0} ms)`);
    assert.match(srv.output(), /"msg":"server stopped"/);
    assert.ok(srv.logs.some((l) => l.msg === 'signal received' && l.signal === 'SIGTERM'));
  } finally {
    await srv.cleanup();
  }
});

test('SIGHUP reloads certificates without dropping sessions; a broken certificate keeps the old one', async () => {
  // The server's certificate files are copies this test may replace.
  const shared = await testCertificates();
  const certFile = path.join(tmp, 'served.crt');
  const keyFile = path.join(tmp, 'served.key');
  await copyFile(shared.certFile, certFile);
  await copyFile(shared.keyFile, keyFile);
  const srv = await startServer({ config: { tls: { certificates: [{ cert: certFile, key: keyFile }] } } });
  try {
    await srv.adduser('hup@localhost', 'hup pw');
    const oldFp = new X509Certificate(await readFile(certFile)).fingerprint256;
    assert.equal(await servedFingerprint(srv.ports.c2sDirectTls), oldFp);
    const session = await login({ service: `xmpp://localhost:${srv.ports.c2s}`, username: 'hup', password: 'hup pw' });
    try {
      // a newly issued certificate for the same domains, from the same CA, into the same paths
      const issued = await issueDevCert(path.join(TEST_DIR, 'tls', 'dev-ca'), TEST_DOMAINS, path.join(tmp, 'new'));
      await copyFile(issued.keyFile, keyFile);
      await copyFile(issued.certFile, certFile);
      const newFp = new X509Certificate(await readFile(certFile)).fingerprint256;
      assert.notEqual(newFp, oldFp);
      const reloads = srv.logs.filter((l) => l.msg === 'certificates reloaded').length;
      srv.process.kill('SIGHUP');
      await waitFor('certificates reloaded', () => srv.logs.filter((l) => l.msg === 'certificates reloaded').length > reloads);
      assert.equal(await servedFingerprint(srv.ports.c2sDirectTls), newFp, 'new connections get the new certificate');
      // STARTTLS connections too
      const raw = await rawLogin({ port: srv.ports.c2s, ca, username: 'hup', password: 'hup pw', resource: 'st' });
      assert.equal((raw.socket as tls.TLSSocket).getPeerX509Certificate()!.fingerprint256, newFp);
      raw.destroy();
      assert.equal(await ping(session), 'result', 'the session from before the reload still answers');

      // a broken certificate: logged, and the previous one keeps serving
      await writeFile(certFile, '-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n');
      srv.process.kill('SIGHUP');
      const failure = await waitFor('reload failure', () => srv.logs.find((l) => l.msg === 'certificate reload failed; keeping the old certificates'));
      assert.equal(failure.level, 'error');
      assert.match(JSON.stringify(failure), /served\.crt/, 'the log names the file');
      assert.equal(await servedFingerprint(srv.ports.c2sDirectTls), newFp);
      assert.equal(await ping(session), 'result');
      assert.equal(srv.process.exitCode, null, 'still running');
    } finally {
      await session.stop();
    }
    assert.equal(await srv.stop(), 0);
  } finally {
    await srv.cleanup();
  }
});

test('control socket: mode 0600 while running, removed on stop; a second server on the same dataDir refuses to start', async () => {
  const srv = await startServer();
  try {
    const sock = path.join(srv.dataDir, 'amsel.sock');
    const st = await stat(sock);
    assert.ok(st.isSocket());
    assert.equal(st.mode & 0o777, 0o600);

    // the same config again (its ports are 0, so only the data directory is shared)
    const second = await new Promise<{ code: number | null; out: string; ms: number }>((resolve) => {
      const t0 = Date.now();
      const child = spawn(process.execPath, [AMSEL_BIN, '--config', srv.configFile, 'start'], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
      const t = setTimeout(() => child.kill('SIGKILL'), 15_000);
      child.on('exit', (code) => { clearTimeout(t); resolve({ code, out, ms: Date.now() - t0 }); });
    });
    assert.equal(second.code, 1, `the second server exits with 1 (not killed after hanging):\n${second.out}`);
    assert.match(second.out, /another Amsel server is already running on /);
    assert.doesNotMatch(second.out, /"msg":"server started"/);
    // the first server is unaffected
    assert.ok(existsSync(sock));
    const st2 = await stat(sock);
    assert.equal(st2.ino, st.ino, 'the socket was not replaced');
    assert.equal(await srv.stop(), 0);
    assert.ok(!existsSync(sock), 'removed on stop');
  } finally {
    await srv.cleanup();
  }
});

test('passwords never reach the log (login, wrong password, PLAIN and SCRAM), even at trace level', async () => {
  const password = 'Sup3r-S3cret-pässwörd';
  const srv = await startServer({ config: { log: { level: 'trace', format: 'json' } } });
  try {
    await srv.adduser('priv@localhost', password);
    const ok = await rawLogin({ port: srv.ports.c2s, ca, username: 'priv', password, resource: 'x' });
    ok.send(`<iq type='get' id='p1' to='localhost'><ping xmlns='urn:xmpp:ping'/></iq>`);
    await ok.expect(/id=["']p1["']/);
    ok.end();
    await assert.rejects(rawLogin({ port: srv.ports.c2sDirectTls, directTls: true, ca, username: 'priv', password: password + 'x', resource: 'y' }), /not-authorized/);
    const scram = await login({ service: `xmpps://localhost:${srv.ports.c2sDirectTls}`, username: 'priv', password, mechanism: 'SCRAM-SHA-1' });
    await scram.stop();
    const pw = await srv.cli(['passwd', 'priv@localhost'], password + '2\n');
    assert.equal(pw.code, 0);
    assert.equal(await srv.stop(), 0);

    const out = srv.output() + pw.stdout + pw.stderr;
    assert.ok(srv.logs.some((l) => l.msg === 'authentication failed'), 'the failed login was logged');
    assert.ok(srv.logs.length > 20, 'trace logging produced output');
    for (const needle of [password, password + 'x', plainMessage('priv', password), plainMessage('priv', password + 'x'),
      Buffer.from(password).toString('base64'), encodeURIComponent(password)]) {
      assert.ok(!out.includes(needle), `the log contains ${JSON.stringify(needle)}`);
    }
  } finally {
    await srv.cleanup();
  }
});
