// TLS policy of the c2s listeners, checked from the outside with two independent TLS stacks:
// Node's tls module and the `openssl s_client` binary (RFC 7590, RFC 8996, RFC 7525; XEP-0368
// Direct TLS with ALPN "xmpp-client"; RFC 6120 §5 STARTTLS).
//  - TLS 1.0 and 1.1 are refused by the server (it answers with a protocol_version alert);
//  - TLS 1.2 only with forward secrecy (ECDHE): a static-RSA suite is refused;
//  - TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 and TLS 1.3 are accepted;
//  - ALPN xmpp-client is negotiated on Direct TLS; no TLS compression;
//  - the certificate verifies against the test CA for "localhost".
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { startServer, RawClient, type TestServer } from '../../src/testing/index.ts';
import { sClient, sClientTarget, TLS_TRANSPORTS, type SClientResult, type TlsTransport } from '../clients/openssl.ts';

let srv: TestServer;
let ca: Buffer;

before(async () => {
  srv = await startServer();
  ca = await readFile(srv.caFile);
});
after(async () => {
  assert.equal(await srv.stop(), 0, 'server exits cleanly on SIGTERM');
  await srv.cleanup();
});

// --- openssl s_client ------------------------------------------------------------------------

const target = (t: TlsTransport) => sClientTarget(srv, t);

/** The negotiated protocol and cipher, from the "New, TLSv1.3, Cipher is X" line. */
function session(r: SClientResult): { protocol: string; cipher: string } | undefined {
  const m = /^New, (\S+), Cipher is (\S+)$/m.exec(r.out);
  return m && m[2] !== '(NONE)' ? { protocol: m[1]!, cipher: m[2]! } : undefined;
}

function assertRefused(r: SClientResult, alert: RegExp, what: string): void {
  assert.notEqual(r.code, 0, `${what}: openssl exits with an error status\n${r.out}\n${r.err}`);
  assert.equal(session(r), undefined, `${what}: no TLS session was established\n${r.out}`);
  assert.match(r.out, /Cipher is \(NONE\)/, what);
  assert.doesNotMatch(r.out, /-----BEGIN CERTIFICATE-----/, `${what}: no certificate was sent`);
  // A *received* alert: the ClientHello went out and the server said no (not a local refusal).
  assert.match(r.err, alert, `${what}: the server answered with an alert\n${r.err}`);
}

for (const t of TLS_TRANSPORTS) {
  for (const [flag, name] of [['-tls1', 'TLS 1.0'], ['-tls1_1', 'TLS 1.1']] as const) {
    test(`openssl ${t === 'direct' ? 'Direct TLS' : 'STARTTLS'}: ${name} is refused by the server`, async () => {
      // SECLEVEL=0 so that the local OpenSSL really offers the old protocol; the refusal is the server's.
      const r = await sClient([...target(t), flag, '-cipher', 'DEFAULT:@SECLEVEL=0']);
      assertRefused(r, /alert protocol version/, `${name} over ${t}`);
      assert.match(r.out, /^CONNECTED/m, 'the TCP connection itself worked');
      if (t === 'starttls') {
        // openssl got as far as <proceed/>: the refusal is in the TLS handshake, not the XMPP part.
        assert.match(r.out, /SSL handshake has read [1-9]\d* bytes/);
      }
    });
  }

  test(`openssl ${t}: TLS 1.2 with a static-RSA (no forward secrecy) suite is refused`, async () => {
    const r = await sClient([...target(t), '-tls1_2', '-cipher', 'AES128-GCM-SHA256']);
    assertRefused(r, /alert handshake failure/, `AES128-GCM-SHA256 over ${t}`);
  });

  test(`openssl ${t}: TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 is accepted, verified, uncompressed`, async () => {
    const r = await sClient([...target(t), '-tls1_2', '-cipher', 'ECDHE-ECDSA-AES128-GCM-SHA256',
      '-CAfile', srv.caFile, '-verify_hostname', 'localhost', '-verify_return_error']);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.deepEqual(session(r), { protocol: 'TLSv1.2', cipher: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    assert.match(r.out, /^Compression: NONE$/m, 'no TLS compression (CRIME)');
    assert.match(r.out, /Verify return code: 0 \(ok\)$/m);
    assert.match(r.out, /^Verified peername: localhost$/m);
    assert.match(r.out, /Secure Renegotiation IS supported/, 'RFC 5746 (renegotiation itself is disabled)');
    assert.match(r.out, /Server Temp Key: (X25519|ECDH)/, 'ephemeral ECDH key exchange');
    assert.match(r.out, /Extended master secret: yes/, 'RFC 7627 extended master secret');
  });

  test(`openssl ${t}: TLS 1.3 is accepted, verified, uncompressed`, async () => {
    const r = await sClient([...target(t), '-tls1_3', '-CAfile', srv.caFile, '-verify_hostname', 'localhost', '-verify_return_error']);
    assert.equal(r.code, 0, `${r.out}\n${r.err}`);
    assert.equal(session(r)?.protocol, 'TLSv1.3');
    assert.match(r.out, /^Compression: NONE$/m);
    assert.match(r.out, /Verify return code: 0 \(ok\)$/m);
    assert.match(r.out, /^subject=CN = localhost$/m);
    assert.match(r.out, /^issuer=CN = Amsel development CA/m);
    if (t === 'direct') assert.match(r.out, /^ALPN protocol: xmpp-client$/m, 'XEP-0368: ALPN xmpp-client');
    else assert.match(r.out, /^No ALPN negotiated$/m, 'no ALPN offered on STARTTLS');
  });
}

test('openssl Direct TLS: a client offering only another ALPN protocol is refused (ALPACA)', async () => {
  const r = await sClient(['-connect', `127.0.0.1:${srv.ports.c2sDirectTls}`, '-servername', 'localhost', '-alpn', 'http/1.1']);
  assertRefused(r, /alert no application protocol/, 'ALPN http/1.1');
});

test('openssl: a certificate check against the wrong name fails (the certificate names localhost)', async () => {
  const r = await sClient([...target('direct'), '-CAfile', srv.caFile, '-verify_hostname', 'not-served.example', '-verify_return_error']);
  assert.notEqual(r.code, 0);
  assert.match(r.err + r.out, /hostname mismatch/);
});

// --- node:tls ------------------------------------------------------------------------------

type Outcome = { ok: true; socket: tls.TLSSocket } | { ok: false; error: NodeJS.ErrnoException };

/** A TLS handshake with node:tls, over Direct TLS or after an XMPP STARTTLS exchange. */
async function nodeTls(t: TlsTransport, opts: tls.ConnectionOptions): Promise<Outcome> {
  let socket: net.Socket | undefined;
  if (t === 'starttls') {
    const c = await RawClient.connect(srv.ports.c2s);
    c.header();
    await c.expect(/<\/stream:features>/);
    c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
    await c.expect(/<proceed [^>]*\/>/);
    c.socket.removeAllListeners('data');
    socket = c.socket;
  }
  const base: tls.ConnectionOptions = socket
    ? { socket, servername: 'localhost', ca }
    : { port: srv.ports.c2sDirectTls, host: '127.0.0.1', servername: 'localhost', ca, ALPNProtocols: ['xmpp-client'] };
  return new Promise((resolve) => {
    const s = tls.connect({ ...base, ...opts });
    s.once('secureConnect', () => resolve({ ok: true, socket: s }));
    s.once('error', (error: NodeJS.ErrnoException) => { s.destroy(); resolve({ ok: false, error }); });
  });
}

for (const t of TLS_TRANSPORTS) {
  for (const v of ['TLSv1', 'TLSv1.1'] as const) {
    test(`node:tls ${t}: ${v} is refused with a protocol_version alert`, async () => {
      const r = await nodeTls(t, { minVersion: v, maxVersion: v, ciphers: 'DEFAULT:@SECLEVEL=0' });
      if (r.ok) r.socket.destroy();
      assert.equal(r.ok, false, `${v} must not be negotiated`);
      assert.equal((r as { error: NodeJS.ErrnoException }).error.code, 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION');
    });
  }

  test(`node:tls ${t}: TLS 1.2 without forward secrecy is refused`, async () => {
    const r = await nodeTls(t, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384:AES128-SHA' });
    if (r.ok) r.socket.destroy();
    assert.equal(r.ok, false);
    assert.equal((r as { error: NodeJS.ErrnoException }).error.code, 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE');
  });

  test(`node:tls ${t}: TLS 1.2 CBC suites are refused even with ECDHE`, async () => {
    const r = await nodeTls(t, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES128-SHA' });
    if (r.ok) r.socket.destroy();
    assert.equal(r.ok, false);
  });

  test(`node:tls ${t}: TLS 1.2 ECDHE-ECDSA-AES128-GCM-SHA256 and TLS 1.3 are accepted and verified`, async () => {
    const r12 = await nodeTls(t, { minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
    assert.ok(r12.ok, r12.ok ? '' : r12.error.message);
    assert.equal(r12.socket.getProtocol(), 'TLSv1.2');
    assert.equal(r12.socket.getCipher().name, 'ECDHE-ECDSA-AES128-GCM-SHA256');
    assert.equal(r12.socket.authorized, true);
    assert.equal(r12.socket.getEphemeralKeyInfo() && (r12.socket.getEphemeralKeyInfo() as { type?: string }).type, 'ECDH');
    r12.socket.destroy();

    const r13 = await nodeTls(t, { minVersion: 'TLSv1.3' });
    assert.ok(r13.ok, r13.ok ? '' : r13.error.message);
    assert.equal(r13.socket.getProtocol(), 'TLSv1.3');
    assert.equal(r13.socket.authorized, true, 'verified against the test CA');
    const cert = r13.socket.getPeerCertificate();
    assert.equal(cert.subject.CN, 'localhost');
    assert.match(cert.subjectaltname ?? '', /DNS:localhost\b/);
    assert.equal(tls.checkServerIdentity('localhost', cert), undefined);
    assert.equal(r13.socket.alpnProtocol, t === 'direct' ? 'xmpp-client' : false);
    r13.socket.destroy();
  });
}

test('node:tls: trusting only an unrelated root, the certificate does not verify', async () => {
  // The `ca` option replaces the trust store: the test CA is what makes the certificate verify.
  const r = await nodeTls('direct', { ca: [tls.rootCertificates[0]!], minVersion: 'TLSv1.3' });
  if (r.ok) r.socket.destroy();
  assert.equal(r.ok, false);
  // The server sends its chain with the CA: a self-signed root nobody here trusts.
  assert.ok(['SELF_SIGNED_CERT_IN_CHAIN', 'UNABLE_TO_GET_ISSUER_CERT_LOCALLY'].includes((r as { error: NodeJS.ErrnoException }).error.code ?? ''),
    (r as { error: Error }).error.message);
});

test('node:tls Direct TLS: an XMPP stream works over the negotiated TLS 1.3 connection', async () => {
  const c = await RawClient.connect(srv.ports.c2sDirectTls, { directTls: true, ca, tlsOptions: { minVersion: 'TLSv1.3' } });
  try {
    c.header();
    const m = await c.expect(/<stream:features>([\s\S]*?)<\/stream:features>/);
    assert.match(m[1]!, /<mechanism>SCRAM-SHA-256<\/mechanism>/);
    assert.doesNotMatch(m[1]!, /starttls/, 'no STARTTLS inside TLS');
    assert.equal((c.socket as tls.TLSSocket).alpnProtocol, 'xmpp-client');
  } finally {
    c.destroy();
  }
});
