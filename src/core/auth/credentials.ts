// What is stored for an account's password: SCRAM keys per hash (RFC 5802 §3), never the password.

export type ScramHashName = 'SHA-1' | 'SHA-256';

export interface ScramCredential {
  /** Base64 salt. */
  salt: string;
  iterations: number;
  /** Base64 StoredKey = H(ClientKey). */
  storedKey: string;
  /** Base64 ServerKey = HMAC(SaltedPassword, "Server Key"). */
  serverKey: string;
}

/** One credential per SCRAM hash; both are derived whenever a password is set. */
export type StoredCredentials = Record<ScramHashName, ScramCredential>;
