// Weak settings and unsafe file permissions, for `amsel check` (printed) and `amsel start`
// (logged as warnings). Warnings only: each one names what is weak and why; none stops the
// server (see src/tls/permissions.ts for why permissions do not either).
import path from 'node:path';
import type { Config } from '../config/schema.ts';
import { checkSecretDir, checkSecretFile, currentIdentity, type ProcessIdentity } from '../tls/permissions.ts';

export interface SecurityWarning {
  /** What it is about: 'tls-key', 'data', 'config', 'log', 'limits', 'auth'. */
  topic: string;
  message: string;
}

/**
 * Limits above which a setting no longer protects much: [key, threshold, why]. A limit set above
 * its threshold, or to 0 where 0 turns it off, gets a warning. The defaults are far below.
 */
const LIMITS: [key: string, above: number, what: string][] = [
  ['maxStanzaBytes', 1_048_576, 'one client can make the server hold this much per stanza'],
  ['maxS2sStanzaBytes', 2_097_152, 'one remote server can make the server hold this much per stanza'],
  ['maxHeaderBytes', 65_536, 'a stream header this large is only useful to an attacker'],
  ['tlsHandshakeTimeoutMs', 60_000, 'slow handshakes hold sockets this long'],
  ['authTimeoutMs', 120_000, 'unauthenticated connections are held this long (slowloris)'],
  ['maxUnauthenticatedPerIp', 100, 'one address can hold this many connections before logging in'],
  ['maxUnauthenticatedTotal', 20_000, 'a flood can hold this many connections before they log in'],
  ['maxResourcesPerAccount', 100, 'one account can hold this many sessions'],
  ['maxIqsInFlight', 10_000, 'one session can keep this many IQs waiting'],
];
/** Rates where 0 means "no limit". */
const RATES: [key: string, what: string][] = [
  ['bytesPerSecond', 'a bound client can make the server parse as fast as it sends'],
  ['unauthenticatedBytesPerSecond', 'a client can make the server parse as fast as it sends before logging in'],
];

/** The setting checks that need no file system (also used by tests). */
export function settingWarnings(config: Config): SecurityWarning[] {
  const out: SecurityWarning[] = [];
  const limits = config.limits as unknown as Record<string, unknown>;
  for (const [key, above, what] of LIMITS) {
    const v = limits[key];
    if (typeof v === 'number' && v > above) out.push({ topic: 'limits', message: `limits.${key} is ${v} (above ${above}): ${what}` });
  }
  for (const [key, what] of RATES) {
    if (limits[key] === 0) out.push({ topic: 'limits', message: `limits.${key} is 0 (no limit): ${what}` });
  }
  if (config.auth.failureDelayMs === 0 || config.auth.maxFailureDelayMs === 0) {
    out.push({ topic: 'auth', message: 'auth.failureDelayMs or auth.maxFailureDelayMs is 0: failed logins are answered at once, so passwords can be guessed as fast as the server checks them (only the per-address refusal after 20 failures remains)' });
  }
  if (config.log.level === 'debug' || config.log.level === 'trace') {
    out.push({ topic: 'log', message: `log.level is '${config.log.level}': every connection's address and every login is logged; use 'info' in production` });
  }
  if (config.storage.type === 'postgres' && urlPassword(config.storage.url)) {
    const u = new URL(config.storage.url);
    const sslmode = u.searchParams.get('sslmode');
    if (!['localhost', '127.0.0.1', '[::1]'].includes(u.hostname) && sslmode !== 'require' && sslmode !== 'verify-full') {
      out.push({ topic: 'storage', message: `storage.url sends a password to ${u.hostname} without sslmode=verify-full (or require): it may cross the network in the clear` });
    }
  }
  return out;
}

function urlPassword(url: string): boolean {
  try { return new URL(url).password !== ''; } catch { return false; }
}

/**
 * Everything: settings, the permissions of the TLS private keys and their directories, the data
 * directory, the installation secret and the SQLite database, and the config file when it holds
 * a database password.
 */
export async function securityWarnings(config: Config, opts: { configFile?: string; identity?: ProcessIdentity } = {}): Promise<SecurityWarning[]> {
  const me = opts.identity ?? currentIdentity();
  const out = settingWarnings(config);
  const seen = new Set<string>();
  for (const { key } of config.tls.certificates) {
    if (seen.has(key)) continue;
    seen.add(key);
    for (const w of await checkSecretFile(key, 'the private key', me)) out.push({ topic: 'tls-key', message: w.message });
  }
  for (const w of await checkSecretDir(config.dataDir, 'the data directory')) out.push({ topic: 'data', message: w.message });
  for (const w of await checkSecretFile(path.join(config.dataDir, 'secret.key'), 'the installation secret (fake SCRAM salts)', me)) out.push({ topic: 'data', message: w.message });
  if (config.storage.type === 'sqlite') {
    for (const w of await checkSecretFile(config.storage.path, 'the database (password hashes)', me)) out.push({ topic: 'data', message: w.message });
  }
  if (opts.configFile && config.storage.type === 'postgres' && urlPassword(config.storage.url)) {
    for (const w of await checkSecretFile(opts.configFile, 'the config file (it holds the database password)', me)) out.push({ topic: 'config', message: w.message });
  }
  return out;
}
