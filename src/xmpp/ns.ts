// Namespace constants (RFC 6120, RFC 6121 and the XEPs that define them).
export const NS = {
  CLIENT: 'jabber:client',
  SERVER: 'jabber:server',
  STREAM: 'http://etherx.jabber.org/streams',
  STREAMS: 'urn:ietf:params:xml:ns:xmpp-streams',
  STANZAS: 'urn:ietf:params:xml:ns:xmpp-stanzas',
  TLS: 'urn:ietf:params:xml:ns:xmpp-tls',
  SASL: 'urn:ietf:params:xml:ns:xmpp-sasl',
  BIND: 'urn:ietf:params:xml:ns:xmpp-bind',
  SESSION: 'urn:ietf:params:xml:ns:xmpp-session',
  SASL_CB: 'urn:xmpp:sasl-cb:0', // XEP-0440
  DISCO_INFO: 'http://jabber.org/protocol/disco#info',
  DISCO_ITEMS: 'http://jabber.org/protocol/disco#items',
  CAPS: 'http://jabber.org/protocol/caps',
  PING: 'urn:xmpp:ping',
  XML: 'http://www.w3.org/XML/1998/namespace',
} as const;
