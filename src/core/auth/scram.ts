// SCRAM primitives (RFC 5802 §3, RFC 7677) and the server side of SCRAM-SHA-1/-256 and their -PLUS
// variants (RFC 5802 §6, RFC 9266 tls-exporter, RFC 5929 §4 tls-server-end-point).
//
// Passwords are prepared with SASLprep (RFC 4013, the profile RFC 5802/7677 name; for ASCII passwords it is
// identical to the RFC 8265 OpaqueString profile) and stretched with the asynchronous `crypto.pbkdf2`, so
// deriving never blocks the event loop. Verifying a SCRAM proof needs no PBKDF2 at all: the stored
// StoredKey/ServerKey are enough (a few HMACs, ~10 µs).

import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import saslprep from '@mongodb-js/saslprep';
import type { ScramCredential, ScramHashName, StoredCredentials } from './credentials.ts';
import type { ChannelBindingType, SaslContext, SaslMechanism, SaslStep } from './mechanisms.ts';
import type { IterationShare } from './census.ts';
import { randomBase64 } from '../util/random.ts';

// ---------------------------------------------------------------------------------------------------
// Primitives
// ---------------------------------------------------------------------------------------------------

const NODE_HASH: Record<ScramHashName, 'sha1' | 'sha256'> = { 'SHA-1': 'sha1', 'SHA-256': 'sha256' };
const HASH_LEN: Record<ScramHashName, number> = { 'SHA-1': 20, 'SHA-256': 32 };
export const SCRAM_HASHES: readonly ScramHashName[] = ['SHA-256', 'SHA-1'];
export const DEFAULT_SALT_BYTES = 16;

export function hashLength(hash: ScramHashName): number {
  return HASH_LEN[hash];
}

export function hmac(hash: ScramHashName, key: Buffer, data: Buffer | string): Buffer {
  return createHmac(NODE_HASH[hash], key).update(data).digest();
}

export function digest(hash: ScramHashName, data: Buffer): Buffer {
  return createHash(NODE_HASH[hash]).update(data).digest();
}

export function xor(a: Buffer, b: Buffer): Buffer {
  const out = Buffer.allocUnsafe(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i]! ^ b[i]!;
  return out;
}

/** SASLprep a password (RFC 4013 via @mongodb-js/saslprep). Throws on prohibited characters or empty result. */
export function preparePassword(password: string): string {
  const prepped = saslprep(password);
  if (prepped.length === 0) throw new Error('password is empty after SASLprep');
  return prepped;
}

/** Hi() of RFC 5802 = PBKDF2-HMAC-H with dkLen = hash length. Asynchronous (libuv thread pool). */
export function saltedPassword(preparedPassword: string, salt: Buffer, iterations: number, hash: ScramHashName): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    pbkdf2(Buffer.from(preparedPassword, 'utf8'), salt, iterations, HASH_LEN[hash], NODE_HASH[hash], (err, key) => {
      if (err) reject(err);
      else resolve(key);
    });
  });
}

export interface ScramKeys {
  clientKey: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export function scramKeys(hash: ScramHashName, salted: Buffer): ScramKeys {
  const clientKey = hmac(hash, salted, 'Client Key');
  return { clientKey, storedKey: digest(hash, clientKey), serverKey: hmac(hash, salted, 'Server Key') };
}

/** Build the stored credential from an already-computed SaltedPassword (for test vectors and imports). */
export function scramCredentialFromSaltedPassword(
  hash: ScramHashName,
  salted: Buffer,
  salt: Buffer,
  iterations: number,
): ScramCredential {
  const { storedKey, serverKey } = scramKeys(hash, salted);
  return {
    salt: salt.toString('base64'),
    iterations,
    storedKey: storedKey.toString('base64'),
    serverKey: serverKey.toString('base64'),
  };
}

/** Derive the SCRAM credential for one hash. SASLpreps the password; 16 random salt bytes by default. */
export async function deriveScramCredential(
  password: string,
  hash: ScramHashName,
  iterations: number,
  salt: Buffer = randomBytes(DEFAULT_SALT_BYTES),
): Promise<ScramCredential> {
  if (!Number.isSafeInteger(iterations) || iterations < 1) throw new RangeError(`invalid iteration count ${iterations}`);
  const salted = await saltedPassword(preparePassword(password), salt, iterations, hash);
  return scramCredentialFromSaltedPassword(hash, salted, salt, iterations);
}

/** Derive both SCRAM-SHA-1 and SCRAM-SHA-256 credentials (independent random salts), in parallel. */
export async function deriveCredentials(password: string, iterations: number): Promise<StoredCredentials> {
  const [sha1, sha256] = await Promise.all([
    deriveScramCredential(password, 'SHA-1', iterations),
    deriveScramCredential(password, 'SHA-256', iterations),
  ]);
  return { 'SHA-1': sha1, 'SHA-256': sha256 };
}

/**
 * Key under which a fake salt is derived for an unknown user. Usernames are not fully prepared here
 * (the caller's lookup does that), so fold the obvious variants (case, compatibility forms) so that
 * "Bob" and "bob" get the same fake salt, like they would for a real account.
 */
function fakeKey(username: string): string {
  return username.normalize('NFKC').toLowerCase();
}

/**
 * A stable, secret-dependent credential for a user that does not exist: the salt looks like a real
 * 16-byte salt and is the same on every attempt; the keys are random-looking and match no password
 * (the caller must still fail — see `known` flags below).
 */
export function fakeCredential(secret: Buffer, username: string, hash: ScramHashName, iterations: number): ScramCredential {
  const k = fakeKey(username);
  const salt = hmac('SHA-256', secret, `amsel-fake-salt\0${hash}\0${k}`).subarray(0, DEFAULT_SALT_BYTES);
  const storedKey = hmac('SHA-256', secret, `amsel-fake-stored\0${hash}\0${k}`).subarray(0, HASH_LEN[hash]);
  const serverKey = hmac('SHA-256', secret, `amsel-fake-server\0${hash}\0${k}`).subarray(0, HASH_LEN[hash]);
  return {
    salt: salt.toString('base64'),
    iterations,
    storedKey: storedKey.toString('base64'),
    serverKey: serverKey.toString('base64'),
  };
}

/**
 * The iteration count shown for a user that does not exist: drawn from `census` (how many of the
 * host's accounts store each count), weighted by those numbers, with a stable, secret-dependent
 * choice per username (folded as for the fake salt; the same for both hashes, like a real account's
 * two credentials). So after `auth.scramIterations` is raised, an unknown name shows an old count
 * about as often as an existing account does, instead of only ever the new one. With one count in
 * the census (the normal case) that count; with an empty or absent census `fallback` (the
 * configured count).
 *
 * The counts are taken in ascending order, so as the share of an old count shrinks (its accounts
 * upgraded by PLAIN logins or password changes, new ones created with the new count), the names that
 * change go from a lower count to a higher one, as real accounts do; never back.
 */
export function fakeIterations(secret: Buffer, username: string, census: readonly IterationShare[] | undefined, fallback: number): number {
  let total = 0;
  const shares: IterationShare[] = [];
  for (const s of census ?? []) {
    if (!Number.isSafeInteger(s.iterations) || s.iterations < 1 || !Number.isSafeInteger(s.accounts) || s.accounts < 1) continue;
    shares.push(s);
    total += s.accounts;
  }
  if (shares.length === 0) return fallback;
  if (shares.length === 1) return shares[0]!.iterations;
  shares.sort((a, b) => a.iterations - b.iterations);
  // 48 bits of the HMAC as a uniform point in [0, total).
  const u = hmac('SHA-256', secret, `amsel-fake-iterations\0${fakeKey(username)}`).readUIntBE(0, 6) / 2 ** 48;
  const point = u * total;
  let acc = 0;
  for (const s of shares) {
    acc += s.accounts;
    if (point < acc) return s.iterations;
  }
  return shares[shares.length - 1]!.iterations;
}

// ---------------------------------------------------------------------------------------------------
// Parsing helpers (shared with PLAIN and the test client)
// ---------------------------------------------------------------------------------------------------

const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Strict UTF-8 decode; undefined on invalid input. */
export function decodeUtf8(data: Buffer): string | undefined {
  try {
    return utf8.decode(data);
  } catch {
    return undefined;
  }
}

const B64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Strict (canonical, padded) base64 decode; undefined if not valid. */
export function decodeBase64Strict(s: string): Buffer | undefined {
  if (!B64.test(s)) return undefined;
  const buf = Buffer.from(s, 'base64');
  // Reject non-canonical trailing bits ("QR==" vs "QQ==").
  return buf.toString('base64') === s ? buf : undefined;
}

/** RFC 5802 saslname → string: "=2C" → ",", "=3D" → "="; undefined if any other "=" or "," or NUL, or empty. */
export function decodeSaslName(s: string): string | undefined {
  if (s.length === 0 || s.includes(',') || s.includes('\0')) return undefined;
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c === '=') {
      const esc = s.slice(i + 1, i + 3);
      if (esc === '2C') out += ',';
      else if (esc === '3D') out += '=';
      else return undefined;
      i += 2;
    } else out += c;
  }
  return out;
}

export function encodeSaslName(s: string): string {
  return s.replace(/=/g, '=3D').replace(/,/g, '=2C');
}

/** printable = %x21-2B / %x2D-7E (no comma), at least one. */
const NONCE = /^[\x21-\x2b\x2d-\x7e]+$/;
const ATTR = /^[A-Za-z]=/;

export interface Gs2Header {
  flag: 'n' | 'y' | 'p';
  cbName?: string;
  authzid?: string;
  /** The header exactly as sent, including both commas. */
  raw: string;
}

export interface ClientFirst {
  gs2: Gs2Header;
  /** client-first-message-bare, as sent. */
  bare: string;
  username: string;
  nonce: string;
}

export type ParseResult<T> = { ok: true; value: T } | { ok: false; condition: 'malformed-request'; text: string };

const bad = (text: string): { ok: false; condition: 'malformed-request'; text: string } => ({
  ok: false,
  condition: 'malformed-request',
  text,
});

export function parseClientFirst(msg: string): ParseResult<ClientFirst> {
  // gs2-header = gs2-cbind-flag "," [ authzid ] ","
  const c1 = msg.indexOf(',');
  if (c1 < 0) return bad('missing GS2 header');
  const c2 = msg.indexOf(',', c1 + 1);
  if (c2 < 0) return bad('missing GS2 header');
  const flagPart = msg.slice(0, c1);
  const authzPart = msg.slice(c1 + 1, c2);
  const gs2: Gs2Header = { flag: 'n', raw: msg.slice(0, c2 + 1) };
  if (flagPart === 'n' || flagPart === 'y') gs2.flag = flagPart;
  else if (flagPart.startsWith('p=')) {
    const name = flagPart.slice(2);
    if (!/^[A-Za-z0-9.-]+$/.test(name)) return bad('invalid channel binding name');
    gs2.flag = 'p';
    gs2.cbName = name;
  } else return bad('invalid GS2 channel binding flag');
  if (authzPart !== '') {
    if (!authzPart.startsWith('a=')) return bad('invalid GS2 authzid');
    const a = decodeSaslName(authzPart.slice(2));
    if (a === undefined) return bad('invalid GS2 authzid');
    gs2.authzid = a;
  }

  const bare = msg.slice(c2 + 1);
  const attrs = bare.split(',');
  if (attrs[0]?.startsWith('m=')) return bad('mandatory extension not supported');
  // [reserved-mext ","] username "," nonce ["," extensions]
  if (attrs.length < 2) return bad('missing username or nonce');
  const [u, r, ...ext] = attrs as [string, string, ...string[]];
  if (!u.startsWith('n=')) return bad('missing username');
  const username = decodeSaslName(u.slice(2));
  if (username === undefined) return bad('invalid username encoding');
  if (!r.startsWith('r=')) return bad('missing nonce');
  const nonce = r.slice(2);
  if (!NONCE.test(nonce)) return bad('invalid nonce');
  for (const e of ext) if (!ATTR.test(e)) return bad('invalid extension');
  return { ok: true, value: { gs2, bare, username, nonce } };
}

export interface ClientFinal {
  /** Decoded c= value. */
  channelBinding: Buffer;
  nonce: string;
  proof: Buffer;
  /** client-final-message-without-proof, as sent. */
  withoutProof: string;
}

export function parseClientFinal(msg: string): ParseResult<ClientFinal> {
  // channel-binding "," nonce ["," extensions] "," proof
  const p = msg.lastIndexOf(',p=');
  if (p < 0) return bad('missing proof');
  const withoutProof = msg.slice(0, p);
  const proof = decodeBase64Strict(msg.slice(p + 3));
  if (proof === undefined || proof.length === 0) return bad('invalid proof encoding');
  const attrs = withoutProof.split(',');
  if (attrs.length < 2) return bad('missing channel binding or nonce');
  const [c, r, ...ext] = attrs as [string, string, ...string[]];
  if (!c.startsWith('c=')) return bad('missing channel binding');
  const cb = decodeBase64Strict(c.slice(2));
  if (cb === undefined || cb.length === 0) return bad('invalid channel binding encoding');
  if (!r.startsWith('r=')) return bad('missing nonce');
  const nonce = r.slice(2);
  if (!NONCE.test(nonce)) return bad('invalid nonce');
  for (const e of ext) if (!ATTR.test(e)) return bad('invalid extension');
  return { ok: true, value: { channelBinding: cb, nonce, proof, withoutProof } };
}

/**
 * Authorization identity policy (shared by SCRAM and PLAIN). Amsel does not support acting as another
 * entity, so an authzid is accepted only if it is the user's own bare JID: `<username>@<domain>`
 * (localpart compared after NFKC + lower-casing; no resource). The domain is NOT checked here: the
 * success step carries `authzid` and the caller must check the domain is the stream's host.
 */
export function authzidAcceptable(authzid: string, username: string): boolean {
  const at = authzid.lastIndexOf('@');
  if (at <= 0) return false;
  const local = authzid.slice(0, at);
  const domain = authzid.slice(at + 1);
  if (domain.length === 0 || domain.includes('/') || domain.includes('@')) return false;
  return fakeKey(local) === fakeKey(username);
}

// ---------------------------------------------------------------------------------------------------
// Server mechanism
// ---------------------------------------------------------------------------------------------------

/** Upper bound on a single SCRAM message; real ones are a few hundred bytes. */
export const MAX_SCRAM_MESSAGE = 8192;

export interface ScramServerOptions {
  hash: ScramHashName;
  plus: boolean;
}

type State =
  | { s: 'start'; sentEmptyChallenge: boolean }
  | {
      s: 'first-sent';
      first: ClientFirst;
      serverFirst: string;
      nonce: string;
      cred: ScramCredential;
      known: boolean;
      cbData: Buffer | undefined;
    }
  | { s: 'done' };

/** Whether the server advertises -PLUS mechanisms on this connection (decides the 'y' downgrade check). */
export function plusAdvertised(ctx: SaslContext): boolean {
  if (ctx.plusAdvertised !== undefined) return ctx.plusAdvertised;
  return ctx.tls && ctx.offeredBindings.some((t) => ctx.channelBinding(t) !== undefined);
}

export class ScramServer implements SaslMechanism {
  readonly name: string;
  private state: State = { s: 'start', sentEmptyChallenge: false };

  constructor(
    private readonly ctx: SaslContext,
    private readonly opts: ScramServerOptions,
  ) {
    this.name = `SCRAM-${opts.hash}${opts.plus ? '-PLUS' : ''}`;
  }

  async step(data: Buffer | null): Promise<SaslStep> {
    try {
      return await this.stepInner(data);
    } catch {
      // Defensive: never throw into the stream negotiator.
      this.state = { s: 'done' };
      return { kind: 'failure', condition: 'temporary-auth-failure' };
    }
  }

  private fail(condition: Extract<SaslStep, { kind: 'failure' }>['condition'], text?: string, username?: string, negotiation = false): SaslStep {
    this.state = { s: 'done' };
    const f: SaslStep = { kind: 'failure', condition };
    if (negotiation) f.negotiation = true;
    if (text !== undefined) f.text = text;
    if (username !== undefined) f.username = username;
    return f;
  }

  private async stepInner(data: Buffer | null): Promise<SaslStep> {
    const st = this.state;
    if (st.s === 'done') return this.fail('malformed-request', 'exchange already finished');
    if (st.s === 'start') {
      if (data === null) {
        if (st.sentEmptyChallenge) return this.fail('malformed-request', 'missing client-first-message');
        st.sentEmptyChallenge = true;
        return { kind: 'challenge', data: Buffer.alloc(0) };
      }
      return this.onClientFirst(data);
    }
    return this.onClientFinal(st, data ?? Buffer.alloc(0));
  }

  private async onClientFirst(data: Buffer): Promise<SaslStep> {
    const { ctx, opts } = this;
    if (data.length === 0 || data.length > MAX_SCRAM_MESSAGE) return this.fail('malformed-request', 'bad message length');
    const msg = decodeUtf8(data);
    if (msg === undefined) return this.fail('malformed-request', 'invalid UTF-8');
    const parsed = parseClientFirst(msg);
    if (!parsed.ok) return this.fail(parsed.condition, parsed.text);
    const first = parsed.value;
    const { gs2, username } = first;

    // Channel binding negotiation (RFC 5802 §6).
    let cbData: Buffer | undefined;
    if (opts.plus) {
      if (gs2.flag !== 'p') return this.fail('malformed-request', 'channel binding required with -PLUS', username, true);
      const type = gs2.cbName as ChannelBindingType;
      if (!ctx.tls || !ctx.offeredBindings.includes(type)) {
        return this.fail('not-authorized', 'unsupported channel binding type', username, true);
      }
      cbData = ctx.channelBinding(type);
      if (cbData === undefined) return this.fail('not-authorized', 'channel binding unavailable', username, true);
    } else {
      if (gs2.flag === 'p') return this.fail('malformed-request', 'channel binding requires a -PLUS mechanism', username, true);
      if (gs2.flag === 'y' && plusAdvertised(ctx)) {
        // The client supports channel binding and believes we don't: a downgrade attack.
        return this.fail('not-authorized', 'server does support channel binding', username, true);
      }
    }

    if (gs2.authzid !== undefined && !authzidAcceptable(gs2.authzid, username)) {
      return this.fail('invalid-authzid', undefined, username);
    }

    let stored: StoredCredentials | null;
    try {
      stored = await ctx.lookup(username);
    } catch {
      return this.fail('temporary-auth-failure', undefined, username);
    }
    const real = stored?.[opts.hash];
    // Always computed, and always validated (the real one, else the fake), so the first step costs
    // the same for known and unknown users (test/security/auth-timing.test.ts). The fake's count
    // comes from the census of stored counts, so `i=` does not tell old accounts from no account.
    const fakeIt = fakeIterations(ctx.fakeSaltSecret, username, ctx.census, ctx.iterations);
    const fake = fakeCredential(ctx.fakeSaltSecret, username, opts.hash, fakeIt);
    const usable = isUsableCredential(real ?? fake, opts.hash);
    const known = real !== undefined && usable;
    const cred = known ? real : fake;

    const nonce = first.nonce + (ctx.randomNonce ? ctx.randomNonce() : randomBase64(18));
    const serverFirst = `r=${nonce},s=${cred.salt},i=${cred.iterations}`;
    this.state = { s: 'first-sent', first, serverFirst, nonce, cred, known, cbData };
    return { kind: 'challenge', data: Buffer.from(serverFirst, 'utf8') };
  }

  private async onClientFinal(st: Extract<State, { s: 'first-sent' }>, data: Buffer): Promise<SaslStep> {
    const { first } = st;
    const username = first.username;
    if (data.length === 0 || data.length > MAX_SCRAM_MESSAGE) return this.fail('malformed-request', 'bad message length', username);
    const msg = decodeUtf8(data);
    if (msg === undefined) return this.fail('malformed-request', 'invalid UTF-8', username);
    const parsed = parseClientFinal(msg);
    if (!parsed.ok) return this.fail(parsed.condition, parsed.text, username);
    const fin = parsed.value;

    const gs2 = Buffer.from(first.gs2.raw, 'utf8');
    const expectedCb = st.cbData ? Buffer.concat([gs2, st.cbData]) : gs2;
    if (!fin.channelBinding.equals(expectedCb)) {
      return this.fail('not-authorized', 'channel bindings do not match', username);
    }
    if (fin.nonce !== st.nonce) return this.fail('malformed-request', 'nonce mismatch', username);

    const hash = this.opts.hash;
    const len = HASH_LEN[hash];
    if (fin.proof.length !== len) return this.fail('malformed-request', 'invalid proof length', username);

    // Same computation for known and unknown users.
    const storedKey = Buffer.from(st.cred.storedKey, 'base64');
    const serverKey = Buffer.from(st.cred.serverKey, 'base64');
    const authMessage = `${first.bare},${st.serverFirst},${fin.withoutProof}`;
    const clientSignature = hmac(hash, storedKey, authMessage);
    const clientKey = xor(fin.proof, clientSignature);
    const candidate = digest(hash, clientKey);
    const match = timingSafeEqual(candidate, storedKey);
    const serverSignature = hmac(hash, serverKey, authMessage);
    if (!(match && st.known)) return this.fail('not-authorized', undefined, username);

    this.state = { s: 'done' };
    // No credential upgrade here (unlike PLAIN): the server never sees the password, only a proof
    // made with the stored salt and iteration count, so it cannot derive keys with a higher count.
    // Such an account keeps its count until its password is set again (or a PLAIN login).
    const ok: SaslStep = {
      kind: 'success',
      data: Buffer.from(`v=${serverSignature.toString('base64')}`, 'utf8'),
      username,
    };
    if (first.gs2.authzid !== undefined) ok.authzid = first.gs2.authzid;
    return ok;
  }
}

/** Guard against corrupt stored rows (wrong key length would make timingSafeEqual throw). */
export function isUsableCredential(c: ScramCredential, hash: ScramHashName): boolean {
  return (
    typeof c === 'object' &&
    c !== null &&
    typeof c.salt === 'string' &&
    c.salt.length > 0 &&
    typeof c.storedKey === 'string' &&
    typeof c.serverKey === 'string' &&
    Buffer.from(c.storedKey, 'base64').length === HASH_LEN[hash] &&
    Buffer.from(c.serverKey, 'base64').length === HASH_LEN[hash] &&
    Number.isSafeInteger(c.iterations) &&
    c.iterations > 0
  );
}
