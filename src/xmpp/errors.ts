// Error conditions of RFC 6120 §4.9.3 (stream) and §8.3.3 (stanza).

export type StreamErrorCondition =
  | 'bad-format' | 'bad-namespace-prefix' | 'conflict' | 'connection-timeout' | 'host-gone'
  | 'host-unknown' | 'improper-addressing' | 'internal-server-error' | 'invalid-from'
  | 'invalid-namespace' | 'invalid-xml' | 'not-authorized' | 'not-well-formed'
  | 'policy-violation' | 'remote-connection-failed' | 'reset' | 'resource-constraint'
  | 'restricted-xml' | 'see-other-host' | 'system-shutdown' | 'undefined-condition'
  | 'unsupported-encoding' | 'unsupported-feature' | 'unsupported-stanza-type'
  | 'unsupported-version';

/** A condition that ends the whole stream (RFC 6120 §4.9). */
export class StreamError extends Error {
  constructor(readonly condition: StreamErrorCondition, readonly text?: string) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = 'StreamError';
  }
}

export type StanzaErrorCondition =
  | 'bad-request' | 'conflict' | 'feature-not-implemented' | 'forbidden' | 'gone'
  | 'internal-server-error' | 'item-not-found' | 'jid-malformed' | 'not-acceptable'
  | 'not-allowed' | 'not-authorized' | 'policy-violation' | 'recipient-unavailable'
  | 'redirect' | 'registration-required' | 'remote-server-not-found'
  | 'remote-server-timeout' | 'resource-constraint' | 'service-unavailable'
  | 'subscription-required' | 'undefined-condition' | 'unexpected-request';

export type StanzaErrorType = 'auth' | 'cancel' | 'continue' | 'modify' | 'wait';

/** RFC 6120 §8.3.3: the usual error type for each condition. */
export const DEFAULT_ERROR_TYPE: Readonly<Record<StanzaErrorCondition, StanzaErrorType>> = {
  'bad-request': 'modify', conflict: 'cancel', 'feature-not-implemented': 'cancel',
  forbidden: 'auth', gone: 'cancel', 'internal-server-error': 'cancel',
  'item-not-found': 'cancel', 'jid-malformed': 'modify', 'not-acceptable': 'modify',
  'not-allowed': 'cancel', 'not-authorized': 'auth', 'policy-violation': 'modify',
  'recipient-unavailable': 'wait', redirect: 'modify', 'registration-required': 'auth',
  'remote-server-not-found': 'cancel', 'remote-server-timeout': 'wait',
  'resource-constraint': 'wait', 'service-unavailable': 'cancel',
  'subscription-required': 'auth', 'undefined-condition': 'cancel', 'unexpected-request': 'wait',
};

/** A protocol failure of one stanza. Handlers throw it; only the router builds the error stanza. */
export class StanzaError extends Error {
  readonly type: StanzaErrorType;
  constructor(readonly condition: StanzaErrorCondition, readonly text?: string, type?: StanzaErrorType) {
    super(text ? `${condition}: ${text}` : condition);
    this.name = 'StanzaError';
    this.type = type ?? DEFAULT_ERROR_TYPE[condition];
  }
}
