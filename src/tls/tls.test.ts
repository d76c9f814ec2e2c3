import assert from 'node:assert/strict';
import { webcrypto, X509Certificate } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import 'reflect-metadata'; // @peculiar/x509 (tsyringe) needs it loaded first
import * as x509 from '@peculiar/x509';
import { copyFile, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../config/load.ts';
import type { Config } from '../config/schema.ts';
import {
  certificateNames,
  checkCertificates,
  checkCipherList,
  createDevCa,
  ensureDevCert,
  issueDevCert,
  loadCertificate,
  parseSubjectAltName,
  TLS12_CIPHERS,
  TlsCertificateError,
  TlsManager,
  type CertInfo,
} from './index.ts';

// A certificate with XmppAddr and SRV-ID names (made with openssl; only its names are used).
const XMPP_NAMES_CERT = `-----BEGIN CERTIFICATE-----
MIIByDCCAW6gAwIBAgIUWe0twrQJgOeTQvw2rmFKyUA+cqkwCgYIKoZIzj0EAwIw
FzEVMBMGA1UEAwwMY2hhdC5leGFtcGxlMCAXDTI2MTEyNTE2MzU1NVoYDzIxMjYx
MTAxMTYzNTU1WjAXMRUwEwYDVQQDDAxjaGF0LmV4YW1wbGUwWTATBgcqhkjOPQIB
BggqhkjOPQMBBwNCAASovVh9dm4ugcX5KvQQ84s0k+8uSDZVWPX4MpYbdle3b7tG
f0735miYu8DPVRjcbIPGkdIwbFRXe033Sp3a7r7oo4GVMIGSMHEGA1UdEQRqMGiC
DGNoYXQuZXhhbXBsZYIOKi5jaGF0LmV4YW1wbGWgGgYIKwYBBQUHCAWgDgwMeG1w
cC5leGFtcGxloCYGCCsGAQUFBwgHoBoWGF94bXBwLWNsaWVudC5zcnYuZXhhbXBs
ZYcEfwAAATAdBgNVHQ4EFgQU2KjFEB6oxe2v9YvSKdPJSKmqnpkwCgYIKoZIzj0E
AwIDSAAwRQIhAOLrFSWYcemrX/v4opm5OVIg4uJeVOGEVjY7QtKNmP4hAiBQKeoO
SBZ1gL3Zrm7cG/grGTTCIp9kMAM15hvJX60UMw==
-----END CERTIFICATE-----
`;

/** A self-signed RSA-2048 certificate for example.org (dev certificates are ECDSA). */
async function rsaCertificate(outDir: string): Promise<{ certFile: string; keyFile: string }> {
  const alg = { name: 'RSASSA-PKCS1-v1_5', hash: 'SHA-256', publicExponent: new Uint8Array([1, 0, 1]), modulusLength: 2048 };
  const keys = await webcrypto.subtle.generateKey(alg, true, ['sign', 'verify']);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: 'CN=example.org',
      keys: keys as never,
      signingAlgorithm: alg,
      extensions: [new x509.SubjectAlternativeNameExtension([{ type: 'dns', value: 'example.org' }])],
    },
    webcrypto as never,
  );
  const { mkdir } = await import('node:fs/promises');
  await mkdir(outDir, { recursive: true });
  const certFile = join(outDir, 'rsa.crt');
  const keyFile = join(outDir, 'rsa.key');
  await writeFile(certFile, cert.toString('pem'));
  await writeFile(keyFile, x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', keys.privateKey), 'PRIVATE KEY'));
  return { certFile, keyFile };
}

let dir: string;
let caDir: string;
let caPem: string;
let org: { certFile: string; keyFile: string };
let net_: { certFile: string; keyFile: string };

function tlsConfig(certs: { certFile: string; keyFile: string }[], tlsExtra: Record<string, unknown> = {}): Config['tls'] {
  return parseConfig(
    { hosts: ['example.org'], tls: { certificates: certs.map((c) => ({ cert: c.certFile, key: c.keyFile })), ...tlsExtra } },
    '/',
  ).tls;
}

/** A TLS echo server on loopback; returns its port and a closer. */
interface EchoServer {
  port: number;
  server: tls.Server;
  /** Codes of handshakes the server refused (tlsClientError). */
  refusals: string[];
  close(): Promise<void>;
}
async function echoServer(opts: tls.TlsOptions, manager?: TlsManager): Promise<EchoServer> {
  const sockets = new Set<tls.TLSSocket>();
  const refusals: string[] = [];
  const server = tls.createServer(opts, (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
    s.on('error', () => undefined);
    s.pipe(s);
  });
  server.on('tlsClientError', (err: NodeJS.ErrnoException) => refusals.push(err.code ?? err.message));
  manager?.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as net.AddressInfo).port,
    server,
    refusals,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => resolve());
      }),
  };
}

function connect(port: number, opts: tls.ConnectionOptions): Promise<tls.TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, ...opts }, () => resolve(s));
    s.once('error', reject);
  });
}

/** Connects and expects the handshake to fail. */
async function refused(port: number, opts: tls.ConnectionOptions): Promise<Error> {
  try {
    const s = await connect(port, opts);
    s.destroy();
  } catch (err) {
    return err as Error;
  }
  assert.fail('handshake unexpectedly succeeded');
}

function echo(s: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.once('error', reject);
    s.write(text);
  });
}

const fingerprint = (s: tls.TLSSocket) => s.getPeerCertificate().fingerprint256;
const fileFingerprint = async (file: string) => new X509Certificate(await readFile(file)).fingerprint256;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'amsel-tls-'));
  caDir = join(dir, 'ca');
  const ca = await createDevCa(caDir);
  caPem = await readFile(ca.certFile, 'utf8');
  org = await issueDevCert(caDir, ['example.org'], join(dir, 'certs'));
  net_ = await issueDevCert(caDir, ['example.net'], join(dir, 'certs'));
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('dev CA', () => {
  it('creates a P-256 CA once and reuses it', async () => {
    const first = await readFile(join(caDir, 'ca.crt'), 'utf8');
    await createDevCa(caDir);
    assert.equal(await readFile(join(caDir, 'ca.crt'), 'utf8'), first);
    const ca = new X509Certificate(first);
    assert.equal(ca.ca, true);
    assert.match(ca.subject, /CN=Amsel development CA/);
    assert.equal(ca.publicKey.asymmetricKeyDetails?.namedCurve, 'prime256v1');
    const years = (new Date(ca.validTo).getTime() - Date.now()) / (365 * 86_400_000);
    assert.ok(years > 9.9 && years < 10.1, `CA valid for ${years} years`);
    assert.equal((await stat(join(caDir, 'ca.key'))).mode & 0o777, 0o600);
  });

  it('issues certificates that verify against the CA, with wildcard SANs, for one year', async () => {
    const cert = new X509Certificate(await readFile(org.certFile));
    const ca = new X509Certificate(caPem);
    assert.equal(cert.verify(ca.publicKey), true);
    assert.equal(cert.checkIssued(ca), true);
    assert.equal(cert.ca, false);
    assert.equal(cert.subjectAltName, 'DNS:example.org, DNS:*.example.org');
    assert.equal(cert.checkHost('conference.example.org'), '*.example.org');
    const days = (new Date(cert.validTo).getTime() - Date.now()) / 86_400_000;
    assert.ok(days > 360 && days < 366, `valid for ${days} days`);
    assert.equal((await stat(org.keyFile)).mode & 0o777, 0o600);
    assert.match(await readFile(org.keyFile, 'utf8'), new RegExp('^-----BEGIN ' + 'PRIVATE KEY-----')); // (split: no key-looking literal in the source)
  });

  it('a TLS client trusting the dev CA accepts the certificate and checks the name', async () => {
    const m = await TlsManager.create(tlsConfig([org]), ['example.org']);
    const srv = await echoServer(m.serverOptions(['xmpp-client']));
    try {
      for (const servername of ['example.org', 'upload.example.org']) {
        const s = await connect(srv.port, { ca: caPem, servername, checkServerIdentity: tls.checkServerIdentity });
        assert.equal(s.authorized, true);
        s.destroy();
      }
      const err = await refused(srv.port, { ca: caPem, servername: 'example.com' });
      assert.equal((err as NodeJS.ErrnoException).code, 'ERR_TLS_CERT_ALTNAME_INVALID');
      const untrusted = await refused(srv.port, { servername: 'example.org' });
      assert.equal((untrusted as NodeJS.ErrnoException).code, 'UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    } finally {
      await srv.close();
    }
  });

  it('ensureDevCert issues once and reuses a fresh certificate', async () => {
    const data = join(dir, 'devdata');
    const a = await ensureDevCert(data, ['localhost']);
    const fpA = await fileFingerprint(a.certFile);
    const b = await ensureDevCert(data, ['localhost']);
    assert.equal(await fileFingerprint(b.certFile), fpA);
    assert.equal(a.certFile, join(data, 'tls', 'localhost.crt'));
    const c = await ensureDevCert(data, ['localhost', 'example.test']);
    assert.equal(c.certFile, a.certFile);
    assert.notEqual(await fileFingerprint(c.certFile), fpA);
    assert.ok(new X509Certificate(await readFile(c.certFile)).checkHost('example.test'));
  });
});

describe('TLS policy over loopback', () => {
  let m: TlsManager;
  let srv: Awaited<ReturnType<typeof echoServer>>;
  before(async () => {
    m = await TlsManager.create(tlsConfig([org, net_]), ['example.org']);
    srv = await echoServer(m.serverOptions(['xmpp-client']));
  });
  after(() => srv.close());

  const base = () => ({ ca: caPem, servername: 'example.org' });

  it('accepts TLS 1.2 with ECDHE + AES-GCM', async () => {
    const s = await connect(srv.port, { ...base(), maxVersion: 'TLSv1.2' });
    assert.equal(s.getProtocol(), 'TLSv1.2');
    assert.equal(s.getCipher().name, 'ECDHE-ECDSA-AES128-GCM-SHA256');
    assert.equal((s.getEphemeralKeyInfo() as tls.EphemeralKeyInfo).type, 'ECDH');
    assert.equal(await echo(s, 'hi'), 'hi');
    s.destroy();
    const chacha = await connect(srv.port, { ...base(), maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-CHACHA20-POLY1305' });
    assert.equal(chacha.getCipher().name, 'ECDHE-ECDSA-CHACHA20-POLY1305');
    chacha.destroy();
  });

  it('accepts TLS 1.3 with X25519', async () => {
    const s = await connect(srv.port, { ...base(), minVersion: 'TLSv1.3' });
    assert.equal(s.getProtocol(), 'TLSv1.3');
    assert.match(s.getCipher().name, /^TLS_(AES_128_GCM_SHA256|AES_256_GCM_SHA384|CHACHA20_POLY1305_SHA256)$/);
    assert.equal((s.getEphemeralKeyInfo() as tls.EphemeralKeyInfo).name, 'X25519');
    s.destroy();
  });

  /** The code of the server's refusal of the next handshake. */
  const serverRefusal = async (server: EchoServer, opts: tls.ConnectionOptions) => {
    const before = server.refusals.length;
    const err = await refused(server.port, opts);
    // resets of clients closed by earlier tests may arrive late: skip them
    const found = () => server.refusals.slice(before).find((c) => c !== 'ECONNRESET');
    for (let i = 0; i < 100 && found() === undefined; i++) await new Promise((r) => setTimeout(r, 5));
    return { client: (err as NodeJS.ErrnoException).code, server: found() };
  };

  it('refuses TLS 1.1 and older', async () => {
    const r = await serverRefusal(srv, { ...base(), minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT:@SECLEVEL=0' });
    assert.deepEqual(r, { client: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION', server: 'ERR_SSL_UNSUPPORTED_PROTOCOL' });
  });

  it('with tls.dhParam, finite-field DHE suites work on a Direct TLS server (the parameters reach its own context)', async () => {
    const rsa = await rsaCertificate(join(dir, 'rsa-dhe'));
    const dhFile = join(dir, 'ffdhe2048.pem');
    // RFC 7919 ffdhe2048, as `openssl genpkey -genparam -algorithm DH -pkeyopt group:ffdhe2048` writes it
    execFileSync('openssl', ['genpkey', '-genparam', '-algorithm', 'DH', '-pkeyopt', 'group:ffdhe2048', '-out', dhFile]);
    const ciphers = 'DHE-RSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256';
    const m = await TlsManager.create(tlsConfig([rsa], { ciphers, dhParam: dhFile }), ['example.org']);
    const s = await echoServer(m.serverOptions([]), m);
    try {
      const c = await connect(s.port, { ...base(), ca: await readFile(rsa.certFile, 'utf8'), maxVersion: 'TLSv1.2', ciphers: 'DHE-RSA-AES128-GCM-SHA256' });
      assert.equal(c.getCipher().name, 'DHE-RSA-AES128-GCM-SHA256');
      assert.equal(await echo(c, 'dhe'), 'dhe');
      c.destroy();
      // ...and still after a reload (setSecureContext with the same options).
      await m.reload();
      const c2 = await connect(s.port, { ...base(), ca: await readFile(rsa.certFile, 'utf8'), maxVersion: 'TLSv1.2', ciphers: 'DHE-RSA-AES128-GCM-SHA256' });
      assert.equal(c2.getCipher().name, 'DHE-RSA-AES128-GCM-SHA256');
      c2.destroy();
    } finally {
      await s.close();
    }
  });

  it('refuses TLS 1.2 suites without forward secrecy or AEAD, also with an RSA certificate', async () => {
    const rsa = await rsaCertificate(join(dir, 'rsa'));
    const mRsa = await TlsManager.create(tlsConfig([rsa]), ['example.org']);
    const sRsa = await echoServer(mRsa.serverOptions([]));
    try {
      const ok = await connect(sRsa.port, { ...base(), ca: await readFile(rsa.certFile, 'utf8'), maxVersion: 'TLSv1.2' });
      assert.equal(ok.getCipher().name, 'ECDHE-RSA-AES128-GCM-SHA256');
      ok.destroy();
      // static RSA key exchange (no forward secrecy), CBC with and without ECDHE
      for (const ciphers of ['AES128-GCM-SHA256', 'AES256-SHA256', 'ECDHE-RSA-AES128-SHA']) {
        const r = await serverRefusal(sRsa, { ...base(), rejectUnauthorized: false, maxVersion: 'TLSv1.2', ciphers });
        assert.deepEqual(r, { client: 'ERR_SSL_SSLV3_ALERT_HANDSHAKE_FAILURE', server: 'ERR_SSL_NO_SHARED_CIPHER' }, ciphers);
      }
    } finally {
      await sRsa.close();
    }
  });

  it('offers no TLS 1.2 suite beyond the policy list', () => {
    assert.deepEqual(checkCipherList(TLS12_CIPHERS, { dhParam: false }), []);
    assert.equal(TLS12_CIPHERS.split(':').every((c) => c.startsWith('ECDHE-') && /GCM|POLY1305/.test(c)), true);
  });

  it('picks the certificate by SNI, falling back to the first host', async () => {
    const orgFp = await fileFingerprint(org.certFile);
    const netFp = await fileFingerprint(net_.certFile);
    const cases: [string | undefined, string][] = [
      ['example.org', orgFp],
      ['example.net', netFp],
      ['EXAMPLE.NET', netFp],
      ['conference.example.net', netFp],
      ['a.b.example.net', orgFp], // a wildcard covers one label only (RFC 6125 §6.4.3)
      ['unknown.test', orgFp],
      [undefined, orgFp], // no SNI
    ];
    for (const [servername, fp] of cases) {
      const s = await connect(srv.port, { ca: caPem, ...(servername ? { servername } : {}), checkServerIdentity: () => undefined });
      assert.equal(fingerprint(s), fp, `servername ${servername}`);
      s.destroy();
    }
    assert.ok(m.contextFor('example.net'));
    assert.ok(m.contextFor('muc.example.net.'));
    assert.equal(m.contextFor('example.com'), undefined);
    assert.equal(m.certificateFor('upload.example.org')?.file, org.certFile);
  });

  it('negotiates ALPN xmpp-client, allows clients without ALPN, refuses other protocols', async () => {
    const a = await connect(srv.port, { ...base(), ALPNProtocols: ['xmpp-client'] });
    assert.equal(a.alpnProtocol, 'xmpp-client');
    a.destroy();
    const b = await connect(srv.port, base());
    assert.equal(b.alpnProtocol, false);
    b.destroy();
    const r = await serverRefusal(srv, { ...base(), ALPNProtocols: ['h2', 'http/1.1'] });
    assert.deepEqual(r, { client: 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL', server: 'ERR_SSL_NO_APPLICATION_PROTOCOL' });
  });

  it('serves STARTTLS through tlsSocketOptions with the same policy and SNI', async () => {
    const server = net.createServer((raw) => {
      raw.once('data', () => {
        raw.write('proceed');
        const secure = new tls.TLSSocket(raw, m.tlsSocketOptions());
        secure.on('error', () => undefined);
        secure.pipe(secure);
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as net.AddressInfo).port;
    try {
      const raw = net.connect(port, '127.0.0.1');
      await new Promise<void>((resolve) => raw.once('connect', resolve));
      raw.write('starttls');
      await new Promise<void>((resolve) => raw.once('data', () => resolve()));
      const s = await new Promise<tls.TLSSocket>((resolve, reject) => {
        const t = tls.connect({ socket: raw, ca: caPem, servername: 'example.net', maxVersion: 'TLSv1.2' }, () => resolve(t));
        t.once('error', reject);
      });
      assert.equal(s.authorized, true);
      assert.equal(fingerprint(s), await fileFingerprint(net_.certFile));
      assert.match(s.getCipher().name, /^ECDHE-ECDSA-AES128-GCM-SHA256$/);
      assert.equal(await echo(s, 'x'), 'x');
      s.destroy();
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });

  it('minVersion TLSv1.3 refuses TLS 1.2 clients', async () => {
    const m13 = await TlsManager.create(tlsConfig([org], { minVersion: 'TLSv1.3' }), ['example.org']);
    const s13 = await echoServer(m13.serverOptions([]));
    try {
      await refused(s13.port, { ...base(), maxVersion: 'TLSv1.2' });
      const ok = await connect(s13.port, base());
      assert.equal(ok.getProtocol(), 'TLSv1.3');
      ok.destroy();
    } finally {
      await s13.close();
    }
  });
});

describe('reload', () => {
  it('swaps certificates for new handshakes; open connections stay up; failures keep the old ones', async () => {
    const live = join(dir, 'live');
    const first = await issueDevCert(caDir, ['example.org'], live);
    const m = await TlsManager.create(tlsConfig([first]), ['example.org']);
    const srv = await echoServer(m.serverOptions(['xmpp-client']), m);
    try {
      const oldFp = await fileFingerprint(first.certFile);
      const open = await connect(srv.port, { ca: caPem, servername: 'example.org' });
      assert.equal(fingerprint(open), oldFp);

      await issueDevCert(caDir, ['example.org'], live); // renewal: same files, new key
      const newFp = await fileFingerprint(first.certFile);
      assert.notEqual(newFp, oldFp);
      assert.equal(m.certificates()[0]!.fingerprint256, oldFp); // nothing changes before reload()
      await m.reload();
      assert.equal(m.certificates()[0]!.fingerprint256, newFp);

      const fresh = await connect(srv.port, { ca: caPem, servername: 'example.org' });
      assert.equal(fingerprint(fresh), newFp);
      fresh.destroy();
      // without SNI too, because the server is attached
      const noSni = await connect(srv.port, { ca: caPem, checkServerIdentity: () => undefined });
      assert.equal(fingerprint(noSni), newFp);
      noSni.destroy();
      assert.equal(await echo(open, 'still here'), 'still here');

      // a broken renewal: the key no longer matches; reload throws, the old state stays
      await copyFile(org.keyFile, first.keyFile);
      await assert.rejects(m.reload(), (err: Error) => err instanceof TlsCertificateError && err.message.includes(first.keyFile));
      assert.equal(m.certificates()[0]!.fingerprint256, newFp);
      const after = await connect(srv.port, { ca: caPem, servername: 'example.org' });
      assert.equal(fingerprint(after), newFp);
      after.destroy();
      assert.equal(await echo(open, 'and now'), 'and now');
      open.destroy();
    } finally {
      await srv.close();
    }
  });
});

describe('certificate loading', () => {
  it('describes a certificate', async () => {
    const { info } = await loadCertificate(org.certFile, org.keyFile);
    assert.deepEqual(info.names, ['example.org', '*.example.org']);
    assert.equal(info.selfSigned, false);
    assert.equal(info.trusted, false); // the dev CA is not a public CA
    assert.equal(info.keyType, 'ec');
    assert.equal(info.keyBits, 256);
    assert.match(info.fingerprint256, /^([0-9A-F]{2}:){31}[0-9A-F]{2}$/);
    assert.ok(info.notBefore < new Date() && info.notAfter > new Date());
    const m = await TlsManager.create(tlsConfig([org]), ['example.org'], { extraTrustedCas: [caPem] });
    assert.equal(m.certificates()[0]!.trusted, true);
  });

  it('reads XmppAddr and SRV-ID names', () => {
    const cert = new X509Certificate(XMPP_NAMES_CERT);
    assert.deepEqual(certificateNames(cert), ['chat.example', '*.chat.example', 'xmpp.example', 'srv.example']);
    assert.deepEqual(parseSubjectAltName('DNS:"a.example, DNS:evil.example", DNS:b.example'), [
      { type: 'DNS', value: 'a.example, DNS:evil.example' },
      { type: 'DNS', value: 'b.example' },
    ]);
  });

  it('errors name the file', async () => {
    const bad = join(dir, 'bad');
    await rm(bad, { recursive: true, force: true });
    const { mkdir } = await import('node:fs/promises');
    await mkdir(bad);
    const garbage = join(bad, 'garbage.pem');
    await writeFile(garbage, 'not a certificate\n');
    const cases: [{ certFile: string; keyFile: string }, RegExp][] = [
      [{ certFile: join(bad, 'missing.crt'), keyFile: org.keyFile }, /missing\.crt: cannot read certificate: file not found/],
      [{ certFile: garbage, keyFile: org.keyFile }, /garbage\.pem: no PEM certificate found/],
      [{ certFile: org.certFile, keyFile: garbage }, /garbage\.pem: cannot parse private key/],
      [{ certFile: org.certFile, keyFile: net_.keyFile }, new RegExp(`example\\.net\\.key: private key does not match the certificate in .*example\\.org\\.crt`)],
    ];
    for (const [files, re] of cases) {
      await assert.rejects(TlsManager.create(tlsConfig([files]), ['example.org']), (err: Error) => {
        assert.ok(err instanceof TlsCertificateError);
        assert.match(err.message, re);
        return true;
      });
    }
    await assert.rejects(TlsManager.create(tlsConfig([]), ['example.org']), /tls\.certificates: no certificates configured/);
  });

  it('flags a misordered chain', async () => {
    const chain = join(dir, 'chain.pem');
    await writeFile(chain, caPem + (await readFile(org.certFile, 'utf8')));
    await assert.rejects(loadCertificate(chain, org.keyFile), /the first certificate is a CA certificate/);
    const wrong = join(dir, 'wrong-chain.pem');
    await writeFile(wrong, (await readFile(org.certFile, 'utf8')) + (await readFile(net_.certFile, 'utf8')));
    const { info } = await loadCertificate(wrong, org.keyFile);
    assert.match(info.chainProblem ?? '', /certificate #2 did not issue certificate #1/);
  });
});

describe('checkCertificates', () => {
  const now = new Date('2030-06-01T00:00:00Z');
  const day = 86_400_000;
  const info = (over: Partial<CertInfo>): CertInfo => ({
    file: '/etc/amsel/example.org.pem',
    keyFile: '/etc/amsel/example.org.key',
    names: ['example.org', '*.example.org'],
    notBefore: new Date(now.getTime() - 30 * day),
    notAfter: new Date(now.getTime() + 60 * day),
    fingerprint256: 'AA',
    selfSigned: false,
    subject: 'CN=example.org',
    issuer: 'CN=R3',
    trusted: true,
    keyType: 'ec',
    keyBits: 256,
    ...over,
  });
  const levels = (infos: CertInfo[], hosts: string[]) => checkCertificates(infos, hosts, now).map((r) => `${r.domain} ${r.level}`);

  it('ok for a valid, trusted certificate', () => {
    const r = checkCertificates([info({})], ['example.org'], now);
    assert.deepEqual(r.map((x) => x.level), ['ok']);
    assert.match(r[0]!.message, /valid until 2030-07-31/);
  });

  it('errors: missing host, expired, not yet valid, weak RSA', () => {
    assert.deepEqual(levels([info({})], ['example.org', 'example.net']), ['example.org ok', 'example.net error']);
    const expired = checkCertificates([info({ notAfter: new Date(now.getTime() - day) })], ['example.org'], now);
    assert.deepEqual(expired.map((x) => x.level), ['error']);
    assert.match(expired[0]!.message, /expired/);
    const early = checkCertificates([info({ notBefore: new Date(now.getTime() + day) })], ['example.org'], now);
    assert.match(early[0]!.message, /not valid before/);
    assert.equal(early[0]!.level, 'error');
    assert.deepEqual(levels([info({ keyType: 'rsa', keyBits: 1024 })], ['example.org']), ['example.org error']);
  });

  it('warnings: expiring soon, self-signed, untrusted, covering no host', () => {
    const soon = checkCertificates([info({ notAfter: new Date(now.getTime() + 5 * day) })], ['example.org'], now);
    assert.equal(soon[0]!.level, 'warn');
    assert.match(soon[0]!.message, /expires in 5 days/);
    const self = checkCertificates([info({ selfSigned: true, trusted: false })], ['example.org'], now);
    assert.equal(self[0]!.level, 'warn');
    assert.match(self[0]!.message, /self-signed: other servers will refuse to federate/);
    const priv = checkCertificates([info({ trusted: false })], ['example.org'], now);
    assert.match(priv[0]!.message, /not a publicly trusted CA/);
    const mismatch = checkCertificates([info({}), info({ file: '/x/other.pem', names: ['other.test'] })], ['example.org'], now);
    assert.deepEqual(mismatch.map((x) => `${x.domain} ${x.level}`), ['example.org ok', 'other.test warn']);
    assert.match(mismatch[1]!.message, /covers none of the hosts/);
    // IDN hosts match the A-label names in certificates
    assert.deepEqual(levels([info({ names: ['xn--bcher-kva.example'] })], ['bücher.example']), ['bücher.example ok']);
    // a subdomain certificate belongs to its host
    assert.deepEqual(levels([info({}), info({ names: ['upload.example.org'] })], ['example.org']), ['example.org ok']);
  });

  it('prefers the valid, later certificate when several cover a host', () => {
    const old = info({ file: '/old.pem', notAfter: new Date(now.getTime() - day) });
    const renewed = info({ file: '/new.pem', notAfter: new Date(now.getTime() + 80 * day) });
    const r = checkCertificates([old, renewed], ['example.org'], now);
    assert.deepEqual(r.map((x) => x.level), ['ok']);
    assert.match(r[0]!.message, /^\/new\.pem/);
  });
});
