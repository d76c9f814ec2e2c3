// A local certificate authority for development and tests (`amsel cert`, `amsel start --dev`).
//
// Invariants: keys are ECDSA P-256, generated with Node's WebCrypto and stored as PKCS#8 PEM
// with mode 0600; an existing CA in the directory is reused, never overwritten; dev
// certificates name each domain and its wildcard (`*.domain`, for conference./upload.).
// Nothing here is meant for a public service: other servers do not trust this CA.

import { createPrivateKey, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type * as X509 from '@peculiar/x509';

// @peculiar/x509 is loaded on first use only (it is heavy, and the server never needs it);
// reflect-metadata must be loaded before it (tsyringe).
let x509Module: typeof X509 | undefined;
async function loadX509(): Promise<typeof X509> {
  if (!x509Module) {
    await import('reflect-metadata');
    x509Module = await import('@peculiar/x509');
  }
  return x509Module;
}

const EC_ALG = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;
const DAY_MS = 86_400_000;
const CA_NAME = 'CN=Amsel development CA, O=Amsel';

// @peculiar/x509 takes the WebCrypto implementation per call; pass Node's explicitly instead
// of relying on its global provider.
// (Its parameter types are the DOM's WebCrypto types, which this project does not load.)
type X509Crypto = NonNullable<Parameters<typeof X509.X509CertificateGenerator.create>[1]>;
type X509CreateParams = Parameters<typeof X509.X509CertificateGenerator.create>[0];
type X509SigningKey = Extract<X509CreateParams, { signingKey: unknown }>['signingKey'];
type X509KeyPair = Parameters<typeof X509.X509CertificateGenerator.createSelfSigned>[0]['keys'];
const cryptoImpl = webcrypto as unknown as X509Crypto;

export interface CertFiles {
  certFile: string;
  keyFile: string;
}

/** Where the dev CA and the dev certificate for `domain` live under a data directory. */
export function devCertPaths(dataDir: string, domain = 'localhost'): CertFiles & { caDir: string; caFile: string } {
  const dir = join(dataDir, 'tls');
  const caDir = join(dir, 'dev-ca');
  return {
    caDir,
    caFile: join(caDir, 'ca.crt'),
    certFile: join(dir, `${domain}.crt`),
    keyFile: join(dir, `${domain}.key`),
  };
}

/**
 * Creates the development CA in `dir` (`ca.crt`, `ca.key`): ECDSA P-256, "Amsel development
 * CA", valid 10 years. If `dir` already holds a usable CA, it is returned unchanged.
 */
export async function createDevCa(dir: string): Promise<CertFiles> {
  const x509 = await loadX509();
  const certFile = join(dir, 'ca.crt');
  const keyFile = join(dir, 'ca.key');
  const existing = await readExisting(certFile, keyFile);
  if (existing) {
    const cert = new X509Certificate(existing.cert);
    if (!cert.ca) throw new Error(`${certFile}: exists but is not a CA certificate`);
    if (!cert.checkPrivateKey(createPrivateKey(existing.key))) {
      throw new Error(`${keyFile}: does not match ${certFile}`);
    }
    return { certFile, keyFile };
  }

  await mkdir(dir, { recursive: true, mode: 0o700 });
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      serialNumber: randomSerial(),
      name: CA_NAME,
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + 3650 * DAY_MS),
      keys,
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, cryptoImpl),
      ],
    },
    cryptoImpl,
  );
  // key first: a cert without its key is useless, a key without its cert is regenerated
  await writeSecret(keyFile, await exportKey(keys.privateKey));
  await writeAtomic(certFile, cert.toString('pem') + '\n', 0o644);
  return { certFile, keyFile };
}

/**
 * Issues a certificate for `domains` (and `*.domain` for each) from the dev CA in `caDir`
 * (created if missing), valid one year, written to `<outDir>/<domains[0]>.crt` and `.key`
 * (mode 0600). The certificate file holds the leaf only; clients trust the CA file.
 */
export async function issueDevCert(caDir: string, domains: string[], outDir: string): Promise<CertFiles> {
  const x509 = await loadX509();
  if (domains.length === 0) throw new Error('issueDevCert: at least one domain is needed');
  for (const d of domains) {
    if (!/^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/i.test(d) || d.includes('..')) {
      throw new Error(`issueDevCert: '${d}' is not a domain name`);
    }
  }
  const ca = await createDevCa(caDir);
  const caCert = new x509.X509Certificate(await readFile(ca.certFile, 'utf8'));
  const caKey = await webcrypto.subtle.importKey(
    'pkcs8',
    x509.PemConverter.decodeFirst(await readFile(ca.keyFile, 'utf8')),
    EC_ALG,
    false,
    ['sign'],
  );

  const names = [...new Set(domains.flatMap((d) => [d.toLowerCase(), `*.${d.toLowerCase()}`]))];
  const keys = await generateKeys();
  const now = Date.now();
  const cert = await x509.X509CertificateGenerator.create(
    {
      serialNumber: randomSerial(),
      subject: `CN=${domains[0]}`,
      issuer: caCert.subject,
      notBefore: new Date(now - DAY_MS),
      notAfter: new Date(now + 365 * DAY_MS),
      publicKey: keys.publicKey,
      signingKey: caKey as unknown as X509SigningKey,
      signingAlgorithm: EC_ALG,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        // serverAuth for c2s/s2s listeners, clientAuth for outgoing s2s (RFC 7590 §3.3)
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((value) => ({ type: 'dns' as const, value }))),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey, false, cryptoImpl),
        await x509.AuthorityKeyIdentifierExtension.create(caCert, false, cryptoImpl),
      ],
    },
    cryptoImpl,
  );

  await mkdir(outDir, { recursive: true });
  const certFile = join(outDir, `${domains[0]}.crt`);
  const keyFile = join(outDir, `${domains[0]}.key`);
  await writeSecret(keyFile, await exportKey(keys.privateKey));
  await writeAtomic(certFile, cert.toString('pem') + '\n', 0o644);
  return { certFile, keyFile };
}

/**
 * The dev certificate for `domains` under `dataDir` (see devCertPaths), issuing a new one when
 * it is missing, does not cover every domain, no longer matches the CA, or expires within 30
 * days. Used by `amsel start --dev`.
 */
export async function ensureDevCert(
  dataDir: string,
  domains: string[] = ['localhost'],
): Promise<CertFiles & { caFile: string }> {
  const paths = devCertPaths(dataDir, domains[0]);
  const ca = await createDevCa(paths.caDir);
  const existing = await readExisting(paths.certFile, paths.keyFile);
  if (existing) {
    try {
      const cert = new X509Certificate(existing.cert);
      const caCert = new X509Certificate(await readFile(ca.certFile));
      const fresh = new Date(cert.validTo).getTime() - Date.now() > 30 * DAY_MS;
      const covers = domains.every((d) => cert.checkHost(d) !== undefined);
      if (fresh && covers && cert.verify(caCert.publicKey) && cert.checkPrivateKey(createPrivateKey(existing.key))) {
        return { certFile: paths.certFile, keyFile: paths.keyFile, caFile: ca.certFile };
      }
    } catch {
      // unreadable: issue a new one below
    }
  }
  const issued = await issueDevCert(paths.caDir, domains, join(dataDir, 'tls'));
  return { ...issued, caFile: ca.certFile };
}

async function generateKeys(): Promise<X509KeyPair> {
  return (await webcrypto.subtle.generateKey(EC_ALG, true, ['sign', 'verify'])) as unknown as X509KeyPair;
}

async function exportKey(key: X509KeyPair['privateKey']): Promise<string> {
  const x509 = await loadX509();
  const der = await webcrypto.subtle.exportKey('pkcs8', key as unknown as webcrypto.CryptoKey);
  return x509.PemConverter.encode(der, 'PRIVATE KEY') + '\n';
}

/** A positive 128-bit serial number (RFC 5280 §4.1.2.2: at most 20 octets, non-negative). */
function randomSerial(): string {
  const b = randomBytes(16);
  b[0] = b[0]! & 0x7f;
  b[0] = b[0] | 0x01;
  return b.toString('hex');
}

async function readExisting(certFile: string, keyFile: string): Promise<{ cert: string; key: string } | undefined> {
  try {
    return { cert: await readFile(certFile, 'utf8'), key: await readFile(keyFile, 'utf8') };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw err;
  }
}

async function writeSecret(file: string, content: string): Promise<void> {
  await writeAtomic(file, content, 0o600);
}

/** Write to a temporary file created with `mode`, then rename over `file`. */
async function writeAtomic(file: string, content: string, mode: number): Promise<void> {
  const tmp = `${file}.${randomBytes(6).toString('hex')}.tmp`;
  await writeFile(tmp, content, { mode, flag: 'wx' });
  await chmod(tmp, mode); // the umask may have removed bits; never added any
  await rename(tmp, file);
}
