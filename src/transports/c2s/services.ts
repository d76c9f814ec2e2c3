// What a c2s connection needs from the server (kept narrow so the transport can be tested alone).
import type { XmlElement } from '../../xml/index.ts';
import type { Logger } from '../../observability/log.ts';
import type { Config } from '../../config/schema.ts';
import type { Storage } from '../../storage/index.ts';
import type { TlsManager } from '../../tls/index.ts';
import type { AuthThrottle } from '../../core/auth/throttle.ts';
import type { IterationCensus } from '../../core/auth/census.ts';
import type { Router } from '../../core/router/router.ts';
import type { SessionRegistry } from '../../core/sessions/registry.ts';
import type { Session } from '../../core/sessions/session.ts';

export interface C2sServices {
  readonly config: Config;
  readonly log: Logger;
  readonly storage: Storage;
  readonly tls: TlsManager;
  readonly throttle: AuthThrottle;
  readonly router: Router;
  readonly registry: SessionRegistry;
  readonly fakeSaltSecret: Buffer;
  /** Stored iteration counts per host, for the fake credentials of unknown users. */
  readonly iterationCensus: IterationCensus;
  isLocalHost(domain: string): boolean;
  /** Extra stream features offered after authentication (stream management, CSI, ...). */
  streamFeatures(session: Session): XmlElement[];
  sessionBound(session: Session): Promise<void>;
  /** Called once when a connection's socket is gone (bound or not); resolves when the server is done with it. */
  connectionClosed(conn: Session, wasBound: boolean, reason: string): Promise<void>;
}
