// SASL mechanism registry for c2s authentication (RFC 6120 §6).
//
// The stream negotiator: advertises `availableMechanisms(...)`, on <auth mechanism=X> checks X is in that
// list (else <invalid-mechanism/>), calls `createMechanism(X, ctx)`, then feeds `step()` with the decoded
// initial response (null when absent; the caller maps "=" to an empty Buffer) and each <response/>.
// `step()` never throws and never returns after a 'success'/'failure' without failing again.

import type { IterationShare } from './census.ts';
import type { StoredCredentials } from './credentials.ts';
import { PlainServer } from './plain.ts';
import { ScramServer } from './scram.ts';

export type ChannelBindingType = 'tls-exporter' | 'tls-server-end-point';

export interface SaslContext {
  /** Look up the stored credential; null for unknown users. */
  lookup(username: string): Promise<StoredCredentials | null>;
  /** Channel binding data of the current TLS connection, or undefined if unavailable. */
  channelBinding(type: ChannelBindingType): Buffer | undefined;
  /** Channel binding types this server offers (XEP-0440), in preference order. */
  offeredBindings: ChannelBindingType[];
  tls: boolean;
  /** Secret used to fake stable salts for unknown users (so unknown == wrong password). */
  fakeSaltSecret: Buffer;
  /**
   * The configured iteration count (`auth.scramIterations`): what new credentials get, and so what
   * a PLAIN login upgrades weaker stored ones to (see `upgrade` of a success step).
   */
  iterations: number;
  /**
   * How many of this host's accounts store each iteration count (IterationCensus, cached): a fake
   * credential of an unknown user gets a count drawn from it (scram.ts fakeIterations), so that
   * `i=` and the PLAIN cost look like those of the real accounts. Absent or empty: `iterations`.
   */
  census?: readonly IterationShare[];
  /**
   * Whether -PLUS mechanisms were advertised on this stream (a SCRAM 'y' GS2 flag is then a downgrade
   * and fails). Default: `tls && some offered binding has data`. Set it explicitly when `enabled`
   * removes -PLUS mechanisms from the advertised list.
   */
  plusAdvertised?: boolean;
  /** Test hook: the server part of the SCRAM nonce (printable ASCII without ','). Default: 18 random bytes, base64. */
  randomNonce?: () => string;
}

export type FailureCondition =
  | 'not-authorized'
  | 'malformed-request'
  | 'invalid-authzid'
  | 'encryption-required'
  | 'invalid-mechanism'
  | 'mechanism-too-weak'
  | 'aborted'
  | 'incorrect-encoding'
  | 'temporary-auth-failure';

export type SaslStep =
  | { kind: 'challenge'; data: Buffer }
  | {
      kind: 'success';
      data?: Buffer;
      /** The authenticated username as sent by the client (not prepared: the caller preps it). */
      username: string;
      /**
       * The authzid the client sent, if any. Mechanisms accept only `<username>@<domain>` (own bare JID);
       * the caller MUST check that the domain is this stream's host (else <invalid-authzid/>).
       */
      authzid?: string;
      /**
       * PLAIN only: the stored credentials have fewer iterations than configured (or a hash's
       * credential is missing) and the password just checked out. The caller may answer
       * <success/> first and then store `upgrade.derive()` in the background (a compare-and-set
       * against `upgrade.from`); failing to do so must not fail the login.
       */
      upgrade?: CredentialUpgrade;
    }
  | {
      kind: 'failure';
      condition: FailureCondition;
      text?: string;
      /** when known, for throttling */
      username?: string;
      /** The failure came from negotiating channel binding, before any credential was checked: not a guess. */
      negotiation?: boolean;
    };

/** Stronger credentials for an account, from a password a PLAIN login just verified. */
export interface CredentialUpgrade {
  /** The stored credentials the password was verified against, as looked up. */
  readonly from: StoredCredentials;
  /** The iteration count `derive()` uses (the configured one). */
  readonly iterations: number;
  /** Both hashes' credentials with new random salts (async PBKDF2). The password stays in the closure. */
  derive(): Promise<StoredCredentials>;
}

export interface SaslMechanism {
  readonly name: string;
  step(data: Buffer | null): Promise<SaslStep>;
}

/** All mechanisms Amsel implements, in advertisement (preference) order. */
export const ALL_MECHANISMS = [
  'SCRAM-SHA-256-PLUS',
  'SCRAM-SHA-1-PLUS',
  'SCRAM-SHA-256',
  'SCRAM-SHA-1',
  'PLAIN',
] as const;

export type MechanismName = (typeof ALL_MECHANISMS)[number];

export function availableMechanisms(ctx: {
  tls: boolean;
  channelBindingAvailable: boolean;
  allowPlain: boolean;
  enabled?: string[];
}): string[] {
  return ALL_MECHANISMS.filter((m) => {
    if (ctx.enabled && !ctx.enabled.includes(m)) return false;
    if (m.endsWith('-PLUS')) return ctx.tls && ctx.channelBindingAvailable;
    if (m === 'PLAIN') return ctx.tls && ctx.allowPlain;
    return true;
  });
}

/** A mechanism that fails on its first step (known mechanism, unusable on this connection). */
class Refused implements SaslMechanism {
  constructor(
    readonly name: string,
    private readonly condition: FailureCondition,
    private readonly text: string,
  ) {}
  async step(): Promise<SaslStep> {
    return { kind: 'failure', condition: this.condition, text: this.text };
  }
}

/**
 * Create a server mechanism instance. Returns null only for names Amsel does not implement (reply
 * <invalid-mechanism/>). As defence in depth, PLAIN without TLS fails with <encryption-required/> and
 * -PLUS without any offered, available binding fails with <not-authorized/>; whether a mechanism is
 * enabled/advertised is the caller's check (see availableMechanisms).
 */
export function createMechanism(name: string, ctx: SaslContext): SaslMechanism | null {
  switch (name) {
    case 'SCRAM-SHA-256-PLUS':
    case 'SCRAM-SHA-1-PLUS': {
      const hasBinding = ctx.tls && ctx.offeredBindings.some((t) => ctx.channelBinding(t) !== undefined);
      if (!hasBinding) return new Refused(name, 'not-authorized', 'channel binding unavailable');
      return new ScramServer(ctx, { hash: name === 'SCRAM-SHA-256-PLUS' ? 'SHA-256' : 'SHA-1', plus: true });
    }
    case 'SCRAM-SHA-256':
      return new ScramServer(ctx, { hash: 'SHA-256', plus: false });
    case 'SCRAM-SHA-1':
      return new ScramServer(ctx, { hash: 'SHA-1', plus: false });
    case 'PLAIN':
      if (!ctx.tls) return new Refused(name, 'encryption-required', 'PLAIN requires TLS');
      return new PlainServer(ctx);
    default:
      return null;
  }
}
