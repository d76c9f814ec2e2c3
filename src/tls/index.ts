// TLS for every listener: policy (versions, ciphers), certificates chosen by SNI, reload, and
// the development CA. RFC 6120 §5 (STARTTLS), XEP-0368 (Direct TLS), RFC 7590 (TLS in XMPP).

export {
  checkCipherList,
  ECDH_CURVES,
  TLS12_CIPHERS,
  TLS_MIN_VERSIONS,
  TLS_SECURE_OPTIONS,
  TLS_SESSION_TIMEOUT_S,
  type TlsMinVersion,
} from './policy.ts';
export {
  certificateNames,
  checkCertificates,
  EXPIRY_WARNING_DAYS,
  loadCertificate,
  nameCovers,
  parseSubjectAltName,
  TLS_ERROR_CODE,
  TlsCertificateError,
  TlsManager,
  TrustStore,
  type CertificateCheck,
  type CertInfo,
  type TlsConfig,
  type TicketKeyRotationOptions,
  type TlsManagerOptions,
} from './certs.ts';
export { createDevCa, devCertPaths, ensureDevCert, issueDevCert, type CertFiles } from './devcert.ts';
