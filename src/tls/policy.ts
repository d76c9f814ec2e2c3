// TLS policy shared by every listener (c2s STARTTLS, XEP-0368 Direct TLS, s2s).
//
// Invariants (product brief: "TLS 1.2/1.3 with forward secrecy only"):
// - never below TLS 1.2 (RFC 8996 deprecates TLS 1.0 and 1.1);
// - TLS 1.2 suites are ECDHE key exchange with an AEAD cipher only: no static RSA key
//   exchange (no forward secrecy), no CBC (Lucky13 and friends), no RC4/3DES;
// - TLS 1.3 suites are configured separately by Node (`ciphersuites`) and are all AEAD with
//   (EC)DHE, so they stay at their defaults;
// - no TLS compression (CRIME), no client-initiated renegotiation.

import { constants } from 'node:crypto';
import { getCiphers } from 'node:tls';

/** ECDHE + AEAD suites for TLS 1.2, ECDSA before RSA, AES-GCM before ChaCha20 (RFC 7525 §4.2). */
export const TLS12_CIPHERS =
  'ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:' +
  'ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:' +
  'ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305';

/** Key-exchange groups, most preferred first (RFC 8446 §4.2.7, RFC 7748). */
export const ECDH_CURVES = 'X25519:P-256:P-384';

/** Protocol versions an operator may choose as the minimum. */
export const TLS_MIN_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsMinVersion = (typeof TLS_MIN_VERSIONS)[number];

/** Seconds a TLS session may be resumed; short, so resumption keys do not outlive their use. */
export const TLS_SESSION_TIMEOUT_S = 300;

/**
 * OpenSSL options set on every context: no compression (CRIME, RFC 7525 §3.3), no
 * renegotiation (RFC 7525 §3.5; TLS 1.3 has none), server cipher order.
 */
export const TLS_SECURE_OPTIONS =
  constants.SSL_OP_NO_COMPRESSION |
  constants.SSL_OP_NO_RENEGOTIATION |
  constants.SSL_OP_CIPHER_SERVER_PREFERENCE;

/**
 * Checks an OpenSSL TLS 1.2 cipher list against the forward-secrecy policy. Returns one
 * problem per rejected entry (empty when the list is acceptable).
 *
 * Only explicit suite names are accepted (no `HIGH:!aNULL` style expressions, whose
 * meaning changes with the OpenSSL build). DHE suites need `tls.dhParam`.
 */
export function checkCipherList(list: string, opts: { dhParam: boolean }): string[] {
  const known = new Set(getCiphers());
  const problems: string[] = [];
  const entries = list.split(':').map((s) => s.trim()).filter((s) => s !== '');
  if (entries.length === 0) return ['must name at least one cipher suite'];
  for (const name of entries) {
    if (!/^[A-Z0-9-]+$/.test(name) || (!name.includes('-') && !known.has(name.toLowerCase()))) {
      problems.push(`'${name}' is not a cipher suite name (cipher expressions such as HIGH or !aNULL are not accepted; list suites explicitly)`);
    } else if (!known.has(name.toLowerCase())) {
      problems.push(`'${name}' is not a cipher suite known to this OpenSSL`);
    } else if (name.startsWith('DHE-')) {
      if (!opts.dhParam) problems.push(`'${name}' needs tls.dhParam (finite-field DHE); prefer ECDHE suites`);
      else if (!isAead(name)) problems.push(`'${name}' is not an AEAD suite (use GCM or CHACHA20-POLY1305)`);
    } else if (!name.startsWith('ECDHE-')) {
      problems.push(`'${name}' has no forward secrecy (only ECDHE key exchange is allowed)`);
    } else if (name.includes('PSK')) {
      problems.push(`'${name}' is a pre-shared-key suite`);
    } else if (!isAead(name)) {
      problems.push(`'${name}' is not an AEAD suite (use GCM or CHACHA20-POLY1305)`);
    }
  }
  return problems;
}

function isAead(name: string): boolean {
  return /-GCM-|CHACHA20-POLY1305$/.test(name);
}
