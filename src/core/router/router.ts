// The router: classify once, dispatch by structure (ARCHITECTURE §4).
// RFC 6120 §10 (server rules for processing XML stanzas) and RFC 6121 §8.
import { XmlElement } from '../../xml/index.ts';
import { Jid } from '../../jid/index.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import { errorReply, iqResult, type StanzaKind } from '../../xmpp/stanza.ts';
import type { Logger } from '../../observability/log.ts';
import type { Session } from '../sessions/session.ts';
import type { SessionRegistry } from '../sessions/registry.ts';
import { randomBase64url } from '../util/random.ts';
import { StorageFaultLog, StorageUnavailableError } from '../../storage/faults.ts';

/** At most one log line per this interval about stanzas bounced because storage is unavailable. */
export { STORAGE_FAULT_LOG_INTERVAL_MS } from '../../storage/faults.ts';

/** Where a stanza is addressed, relative to the hosts we serve. */
export type Addressing = 'host' | 'bare' | 'full' | 'remote';

/** A stanza with its addresses parsed once. Immutable. */
export interface RoutedStanza {
  readonly el: XmlElement;
  readonly kind: StanzaKind;
  readonly type: string;
  readonly from: Jid;
  /** The effective recipient; for stanzas without 'to' from a client, the sender's bare JID. */
  readonly to: Jid;
  readonly addressing: Addressing;
  /** The client session it came from, if any. */
  readonly session?: Session;
}

export interface IqContext {
  stanza: RoutedStanza;
  payload: XmlElement;
  /** The sending session when the request came from a local client. */
  session?: Session;
}
/** An IQ handler returns the result payload, or undefined for an empty result; or throws StanzaError. */
export type IqHandler = (ctx: IqContext) => XmlElement | undefined | Promise<XmlElement | undefined>;
/** Returns true when it consumed the stanza. */
export type StanzaHandler = (stanza: RoutedStanza) => boolean | Promise<boolean>;

/** 'host': addressed to the server; 'account': to a local account's bare JID (or no 'to'). */
export type IqTarget = 'host' | 'account';

interface HandlerEntry<H> { fn: H; priority: number }

class HostTable {
  readonly iq = new Map<string, IqHandler>();
  readonly message = new Map<Exclude<Addressing, 'remote'>, HandlerEntry<StanzaHandler>[]>();
  readonly presence = new Map<Exclude<Addressing, 'remote'>, HandlerEntry<StanzaHandler>[]>();
}

const iqKey = (type: string, target: IqTarget, ns: string, name: string) => `${type}\u0000${target}\u0000${ns}\u0000${name}`;

export interface RouterDeps {
  log: Logger;
  registry: SessionRegistry;
  isLocalHost(domain: string): boolean;
  /** limits.maxIqsInFlight: IQ requests a client session may have routed to full JIDs, unanswered. */
  maxIqsInFlight?: number;
}

/** A routed IQ request counts as in flight for at most this long without an answer. */
export const ROUTED_IQ_TIMEOUT_MS = 60_000;
const DEFAULT_MAX_IQS_IN_FLIGHT = 128;

/**
 * IQ requests one client session sent to full JIDs (other sessions) and that are not answered
 * yet. Only these need counting: a request the server handles itself is handled before the
 * next stanza of that session (the connection's serial queue), one at a time.
 */
interface InFlight {
  /** Key: the target's full JID and the request id. Ids may repeat, so a count per key. */
  readonly byKey: Map<string, { target: Session; jid: Jid; n: number; deadline: number }>;
  n: number;
  /** Refusing since the last accepted request (one log line per burst). */
  refusing: boolean;
  /** Last sweep (at most one a second: a client flooding at the limit must not make each request cost a scan). */
  sweptAt: number;
}

export class Router {
  private readonly hosts = new Map<string, HostTable>();
  /** IQs the server sent and awaits, keyed by id (ids are random, so unguessable by peers). */
  private readonly pending = new Map<string, { resolve: (el: XmlElement) => void; reject: (e: Error) => void; peer: string; timer: NodeJS.Timeout }>();
  /** Per client session: its IQ requests routed to other sessions (gone with the session). */
  private readonly inFlight = new WeakMap<Session, InFlight>();
  private readonly maxIqsInFlight: number;
  /** Stanzas bounced because storage is unavailable: one warning per interval. */
  private readonly faultLog: StorageFaultLog;

  constructor(private readonly deps: RouterDeps) {
    this.maxIqsInFlight = deps.maxIqsInFlight ?? DEFAULT_MAX_IQS_IN_FLIGHT;
    this.faultLog = new StorageFaultLog(deps.log, 'storage unavailable: stanzas answered with resource-constraint', 'bounced');
  }

  private table(host: string): HostTable {
    let t = this.hosts.get(host);
    if (!t) this.hosts.set(host, (t = new HostTable()));
    return t;
  }

  /** Register an IQ handler; returns a disposer. A second handler for the same key is a programming error. */
  registerIq(host: string, type: 'get' | 'set', target: IqTarget, ns: string, name: string, fn: IqHandler): () => void {
    const t = this.table(host);
    const key = iqKey(type, target, ns, name);
    if (t.iq.has(key)) throw new Error(`IQ handler already registered: ${type} ${target} {${ns}}${name} on ${host}`);
    t.iq.set(key, fn);
    return () => { if (t.iq.get(key) === fn) t.iq.delete(key); };
  }

  registerStanza(host: string, kind: 'message' | 'presence', addressing: Exclude<Addressing, 'remote'>, fn: StanzaHandler, priority = 0): () => void {
    const map = this.table(host)[kind];
    const entry = { fn, priority };
    // Copy on write: route() iterates the array it found without copying it per stanza, so a
    // handler added or removed meanwhile takes effect from the next stanza. The sort is stable.
    map.set(addressing, [...(map.get(addressing) ?? []), entry].sort((a, b) => b.priority - a.priority));
    return () => {
      const list = map.get(addressing);
      if (!list || !list.includes(entry)) return;
      if (list.length === 1) map.delete(addressing);
      else map.set(addressing, list.filter((e) => e !== entry));
    };
  }

  /**
   * A stanza from a bound client session. The transport has checked the element is a stanza
   * in jabber:client. RFC 6120 §8.1.2.1: the server stamps 'from' with the full JID.
   */
  async fromClient(session: Session, el: XmlElement): Promise<void> {
    const kind = el.name as StanzaKind;
    const from = session.jid;
    let to: Jid;
    const toAttr = el.attr('to');
    // An empty 'to' is not "no to": '' is not a JID (RFC 7622 §3.2 needs a domainpart).
    const hasTo = toAttr !== undefined;
    if (!hasTo) {
      to = from.bare; // RFC 6120 §10.3.3: no 'to' means the account itself
    } else {
      const parsed = Jid.tryParse(toAttr); // cached by Jid for recently seen addresses
      if (!parsed) {
        // RFC 6120 §8.3.3.8 jid-malformed
        return this.bounce(el.withAttrs({ from: from.toString(), to: undefined }), new StanzaError('jid-malformed'), session);
      }
      to = parsed;
    }
    const stamped = el.withAttrs({ from: from.toString(), to: hasTo ? to.toString() : undefined });
    if (kind === 'iq' && !validIq(stamped)) {
      return this.bounce(stamped, new StanzaError('bad-request', 'An IQ needs an id, a valid type and one payload for get/set'), session);
    }
    // route() returns a promise only when a handler did: no extra microtask otherwise.
    const pending = this.route(this.classify(stamped, kind, from, to, session));
    if (pending !== undefined) await pending;
  }

  /** Route a stanza generated by the server or a module (from and to must be set). */
  async send(el: XmlElement): Promise<void> {
    const from = Jid.parse(el.attr('from') ?? '');
    const to = Jid.parse(el.attr('to') ?? '');
    const pending = this.route(this.classify(el, el.name as StanzaKind, from, to, undefined));
    if (pending !== undefined) await pending;
  }

  /**
   * Send an IQ get/set from the server and await its result or error (RFC 6120 §8.2.3).
   * Resolves with the reply stanza (type result or error); rejects on timeout.
   */
  request(iq: XmlElement, timeoutMs = 30_000): Promise<XmlElement> {
    const id = iq.attr('id') ?? `amsel-${randomBase64url(9)}`;
    const el = iq.attr('id') ? iq : iq.withAttrs({ id });
    return new Promise<XmlElement>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new StanzaError('remote-server-timeout', 'No reply in time'));
      }, timeoutMs);
      timer.unref();
      this.pending.set(id, { resolve, reject, peer: el.attr('to') ?? '', timer });
      this.send(el).catch((err: unknown) => {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(err instanceof Error ? err : new Error(String(err)));
      });
    });
  }

  /** A result/error addressed to the server: settle a pending request if it matches. */
  private settle(s: RoutedStanza): void {
    const id = s.el.attr('id');
    const p = id === undefined ? undefined : this.pending.get(id);
    // Only the entity we asked may answer (RFC 6120 §8.2.3: the reply comes from the 'to' of the request).
    if (!p || !(p.peer === s.from.toString() || (p.peer === s.from.bare.toString() && s.from.resource === ''))) return;
    this.pending.delete(id!);
    clearTimeout(p.timer);
    p.resolve(s.el);
  }

  private classify(el: XmlElement, kind: StanzaKind, from: Jid, to: Jid, session: Session | undefined): RoutedStanza {
    let addressing: Addressing;
    if (!this.deps.isLocalHost(to.domain)) addressing = 'remote';
    else if (to.local === '') addressing = 'host';
    else addressing = to.resource === '' ? 'bare' : 'full';
    const type = el.attr('type') ?? (kind === 'message' ? 'normal' : kind === 'presence' ? 'available' : '');
    return { el, kind, type, from, to, addressing, session };
  }

  /** Synchronous unless a handler returns a promise; then the returned promise settles when done. */
  private route(s: RoutedStanza): Promise<void> | undefined {
    if (s.addressing === 'remote') {
      // Server-to-server federation is a later module; until then remote domains are unreachable.
      // RFC 6120 §8.3.3.13 remote-server-not-found.
      this.bounce(s.el, new StanzaError('remote-server-not-found'), s.session);
      return undefined;
    }
    if (s.kind === 'iq') return this.routeIq(s);
    const handlers = this.hosts.get(s.to.domain)?.[s.kind].get(s.addressing);
    if (handlers !== undefined) {
      // Never mutated (copy on write in registerStanza), so no per-stanza copy.
      for (let i = 0; i < handlers.length; i++) {
        let r: boolean | Promise<boolean>;
        try {
          r = handlers[i]!.fn(s);
        } catch (err) {
          this.handlerFailed(s, err);
          return undefined;
        }
        // A handler that answered synchronously is not awaited; anything else is, as before.
        if (typeof r !== 'boolean') return this.awaitHandlers(s, handlers, i, r);
        if (r) return undefined;
      }
    }
    this.defaultStanza(s);
    return undefined;
  }

  /** The rest of route() once handler `i` returned a promise (or a non-boolean). */
  private async awaitHandlers(s: RoutedStanza, handlers: readonly HandlerEntry<StanzaHandler>[], i: number, first: unknown): Promise<void> {
    try {
      if (await first) return;
      for (i++; i < handlers.length; i++) {
        if (await handlers[i]!.fn(s)) return;
      }
    } catch (err) {
      return this.handlerFailed(s, err);
    }
    this.defaultStanza(s);
  }

  private defaultStanza(s: RoutedStanza): void {
    if (s.kind === 'message') this.defaultMessage(s);
    else this.defaultPresence(s);
  }

  private routeIq(s: RoutedStanza): Promise<void> | undefined {
    const isRequest = s.type === 'get' || s.type === 'set';
    if (s.addressing === 'full') {
      const target = this.deps.registry.get(s.to);
      if (target) {
        if (s.session !== undefined) {
          if (isRequest) {
            if (!this.startInFlight(s.session, target, s)) return undefined;
          } else {
            this.endInFlight(target, s);
          }
        }
        target.send(s.el);
      }
      // RFC 6121 §8.5.3.2.1: no such resource
      else if (isRequest) this.bounce(s.el, new StanzaError('service-unavailable'), s.session);
      return undefined;
    }
    if (!isRequest) {
      // Results and errors to the server settle its pending requests; to a bare JID they end here.
      // A client may answer the server's request without 'to' (RFC 6120 §10.3.3: handled by the
      // server on the account's behalf): that settles too; settle() still checks the sender.
      if (s.addressing === 'host' || (s.session && s.el.attr('to') === undefined)) this.settle(s);
      return undefined;
    }
    const payload = s.el.firstElement();
    // fromClient validated this already; stanzas from send() (modules) are not: RFC 6120 §8.2.3,
    // a get/set carries exactly one payload.
    if (!payload) {
      this.bounce(s.el, new StanzaError('bad-request'), s.session);
      return undefined;
    }
    const target: IqTarget = s.addressing === 'host' ? 'host' : 'account';
    const handler = this.hosts.get(s.to.domain)?.iq.get(iqKey(s.type, target, payload.ns, payload.name));
    if (!handler) {
      // RFC 6120 §8.4: unknown payload → service-unavailable (same answer whether or not the account exists)
      this.bounce(s.el, new StanzaError('service-unavailable'), s.session);
      return undefined;
    }
    let r: XmlElement | undefined | Promise<XmlElement | undefined>;
    try {
      r = handler({ stanza: s, payload, session: s.session });
    } catch (err) {
      this.handlerFailed(s, err);
      return undefined;
    }
    // A synchronous answer is replied to at once; anything else is awaited, as before.
    if (r !== undefined && !(r instanceof XmlElement)) return this.awaitIq(s, r);
    this.replyIq(s, r);
    return undefined;
  }

  /**
   * Count an IQ request from a client session to another session; false (and the request is
   * answered with <resource-constraint/>, type wait) when the session has too many unanswered.
   */
  private startInFlight(from: Session, target: Session, s: RoutedStanza): boolean {
    let f = this.inFlight.get(from);
    if (f === undefined) this.inFlight.set(from, (f = { byKey: new Map(), n: 0, refusing: false, sweptAt: 0 }));
    const now = Date.now();
    if (f.n >= this.maxIqsInFlight && now - f.sweptAt >= 1000) this.sweepInFlight(f, now);
    if (f.n >= this.maxIqsInFlight) {
      if (!f.refusing) {
        f.refusing = true;
        this.deps.log.warn({ sid: from.id, limit: this.maxIqsInFlight }, 'IQs in flight limit reached: refusing requests');
      }
      this.bounce(s.el, new StanzaError('resource-constraint', 'Too many IQ requests awaiting an answer'), from);
      return false;
    }
    f.refusing = false;
    // The stamped 'to' is the target's normalised full JID: the answer's stamped 'from'.
    const key = `${s.el.attr('to')}\u0000${s.el.attr('id')}`;
    const e = f.byKey.get(key);
    if (e !== undefined && e.target === target) {
      e.n++;
      e.deadline = now + ROUTED_IQ_TIMEOUT_MS;
    } else {
      if (e !== undefined) f.n -= e.n; // the old target session is gone: its requests with it
      f.byKey.set(key, { target, jid: s.to, n: 1, deadline: now + ROUTED_IQ_TIMEOUT_MS });
    }
    f.n++;
    return true;
  }

  /** An answer (result or error) from a session to `requester`: one request less in flight. */
  private endInFlight(requester: Session, s: RoutedStanza): void {
    const f = this.inFlight.get(requester);
    if (f === undefined || f.n === 0) return;
    const key = `${s.el.attr('from')}\u0000${s.el.attr('id')}`;
    const e = f.byKey.get(key);
    if (e === undefined) return;
    f.n--;
    if (--e.n === 0) f.byKey.delete(key);
  }

  /** Forget requests past their time and those to sessions that have ended (only when at the limit). */
  private sweepInFlight(f: InFlight, now: number): void {
    f.sweptAt = now;
    for (const [key, e] of f.byKey) {
      if (e.deadline <= now || this.deps.registry.get(e.jid) !== e.target) {
        f.n -= e.n;
        f.byKey.delete(key);
      }
    }
  }

  private async awaitIq(s: RoutedStanza, pending: PromiseLike<XmlElement | undefined>): Promise<void> {
    let result: XmlElement | undefined;
    try {
      result = await pending;
    } catch (err) {
      return this.handlerFailed(s, err);
    }
    this.replyIq(s, result);
  }

  private replyIq(s: RoutedStanza, result: XmlElement | undefined): void {
    // From the prepared 'to' (for no 'to': the account): the stanza itself need not be copied.
    this.deliverReply(s, iqResult(s.el, result, s.to.toString()));
  }

  private defaultMessage(s: RoutedStanza): void {
    if (s.addressing === 'host') {
      if (s.type !== 'error') this.bounce(s.el, new StanzaError('service-unavailable'), s.session);
      return;
    }
    if (s.addressing === 'full') {
      const target = this.deps.registry.get(s.to);
      if (target) return target.send(s.el);
      // RFC 6121 §8.5.3.2.1: groupchat → error; headline → ignore; normal/chat → treat as bare
      if (s.type === 'groupchat') return this.bounce(s.el, new StanzaError('service-unavailable'), s.session);
      if (s.type === 'headline' || s.type === 'error') return;
    }
    // Bare JID, RFC 6121 §8.5.2.1.1: deliver to the available resources with the highest
    // non-negative priority (the presence module maintains availability).
    // RFC 6121 §8.5.2.1.1 and §8.5.2.2.1: a message of type "error" to a bare JID is silently
    // ignored, whether or not resources are available (never fanned out to the resources).
    if (s.type === 'error') return;
    if (s.type !== 'groupchat') { // groupchat to a bare JID is never delivered
      // One pass for the top priority, one to send: no filtered or mapped copies.
      const sessions = this.deps.registry.resources(s.to);
      let top = -1;
      for (let i = 0; i < sessions.length; i++) {
        const x = sessions[i]!;
        if (x.available && x.priority >= 0 && x.priority > top) top = x.priority;
      }
      if (top >= 0) {
        const onlyTop = s.type === 'chat' || s.type === 'normal';
        for (let i = 0; i < sessions.length; i++) {
          const x = sessions[i]!;
          if (x.available && x.priority >= 0 && (!onlyTop || x.priority === top)) x.send(s.el);
        }
        return;
      }
    }
    if (s.type === 'headline') return;
    // No available resource and no module (offline storage) took it: bounce, never drop silently.
    this.bounce(s.el, new StanzaError('service-unavailable'), s.session);
  }

  private defaultPresence(s: RoutedStanza): void {
    // Directed presence to a full JID is delivered as is; everything else needs the presence module.
    if (s.addressing === 'full') this.deps.registry.get(s.to)?.send(s.el);
  }

  private handlerFailed(s: RoutedStanza, err: unknown): void {
    // A presence a module refuses from our own client (bad priority, unknown type) is answered
    // to that session (RFC 6120 §8.3.1); routed presence errors otherwise stay quiet (bounce()).
    if (err instanceof StanzaError && s.kind === 'presence' && s.session && s.type !== 'error') {
      return this.deliverReply(s, errorReply(s.el, err));
    }
    if (err instanceof StanzaError) return this.bounce(s.el, err, s.session);
    if (err instanceof StorageUnavailableError) {
      // Disk full, database unreachable: nothing was stored, so the sender is told to retry later
      // (RFC 6120 §8.3.3.18: lacks the system resources; type wait), never left in silence.
      this.faultLog.note(err);
      return this.bounce(s.el, new StanzaError('resource-constraint', 'Storage is temporarily unavailable; try again later'), s.session);
    }
    this.deps.log.error({ err, kind: s.kind, sid: s.session?.id }, 'stanza handler failed');
    this.bounce(s.el, new StanzaError('internal-server-error'), s.session);
  }

  /** Answer a stanza with an error, unless it is an error itself (never bounce errors: no loops). */
  bounce(el: XmlElement, err: StanzaError, session?: Session): void {
    if (el.attr('type') === 'error') return;
    // RFC 6120 §8.2.3: an entity receiving an IQ response (result or error)
    // MUST NOT answer it with a further response (result or error); an undeliverable result is
    // dropped, like the full-JID case in routeIq.
    if (el.name === 'iq' && el.attr('type') === 'result') return;
    if (el.name === 'presence' && el.attr('type') !== 'subscribe') return; // RFC 6121: presence errors are mostly ignored
    this.deliverReply({ session } as RoutedStanza, errorReply(el, err));
  }

  private deliverReply(s: Pick<RoutedStanza, 'session'>, reply: XmlElement): void {
    const to = reply.attr('to');
    if (s.session && to === s.session.jid.toString()) return s.session.send(reply);
    if (!to) return;
    const jid = Jid.tryParse(to);
    if (!jid) return;
    if (jid.local === '' && jid.resource === '' && this.deps.isLocalHost(jid.domain)) {
      // The answer (result or error) to an IQ the server itself sent with request() and that
      // was answered here (a handler on a bare JID, or an error bounce): settle it.
      const from = Jid.tryParse(reply.attr('from') ?? '');
      if (from && reply.name === 'iq') this.settle({ el: reply, from } as RoutedStanza);
      return;
    }
    this.deps.registry.get(jid)?.send(reply);
  }
}

/** RFC 6120 §8.2.3: an id, a known type, and exactly one payload for get/set (counted without copying). */
function validIq(el: XmlElement): boolean {
  const type = el.attr('type');
  if (!el.attr('id')) return false;
  if (type === 'get' || type === 'set') {
    let n = 0;
    const children = el.children;
    for (let i = 0; i < children.length; i++) if (typeof children[i] !== 'string' && ++n > 1) return false;
    return n === 1;
  }
  return type === 'result' || type === 'error';
}
