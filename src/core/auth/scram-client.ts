// Minimal client side of SCRAM (RFC 5802 / 7677, with -PLUS) for tests and tooling.
//
//   const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30' });
//   send(c.first());                       // client-first-message
//   send(await c.final(serverFirst));      // client-final-message
//   c.verifyServerFinal(serverFinal);      // true if v= matches

import { randomBytes } from 'node:crypto';
import type { ScramHashName, StoredCredentials } from './credentials.ts';
import type { ChannelBindingType, SaslContext, SaslMechanism, SaslStep } from './mechanisms.ts';
import { digest, encodeSaslName, hmac, preparePassword, saltedPassword, scramKeys, xor } from './scram.ts';

export interface ScramClientOptions {
  hash: ScramHashName;
  username: string;
  password: string;
  /** Optional authzid (sent as a=...). */
  authzid?: string;
  /**
   * GS2 channel binding flag: 'n' (no support, default), 'y' (supported but not used), or 'p' with
   * `cbName` and `cbData` (for -PLUS).
   */
  flag?: 'n' | 'y' | 'p';
  cbName?: string;
  cbData?: Buffer;
  /** Client nonce (default: 18 random bytes, base64). */
  nonce?: string;
  /** Skip SASLprep (to mimic clients that don't prep). */
  noPrep?: boolean;
}

export interface ScramClient {
  readonly gs2Header: string;
  first(): Buffer;
  final(serverFirst: Buffer | string): Promise<Buffer>;
  verifyServerFinal(serverFinal: Buffer | string): boolean;
  /** Values from the last final(), for tests that tamper with messages. */
  readonly state: { authMessage?: string; saltedPassword?: Buffer; nonce?: string };
}

export function scramClient(opts: ScramClientOptions): ScramClient {
  const flag = opts.flag ?? 'n';
  const cnonce = opts.nonce ?? randomBytes(18).toString('base64');
  const gs2Header =
    (flag === 'p' ? `p=${opts.cbName ?? 'tls-exporter'}` : flag) +
    ',' +
    (opts.authzid !== undefined ? `a=${encodeSaslName(opts.authzid)}` : '') +
    ',';
  const bare = `n=${encodeSaslName(opts.username)},r=${cnonce}`;
  const state: ScramClient['state'] = {};
  let serverSignature: Buffer | undefined;

  return {
    gs2Header,
    state,
    first: () => Buffer.from(gs2Header + bare, 'utf8'),
    async final(serverFirstIn) {
      const serverFirst = typeof serverFirstIn === 'string' ? serverFirstIn : serverFirstIn.toString('utf8');
      const attrs = new Map<string, string>();
      for (const a of serverFirst.split(',')) attrs.set(a.slice(0, 1), a.slice(2));
      const nonce = attrs.get('r');
      const salt = attrs.get('s');
      const iterations = Number(attrs.get('i'));
      if (!nonce || !salt || !Number.isSafeInteger(iterations)) throw new Error(`bad server-first-message: ${serverFirst}`);
      if (!nonce.startsWith(cnonce)) throw new Error('server nonce does not extend the client nonce');
      const cbInput = flag === 'p' ? Buffer.concat([Buffer.from(gs2Header), opts.cbData ?? Buffer.alloc(0)]) : Buffer.from(gs2Header);
      const withoutProof = `c=${cbInput.toString('base64')},r=${nonce}`;
      const authMessage = `${bare},${serverFirst},${withoutProof}`;
      const pw = opts.noPrep ? opts.password : preparePassword(opts.password);
      const salted = await saltedPassword(pw, Buffer.from(salt, 'base64'), iterations, opts.hash);
      const { clientKey, serverKey } = scramKeys(opts.hash, salted);
      const storedKey = digest(opts.hash, clientKey);
      const proof = xor(clientKey, hmac(opts.hash, storedKey, authMessage));
      serverSignature = hmac(opts.hash, serverKey, authMessage);
      state.authMessage = authMessage;
      state.saltedPassword = salted;
      state.nonce = nonce;
      return Buffer.from(`${withoutProof},p=${proof.toString('base64')}`, 'utf8');
    },
    verifyServerFinal(serverFinalIn) {
      const s = typeof serverFinalIn === 'string' ? serverFinalIn : serverFinalIn.toString('utf8');
      return serverSignature !== undefined && s === `v=${serverSignature.toString('base64')}`;
    },
  };
}

// ---------------------------------------------------------------------------------------------------
// Test helpers
// ---------------------------------------------------------------------------------------------------

/** An in-memory SaslContext for tests: `users` maps username → credentials. */
export function testSaslContext(
  users: Map<string, StoredCredentials> | Record<string, StoredCredentials>,
  overrides: Partial<SaslContext> & { bindings?: Partial<Record<ChannelBindingType, Buffer>> } = {},
): SaslContext {
  const map = users instanceof Map ? users : new Map(Object.entries(users));
  const { bindings = {}, ...rest } = overrides;
  return {
    lookup: async (u) => map.get(u) ?? null,
    channelBinding: (t) => bindings[t],
    offeredBindings: ['tls-exporter', 'tls-server-end-point'],
    tls: true,
    fakeSaltSecret: Buffer.from('amsel-test-fake-salt-secret'),
    iterations: 4096,
    ...rest,
  };
}

/** Run a complete SCRAM exchange of `client` against `mech` (initial response in <auth/>). */
export async function runScram(mech: SaslMechanism, client: ScramClient): Promise<{ final: SaslStep; serverVerified: boolean }> {
  const s1 = await mech.step(client.first());
  if (s1.kind !== 'challenge') return { final: s1, serverVerified: false };
  const s2 = await mech.step(await client.final(s1.data));
  const serverVerified = s2.kind === 'success' && s2.data !== undefined && client.verifyServerFinal(s2.data);
  return { final: s2, serverVerified };
}
