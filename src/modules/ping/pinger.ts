// Server-to-client pings (XEP-0199 §4.1) to find dead connections: a TCP connection whose
// peer vanished (a phone that lost its network) stays open for a long time; a ping that gets
// no answer in time shows it, and the session is closed with <connection-timeout/> (RFC 6120
// §4.9.3.4) so that presence, routing and offline storage see the user as gone.
//
// Cost for many sessions: each session is pinged once per interval, counted from its binding
// or from its last answer. Sessions wait in one queue (a Map in due order: every entry is
// due `intervalMs` after it was queued, so insertion order is due order); a timer tick takes
// the due ones from the head, at most a budget per tick that spreads a burst (a reconnect
// storm after a restart) over the interval instead of pinging everyone at once. Only pings in
// flight hold a promise. A session that answers goes back to the end of the queue.
import { x } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { StanzaError, StreamError } from '../../xmpp/errors.ts';
import type { XmlElement } from '../../xml/index.ts';
import type { Session } from '../../core/sessions/session.ts';
import type { Logger } from '../../observability/log.ts';

export interface PingerDeps {
  host: string;
  /** Ping each session this long after binding or after its last answer. */
  intervalMs: number;
  /** Close a session that has not answered a ping after this long. */
  timeoutMs: number;
  /** How often the queue is looked at. */
  tickMs: number;
  now(): number;
  /** Is this session still the bound one (not closed or replaced)? */
  isCurrent(session: Session): boolean;
  request(iq: XmlElement, timeoutMs: number): Promise<XmlElement>;
  background(name: string, task: Promise<unknown>): void;
  log: Logger;
}

export class ServerPinger {
  private readonly queue = new Map<string, { session: Session; due: number }>();
  /** Pings awaiting an answer, by session id: call to stop waiting (the session is gone). */
  private readonly inFlight = new Map<string, () => void>();

  constructor(private readonly d: PingerDeps) {}

  /** Sessions waiting for their next ping, and pings awaiting an answer. */
  get stats(): { queued: number; inFlight: number } {
    return { queued: this.queue.size, inFlight: this.inFlight.size };
  }

  /** Start pinging a newly bound session (one interval from now). */
  track(session: Session): void {
    this.queue.delete(session.id);
    this.queue.set(session.id, { session, due: this.d.now() + this.d.intervalMs });
  }

  /** The session is gone: drop it, and stop waiting for its answer. */
  forget(session: Session): void {
    this.queue.delete(session.id);
    this.inFlight.get(session.id)?.();
  }

  /** Forget everything (the server is stopping). */
  stop(): void {
    this.queue.clear();
    for (const abort of [...this.inFlight.values()]) abort();
  }

  /** Ping the sessions that are due, at most a fair share of the interval per tick. */
  tick(): void {
    const now = this.d.now();
    const sessions = this.queue.size + this.inFlight.size;
    // Twice the steady rate (every session once per interval), so a backlog drains in half an interval.
    const budget = Math.max(1, Math.ceil((2 * sessions * this.d.tickMs) / this.d.intervalMs));
    let sent = 0;
    for (const [id, entry] of this.queue) {
      if (entry.due > now || sent >= budget) break;
      this.queue.delete(id);
      if (!this.d.isCurrent(entry.session)) continue;
      sent++;
      this.d.background('server ping', this.ping(entry.session));
    }
  }

  private async ping(session: Session): Promise<void> {
    // XEP-0199 §4.1: <iq type='get' from='server' to='full JID'><ping/></iq>
    const iq = x('iq', { xmlns: NS.CLIENT, type: 'get', from: this.d.host, to: session.jid.toString() }, x('ping', { xmlns: NS.PING }));
    let abort!: () => void;
    const gone = new Promise<'gone'>((resolve) => { abort = () => resolve('gone'); });
    this.inFlight.set(session.id, abort);
    try {
      // Any answer proves the connection alive, an error too: §4.1 lets a client without
      // ping support answer service-unavailable (or another error, RFC 6120 §8.2.3).
      const outcome = await Promise.race([this.d.request(iq, this.d.timeoutMs).then(() => 'alive' as const), gone]);
      if (outcome === 'alive' && this.d.isCurrent(session)) this.track(session);
    } catch (err) {
      if (!(err instanceof StanzaError && err.condition === 'remote-server-timeout')) throw err;
      if (!this.d.isCurrent(session)) return;
      this.d.log.info({ sid: session.id, timeoutMs: this.d.timeoutMs }, 'no answer to a server ping: closing the session');
      await session.close(new StreamError('connection-timeout', 'No answer to a ping (XEP-0199)'));
    } finally {
      if (this.inFlight.get(session.id) === abort) this.inFlight.delete(session.id);
    }
  }
}
