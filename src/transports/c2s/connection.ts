// One client-to-server connection: the stream negotiator and, once bound, the session.
// RFC 6120 §4 (streams), §5 (STARTTLS), §6 (SASL), §7 (resource binding);
// XEP-0368 (Direct TLS), XEP-0440 (SASL channel-binding type capability).
import type net from 'node:net';
import tls from 'node:tls';
import { createHash } from 'node:crypto';
import { XmlStreamParser, serialize, escapeAttr, x, type XmlElement, type StreamParserHandlers } from '../../xml/index.ts';
import { Jid, JidError, prepDomain, prepLocalpart, prepResource } from '../../jid/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { StreamError, StanzaError } from '../../xmpp/errors.ts';
import { errorReply, iqResult, isStanzaKind } from '../../xmpp/stanza.ts';
import { availableMechanisms, createMechanism, type ChannelBindingType, type SaslMechanism } from '../../core/auth/mechanisms.ts';
import type { Session } from '../../core/sessions/session.ts';
import { upgradeCredentials } from '../../core/accounts.ts';
import type { C2sServices } from './services.ts';
import { StorageFaultLog, StorageUnavailableError } from '../../storage/faults.ts';
import { randomBase64url, randomHex } from '../../core/util/random.ts';
import { ReadShaper } from './shaper.ts';

type State = 'need-tls' | 'tls-handshake' | 'need-auth' | 'need-bind' | 'bound' | 'closing' | 'closed';

const MAX_SASL_FAILURES_PER_CONNECTION = 5;
/** jabber:iq:register IQs answered before authentication; more end the stream. */
const MAX_PREAUTH_REGISTER_IQS = 5;
const NS_REGISTER = 'jabber:iq:register';
const CLOSE_GRACE_MS = 2000;
const QUEUE_PAUSE = 64;
const QUEUE_RESUME = 8;
// Output backpressure. Above limits.outputPauseBytes not yet taken by the peer, the connection
// handles no more of its input until the socket drains (the input queue then fills and reading
// pauses: a client that sends requests without reading the replies stops itself). Above
// limits.maxOutputBytes (a peer that does not read what others send it) the session is closed.

let nextId = 0;

/** Storage faults seen while logging in or binding, on every connection: one warning per interval. */
let storageFaultLog: StorageFaultLog | undefined;
function logStorageFault(log: C2sServices['log'], err: StorageUnavailableError): void {
  (storageFaultLog ??= new StorageFaultLog(log, 'storage unavailable: logins and bindings refused', 'connections')).note(err);
}

/**
 * Most bytes handed to a TLS socket in one write (see C2sConnection.write): the first write
 * after the handshake shares Node's 1 KiB output buffer with the TLS 1.3 session tickets, later
 * ones have it to themselves (less the record overhead). Measured on Node 20.
 */
export const FIRST_RECORD_BYTES = 400;
export const RECORD_BYTES = 960;

/** UTF-8 length, without a scan when the string cannot exceed `limit` anyway. */
function utf8Length(s: string, limit: number): number {
  return s.length * 3 <= limit ? s.length : Buffer.byteLength(s);
}

/** Split s into pieces of at most max UTF-16 units, never between the halves of a surrogate pair. */
export function recordPieces(s: string, max: number): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < s.length) {
    let end = Math.min(i + max, s.length);
    const last = s.charCodeAt(end - 1);
    if (end < s.length && last >= 0xd800 && last <= 0xdbff) end--; // keep the pair together
    out.push(s.slice(i, end));
    i = end;
  }
  return out;
}

interface SaslOffer {
  readonly bindingTypes: ChannelBindingType[];
  readonly mechanisms: string[];
  /** Channel-binding data by type, filled on demand. */
  data: Map<ChannelBindingType, Buffer> | undefined;
}

export class C2sConnection implements Session {
  readonly id: string;
  readonly kind = 'c2s' as const;
  readonly marks = new Set<string>();
  readonly ip: string;
  available = false;
  /** Set by the listener: called once the session is bound (no longer counted as unauthenticated). */
  onBound: (() => void) | undefined;
  priority = 0;

  private socket: net.Socket;
  private tlsSocket: tls.TLSSocket | undefined;
  private parser!: XmlStreamParser;
  private state: State;
  private headerSent = false;
  host = '';
  private lang = 'en';
  private user = '';
  private boundJid: Jid | undefined;
  private mech: SaslMechanism | undefined;
  private saslFailures = 0;
  private registerRefusals = 0;
  private offerCache: SaslOffer | undefined;
  private readonly queue: XmlElement[] = [];
  private draining = false;
  /** Reading paused because the queue is full (see enqueue). */
  private paused = false;
  /** Byte-rate shaping (limits.bytesPerSecond); undefined when off for the current state. */
  private shaper: ReadShaper | undefined;
  /** Set while reading is paused by the shaper: then parses `held` and resumes reading. */
  private shapeTimer: NodeJS.Timeout | undefined;
  /** What was read beyond the rate, parsed when the shaper's pause ends. */
  private held: Buffer | undefined;
  private shaped = false;
  private negotiationTimer: NodeJS.Timeout | undefined;
  private closeTimer: NodeJS.Timeout | undefined;
  private readonly closed: Promise<void>;
  private resolveClosed!: () => void;
  private closeReason = 'connection closed';
  /** Child logger, made on first use: most connections never log anything at the usual levels. */
  private childLog: C2sServices['log'] | undefined;
  /** Debug / info logging on (checked once: the child logger and the arguments are not free). */
  private readonly debug: boolean;
  private readonly info: boolean;
  private readonly onData = (chunk: Buffer) => {
    if (this.shaper !== undefined) {
      const wait = this.shaper.take(chunk.length, performance.now());
      if (wait > 0 || this.held !== undefined) return this.hold(chunk, wait);
    }
    this.parser.write(chunk);
  };
  private readonly shapeResume = () => {
    this.shapeTimer = undefined;
    const held = this.held;
    this.held = undefined;
    if (this.isEnding()) return;
    if (held !== undefined) this.parser.write(held);
    if (!this.paused && this.shapeTimer === undefined && !this.isEnding()) this.socket.resume();
  };
  /** Parser callbacks, shared by the connection's successive parsers (restarts after TLS and SASL). */
  private readonly handlers: StreamParserHandlers = {
    streamStart: (h) => this.onStreamStart(h),
    stanza: (el) => this.enqueue(el),
    streamEnd: () => this.onStreamEnd(),
    error: (err) => { void this.close(err); },
  };
  /** Output written in this tick, sent as one socket write (one TLS record) when the tick ends. */
  private out = '';
  private outBytes = 0;
  /** FIRST_RECORD_BYTES until the first write on TLS, RECORD_BYTES after it. */
  private recordBytes = FIRST_RECORD_BYTES;
  private flushScheduled = false;
  private readonly flushOut = () => this.flush();

  /** `refusal`: a connection over a limit (see C2sListeners.accept), closed at once with this error. */
  constructor(private readonly svc: C2sServices, raw: net.Socket, directTls: boolean, refusal?: StreamError) {
    this.id = `c2s${(++nextId).toString(36)}${randomHex(3)}`;
    this.ip = raw.remoteAddress ?? '?';
    this.debug = svc.log.isLevelEnabled('debug');
    this.info = svc.log.isLevelEnabled('info');
    this.socket = raw;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    raw.setNoDelay(true);
    if (directTls) {
      this.tlsSocket = raw as tls.TLSSocket;
      this.state = 'need-auth';
    } else {
      this.state = 'need-tls';
    }
    this.newParser();
    raw.on('data', this.onData);
    raw.on('error', (err: NodeJS.ErrnoException) => {
      this.closeReason = `socket error: ${err.code ?? err.message}`;
      if (this.debug) this.log.debug({ err: err.code ?? err.message }, 'socket error');
    });
    raw.on('close', () => this.onClose());
    if (refusal) {
      // Before the peer's header (RFC 6120 §4.9.1.1 allows the error right after our header):
      // waiting for it would let a flood of silent connections hold sockets for authTimeoutMs.
      // The listener logs refusals, rate-limited: no log line per connection of a flood.
      void this.close(refusal, true);
      return;
    }
    const l = svc.config.limits;
    if (l.unauthenticatedBytesPerSecond > 0) this.shaper = new ReadShaper(l.unauthenticatedBytesPerSecond, l.unauthenticatedBurstBytes, performance.now());
    // Everything up to resource binding must finish within the authentication timeout.
    this.negotiationTimer = setTimeout(() => {
      if (this.state !== 'bound') void this.close(new StreamError('connection-timeout', 'Authentication took too long'));
    }, svc.config.limits.authTimeoutMs);
    this.negotiationTimer.unref();
    if (this.debug) this.log.debug({ ip: this.ip, directTls }, 'c2s connection opened');
  }

  private get log(): C2sServices['log'] {
    return (this.childLog ??= this.svc.log.child({ sid: this.id }));
  }

  // --- Session -------------------------------------------------------------------------

  get jid(): Jid {
    if (!this.boundJid) throw new Error('session not bound');
    return this.boundJid;
  }

  get username(): string { return this.user; }
  get secure(): boolean { return this.tlsSocket !== undefined && this.state !== 'tls-handshake'; }
  get isBound(): boolean { return this.state === 'bound'; }

  send(el: XmlElement): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    if (this.socket.writableLength > this.svc.config.limits.maxOutputBytes) {
      // The peer has not read limits.maxOutputBytes: it is gone or hostile. Stanzas still unread are lost with
      // the connection, as when it drops (a later stream management resumption could keep them).
      this.log.warn({ unsent: this.socket.writableLength }, 'peer does not read its stream: closing the session');
      void this.close(new StreamError('resource-constraint', 'You are not reading your stream'));
      return;
    }
    this.write(serialize(el, NS.CLIENT));
  }

  /** Resolves when the socket's unsent output has drained (or the socket is gone). */
  private drained(): Promise<void> {
    return new Promise((resolve) => {
      const done = () => { this.socket.off('drain', done); this.socket.off('close', done); resolve(); };
      this.socket.on('drain', done);
      this.socket.on('close', done);
    });
  }

  /** `quiet`: no log line (the caller logs, e.g. refusals during a connection flood). */
  close(error?: StreamError, quiet = false): Promise<void> {
    if (this.state === 'closed') return this.closed;
    if (this.state !== 'closing') {
      if (error) {
        this.closeReason = `stream error: ${error.condition}`;
        if (!quiet) this.log.info({ condition: error.condition, text: error.text }, 'closing stream with error');
      }
      if (!this.headerSent) this.sendHeader(this.host || this.svc.config.hosts[0]!);
      let out = '';
      if (error) {
        out += `<stream:error><${error.condition} xmlns='${NS.STREAMS}'/>`;
        if (error.text) out += `<text xmlns='${NS.STREAMS}' xml:lang='en'>${escapeAttr(error.text)}</text>`;
        out += '</stream:error>';
      }
      out += '</stream:stream>';
      this.write(out);
      this.flush();
      this.state = 'closing';
      this.parser.end();
      this.socket.end();
      // RFC 6120 §4.4: wait a little for the peer's closing tag, then tear down.
      this.closeTimer = setTimeout(() => this.socket.destroy(), CLOSE_GRACE_MS);
      this.closeTimer.unref();
    }
    return this.closed;
  }

  // --- plumbing ------------------------------------------------------------------------

  private isEnding(): boolean {
    return this.state === 'closing' || this.state === 'closed';
  }

  /**
   * Over the byte rate: keep the chunk and stop reading for `ms`, then parse it (one timer per
   * pause, none on the usual path). Holding the chunk, rather than parsing it and pausing after,
   * means no byte is processed before the rate allows it.
   */
  private hold(chunk: Buffer, ms: number): void {
    if (this.isEnding()) return;
    if (this.held === undefined) {
      this.held = chunk;
      this.socket.pause();
    } else {
      // Already paused (a chunk the stream had in hand): keep the order, wait for both.
      this.held = Buffer.concat([this.held, chunk]);
      if (ms === 0) return;
    }
    clearTimeout(this.shapeTimer);
    this.shapeTimer = setTimeout(this.shapeResume, ms);
    if (!this.shaped) {
      // Once per connection: a client that keeps sending fast is slowed, not reported per pause.
      this.shaped = true;
      this.log.info({ ip: this.ip, bound: this.state === 'bound', pauseMs: ms }, 'reading slowed: client over its byte rate');
    }
  }

  /**
   * Queue output for this tick. A login step answers with several pieces (stream header and
   * features, a result and a presence): one write makes one TLS record and one syscall instead
   * of one each. Flushed at the end of the tick, or at once before the socket changes hands.
   *
   * Writes stay under RECORD_BYTES: Node's TLS socket buffers encrypted output in a 1 KiB buffer
   * and, the first time a record does not fit, adds a 16 KiB one that it keeps for the life of
   * the connection (measured: +15 KiB RSS per connection after one 450-byte first write).
   * Records that fit are written out at once, so the small buffer is enough for as long as the
   * peer reads; a large stanza costs a few more records instead of 16 KiB for good.
   */
  private write(s: string): void {
    if (this.socket.destroyed || !this.socket.writable) return;
    const limit = this.recordBytes;
    const n = utf8Length(s, limit);
    if (this.outBytes + n > limit) {
      this.flush();
      if (n > limit) {
        // Pieces by characters: at most `limit` bytes even if every character takes three.
        const chars = n === s.length ? limit : Math.floor(limit / 3);
        for (const piece of recordPieces(s, chars)) this.socket.write(piece);
        if (this.tlsSocket) this.recordBytes = RECORD_BYTES;
        return;
      }
    }
    this.out += s;
    this.outBytes += n;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      process.nextTick(this.flushOut);
    }
  }

  private flush(): void {
    this.flushScheduled = false;
    const s = this.out;
    if (s === '') return;
    this.out = '';
    this.outBytes = 0;
    if (this.socket.destroyed || !this.socket.writable) return;
    this.socket.write(s);
    if (this.tlsSocket) this.recordBytes = RECORD_BYTES;
  }

  private newParser(): void {
    const l = this.svc.config.limits;
    this.parser = new XmlStreamParser(
      this.handlers,
      { maxStanzaBytes: l.maxStanzaBytes, maxDepth: l.maxDepth, maxAttributes: l.maxAttributes, maxHeaderBytes: l.maxHeaderBytes },
    );
  }

  private onClose(): void {
    if (this.state === 'closed') return;
    // A session is bound once it has a JID, even if it was closing when the socket went away.
    const wasBound = this.boundJid !== undefined;
    this.state = 'closed';
    clearTimeout(this.negotiationTimer);
    clearTimeout(this.closeTimer);
    clearTimeout(this.shapeTimer);
    this.shapeTimer = undefined;
    this.held = undefined;
    this.queue.length = 0;
    if (this.debug) this.log.debug({ reason: this.closeReason }, 'c2s connection closed');
    // close() resolves once the 'session:closed' handlers have run too (they never reject).
    this.svc.connectionClosed(this, wasBound, this.closeReason).then(this.resolveClosed, this.resolveClosed);
  }

  private sendHeader(from: string, to?: string): void {
    // RFC 6120 §4.7: our response header; a fresh id for every stream (also after restarts).
    let h = `<?xml version='1.0'?><stream:stream xmlns='${NS.CLIENT}' xmlns:stream='${NS.STREAM}' id='${randomBase64url(12)}' from='${escapeAttr(from)}'`;
    if (to) h += ` to='${escapeAttr(to)}'`;
    h += ` version='1.0' xml:lang='${escapeAttr(this.lang)}'>`;
    this.write(h);
    this.headerSent = true;
  }

  private onStreamStart(h: { ns: string; defaultNs: string; attrs: Record<string, string> }): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    let host = '';
    try {
      host = h.attrs.to ? prepDomain(h.attrs.to) : '';
    } catch {
      host = '';
    }
    if (h.attrs['xml:lang']) this.lang = h.attrs['xml:lang'].slice(0, 35);
    const known = host !== '' && this.svc.isLocalHost(host);
    // After a restart the stream must stay with the same host (RFC 6120 §4.3.3).
    const sameHost = this.host === '' || this.host === host;
    const replyFrom = known ? host : this.host || this.svc.config.hosts[0]!;
    this.host = this.host || replyFrom;
    let clientFrom: string | undefined;
    if (h.attrs.from) { const j = Jid.tryParse(h.attrs.from); if (j) clientFrom = j.toString(); }
    this.sendHeader(replyFrom, clientFrom);
    if (h.defaultNs !== NS.CLIENT) return void this.close(new StreamError('invalid-namespace', 'This port serves jabber:client streams'));
    if (!known || !sameHost) return void this.close(new StreamError('host-unknown', 'This server does not serve that domain'));
    const version = h.attrs.version ?? '';
    if (!/^1\.\d+$/.test(version)) return void this.close(new StreamError('unsupported-version', 'XMPP 1.0 streams only'));
    this.writeFeatures();
  }

  /** <stream:features/> in the stream namespace's prefix; children declare their own namespaces. */
  private writeFeatures(): void {
    let out = '<stream:features>';
    for (const f of this.features()) out += serialize(f, NS.CLIENT);
    this.write(out + '</stream:features>');
  }

  private features(): XmlElement[] {
    const children: XmlElement[] = [];
    if (this.state === 'need-tls') {
      // Only STARTTLS, and it is required (RFC 6120 §5.3.1).
      children.push(x('starttls', { xmlns: NS.TLS }, x('required')));
    } else if (this.state === 'need-auth') {
      const { mechanisms: mechs, bindingTypes: cb } = this.saslOffer();
      children.push(x('mechanisms', { xmlns: NS.SASL }, mechs.map((m) => x('mechanism', null, m))));
      if (cb.length) children.push(x('sasl-channel-binding', { xmlns: NS.SASL_CB }, cb.map((t) => x('channel-binding', { type: t }))));
    } else if (this.state === 'need-bind') {
      children.push(x('bind', { xmlns: NS.BIND }));
      if (this.svc.config.sessions.legacySession) children.push(x('session', { xmlns: NS.SESSION }, x('optional')));
      for (const f of this.svc.streamFeatures(this)) children.push(f);
    }
    return children;
  }

  private onStreamEnd(): void {
    this.closeReason = 'closed by client';
    void this.close();
  }

  // Serial processing per connection: stanzas are handled in order, one at a time
  // (SASL delays and storage awaits must not reorder them); reading pauses when the queue fills.
  private enqueue(el: XmlElement): void {
    if (this.state === 'closing' || this.state === 'closed') return;
    this.queue.push(el);
    if (this.queue.length >= QUEUE_PAUSE && !this.paused) {
      this.paused = true;
      this.socket.pause();
    }
    if (!this.draining) void this.drain();
  }

  private async drain(): Promise<void> {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const el = this.queue.shift()!;
        if (this.paused && this.queue.length <= QUEUE_RESUME) {
          this.paused = false;
          if (this.shapeTimer === undefined) this.socket.resume();
        }
        // Pending output over the high-water mark: let the peer read first (backpressure).
        if (this.socket.writableLength > this.svc.config.limits.outputPauseBytes) {
          await this.drained();
          if (this.state === 'closing' || this.state === 'closed') return;
        }
        try {
          await this.handle(el);
        } catch (err) {
          if (err instanceof StreamError) {
            await this.close(err);
            return;
          }
          if (err instanceof StorageUnavailableError) {
            // The database is down or the disk full (e.g. while binding): a temporary condition
            // of ours, not a bug; the client may reconnect later.
            logStorageFault(this.svc.log, err);
            await this.close(new StreamError('resource-constraint', 'Storage is unavailable; try again later'));
            return;
          }
          this.log.error({ err, stanza: el.name }, 'internal error while handling a stanza');
          await this.close(new StreamError('internal-server-error'));
          return;
        }
        if (this.state === 'closing' || this.state === 'closed') return;
      }
    } finally {
      this.draining = false;
    }
  }

  private async handle(el: XmlElement): Promise<void> {
    switch (this.state) {
      case 'need-tls':
        if (el.name === 'starttls' && el.ns === NS.TLS) return this.startTls();
        // RFC 6120 §5.3.1: nothing but STARTTLS before TLS when TLS is required.
        throw new StreamError('policy-violation', 'Use STARTTLS first: encryption is required');
      case 'need-auth':
        if (el.ns === NS.SASL) return this.sasl(el);
        if (el.name === 'starttls' && el.ns === NS.TLS) throw new StreamError('policy-violation', 'TLS is already in place');
        if (isRegisterRequest(el)) return this.refuseRegistration(el);
        throw new StreamError('not-authorized', 'Authenticate first');
      case 'need-bind':
        if (el.name === 'iq' && el.ns === NS.CLIENT) return this.preBindIq(el);
        throw new StreamError('not-authorized', 'Bind a resource first');
      case 'bound':
        if (!isStanzaKind(el.name) || el.ns !== NS.CLIENT) {
          throw new StreamError('unsupported-stanza-type', `<${el.name}/> in ${el.ns || 'no namespace'} is not a jabber:client stanza`);
        }
        return this.svc.router.fromClient(this, el);
      default:
        return;
    }
  }

  // --- STARTTLS (RFC 6120 §5.4) --------------------------------------------------------

  private startTls(): void {
    this.write(`<proceed xmlns='${NS.TLS}'/>`);
    this.flush();
    this.state = 'tls-handshake';
    const raw = this.socket;
    raw.removeListener('data', this.onData);
    this.parser.end();
    // The TLS socket reads through the raw one: it must not stay paused. Plain text held back
    // by the shaper came after <starttls/> (a client must wait for <proceed/>), so it is not
    // part of any stream; a deficit in the bucket remains and slows the TLS socket.
    if (this.shapeTimer !== undefined) {
      clearTimeout(this.shapeTimer);
      this.shapeTimer = undefined;
      this.held = undefined;
      if (!this.paused) raw.resume();
    }
    // The stream header named the domain: serve its certificate even to clients without SNI.
    const opts = this.svc.tls.tlsSocketOptions();
    const secure = new tls.TLSSocket(raw, { ...opts, secureContext: this.svc.tls.contextFor(this.host) ?? opts.secureContext });
    const timer = setTimeout(() => {
      this.closeReason = 'TLS handshake timeout';
      secure.destroy();
    }, this.svc.config.limits.tlsHandshakeTimeoutMs);
    timer.unref();
    secure.once('secure', () => {
      clearTimeout(timer);
      this.state = 'need-auth';
      this.headerSent = false;
      if (this.debug) this.log.debug({ protocol: secure.getProtocol(), cipher: secure.getCipher().name }, 'TLS established');
    });
    secure.on('error', (err: NodeJS.ErrnoException) => {
      this.closeReason = `TLS error: ${err.code ?? err.message}`;
      if (this.debug) this.log.debug({ err: err.code ?? err.message }, 'TLS error');
    });
    secure.on('close', () => raw.destroy());
    this.tlsSocket = secure;
    this.socket = secure;
    this.newParser();
    secure.on('data', this.onData);
  }

  // --- SASL (RFC 6120 §6) --------------------------------------------------------------

  /**
   * What SASL offers on this connection, computed once after TLS is up (the TLS session and so
   * the channel-binding data never change afterwards): the channel-binding types and mechanisms.
   * The binding data itself is only computed if a -PLUS mechanism asks for it: most clients
   * never do, and the certificate hash would otherwise cost a certificate parse per login.
   */
  private saslOffer(): SaslOffer {
    if (this.offerCache) return this.offerCache;
    const bindingTypes: ChannelBindingType[] = [];
    const s = this.tlsSocket;
    if (s && this.secure) {
      for (const t of this.svc.config.auth.channelBindings) {
        // RFC 9266: tls-exporter only with TLS 1.3 (TLS 1.2 exporters are unsafe without
        // extended master secret). tls-server-end-point needs our certificate, always present.
        if (t === 'tls-exporter' && s.getProtocol() === 'TLSv1.3') bindingTypes.push(t);
        else if (t === 'tls-server-end-point') bindingTypes.push(t);
      }
    }
    const mechanisms = availableMechanisms({
      tls: this.secure,
      channelBindingAvailable: bindingTypes.length > 0,
      allowPlain: this.svc.config.auth.allowPlain,
      enabled: this.svc.config.auth.mechanisms,
    });
    const offer: SaslOffer = { bindingTypes, mechanisms, data: undefined };
    // Only cache once TLS is in place (nothing is offered before it anyway).
    if (this.secure) this.offerCache = offer;
    return offer;
  }

  /** Channel-binding data of an offered type, computed on first use and kept for the connection. */
  private bindingData(offer: SaslOffer, t: ChannelBindingType): Buffer | undefined {
    const s = this.tlsSocket;
    if (!s || !offer.bindingTypes.includes(t)) return undefined;
    offer.data ??= new Map();
    let d = offer.data.get(t);
    if (d === undefined) {
      if (t === 'tls-exporter') {
        // TLS 1.3 treats an absent and an empty context alike (RFC 8446 §7.5).
        d = s.exportKeyingMaterial(32, 'EXPORTER-Channel-Binding', Buffer.alloc(0));
      } else {
        // RFC 5929 §4.1: hash of our certificate with its signature hash (SHA-256 for MD5/SHA-1).
        const cert = s.getCertificate() as { raw?: Buffer } | null;
        if (!cert?.raw) return undefined;
        d = certificateHash(cert.raw);
      }
      offer.data.set(t, d);
    }
    return d;
  }

  private async sasl(el: XmlElement): Promise<void> {
    if (el.name === 'auth') {
      const name = el.attr('mechanism') ?? '';
      if (this.svc.throttle.isRefused(this.ip)) {
        return this.saslFail('temporary-auth-failure', 'Too many failed attempts; try again later');
      }
      const offer = this.saslOffer();
      if (!offer.mechanisms.includes(name)) return this.saslFail('invalid-mechanism');
      // Cached (a query only for the first login of a host after start).
      const census = await this.svc.iterationCensus.get(this.host);
      this.mech = createMechanism(name, {
        lookup: (username) => this.lookup(username),
        channelBinding: (t) => this.bindingData(offer, t),
        offeredBindings: offer.bindingTypes,
        plusAdvertised: offer.mechanisms.some((m) => m.endsWith('-PLUS')),
        tls: this.secure,
        fakeSaltSecret: this.svc.fakeSaltSecret,
        iterations: this.svc.config.auth.scramIterations,
        census,
      }) ?? undefined;
      if (!this.mech) return this.saslFail('invalid-mechanism');
      const text = el.text().trim();
      const data = text === '' ? null : text === '=' ? Buffer.alloc(0) : decodeBase64(text);
      if (data === undefined) return this.saslFail('incorrect-encoding');
      return this.saslStep(data);
    }
    if (el.name === 'response') {
      if (!this.mech) return this.saslFail('malformed-request', 'No authentication in progress');
      const text = el.text().trim();
      const data = text === '' || text === '=' ? Buffer.alloc(0) : decodeBase64(text);
      if (data === undefined) return this.saslFail('incorrect-encoding');
      return this.saslStep(data);
    }
    if (el.name === 'abort') {
      this.mech = undefined;
      return this.saslFail('aborted');
    }
    throw new StreamError('unsupported-stanza-type', `Unexpected SASL element <${el.name}/>`);
  }

  private async lookup(username: string) {
    let local: string;
    try { local = prepLocalpart(username); } catch { return null; }
    try {
      const acct = await this.svc.storage.accounts.get(this.host, local);
      return acct ? acct.credentials : null;
    } catch (err) {
      // The mechanism answers <temporary-auth-failure/>; say why in the log (rate-limited).
      if (err instanceof StorageUnavailableError) logStorageFault(this.svc.log, err);
      throw err;
    }
  }

  private async saslStep(data: Buffer | null): Promise<void> {
    const mech = this.mech!;
    const step = await mech.step(data);
    // The stream may have ended while the mechanism worked (PBKDF2, storage): never bring a
    // closing connection back to life with a new state and parser.
    if (this.isEnding()) return;
    if (step.kind === 'challenge') {
      this.write(`<challenge xmlns='${NS.SASL}'>${step.data.length ? step.data.toString('base64') : '='}</challenge>`);
      return;
    }
    this.mech = undefined;
    if (step.kind === 'failure') {
      // Channel-binding negotiation failures (e.g. a client without XEP-0440 sending 'y' while we
      // offer -PLUS) checked no password: answer at once and don't count them as guesses.
      return this.saslFail(step.condition, step.text, step.negotiation ? undefined : step.username, step.negotiation === true);
    }
    let local: string;
    try { local = prepLocalpart(step.username); } catch { return this.saslFail('not-authorized'); }
    // An authzid must name this account on this host (RFC 6120 §6.3.8); the mechanism checked the localpart.
    if (step.authzid !== undefined) {
      const az = Jid.tryParse(step.authzid);
      if (!az || az.domain !== this.host || az.local !== local || az.resource) return this.saslFail('invalid-authzid', undefined, step.username);
    }
    this.svc.throttle.success(this.ip, `${local}@${this.host}`);
    this.user = local;
    this.offerCache = undefined; // no more SASL on this connection (RFC 6120 §6.4.6)
    this.write(`<success xmlns='${NS.SASL}'>${step.data?.length ? step.data.toString('base64') : ''}</success>`);
    // RFC 6120 §6.4.6: stream restart after success.
    this.state = 'need-bind';
    this.headerSent = false;
    this.newParser();
    if (this.info) this.log.info({ jid: `${local}@${this.host}`, ip: this.ip }, 'authenticated');
    // PLAIN with credentials older than auth.scramIterations: re-derive them now that the
    // password is known, after <success/> and without holding up the stream (never throws).
    if (step.upgrade) void upgradeCredentials({ storage: this.svc.storage, log: this.log, census: this.svc.iterationCensus }, this.host, local, step.upgrade);
  }

  private async saslFail(condition: string, text?: string, username?: string, negotiation = false): Promise<void> {
    if (!negotiation && (condition === 'not-authorized' || condition === 'invalid-authzid' || condition === 'malformed-request')) {
      let account: string | undefined;
      try { account = username ? `${prepLocalpart(username)}@${this.host}` : undefined; } catch { account = undefined; }
      // Growing delay per address and per account, before the answer (not after): a brute-forcer
      // waits, and an unknown user waits exactly as long as a known one.
      const delay = this.svc.throttle.delayMs(this.ip, account);
      this.svc.throttle.failure(this.ip, account);
      this.saslFailures++;
      this.log.info({ ip: this.ip, condition, delayMs: delay }, 'authentication failed');
      if (delay > 0) await new Promise((r) => setTimeout(r, delay));
      if (this.state === 'closing' || this.state === 'closed') return;
    }
    let out = `<failure xmlns='${NS.SASL}'><${condition}/>`;
    if (text) out += `<text xml:lang='en'>${escapeAttr(text)}</text>`;
    this.write(out + '</failure>');
    if (this.saslFailures >= MAX_SASL_FAILURES_PER_CONNECTION) {
      await this.close(new StreamError('policy-violation', 'Too many failed authentication attempts'));
    }
  }

  // --- In-band registration (XEP-0077) -------------------------------------------------

  /**
   * Accounts are not registered in-band (issue 3 item 7; presets.ts `register: false`): no
   * <register xmlns='http://jabber.org/features/iq-register'/> feature is offered (XEP-0077 §8)
   * and a jabber:iq:register request before authentication gets <not-allowed/>. The stream stays
   * open so that the client can still log in; the password change and account removal of
   * XEP-0077 §3.2/§3.3 are for authenticated streams (src/modules/account).
   */
  private refuseRegistration(iq: XmlElement): void {
    if (++this.registerRefusals > MAX_PREAUTH_REGISTER_IQS) {
      throw new StreamError('policy-violation', 'In-band registration is not offered; authenticate or disconnect');
    }
    // The request may carry a password: never echo it (XEP-0077 §3.3 asks the same of errors).
    const bare = iq.withAttrs({ to: undefined, from: undefined }).withChildren([x('query', { xmlns: NS_REGISTER })]);
    this.log.debug({ type: iq.attr('type') }, 'in-band registration refused');
    this.send(errorReply(bare, new StanzaError('not-allowed', 'In-band registration is not offered on this server')));
  }

  // --- Resource binding (RFC 6120 §7) --------------------------------------------------

  private async preBindIq(el: XmlElement): Promise<void> {
    const type = el.attr('type');
    const payload = el.firstElement();
    if (type === 'set' && payload?.name === 'bind' && payload.ns === NS.BIND) return this.bind(el, payload);
    if (type === 'set' && payload?.name === 'session' && payload.ns === NS.SESSION) {
      return this.send(iqResult(el.withAttrs({ to: undefined, from: undefined })));
    }
    if (type === 'get' || type === 'set') {
      this.send(errorReply(el.withAttrs({ to: undefined, from: undefined }), new StanzaError('not-authorized', 'Bind a resource first')));
      return;
    }
    throw new StreamError('not-authorized', 'Bind a resource first');
  }

  private async bind(iq: XmlElement, payload: XmlElement): Promise<void> {
    const reply = iq.withAttrs({ to: undefined, from: undefined });
    const requested = payload.getChildText('resource', NS.BIND)?.trim() ?? '';
    let resource: string;
    try {
      resource = requested === '' ? generateResource() : prepResource(requested);
    } catch (err) {
      // RFC 6120 §7.7.2.1: a resource that cannot be processed → bad-request
      return this.send(errorReply(reply, new StanzaError('bad-request', err instanceof JidError ? err.message : 'Invalid resource')));
    }
    // The account may have been deleted between SASL and binding.
    if (!(await this.svc.storage.accounts.get(this.host, this.user))) throw new StreamError('not-authorized', 'Account no longer exists');
    // Closed while we waited: binding now would register a session whose socket is already gone
    // (onClose has run), a registry entry nothing would ever remove.
    if (this.isEnding()) return;
    const jid = Jid.of(this.user, this.host, resource);
    const existing = this.svc.registry.get(jid);
    if (existing && !this.svc.config.sessions.replaceOnConflict) {
      return this.send(errorReply(reply, new StanzaError('conflict', 'Resource in use')));
    }
    const limits = this.svc.config.limits;
    if (!existing && this.svc.registry.countFor(jid.bare) >= limits.maxResourcesPerAccount) {
      this.log.info({ jid: jid.bare.toString(), limit: limits.maxResourcesPerAccount }, 'bind refused: too many resources');
      return this.send(errorReply(reply, new StanzaError('resource-constraint', 'Too many connected resources')));
    }
    this.boundJid = jid;
    this.state = 'bound';
    clearTimeout(this.negotiationTimer);
    // The bound session's byte rate, with a full bucket for the burst that follows a login.
    if (limits.bytesPerSecond === 0) this.shaper = undefined;
    else if (this.shaper) this.shaper.reset(limits.bytesPerSecond, limits.burstBytes, performance.now());
    else this.shaper = new ReadShaper(limits.bytesPerSecond, limits.burstBytes, performance.now());
    this.onBound?.();
    this.svc.registry.add(this);
    if (existing) {
      // RFC 6120 §7.7.2.2: the new session wins; the old one gets <conflict/>. Don't wait for
      // the old socket to go (a vanished mobile peer would hold the new login for the close
      // grace period); the registry already points at the new session, and modules tell a
      // replaced session's 'session:closed' by registry.get(jid) !== session.
      existing.close(new StreamError('conflict', 'Replaced by a new connection')).catch((err: unknown) => this.log.warn({ err }, 'closing the replaced session failed'));
    }
    this.send(iqResult(reply, x('bind', { xmlns: NS.BIND }, x('jid', null, jid.toString()))));
    if (this.info) this.log.info({ jid: jid.toString() }, 'resource bound');
    await this.svc.sessionBound(this);
  }
}

/** An IQ get/set in jabber:client whose one payload is <query xmlns='jabber:iq:register'/> (RFC 6120 §8.2.3). */
function isRegisterRequest(el: XmlElement): boolean {
  const type = el.attr('type');
  const payloads = el.elements();
  return el.name === 'iq' && el.ns === NS.CLIENT && (type === 'get' || type === 'set') && !!el.attr('id')
    && payloads.length === 1 && payloads[0]!.name === 'query' && payloads[0]!.ns === NS_REGISTER;
}

function generateResource(): string {
  return `amsel-${randomBase64url(6)}`;
}

function decodeBase64(s: string): Buffer | undefined {
  // RFC 6120 §6.4.2: strict base64; anything else is incorrect-encoding.
  if (!/^[A-Za-z0-9+/]*={0,2}$/.test(s) || s.length % 4 !== 0) return undefined;
  return Buffer.from(s, 'base64');
}

// Signature algorithm OIDs (DER-encoded content bytes) whose hash is not SHA-256.
const SHA384_SIGS = ['2a8648ce3d040303', '2a864886f70d01010c'];  // ecdsa-with-SHA384, sha384WithRSAEncryption
const SHA512_SIGS = ['2a8648ce3d040304', '2a864886f70d01010d'];  // ecdsa-with-SHA512, sha512WithRSAEncryption

/** Read one DER tag+length at `off`; returns the content start and end. */
function derItem(der: Buffer, off: number): { start: number; end: number } {
  let len = der[off + 1]!;
  let start = off + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    len = 0;
    for (let i = 0; i < n; i++) len = len * 256 + der[start + i]!;
    start += n;
  }
  return { start, end: start + len };
}

/**
 * tls-server-end-point data (RFC 5929 §4.1): the certificate hashed with its signature's hash,
 * SHA-256 when that is MD5 or SHA-1. Certificate ::= SEQUENCE { tbs, signatureAlgorithm, sig }.
 */
export function certificateHash(der: Buffer): Buffer {
  let algo = 'sha256';
  try {
    const outer = derItem(der, 0);
    const tbs = derItem(der, outer.start);
    const sigAlg = derItem(der, tbs.end);
    const oid = derItem(der, sigAlg.start);
    const hex = der.subarray(oid.start, oid.end).toString('hex');
    if (SHA384_SIGS.includes(hex)) algo = 'sha384';
    else if (SHA512_SIGS.includes(hex)) algo = 'sha512';
  } catch { /* malformed: keep SHA-256 */ }
  return createHash(algo).update(der).digest();
}
