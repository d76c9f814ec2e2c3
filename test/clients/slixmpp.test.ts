// Interoperability with an independent implementation: slixmpp (Python, Debian's
// python3-slixmpp) logs in over STARTTLS and over Direct TLS (XEP-0368), verifying the server
// certificate against the test CA (hostname included), and pings the server.
// test/clients/slix_login.py prints one JSON result line.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { startServer, runPythonJson, PYTHON, ROOT, type TestServer } from '../../src/testing/index.ts';

const SCRIPT = path.join(ROOT, 'test/clients/slix_login.py');

let srv: TestServer;

interface SlixResult { ok: boolean; jid?: string; ping?: boolean; tls?: string; mechanism?: string; failedMechanisms?: string[]; error?: string }

function slix(args: { jid: string; password: string; port: number; mode: 'starttls' | 'directtls'; ca?: string; server?: TestServer }) {
  return runPythonJson<SlixResult>(SCRIPT, ['--jid', args.jid, '--password', args.password, '--host', 'localhost',
    '--port', String(args.port), '--mode', args.mode, '--ca', args.ca ?? (args.server ?? srv).caFile, '--timeout', '15'], 25_000);
}

before(async () => {
  assert.ok(existsSync(PYTHON), `${PYTHON} (with python3-slixmpp) is needed`);
  srv = await startServer();
  await srv.adduser('carol@localhost', 'slix pass wörd');
});
after(async () => {
  assert.equal(await srv.stop(), 0);
  await srv.cleanup();
});

// Finding (slixmpp 1.8.3): its SCRAM-*-PLUS only does tls-unique, which Amsel does not offer
// (RFC 9266: undefined for TLS 1.3), so it fails the -PLUS mechanisms, then the plain SCRAM
// ones (gs2 flag 'y' while the server advertises -PLUS: downgrade protection, RFC 5802 §6),
// and logs in with PLAIN inside TLS. With channel binding disabled it uses SCRAM-SHA-256.
test('slixmpp logs in over STARTTLS with a verified certificate and pings the server', async () => {
  const r = await slix({ jid: 'carol@localhost/slix', password: 'slix pass wörd', port: srv.ports.c2s, mode: 'starttls' });
  assert.equal(r.code, 0, `${JSON.stringify(r.result)}\n${r.stderr}`);
  assert.equal(r.result.ok, true);
  assert.equal(r.result.jid, 'carol@localhost/slix');
  assert.equal(r.result.ping, true);
  assert.match(r.result.tls ?? '', /^TLSv1\.[23]$/);
  assert.ok(r.result.mechanism, 'slixmpp reports the mechanism it used');
});

test('slixmpp logs in over Direct TLS (XEP-0368)', async () => {
  const r = await slix({ jid: 'carol@localhost', password: 'slix pass wörd', port: srv.ports.c2sDirectTls, mode: 'directtls' });
  assert.equal(r.code, 0, `${JSON.stringify(r.result)}\n${r.stderr}`);
  assert.equal(r.result.ok, true);
  assert.match(r.result.jid ?? '', /^carol@localhost\/.+/, 'the server assigned a resource');
  assert.equal(r.result.ping, true);
});

test('slixmpp with a wrong password fails to authenticate', async () => {
  const r = await slix({ jid: 'carol@localhost', password: 'not the password', port: srv.ports.c2s, mode: 'starttls' });
  assert.equal(r.code, 1);
  assert.equal(r.result.ok, false);
  assert.match(r.result.error ?? '', /auth failed/, JSON.stringify(r.result));
});

test('slixmpp refuses the server when the certificate is not issued by the CA it trusts', async () => {
  // Control for the tests above: certificate verification is really on. The system store
  // does not contain the test CA (a public CA bundle is used instead).
  const r = await slix({ jid: 'carol@localhost', password: 'slix pass wörd', port: srv.ports.c2sDirectTls, mode: 'directtls', ca: '/etc/ssl/certs/ca-certificates.crt' });
  assert.equal(r.result.ok, false, JSON.stringify(r.result));
  assert.equal(r.code, 1);
});

test('slixmpp uses SCRAM-SHA-256 (no fallback) when the server offers no channel binding', async () => {
  const plain = await startServer({ config: { auth: { channelBindings: [], failureDelayMs: 50, maxFailureDelayMs: 400 } } });
  try {
    await plain.adduser('erin@localhost', 'scram only');
    const r = await slix({ jid: 'erin@localhost', password: 'scram only', port: plain.ports.c2s, mode: 'starttls', server: plain });
    assert.equal(r.code, 0, `${JSON.stringify(r.result)}\n${r.stderr}`);
    assert.equal(r.result.mechanism, 'SCRAM-SHA-256');
    assert.deepEqual(r.result.failedMechanisms, []);
    assert.equal(r.result.ping, true);
  } finally {
    await plain.stop();
    await plain.cleanup();
  }
});
