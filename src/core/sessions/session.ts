// A bound client session as the core and modules see it. Transports implement it.
import type { XmlElement } from '../../xml/index.ts';
import type { Jid } from '../../jid/index.ts';
import type { StreamError } from '../../xmpp/errors.ts';

export interface Session {
  /** Opaque id, used in logs (never the JID alone). */
  readonly id: string;
  readonly kind: 'c2s';
  /** Full JID (after resource binding). */
  readonly jid: Jid;
  readonly host: string;
  readonly username: string;
  /** Remote address, for throttling and logs. */
  readonly ip: string;
  readonly secure: boolean;
  /** Module-set marks, e.g. 'roster-requested', 'blocklist'. */
  readonly marks: Set<string>;
  /** Presence state, maintained by the presence module (issue 3); core routing reads it. */
  available: boolean;
  priority: number;
  /** Queue a stanza for this client (serialised and written in order). */
  send(el: XmlElement): void;
  /** Close the stream, with a stream error if given; resolves once the socket is gone and the 'session:closed' handlers have run. */
  close(error?: StreamError): Promise<void>;
}
