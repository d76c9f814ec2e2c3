// Certificates: loading, the names they cover, checks for the operator, and TlsManager, which
// picks the certificate per handshake by SNI and swaps them on reload.
//
// Invariants:
// - a certificate is only used if its private key matches (checked at load);
// - the certificate is looked up per handshake, so reload() affects new handshakes only and
//   established connections keep the certificate they negotiated;
// - a failed reload changes nothing;
// - session-ticket keys are replaced every tls.ticketKeyRotationMs (rotateTicketKeys) from the
//   PEM already in memory, never from disk; a failed rotation changes nothing.
//
// Session tickets (TLS 1.2 tickets, TLS 1.3 PSK tickets) are encrypted and decrypted with the
// keys of the context a TLS socket starts with (the tls.Server's own context, or the
// `secureContext` given to `new tls.TLSSocket` on STARTTLS), never with the context the SNI
// callback selects: Node copies only the certificate, key and chain from the SNI context into
// the connection (measured on Node 20 / OpenSSL 3). So rotation replaces the ticket keys of
// attached servers and rebuilds every context that STARTTLS may start with.
//
// Name matching follows RFC 6125 §6.4: DNS-IDs from subjectAltName (wildcard only as the whole
// left-most label, matching one label), SRV-IDs and XmppAddr (RFC 7622 §13.7.1.4, RFC 6120
// §13.7.1.2) read with Node's X509Certificate, the subject CN only when there is no SAN.

import { createPrivateKey, randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import * as tls from 'node:tls';
import { domainToASCII } from 'node:url';
import type { Config } from '../config/schema.ts';
import { ECDH_CURVES, TLS_SECURE_OPTIONS, TLS_SESSION_TIMEOUT_S } from './policy.ts';

export type TlsConfig = Config['tls'];

export interface CertInfo {
  file: string;
  keyFile: string;
  /** DNS SANs (wildcards as `*.example.org`), plus domains from XmppAddr and SRV-ID names; lower case. */
  names: string[];
  notBefore: Date;
  notAfter: Date;
  /** SHA-256 fingerprint of the leaf, colon-separated hex (as `openssl x509 -fingerprint`). */
  fingerprint256: string;
  selfSigned: boolean;
  /** Subject and issuer distinguished names of the leaf. */
  subject: string;
  issuer: string;
  /** The chain in the file leads to a CA in Node's bundled root store (or a configured extra CA). */
  trusted: boolean;
  /** Why the chain in the file is broken (wrong order, unrelated certificate), if it is. */
  chainProblem?: string;
  /** 'rsa', 'ec', 'ed25519', ... and the key size in bits for RSA, curve size for EC. */
  keyType: string;
  keyBits?: number;
}

/** A certificate with everything needed to serve it. */
interface Loaded {
  info: CertInfo;
  cert: string;
  key: string;
  context: tls.SecureContext;
}

interface State {
  loaded: Loaded[];
  exact: Map<string, Loaded>;
  wildcard: Map<string, Loaded>;
  /** Served to clients that send no SNI or an unknown name: the certificate for the first host. */
  fallback: Loaded;
  /** Context options (policy, DH parameters) the contexts were built with, for rebuilding them. */
  base: tls.SecureContextOptions;
}

/** Stable error code for certificate problems at startup or reload. */
export const TLS_ERROR_CODE = 'AMSEL_E_TLS_CERT';

export class TlsCertificateError extends Error {
  readonly code = TLS_ERROR_CODE;
  constructor(message: string) {
    super(message);
    this.name = 'TlsCertificateError';
  }
}

export interface TlsManagerOptions {
  /** Extra PEM CA certificates counted as trusted by CertInfo.trusted (tests, private federations). */
  extraTrustedCas?: string[];
}

export interface TicketKeyRotationOptions {
  /** A rotation failed; the old keys stay in use and the next rotation is tried on schedule. */
  onError(err: Error): void;
  /** After each successful rotation. */
  onRotate?(): void;
  /** Interval override for tests; default `tls.ticketKeyRotationMs` (at least 60 s in the config). */
  intervalMs?: number;
}

/** Bytes of key material for `tls.Server.setTicketKeys` (name, HMAC and AES key). */
const TICKET_KEYS_BYTES = 48;

export class TlsManager {
  #state: State;
  readonly #cfg: TlsConfig;
  readonly #hosts: string[];
  readonly #opts: TlsManagerOptions;
  readonly #servers = new Set<tls.Server>();
  #reloading: Promise<void> = Promise.resolve();
  #rotationTimer: NodeJS.Timeout | undefined;

  private constructor(cfg: TlsConfig, hosts: string[], opts: TlsManagerOptions, state: State) {
    this.#cfg = cfg;
    this.#hosts = hosts;
    this.#opts = opts;
    this.#state = state;
  }

  /** Loads every certificate and key of `cfg`; throws TlsCertificateError naming the file. */
  static async create(cfg: TlsConfig, hosts: string[], opts: TlsManagerOptions = {}): Promise<TlsManager> {
    return new TlsManager(cfg, hosts, opts, await buildState(cfg, hosts, opts));
  }

  /**
   * Options for `tls.createServer` (XEP-0368 Direct TLS, s2s Direct TLS). Pass the server to
   * `attach()` so that reload() also replaces the certificate served without SNI.
   * `alpn` lists the protocols to negotiate (e.g. ['xmpp-client']); clients that send no
   * ALPN are accepted, clients that offer only other protocols are refused (RFC 7301 §3.2,
   * the ALPACA mitigation).
   */
  serverOptions(alpn: string[], opts: { handshakeTimeoutMs?: number } = {}): tls.TlsOptions {
    const fallback = this.#state.fallback;
    return {
      // The policy and the DH parameters: the server's own context is the one a handshake starts
      // with, and an SNI context lends only its certificate (see tickets.test.ts).
      ...this.#state.base,
      cert: fallback.cert,
      key: fallback.key,
      // ignored by tls.createServer (it builds its own from cert/key); ready-made for
      // `new tls.TLSSocket()` on STARTTLS, so no context is built per connection
      secureContext: fallback.context,
      SNICallback: this.#sniCallback,
      ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}),
      requestCert: false,
      ...(opts.handshakeTimeoutMs !== undefined ? { handshakeTimeout: opts.handshakeTimeoutMs } : {}),
    };
  }

  /**
   * Options for `new tls.TLSSocket(socket, opts)` on STARTTLS (RFC 6120 §5): the current
   * default context (no context is built per connection) and the same SNI selection.
   */
  tlsSocketOptions(alpn: string[] = []): tls.TLSSocketOptions {
    return {
      isServer: true,
      secureContext: this.#state.fallback.context,
      SNICallback: this.#sniCallback,
      ...(alpn.length > 0 ? { ALPNProtocols: alpn } : {}),
      requestCert: false,
    };
  }

  /**
   * Keeps `server`'s default certificate (the one for clients without SNI) in step with
   * reload(), and its session-ticket keys with rotateTicketKeys() (the server's own context
   * holds the ticket keys for every handshake on it, SNI or not). Detached automatically when
   * the server closes.
   */
  attach(server: tls.Server): void {
    this.#servers.add(server);
    server.once('close', () => this.#servers.delete(server));
  }

  /** The context for an SNI name: exact name first, then a wildcard; undefined if none covers it. */
  contextFor(servername: string): tls.SecureContext | undefined {
    return match(this.#state, servername)?.context;
  }

  /**
   * Re-reads every certificate and key (SIGHUP, renewal). New handshakes use the new
   * certificates; open connections are untouched. On any error the old certificates stay and
   * the error is thrown.
   */
  reload(): Promise<void> {
    const run = this.#reloading.then(async () => {
      const next = await buildState(this.#cfg, this.#hosts, this.#opts);
      this.#state = next;
      for (const server of this.#servers) server.setSecureContext(this.serverOptions([]));
    });
    this.#reloading = run.catch(() => undefined);
    return run;
  }

  /**
   * Replaces the session-ticket keys of every context this manager serves: the contexts
   * STARTTLS sockets start with (fallback and per-name contexts, rebuilt from the PEM in memory;
   * a new context has fresh random ticket keys) and the own context of every attached
   * tls.Server (`server.setTicketKeys`). Tickets issued before no longer resume a session (a
   * full handshake follows); open connections are untouched. Nothing is read from disk. On any
   * error the old keys stay everywhere and the error is thrown.
   */
  rotateTicketKeys(): void {
    const next = rebuildContexts(this.#state);
    const changed: [tls.Server, Buffer][] = [];
    try {
      for (const server of this.#servers) {
        const old = server.getTicketKeys();
        server.setTicketKeys(randomBytes(TICKET_KEYS_BYTES));
        changed.push([server, old]);
      }
    } catch (err) {
      for (const [server, old] of changed) server.setTicketKeys(old);
      throw err;
    }
    this.#state = next;
  }

  /**
   * Calls rotateTicketKeys() every `tls.ticketKeyRotationMs` until stopTicketKeyRotation().
   * The timer does not keep the process alive; a failed rotation is reported to `onError` and
   * never thrown. Calling it again restarts the timer with the new options.
   */
  startTicketKeyRotation(opts: TicketKeyRotationOptions): void {
    this.stopTicketKeyRotation();
    const tick = () => {
      try {
        this.rotateTicketKeys();
      } catch (err) {
        report(opts.onError, err instanceof Error ? err : new Error(String(err)));
        return;
      }
      if (opts.onRotate) report(opts.onRotate);
    };
    this.#rotationTimer = setInterval(tick, opts.intervalMs ?? this.#cfg.ticketKeyRotationMs);
    this.#rotationTimer.unref();
  }

  stopTicketKeyRotation(): void {
    clearInterval(this.#rotationTimer);
    this.#rotationTimer = undefined;
  }

  certificates(): CertInfo[] {
    return this.#state.loaded.map((l) => l.info);
  }

  /** The certificate served for `domain` (exact name, then wildcard). */
  certificateFor(domain: string): CertInfo | undefined {
    return match(this.#state, domain)?.info;
  }

  #sniCallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    const state = this.#state;
    cb(null, (match(state, servername) ?? state.fallback).context);
  };

}

/** Calls a callback of the rotation timer; an exception in it must not escape the timer. */
function report<A extends unknown[]>(fn: (...args: A) => void, ...args: A): void {
  try {
    fn(...args);
  } catch {
    // nowhere left to report to
  }
}

/** The same certificates with new contexts (and so new random session-ticket keys). */
function rebuildContexts(state: State): State {
  const renewed = new Map<Loaded, Loaded>();
  for (const l of state.loaded) renewed.set(l, { ...l, context: createContext(state.base, l.cert, l.key, l.info.file) });
  const remap = (m: Map<string, Loaded>) => new Map([...m].map(([name, l]) => [name, renewed.get(l)!]));
  return {
    loaded: state.loaded.map((l) => renewed.get(l)!),
    exact: remap(state.exact),
    wildcard: remap(state.wildcard),
    fallback: renewed.get(state.fallback)!,
    base: state.base,
  };
}

function createContext(base: tls.SecureContextOptions, cert: string, key: string, file: string): tls.SecureContext {
  try {
    return tls.createSecureContext({ ...base, cert, key });
  } catch (err) {
    throw new TlsCertificateError(`${file}: cannot be used for TLS: ${(err as Error).message}`);
  }
}

function contextOptions(cfg: TlsConfig, dhparam?: string): tls.SecureContextOptions {
  return {
    minVersion: cfg.minVersion,
    maxVersion: 'TLSv1.3',
    ciphers: cfg.ciphers,
    ecdhCurve: ECDH_CURVES,
    honorCipherOrder: true,
    secureOptions: TLS_SECURE_OPTIONS,
    sessionTimeout: TLS_SESSION_TIMEOUT_S,
    ...(dhparam !== undefined ? { dhparam } : {}),
  };
}

/** Lower-case A-label form without a trailing dot, as names appear in certificates and SNI (RFC 6066 §3). */
function normalise(name: string): string {
  const n = name.toLowerCase().replace(/\.$/, '');
  return domainToASCII(n) || n;
}

function match(state: State, name: string): Loaded | undefined {
  const n = normalise(name);
  const exact = state.exact.get(n);
  if (exact) return exact;
  const dot = n.indexOf('.');
  return dot > 0 ? state.wildcard.get(`*${n.slice(dot)}`) : undefined;
}

async function buildState(cfg: TlsConfig, hosts: string[], opts: TlsManagerOptions): Promise<State> {
  if (cfg.certificates.length === 0) {
    throw new TlsCertificateError(
      'tls.certificates: no certificates configured; every listener requires TLS (use `amsel cert` for a development certificate)',
    );
  }
  let dhparam: string | undefined;
  if (cfg.dhParam !== undefined) dhparam = await readText(cfg.dhParam, 'Diffie-Hellman parameters');
  const trust = new TrustStore(opts.extraTrustedCas ?? []);
  const baseOptions = contextOptions(cfg, dhparam);

  const loaded: Loaded[] = [];
  for (const entry of cfg.certificates) {
    const { info, cert, key } = await loadCertificate(entry.cert, entry.key, trust);
    loaded.push({ info, cert, key, context: createContext(baseOptions, cert, key, entry.cert) });
  }

  // Where several certificates cover a name, serve the best: valid now, then latest expiry
  // (so a renewed certificate wins during the overlap).
  const now = Date.now();
  const rank = (l: Loaded) =>
    (l.info.notBefore.getTime() <= now && now <= l.info.notAfter.getTime() ? 1e15 : 0) + l.info.notAfter.getTime();
  const exact = new Map<string, Loaded>();
  const wildcard = new Map<string, Loaded>();
  for (const l of loaded) {
    for (const name of l.info.names) {
      const map = name.startsWith('*.') ? wildcard : exact;
      const prev = map.get(name);
      if (!prev || rank(l) > rank(prev)) map.set(name, l);
    }
  }
  const state: State = { loaded, exact, wildcard, fallback: loaded[0]!, base: baseOptions };
  const first = hosts[0] === undefined ? undefined : match(state, hosts[0]);
  if (first) state.fallback = first;
  return state;
}

async function readText(file: string, what: string): Promise<string> {
  try {
    return await readFile(file, 'utf8');
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    throw new TlsCertificateError(`${file}: cannot read ${what}: ${e.code === 'ENOENT' ? 'file not found' : e.message}`);
  }
}

const PEM_CERT = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads a certificate file (leaf first, then intermediates) and its private key, checks that
 * they belong together and describes the certificate.
 */
export async function loadCertificate(
  certFile: string,
  keyFile: string,
  trust: TrustStore = new TrustStore([]),
): Promise<{ info: CertInfo; cert: string; key: string }> {
  const certPem = await readText(certFile, 'certificate');
  const blocks = certPem.match(PEM_CERT) ?? [];
  if (blocks.length === 0) throw new TlsCertificateError(`${certFile}: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)`);
  const chain = blocks.map((pem, i) => {
    try {
      return new X509Certificate(pem);
    } catch (err) {
      throw new TlsCertificateError(`${certFile}: certificate #${i + 1} cannot be parsed: ${(err as Error).message}`);
    }
  });
  const leaf = chain[0]!;
  if (leaf.ca) throw new TlsCertificateError(`${certFile}: the first certificate is a CA certificate; put the server certificate first`);

  const keyPem = await readText(keyFile, 'private key');
  let key: KeyObject;
  try {
    key = createPrivateKey(keyPem);
  } catch (err) {
    const msg = (err as Error).message;
    throw new TlsCertificateError(
      /passphrase/i.test(msg)
        ? `${keyFile}: the private key is encrypted; a key without passphrase is needed`
        : `${keyFile}: cannot parse private key: ${msg}`,
    );
  }
  if (!leaf.checkPrivateKey(key)) {
    throw new TlsCertificateError(`${keyFile}: private key does not match the certificate in ${certFile}`);
  }

  let chainProblem: string | undefined;
  for (let i = 0; i + 1 < chain.length; i++) {
    if (!chain[i]!.checkIssued(chain[i + 1]!) || !chain[i]!.verify(chain[i + 1]!.publicKey)) {
      chainProblem = `certificate #${i + 2} did not issue certificate #${i + 1}; the file must hold the server certificate first, then each issuer in order`;
      break;
    }
  }
  const selfSigned = leaf.checkIssued(leaf) && leaf.verify(leaf.publicKey);
  const details = leaf.publicKey.asymmetricKeyDetails ?? {};
  const keyType = leaf.publicKey.asymmetricKeyType ?? 'unknown';
  const keyBits = details.modulusLength ?? (details.namedCurve ? curveBits(details.namedCurve) : undefined);

  const info: CertInfo = {
    file: certFile,
    keyFile,
    names: certificateNames(leaf),
    notBefore: certDate(leaf, 'from'),
    notAfter: certDate(leaf, 'to'),
    fingerprint256: leaf.fingerprint256,
    selfSigned,
    subject: leaf.subject,
    issuer: leaf.issuer,
    trusted: !selfSigned && chainProblem === undefined && trust.anchors(chain[chain.length - 1]!),
    ...(chainProblem !== undefined ? { chainProblem } : {}),
    keyType,
    ...(keyBits !== undefined ? { keyBits } : {}),
  };
  return { info, cert: blocks.join('\n') + '\n', key: keyPem };
}

function curveBits(curve: string): number | undefined {
  const m = /(\d{3})/.exec(curve);
  return m ? Number(m[1]) : undefined;
}

function certDate(cert: X509Certificate, which: 'from' | 'to'): Date {
  // validFromDate/validToDate exist from Node 22; the string form parses everywhere.
  const d = (cert as unknown as Record<string, unknown>)[which === 'from' ? 'validFromDate' : 'validToDate'];
  return d instanceof Date ? d : new Date(which === 'from' ? cert.validFrom : cert.validTo);
}

/** Node's bundled root CAs (and any extras); parsed once per load. */
export class TrustStore {
  readonly #roots: X509Certificate[];
  constructor(extraPem: string[]) {
    this.#roots = [...tls.rootCertificates, ...extraPem].flatMap((pem) => {
      try {
        return [new X509Certificate(pem)];
      } catch {
        return [];
      }
    });
  }
  /** Whether `top` (the last certificate in a file's chain) is, or is issued by, a trusted root. */
  anchors(top: X509Certificate): boolean {
    return this.#roots.some(
      (root) => root.fingerprint256 === top.fingerprint256 || (top.checkIssued(root) && top.verify(root.publicKey)),
    );
  }
}

/**
 * The names a certificate covers: DNS-IDs, the domain of SRV-IDs (`_xmpp-client.example.org`
 * -> `example.org`, RFC 6125 §6.4) and of XmppAddr identifiers; the subject CN only when the
 * certificate has no subjectAltName at all (RFC 6125 §6.4.4).
 */
export function certificateNames(cert: X509Certificate): string[] {
  const names: string[] = [];
  const san = cert.subjectAltName;
  if (san) {
    for (const { type, value } of parseSubjectAltName(san)) {
      if (type === 'DNS') names.push(value);
      else if (type === 'othername:SRVName') {
        const m = /^_xmpp-(?:client|server)\.(.+)$/i.exec(value);
        if (m) names.push(m[1]!);
      } else if (type === 'othername:XmppAddr') {
        // a domain JID (RFC 6120 §13.7.1.4); strip any local part or resource
        names.push(value.replace(/^[^@/]*@/, '').replace(/\/.*$/, ''));
      }
    }
  } else {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
    if (cn) names.push(cn);
  }
  return [...new Set(names.map(normalise).filter((n) => n !== ''))];
}

/**
 * Parses Node's `subjectAltName` string ("DNS:a, DNS:b, othername:XmppAddr:c"). Values with
 * separators or quotes are JSON-quoted by Node (since the CVE-2021-44532 fix), so a crafted
 * name cannot smuggle in an extra entry.
 */
export function parseSubjectAltName(san: string): { type: string; value: string }[] {
  const out: { type: string; value: string }[] = [];
  let i = 0;
  while (i < san.length) {
    const colon = san.indexOf(':', i);
    if (colon < 0) break;
    let type = san.slice(i, colon);
    let start = colon + 1;
    if (type === 'othername') {
      const m = /^([A-Za-z0-9.]+):/.exec(san.slice(start));
      if (m) {
        type = `othername:${m[1]}`;
        start += m[0].length;
      }
    }
    let value: string;
    let end: number;
    if (san[start] === '"') {
      end = start + 1;
      while (end < san.length && san[end] !== '"') end += san[end] === '\\' ? 2 : 1;
      end += 1;
      try {
        value = JSON.parse(san.slice(start, end)) as string;
      } catch {
        value = '';
      }
    } else {
      end = san.indexOf(', ', start);
      if (end < 0) end = san.length;
      value = san.slice(start, end);
    }
    out.push({ type, value });
    i = san.startsWith(', ', end) ? end + 2 : end;
  }
  return out;
}

/** Whether a certificate name (`example.org` or `*.example.org`) covers `domain` (RFC 6125 §6.4.3). */
export function nameCovers(certName: string, domain: string): boolean {
  const d = normalise(domain);
  certName = normalise(certName);
  if (certName === d) return true;
  if (!certName.startsWith('*.')) return false;
  const dot = d.indexOf('.');
  return dot > 0 && d.slice(dot) === certName.slice(1);
}

export interface CertificateCheck {
  domain: string;
  level: 'ok' | 'warn' | 'error';
  message: string;
}

const DAY_MS = 86_400_000;
/** Warn this long before expiry (ACME renews at 30 days left; 14 means renewal is failing). */
export const EXPIRY_WARNING_DAYS = 14;

/**
 * What an operator should know about the certificates for `hosts` (for `amsel check` and the
 * startup log): a host without a certificate, expired or not yet valid certificates (errors);
 * expiry within 14 days, self-signed or privately issued certificates (other servers refuse to
 * federate with them), broken chains, weak keys, certificates that cover no host (warnings).
 */
export function checkCertificates(infos: CertInfo[], hosts: string[], now: Date = new Date()): CertificateCheck[] {
  const out: CertificateCheck[] = [];
  const t = now.getTime();
  const valid = (i: CertInfo) => i.notBefore.getTime() <= t && t <= i.notAfter.getTime();
  for (const host of hosts) {
    const candidates = infos.filter((i) => i.names.some((n) => nameCovers(n, host)));
    if (candidates.length === 0) {
      const names = infos.flatMap((i) => i.names);
      out.push({
        domain: host,
        level: 'error',
        message: `no certificate covers ${host}${names.length ? ` (certificates name: ${names.join(', ')})` : ''}; clients and servers will reject the connection`,
      });
      continue;
    }
    const best = [...candidates].sort((a, b) => Number(valid(b)) - Number(valid(a)) || b.notAfter.getTime() - a.notAfter.getTime())[0]!;
    const problems: CertificateCheck[] = [];
    const add = (level: 'warn' | 'error', message: string) => problems.push({ domain: host, level, message: `${best.file}: ${message}` });
    if (t > best.notAfter.getTime()) add('error', `expired on ${best.notAfter.toISOString()}`);
    else if (t < best.notBefore.getTime()) add('error', `not valid before ${best.notBefore.toISOString()}`);
    else {
      const days = Math.floor((best.notAfter.getTime() - t) / DAY_MS);
      if (days < EXPIRY_WARNING_DAYS) add('warn', `expires in ${days} day${days === 1 ? '' : 's'} (${best.notAfter.toISOString()}); renew it`);
    }
    if (best.selfSigned) add('warn', 'self-signed: other servers will refuse to federate, and clients will warn');
    else if (best.chainProblem) add('warn', best.chainProblem);
    else if (!best.trusted) {
      add('warn', `issued by '${best.issuer.replace(/\n/g, ', ')}', which is not a publicly trusted CA (or the intermediate certificates are missing from the file): other servers will refuse to federate`);
    }
    if (best.keyType === 'rsa' && (best.keyBits ?? 0) < 2048) add('error', `RSA key of ${best.keyBits} bits; at least 2048 are needed`);
    out.push(...(problems.length ? problems : [{ domain: host, level: 'ok' as const, message: `${best.file}: valid until ${best.notAfter.toISOString()}` }]));
  }
  for (const info of infos) {
    // names of subdomains (conference., upload.) belong to their host
    if (!hosts.some((h) => info.names.some((n) => nameCovers(n, h) || normalise(n).endsWith(`.${normalise(h)}`)))) {
      out.push({
        domain: info.names[0] ?? info.file,
        level: 'warn',
        message: `${info.file}: covers none of the hosts (names: ${info.names.join(', ') || 'none'}); check the hosts list or the certificate`,
      });
    }
  }
  return out;
}
