// SASL PLAIN (RFC 4616) against stored SCRAM credentials: the password is stretched with the stored
// salt and iteration count (async PBKDF2) and the resulting StoredKey compared in constant time.
// Unknown users pay the same PBKDF2 cost with a stable fake salt, so they look like a wrong password.
// Only offered over TLS (see mechanisms.ts).

import { timingSafeEqual } from 'node:crypto';
import saslprep from '@mongodb-js/saslprep';
import type { ScramHashName, StoredCredentials } from './credentials.ts';
import type { FailureCondition, SaslContext, SaslMechanism, SaslStep } from './mechanisms.ts';
import {
  SCRAM_HASHES,
  authzidAcceptable,
  decodeUtf8,
  deriveCredentials,
  fakeCredential,
  fakeIterations,
  isUsableCredential,
  saltedPassword,
  scramKeys,
} from './scram.ts';

/** RFC 4616 asks for at least 255 octets per field; bound the whole message. */
export const MAX_PLAIN_MESSAGE = 4096;

export interface PlainMessage {
  authzid: string;
  authcid: string;
  password: string;
}

/** `[authzid] NUL authcid NUL passwd`; undefined when malformed. */
export function parsePlain(data: Buffer): PlainMessage | undefined {
  if (data.length === 0 || data.length > MAX_PLAIN_MESSAGE) return undefined;
  const s = decodeUtf8(data);
  if (s === undefined) return undefined;
  const parts = s.split('\0');
  if (parts.length !== 3) return undefined;
  const [authzid, authcid, password] = parts as [string, string, string];
  if (authcid.length === 0 || password.length === 0) return undefined;
  return { authzid, authcid, password };
}

export class PlainServer implements SaslMechanism {
  readonly name = 'PLAIN';
  private state: 'start' | 'challenged' | 'done' = 'start';

  constructor(private readonly ctx: SaslContext) {}

  async step(data: Buffer | null): Promise<SaslStep> {
    try {
      return await this.stepInner(data);
    } catch {
      this.state = 'done';
      return { kind: 'failure', condition: 'temporary-auth-failure' };
    }
  }

  private fail(condition: FailureCondition, text?: string, username?: string): SaslStep {
    this.state = 'done';
    const f: SaslStep = { kind: 'failure', condition };
    if (text !== undefined) f.text = text;
    if (username !== undefined) f.username = username;
    return f;
  }

  private async stepInner(data: Buffer | null): Promise<SaslStep> {
    if (this.state === 'done') return this.fail('malformed-request', 'exchange already finished');
    if (data === null) {
      if (this.state === 'challenged') return this.fail('malformed-request', 'missing response');
      this.state = 'challenged';
      return { kind: 'challenge', data: Buffer.alloc(0) };
    }
    this.state = 'done';
    const msg = parsePlain(data);
    if (msg === undefined) return this.fail('malformed-request', 'malformed PLAIN message');
    const { authzid, authcid: username, password } = msg;
    if (authzid !== '' && !authzidAcceptable(authzid, username)) return this.fail('invalid-authzid', undefined, username);

    let stored: StoredCredentials | null;
    try {
      stored = await this.ctx.lookup(username);
    } catch {
      return this.fail('temporary-auth-failure', undefined, username);
    }
    let hash: ScramHashName = 'SHA-256';
    let cred = stored?.['SHA-256'];
    if (cred === undefined || !isUsableCredential(cred, 'SHA-256')) {
      hash = 'SHA-1';
      cred = stored?.['SHA-1'];
    }
    const known = cred !== undefined && isUsableCredential(cred, hash);
    // The fake's count comes from the census of stored counts: the PBKDF2 below then costs an
    // unknown user what it costs the accounts of the host, whatever their counts.
    const fakeIt = fakeIterations(this.ctx.fakeSaltSecret, username, this.ctx.census, this.ctx.iterations);
    const fake = fakeCredential(this.ctx.fakeSaltSecret, username, 'SHA-256', fakeIt);
    if (!known) {
      hash = 'SHA-256';
      cred = fake;
    }
    const c = cred!;

    // SASLprep as when the password was set; an unpreparable password cannot match, but still pays the cost.
    let prepped: string;
    let prepOk = true;
    try {
      prepped = saslprep(password);
      if (prepped.length === 0) throw new Error('empty');
    } catch {
      prepOk = false;
      prepped = password;
    }
    const salted = await saltedPassword(prepped, Buffer.from(c.salt, 'base64'), c.iterations, hash);
    const { storedKey } = scramKeys(hash, salted);
    const match = timingSafeEqual(storedKey, Buffer.from(c.storedKey, 'base64'));
    if (!(match && known && prepOk)) return this.fail('not-authorized', undefined, username);

    const ok: SaslStep = { kind: 'success', username };
    if (authzid !== '') ok.authzid = authzid;
    // The one moment the server has the password: offer to re-derive weaker credentials (after
    // `auth.scramIterations` was raised). Derived and stored by the caller after <success/>.
    const iterations = this.ctx.iterations;
    if (needsUpgrade(stored!, iterations)) {
      ok.upgrade = { from: stored!, iterations, derive: () => deriveCredentials(password, iterations) };
    }
    return ok;
  }
}

/** Whether some hash's stored credential is missing, unusable, or has fewer than `iterations`. */
export function needsUpgrade(stored: StoredCredentials, iterations: number): boolean {
  return SCRAM_HASHES.some((h) => {
    const c = stored[h];
    return c === undefined || !isUsableCredential(c, h) || c.iterations < iterations;
  });
}
