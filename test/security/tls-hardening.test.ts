// TLS hardening beyond test/c2s/tls-policy.test.ts (issue 5 item 7), on every TLS port (STARTTLS
// on c2s, Direct TLS) and every address the test server binds (127.0.0.1 and ::1):
//  - SSLv3 and the SSLv2-format ClientHello are refused: neither this machine's OpenSSL nor Node
//    can still speak SSLv3, so the ClientHellos are written byte by byte;
//  - client-initiated renegotiation (TLS 1.2) is refused: the server answers the second
//    ClientHello with a no_renegotiation alert (SSL_OP_NO_RENEGOTIATION, src/tls/policy.ts;
//    without it Node allows 3 renegotiations per 10 minutes), checked with node:tls and with
//    `openssl s_client` ('R' on stdin);
//  - a client that offers TLS compression gets none (CRIME). Both OpenSSL builds here lack zlib,
//    so this one cannot fail without SSL_OP_NO_COMPRESSION; it guards a build that has it;
//  - TLS 1.0/1.1 and a suite without forward secrecy are refused on the IPv6 listeners too.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import tls from 'node:tls';
import { readFile } from 'node:fs/promises';
import { setTimeout as delay } from 'node:timers/promises';
import { startServer, RawClient, type TestServer } from '../../src/testing/index.ts';
import { sClient, sClientTarget, TLS_TRANSPORTS, type TlsTransport } from '../clients/openssl.ts';

let srv: TestServer;
let ca: Buffer;

before(async () => {
  srv = await startServer();
  ca = await readFile(srv.caFile);
});
after(async () => {
  await srv.stop();
  await srv.cleanup();
});


/** A plain TCP socket at the point where the TLS handshake starts (after <proceed/> on STARTTLS). */
async function tlsStart(t: TlsTransport, host = '127.0.0.1'): Promise<net.Socket> {
  if (t === 'direct') {
    const s = net.connect(srv.ports.c2sDirectTls, host);
    await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
    return s;
  }
  const c = await RawClient.connect(srv.ports.c2s);
  c.header();
  await c.expect(/<\/stream:features>/);
  c.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  await c.expect(/<proceed [^>]*\/>/);
  c.socket.removeAllListeners('data');
  return c.socket;
}

/** Write `hello`, collect what comes back until the server closes (or 5 s). */
async function exchange(s: net.Socket, hello: Buffer): Promise<{ answer: Buffer; closed: boolean }> {
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  s.on('error', () => undefined);
  const closed = new Promise<boolean>((r) => s.once('close', () => r(true)));
  s.write(hello);
  const c = await Promise.race([closed, delay(5000).then(() => false)]);
  s.destroy();
  return { answer: Buffer.concat(chunks), closed: c };
}

/** A ClientHello with client_version 3.0 in a 3.0 record: RSA/CBC suites, no extensions (as SSLv3 clients sent). */
function sslv3ClientHello(): Buffer {
  const body = Buffer.concat([
    Buffer.from([0x03, 0x00]), // client_version SSL 3.0
    Buffer.alloc(32, 0x5a), // random
    Buffer.from([0x00]), // no session id
    Buffer.from([0x00, 0x06, 0x00, 0x2f, 0x00, 0x0a, 0x00, 0x05]), // AES128-SHA, DES-CBC3-SHA, RC4-SHA
    Buffer.from([0x01, 0x00]), // compression: null
  ]);
  const hs = Buffer.concat([Buffer.from([0x01, 0x00, 0x00, body.length]), body]);
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x00, 0x00, hs.length]), hs]);
}

/** An SSLv2-format CLIENT-HELLO (RFC 6101 Appendix E.1) asking for SSL 3.0. */
function sslv2ClientHello(): Buffer {
  const ciphers = Buffer.from([0x00, 0x00, 0x2f, 0x00, 0x00, 0x0a, 0x01, 0x00, 0x80]); // 3 × 3-byte specs
  const challenge = Buffer.alloc(16, 0x33);
  const msg = Buffer.concat([
    Buffer.from([0x01, 0x03, 0x00]), // CLIENT-HELLO, version 3.0
    Buffer.from([0x00, ciphers.length, 0x00, 0x00, 0x00, challenge.length]),
    ciphers,
    challenge,
  ]);
  return Buffer.concat([Buffer.from([0x80 | (msg.length >> 8), msg.length & 0xff]), msg]);
}

for (const t of TLS_TRANSPORTS) {
  const where = t === 'direct' ? 'Direct TLS' : 'STARTTLS';

  test(`${where}: an SSLv3 ClientHello gets a fatal alert, no ServerHello, and the connection closes`, async () => {
    const { answer, closed } = await exchange(await tlsStart(t), sslv3ClientHello());
    assert.ok(closed, 'the server closes the connection');
    assert.ok(answer.length > 0, 'the server answers (with an alert)');
    assert.equal(answer[0], 0x15, `an alert record, not a handshake: ${answer.toString('hex')}`);
    assert.equal(answer[5], 0x02, `level fatal: ${answer.toString('hex')}`);
    assert.ok(!answer.includes(Buffer.from([0x16, 0x03])), 'no handshake record (ServerHello) at all');
  });

  test(`${where}: an SSLv2-format ClientHello gets no ServerHello and the connection closes`, async () => {
    const { answer, closed } = await exchange(await tlsStart(t), sslv2ClientHello());
    assert.ok(closed, 'the server closes the connection');
    assert.ok(answer.length === 0 || answer[0] === 0x15, `nothing or an alert: ${answer.toString('hex')}`);
    assert.ok(!answer.includes(Buffer.from([0x16, 0x03])), 'no ServerHello');
  });

  test(`node:tls ${where}: TLS 1.2 client-initiated renegotiation is refused (no_renegotiation alert)`, async () => {
    const raw = t === 'starttls' ? await tlsStart(t) : undefined;
    const s = tls.connect({
      ...(raw ? { socket: raw } : { port: srv.ports.c2sDirectTls, host: '127.0.0.1', ALPNProtocols: ['xmpp-client'] }),
      servername: 'localhost', ca, minVersion: 'TLSv1.2', maxVersion: 'TLSv1.2',
    });
    await new Promise<void>((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    assert.equal(s.getProtocol(), 'TLSv1.2');
    // The stream works before the attempt.
    let received = '';
    s.setEncoding('utf8').on('data', (d: string) => (received += d));
    s.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
    for (let i = 0; i < 100 && !received.includes('</stream:features>'); i++) await delay(20);
    assert.match(received, /<\/stream:features>/);

    const outcome = await new Promise<{ renegotiated: boolean; code?: string }>((resolve) => {
      s.once('error', (err: NodeJS.ErrnoException) => resolve({ renegotiated: false, code: err.code }));
      const started = s.renegotiate({}, (err) => resolve(err ? { renegotiated: false, code: (err as NodeJS.ErrnoException).code } : { renegotiated: true }));
      if (!started) resolve({ renegotiated: false, code: 'not started' });
      setTimeout(() => resolve({ renegotiated: false, code: 'timeout' }), 5000).unref();
    });
    s.destroy();
    assert.deepEqual(outcome, { renegotiated: false, code: 'ERR_SSL_NO_RENEGOTIATION' }, 'the server refused with a no_renegotiation alert');
  });

  test(`openssl ${where}: 'R' (renegotiate) on a TLS 1.2 session is refused; compression offered, none used`, async () => {
    let sent = false;
    const { code, out, err } = await sClient([...sClientTarget(srv, t), '-tls1_2', '-comp', '-CAfile', srv.caFile], (soFar, stdin) => {
      // s_client reads commands at the start of a line once the handshake is done.
      if (!sent && /Verify return code/.test(soFar)) {
        sent = true;
        setTimeout(() => stdin.write('R\n'), 200);
      }
    });
    assert.match(out, /^New, TLSv1\.2, Cipher is ECDHE-/m, `${out}\n${err}`);
    assert.match(out, /^Compression: NONE$/m, 'no TLS compression although the client offered it');
    assert.match(err, /RENEGOTIATING/, 'openssl tried');
    assert.match(err, /no renegotiation/, `the server refused: ${err}`);
    assert.notEqual(code, 0);
  });
}

test('the IPv6 listeners have the same policy: TLS 1.0/1.1 and non-forward-secret suites refused, TLS 1.3 accepted', async () => {
  const attempt = (port: number, opts: tls.ConnectionOptions) => new Promise<{ ok: boolean; code?: string; protocol?: string | null }>((resolve) => {
    const s = tls.connect({ port, host: '::1', servername: 'localhost', ca, ALPNProtocols: ['xmpp-client'], ...opts });
    s.once('secureConnect', () => { resolve({ ok: true, protocol: s.getProtocol() }); s.destroy(); });
    s.once('error', (e: NodeJS.ErrnoException) => { resolve({ ok: false, code: e.code }); s.destroy(); });
  });
  const port = srv.ports.c2sDirectTls;
  for (const v of ['TLSv1', 'TLSv1.1'] as const) {
    assert.deepEqual(await attempt(port, { minVersion: v, maxVersion: v, ciphers: 'DEFAULT:@SECLEVEL=0' }), { ok: false, code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' }, v);
  }
  assert.deepEqual(await attempt(port, { maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256:AES256-GCM-SHA384' }), { ok: false, code: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE' });
  assert.deepEqual(await attempt(port, { minVersion: 'TLSv1.3' }), { ok: true, protocol: 'TLSv1.3' });
  // STARTTLS on [::1]: an SSLv3 hello is refused there as well.
  const s = net.connect(srv.ports.c2s, '::1');
  await new Promise<void>((resolve, reject) => { s.once('connect', resolve); s.once('error', reject); });
  let text = '';
  s.on('data', (d: Buffer) => (text += d.toString('latin1')));
  s.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='localhost' version='1.0'>`);
  for (let i = 0; i < 100 && !text.includes('</stream:features>'); i++) await delay(20);
  s.write(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
  for (let i = 0; i < 100 && !/<proceed/.test(text); i++) await delay(20);
  assert.match(text, /<proceed/);
  s.removeAllListeners('data');
  const { answer, closed } = await exchange(s, sslv3ClientHello());
  assert.ok(closed);
  assert.equal(answer[0], 0x15, answer.toString('hex'));
});
