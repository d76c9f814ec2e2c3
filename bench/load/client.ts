// A lean XMPP client for the load tool, written against the RFCs and independent of the server
// code under src/: STARTTLS or Direct TLS (XEP-0368), SASL SCRAM-SHA-1 (RFC 5802), resource
// binding, presence, ping, messages, clean close.
//
// Cheapness matters more than generality: the client shares two cores with the server under
// test. Incoming bytes go through a resumable stanza splitter that only tracks tag depth (no DOM,
// no string concatenation of the receive buffer); stanzas are handed out as Buffer slices, and
// only the few negotiation replies are parsed into a small DOM (parseXml). The SCRAM salted
// password is derived once per (password, salt, iterations), as real clients cache it.

import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import type { BenchServer } from './types.ts';

// ---------------------------------------------------------------------------------------------
// Stanza splitter

const LT = 0x3c, GT = 0x3e, SLASH = 0x2f, QMARK = 0x3f, BANG = 0x21, DASH = 0x2d, LBRACK = 0x5b,
  RBRACK = 0x5d, SQ = 0x27, DQ = 0x22;

const enum S { Text, Lt, STag, ETag, Pi, Bang, Cdata1, Comment, Cdata, Decl }

export interface SplitterSink {
  /** The stream header's start tag (`<stream:stream ...>`), unclosed. */
  xHeader(raw: Buffer): void;
  /** One complete top-level element (a stanza or a nonza). The slice may share the read buffer. */
  xStanza(raw: Buffer): void;
  /** `</stream:stream>` */
  xEnd(): void;
  /** Malformed or oversized input. */
  xError(msg: string): void;
}

/**
 * Splits an XMPP stream into top-level elements by tracking tag depth, resumable at any byte
 * (stanzas split across reads, several stanzas in one read). It does not check well-formedness
 * beyond what it needs; the server under test is the one being checked, by the scenarios.
 * Only one partial element is ever buffered, bounded by maxBytes.
 */
export class StanzaSplitter {
  private st = S.Text;
  private depth = 0;
  private quote = 0;
  private prev = 0; // last non-space byte in a start tag ('/' means self-closing), or last byte (PI)
  private p2 = 0; // the byte before prev (comment/CDATA terminators)
  private capturing = false;
  private parts: Buffer[] | null = null;
  private partsLen = 0;
  private gen = 0;

  constructor(private readonly sink: SplitterSink, private readonly maxBytes = 1 << 20) {}

  /** Start over (stream restart); bytes after the current element go to the new stream. */
  reset(): void {
    this.st = S.Text; this.depth = 0; this.quote = 0; this.prev = 0; this.p2 = 0;
    this.capturing = false; this.parts = null; this.partsLen = 0; this.gen++;
  }

  feed(buf: Buffer): void {
    const n = buf.length;
    let i = 0;
    let capStart = 0; // where the element being captured starts in this buffer
    while (i < n) {
      switch (this.st) {
        case S.Text: {
          const j = buf.indexOf(LT, i);
          if (j < 0) { i = n; break; }
          if (this.depth <= 1) { this.capturing = true; capStart = j; this.parts = null; this.partsLen = 0; }
          this.st = S.Lt;
          i = j + 1;
          break;
        }
        case S.Lt: {
          const c = buf[i]!;
          if (c === SLASH) this.st = S.ETag;
          else if (c === QMARK) { this.st = S.Pi; this.prev = 0; }
          else if (c === BANG) this.st = S.Bang;
          else { this.st = S.STag; this.quote = 0; this.prev = 0; }
          if (this.st !== S.STag && this.depth <= 1) this.capturing = false;
          i++;
          break;
        }
        case S.STag: {
          let done = -1;
          while (i < n) {
            const c = buf[i]!;
            if (this.quote !== 0) {
              const j = buf.indexOf(this.quote, i);
              if (j < 0) { i = n; break; }
              this.quote = 0; this.prev = 0; i = j + 1;
              continue;
            }
            if (c === GT) { done = i; i++; break; }
            if (c === SQ || c === DQ) this.quote = c;
            else if (c > 0x20) this.prev = c;
            i++;
          }
          if (done < 0) break;
          this.st = S.Text;
          if (this.prev === SLASH) {
            if (this.depth === 1 && this.emit(buf, capStart, done, false)) { capStart = i; }
          } else {
            this.depth++;
            if (this.depth === 1 && this.emit(buf, capStart, done, true)) { capStart = i; }
          }
          break;
        }
        case S.ETag: {
          const j = buf.indexOf(GT, i);
          if (j < 0) { i = n; break; }
          i = j + 1;
          this.st = S.Text;
          this.depth--;
          if (this.depth === 1) { this.emit(buf, capStart, j, false); capStart = i; }
          else if (this.depth === 0) { this.capturing = false; this.sink.xEnd(); }
          else if (this.depth < 0) { this.sink.xError('unbalanced end tag'); this.reset(); return; }
          break;
        }
        case S.Pi: {
          const j = buf.indexOf(GT, i);
          if (j < 0) { this.prev = buf[n - 1]!; i = n; break; }
          const before = j > i ? buf[j - 1]! : this.prev;
          if (before === QMARK) this.st = S.Text;
          else this.prev = GT;
          i = j + 1;
          break;
        }
        case S.Bang: {
          const c = buf[i]!;
          this.st = c === DASH ? S.Comment : c === LBRACK ? S.Cdata1 : S.Decl;
          this.prev = 0; this.p2 = 0;
          i++;
          break;
        }
        case S.Cdata1: { // skip "CDATA[" up to the second '['
          const j = buf.indexOf(LBRACK, i);
          if (j < 0) { i = n; break; }
          this.st = S.Cdata; this.prev = 0; this.p2 = 0;
          i = j + 1;
          break;
        }
        case S.Comment:
        case S.Cdata: {
          const t = this.st === S.Comment ? DASH : RBRACK;
          while (i < n) {
            const c = buf[i++]!;
            if (c === GT && this.prev === t && this.p2 === t) { this.st = S.Text; break; }
            this.p2 = this.prev; this.prev = c;
          }
          break;
        }
        case S.Decl: {
          const j = buf.indexOf(GT, i);
          if (j < 0) { i = n; break; }
          this.st = S.Text;
          i = j + 1;
          break;
        }
      }
      if (this.capturing && i >= n) {
        // Keep the partial element (copied: it must not pin or alias the read buffer).
        const part = Buffer.from(buf.subarray(capStart));
        this.partsLen += part.length;
        if (this.partsLen > this.maxBytes) { this.sink.xError(`element larger than ${this.maxBytes} bytes`); this.reset(); return; }
        (this.parts ??= []).push(part);
      }
    }
  }

  /** Hands out the element ending at `end` (inclusive); true unless a reset happened meanwhile. */
  private emit(buf: Buffer, capStart: number, end: number, header: boolean): boolean {
    if (!this.capturing) return true;
    this.capturing = false;
    let raw = buf.subarray(capStart, end + 1);
    if (this.parts !== null) {
      this.parts.push(raw);
      raw = Buffer.concat(this.parts, this.partsLen + raw.length);
      this.parts = null; this.partsLen = 0;
    }
    const gen = this.gen;
    if (header) this.sink.xHeader(raw); else this.sink.xStanza(raw);
    return gen === this.gen;
  }
}

// ---------------------------------------------------------------------------------------------
// Raw stanza helpers (no DOM)

function isWs(c: number): boolean { return c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09; }

/** The element name of a raw stanza, e.g. "message" or "stream:features". */
export function stanzaName(raw: Buffer): string {
  let i = 1;
  while (i < raw.length && !isWs(raw[i]!) && raw[i] !== GT && raw[i] !== SLASH) i++;
  return raw.toString('latin1', 1, i);
}

/** True when the raw stanza's element name is exactly `name` (ASCII). */
export function isNamed(raw: Buffer, name: string): boolean {
  const n = name.length;
  if (raw.length < n + 2) return false;
  for (let k = 0; k < n; k++) if (raw[k + 1] !== name.charCodeAt(k)) return false;
  const c = raw[n + 1]!;
  return isWs(c) || c === GT || c === SLASH;
}

/** An attribute of the start tag of a raw stanza (entities decoded), without building a DOM. */
export function rawAttr(raw: Buffer, name: string): string | undefined {
  const n = raw.length;
  let i = 1;
  while (i < n && !isWs(raw[i]!) && raw[i] !== GT && raw[i] !== SLASH) i++;
  for (;;) {
    while (i < n && isWs(raw[i]!)) i++;
    if (i >= n || raw[i] === GT || raw[i] === SLASH) return undefined;
    const ns = i;
    while (i < n && raw[i] !== 0x3d && !isWs(raw[i]!)) i++;
    const ne = i;
    while (i < n && raw[i] !== SQ && raw[i] !== DQ) i++;
    if (i >= n) return undefined;
    const vs = i + 1;
    const ve = raw.indexOf(raw[i]!, vs);
    if (ve < 0) return undefined;
    if (ne - ns === name.length) {
      let k = 0;
      while (k < name.length && raw[ns + k] === name.charCodeAt(k)) k++;
      if (k === name.length) {
        const v = raw.toString('utf8', vs, ve);
        return v.includes('&') ? decodeEntities(v) : v;
      }
    }
    i = ve + 1;
  }
}

// ---------------------------------------------------------------------------------------------
// Minimal DOM for negotiation replies and IQ results

export interface El { name: string; attrs: Record<string, string>; children: El[]; text: string }

const ENT: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };
export function decodeEntities(s: string): string {
  return s.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (m, e: string) => {
    if (e[0] === '#') return String.fromCodePoint(e[1] === 'x' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10));
    return ENT[e] ?? m;
  });
}
export function escapeXml(s: string): string {
  return s.replace(/[<>&'"]/g, (c) => (c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '&' ? '&amp;' : c === "'" ? '&apos;' : '&quot;'));
}

/**
 * Parses one element (a complete stanza, or a stream header start tag, which is left open)
 * into a small DOM. For a few negotiation replies per login, not for the message path.
 */
export function parseXml(src: string | Buffer): El {
  const s = typeof src === 'string' ? src : src.toString('utf8');
  const stack: El[] = [];
  let root: El | undefined;
  let i = 0;
  while (i < s.length) {
    const lt = s.indexOf('<', i);
    const top = stack[stack.length - 1];
    if (lt < 0) { if (top) top.text += decodeEntities(s.slice(i)); break; }
    if (lt > i && top) top.text += decodeEntities(s.slice(i, lt));
    const c = s[lt + 1];
    if (c === '/') {
      const gt = s.indexOf('>', lt);
      if (gt < 0) throw new Error('unterminated end tag');
      stack.pop();
      i = gt + 1;
      if (stack.length === 0) break;
      continue;
    }
    if (c === '?') { const e = s.indexOf('?>', lt); if (e < 0) break; i = e + 2; continue; }
    if (c === '!') {
      if (s.startsWith('<![CDATA[', lt)) {
        const e = s.indexOf(']]>', lt);
        if (e < 0) throw new Error('unterminated CDATA');
        if (top) top.text += s.slice(lt + 9, e);
        i = e + 3;
      } else {
        const e = s.indexOf(s.startsWith('<!--', lt) ? '-->' : '>', lt);
        i = e < 0 ? s.length : e + 1;
      }
      continue;
    }
    let j = lt + 1;
    while (j < s.length && !/[\s/>]/.test(s[j]!)) j++;
    const el: El = { name: s.slice(lt + 1, j), attrs: {}, children: [], text: '' };
    for (;;) {
      while (j < s.length && /\s/.test(s[j]!)) j++;
      if (j >= s.length) throw new Error('unterminated start tag');
      if (s[j] === '>' || s[j] === '/') break;
      const eq = s.indexOf('=', j);
      if (eq < 0) throw new Error('bad attribute');
      const an = s.slice(j, eq).trim();
      let q = eq + 1;
      while (/\s/.test(s[q] ?? '')) q++;
      const quote = s[q];
      if (quote !== '"' && quote !== "'") throw new Error('unquoted attribute');
      const qe = s.indexOf(quote, q + 1);
      if (qe < 0) throw new Error('unterminated attribute');
      el.attrs[an] = decodeEntities(s.slice(q + 1, qe));
      j = qe + 1;
    }
    if (top) top.children.push(el); else root ??= el;
    if (s[j] === '/') { i = s.indexOf('>', j) + 1; if (!top) break; continue; }
    i = j + 1;
    stack.push(el);
  }
  if (!root) throw new Error('no element');
  return root;
}

export function localName(name: string): string { const k = name.indexOf(':'); return k < 0 ? name : name.slice(k + 1); }

/** First child with that local name (and xmlns, when given). */
export function child(el: El, name: string, xmlns?: string): El | undefined {
  return el.children.find((c) => localName(c.name) === name && (xmlns === undefined || c.attrs.xmlns === xmlns));
}

// ---------------------------------------------------------------------------------------------
// SCRAM-SHA-1 (RFC 5802)

interface ScramKeys { clientKey: Buffer; storedKey: Buffer; serverKey: Buffer }
const scramCache = new Map<string, Promise<ScramKeys>>();

/** Derived keys for (password, salt, iterations), computed once per process (PBKDF2 off-thread). */
export function scramKeys(password: string, saltB64: string, iterations: number): Promise<ScramKeys> {
  const key = `${iterations}\0${saltB64}\0${password}`;
  let p = scramCache.get(key);
  if (!p) {
    p = new Promise<ScramKeys>((resolve, reject) => {
      pbkdf2(password, Buffer.from(saltB64, 'base64'), iterations, 20, 'sha1', (err, salted) => {
        if (err) return reject(err);
        const clientKey = createHmac('sha1', salted).update('Client Key').digest();
        resolve({ clientKey, storedKey: createHash('sha1').update(clientKey).digest(), serverKey: createHmac('sha1', salted).update('Server Key').digest() });
      });
    });
    p.catch(() => scramCache.delete(key));
    scramCache.set(key, p);
  }
  return p;
}

/** One SCRAM-SHA-1 exchange without channel binding ('n,,'). Passwords must be ASCII (no SASLprep). */
export class ScramSha1 {
  private readonly bare: string;
  private serverSignature: Buffer | undefined;

  constructor(user: string, private readonly password: string, private readonly cnonce = randomBytes(18).toString('base64')) {
    if (!/^[\x20-\x7e]*$/.test(password)) throw new Error('SCRAM: this client supports printable ASCII passwords only (no SASLprep)');
    this.bare = `n=${user.replace(/=/g, '=3D').replace(/,/g, '=2C')},r=${cnonce}`;
  }

  clientFirst(): string { return `n,,${this.bare}`; }

  async clientFinal(serverFirst: string): Promise<string> {
    const f = scramFields(serverFirst);
    if (f.m !== undefined) throw new Error(`SCRAM: unsupported mandatory extension in "${serverFirst}"`);
    const nonce = f.r, salt = f.s, iter = Number(f.i);
    if (!nonce || !salt || !Number.isInteger(iter) || iter < 1) throw new Error(`SCRAM: bad server-first-message "${serverFirst}"`);
    if (!nonce.startsWith(this.cnonce) || nonce.length === this.cnonce.length) throw new Error('SCRAM: server nonce does not extend the client nonce');
    const keys = await scramKeys(this.password, salt, iter);
    const withoutProof = `c=biws,r=${nonce}`;
    const authMessage = `${this.bare},${serverFirst},${withoutProof}`;
    const sig = createHmac('sha1', keys.storedKey).update(authMessage).digest();
    for (let k = 0; k < sig.length; k++) sig[k]! ^= keys.clientKey[k]!;
    this.serverSignature = createHmac('sha1', keys.serverKey).update(authMessage).digest();
    return `${withoutProof},p=${sig.toString('base64')}`;
  }

  /** Throws unless the server-final-message carries the expected server signature. */
  verifyServerFinal(serverFinal: string): void {
    const f = scramFields(serverFinal);
    if (f.e !== undefined) throw new Error(`SCRAM: server error "${f.e}"`);
    const v = f.v ? Buffer.from(f.v, 'base64') : undefined;
    if (!v || !this.serverSignature || v.length !== this.serverSignature.length || !timingSafeEqual(v, this.serverSignature)) {
      throw new Error(`SCRAM: server signature does not verify ("${serverFinal}")`);
    }
  }
}

function scramFields(msg: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const part of msg.split(',')) if (part[1] === '=') out[part[0]!] = part.slice(2);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Connection

const NS_TLS = 'urn:ietf:params:xml:ns:xmpp-tls';
const NS_SASL = 'urn:ietf:params:xml:ns:xmpp-sasl';
const NS_BIND = 'urn:ietf:params:xml:ns:xmpp-bind';
const NS_SESSION = 'urn:ietf:params:xml:ns:xmpp-session';

export type ServerAddress = Pick<BenchServer, 'domain' | 'ports' | 'caFile'> & { host?: string };

export interface ConnectOptions {
  server: ServerAddress;
  /** Localpart. */
  user: string;
  password: string;
  resource?: string;
  /** XEP-0368 Direct TLS on server.ports.directTls instead of STARTTLS. */
  directTls?: boolean;
  /** Request the roster (RFC 6121 §2.1.3) before initial presence; the item count lands in rosterSize. */
  roster?: boolean;
  /** Send initial presence after binding. */
  presence?: boolean;
  /** Installed before presence is sent, so presence replies to the login are seen. */
  onStanza?: (raw: Buffer) => void;
  /** Timeout of each network step in ms (default 10 000). */
  stepTimeoutMs?: number;
  /**
   * When given, performance.now() is pushed at: start, connected (TCP, or TLS for Direct TLS),
   * TLS done (STARTTLS only), authenticated, bound, ready (roster and presence done).
   */
  marks?: number[];
}

// One secure context per CA file: parsing the CA for every connection would cost the client CPU.
const contexts = new Map<string, tls.SecureContext>();
function secureContext(caFile: string): tls.SecureContext {
  let c = contexts.get(caFile);
  if (!c) { c = tls.createSecureContext({ ca: readFileSync(caFile) }); contexts.set(caFile, c); }
  return c;
}

interface Pending { resolve(v: Buffer): void; reject(e: Error): void; timer: NodeJS.Timeout }

const HEADER_MARK = Buffer.from('header');
const END_MARK = Buffer.from('end');
const STREAM_END = '</stream:stream>';

function snippet(raw: Buffer | string, max = 300): string {
  const s = typeof raw === 'string' ? raw : raw.toString('utf8', 0, Math.min(raw.length, max + 4));
  return s.length > max ? `${s.slice(0, max)}…` : s;
}

let idCounter = 0;

/** An XMPP client connection. Create with connect(). */
export class XmppClient implements SplitterSink {
  /** Full JID once bound. */
  jid = '';
  /** Roster items received at login (roster option). */
  rosterSize = -1;
  /** Server-initiated IQs answered (XEP-0199 pings get a result, anything else an error). */
  serverIqs = 0;
  /** Set when the connection failed or the server closed it unexpectedly. */
  error: string | undefined;
  /** True once the socket closed. */
  closed = false;
  /** Called once when the socket closes (after close(), or unexpectedly: see error). */
  onClosed: ((c: XmppClient) => void) | undefined;

  private socket: net.Socket;
  private readonly splitter = new StanzaSplitter(this);
  private bound = false;
  private closing = false;
  private serverEnded = false;
  // Negotiation: elements wait here until the negotiator asks for them.
  private queue: Buffer[] = [];
  private waiter: Pending | null = null;
  private iqs: Map<string, Pending> | null = null;
  private handler: ((raw: Buffer) => void) | undefined;
  private closeWaiters: (() => void)[] | null = null;
  private lastHeader: Buffer | undefined;

  private constructor(socket: net.Socket, private readonly domain: string, private readonly stepTimeoutMs: number) {
    this.socket = socket;
    this.attach(socket);
  }

  private attach(s: net.Socket): void {
    s.on('data', (d: Buffer) => this.splitter.feed(d));
    s.on('error', (e: NodeJS.ErrnoException) => {
      // A reset after both streams ended is a TCP/TLS teardown race (ejabberd closes its socket
      // while our close_notify is in flight), not a failed login.
      if (this.closing && this.serverEnded && (e.code === 'ECONNRESET' || e.code === 'EPIPE')) return;
      this.fail(`socket error: ${e.message}`);
    });
    s.on('close', () => this.onSocketClose());
  }

  // SplitterSink
  xHeader(raw: Buffer): void { this.lastHeader = raw; this.push(HEADER_MARK); }
  xStanza(raw: Buffer): void {
    if (!this.bound) { this.push(raw); return; }
    // Fast path: an IQ reply to one of ours, or an IQ from the server; everything else to the handler.
    if (raw[1] === 0x69 && isNamed(raw, 'iq')) { this.onIq(raw); return; }
    if (raw[1] === 0x73 && localName(stanzaName(raw)) === 'error') this.fail(`stream error: ${snippet(raw)}`);
    this.handler?.(raw);
  }
  xEnd(): void {
    this.serverEnded = true;
    if (!this.bound) this.push(END_MARK);
    else if (!this.closing) this.fail('server closed the stream');
    this.wakeClose();
    // The peer ended its stream: end ours too, if not already done.
    if (!this.closing) { this.closing = true; this.socket.end(STREAM_END); }
  }
  xError(msg: string): void { this.fail(`bad XML from server: ${msg}`); this.socket.destroy(); }

  private push(raw: Buffer): void {
    const w = this.waiter;
    if (w) { this.waiter = null; clearTimeout(w.timer); w.resolve(raw); } else this.queue.push(raw);
  }

  /** The next top-level element during negotiation (HEADER_MARK for a stream header). */
  private next(step: string): Promise<Buffer> {
    const q = this.queue.shift();
    if (q) return q === END_MARK ? Promise.reject(new Error(`${step}: server closed the stream`)) : Promise.resolve(q);
    if (this.closed) return Promise.reject(new Error(`${step}: connection closed${this.error ? ` (${this.error})` : ''}`));
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => { this.waiter = null; reject(new Error(`${step}: no answer from server within ${this.stepTimeoutMs} ms`)); }, this.stepTimeoutMs);
      this.waiter = {
        resolve: (b) => (b === END_MARK ? reject(new Error(`${step}: server closed the stream`)) : resolve(b)),
        reject, timer,
      };
    });
  }

  /** The next element, parsed; stream errors become a clear rejection. */
  private async nextEl(step: string): Promise<El> {
    const raw = await this.next(step);
    if (raw === HEADER_MARK) throw new Error(`${step}: unexpected stream header`);
    const el = parseXml(raw);
    if (localName(el.name) === 'error' && el.name.includes(':')) throw new Error(`${step}: stream error: ${snippet(raw)}`);
    return el;
  }

  private fail(msg: string): void {
    this.error ??= msg;
    this.rejectPending(msg);
  }

  private rejectPending(msg: string): void {
    const w = this.waiter;
    if (w) { this.waiter = null; clearTimeout(w.timer); w.reject(new Error(msg)); }
    if (this.iqs) for (const [id, p] of this.iqs) { clearTimeout(p.timer); this.iqs.delete(id); p.reject(new Error(`iq ${id}: ${msg}`)); }
  }

  private onSocketClose(): void {
    this.closed = true;
    if (!this.closing) this.error ??= this.bound ? 'connection closed by server' : 'connection closed';
    this.rejectPending(this.error ?? 'connection closed');
    this.wakeClose();
    this.onClosed?.(this);
  }

  private wakeClose(): void {
    const w = this.closeWaiters;
    this.closeWaiters = null;
    if (w) for (const f of w) f();
  }

  private openStream(): void {
    this.splitter.reset();
    this.socket.write(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${this.domain}' version='1.0' xml:lang='en'>`);
  }

  /** Opens a stream and returns the features that follow the server's header. */
  private async streamFeatures(step: string): Promise<El> {
    this.openStream();
    const h = await this.next(`${step} (stream header)`);
    if (h !== HEADER_MARK) throw new Error(`${step}: expected a stream header, got ${snippet(h)}`);
    const hdr = parseXml(this.lastHeader!);
    this.lastHeader = undefined; // it may pin a whole read buffer
    if (hdr.attrs.version !== '1.0') throw new Error(`${step}: stream version "${hdr.attrs.version ?? ''}"`);
    const f = await this.nextEl(`${step} (features)`);
    if (localName(f.name) !== 'features') throw new Error(`${step}: expected stream features, got <${f.name}>`);
    return f;
  }

  private async startTls(servername: string, ctx: tls.SecureContext): Promise<void> {
    this.socket.write(`<starttls xmlns='${NS_TLS}'/>`);
    const r = await this.nextEl('STARTTLS');
    if (r.name !== 'proceed') throw new Error(`STARTTLS: server answered <${r.name}>`);
    const plain = this.socket;
    plain.removeAllListeners('data');
    plain.removeAllListeners('close');
    plain.removeAllListeners('error');
    plain.on('error', () => undefined); // the TLS socket reports errors
    const s = tls.connect({ socket: plain, servername, secureContext: ctx });
    this.socket = s;
    this.attach(s);
    await this.tlsReady(s, 'STARTTLS handshake');
  }

  private tlsReady(s: tls.TLSSocket, step: string): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const done = (e?: Error) => {
        clearTimeout(timer);
        s.off('secureConnect', onOk); s.off('error', onErr); s.off('close', onClose);
        if (e) reject(e); else resolve();
      };
      const onOk = () => done();
      const onErr = (e: Error) => done(new Error(`${step}: ${e.message}`));
      const onClose = () => done(new Error(`${step}: connection closed`));
      const timer = setTimeout(() => { s.destroy(); done(new Error(`${step}: timed out after ${this.stepTimeoutMs} ms`)); }, this.stepTimeoutMs);
      s.once('secureConnect', onOk);
      s.once('error', onErr);
      s.once('close', onClose);
    });
  }

  private async auth(features: El, user: string, password: string): Promise<void> {
    const mechs = child(features, 'mechanisms', NS_SASL);
    const names = mechs?.children.map((m) => m.text.trim()) ?? [];
    if (!names.includes('SCRAM-SHA-1')) throw new Error(`SASL: server does not offer SCRAM-SHA-1 (offers: ${names.join(' ') || 'nothing'})`);
    const scram = new ScramSha1(user, password);
    this.socket.write(`<auth xmlns='${NS_SASL}' mechanism='SCRAM-SHA-1'>${Buffer.from(scram.clientFirst()).toString('base64')}</auth>`);
    let r = await this.nextEl('SASL (auth)');
    if (r.name !== 'challenge') throw new Error(`SASL: authentication failed: ${saslFailure(r)}`);
    const final = await scram.clientFinal(Buffer.from(r.text.trim(), 'base64').toString('utf8'));
    this.socket.write(`<response xmlns='${NS_SASL}'>${Buffer.from(final).toString('base64')}</response>`);
    r = await this.nextEl('SASL (response)');
    if (r.name === 'challenge') { // server-final in a challenge (RFC 6120 §6.4.6), then success
      scram.verifyServerFinal(Buffer.from(r.text.trim(), 'base64').toString('utf8'));
      this.socket.write(`<response xmlns='${NS_SASL}'/>`);
      r = await this.nextEl('SASL (final response)');
      if (r.name !== 'success') throw new Error(`SASL: authentication failed: ${saslFailure(r)}`);
      return;
    }
    if (r.name !== 'success') throw new Error(`SASL: authentication failed: ${saslFailure(r)}`);
    scram.verifyServerFinal(Buffer.from(r.text.trim(), 'base64').toString('utf8'));
  }

  private async bind(features: El, resource: string | undefined): Promise<void> {
    if (!child(features, 'bind', NS_BIND)) throw new Error('bind: server does not offer resource binding');
    const res = resource ? `<resource>${escapeXml(resource)}</resource>` : '';
    this.socket.write(`<iq type='set' id='bind1'><bind xmlns='${NS_BIND}'>${res}</bind></iq>`);
    const r = await this.nextEl('bind');
    if (r.name !== 'iq' || r.attrs.type !== 'result') throw new Error(`bind: server answered ${JSON.stringify(r)}`);
    const jid = child(r, 'bind', NS_BIND) && child(child(r, 'bind', NS_BIND)!, 'jid');
    if (!jid?.text) throw new Error('bind: no JID in the result');
    this.jid = jid.text.trim();
    // Legacy session establishment (RFC 3921), only when the server says it is not optional.
    const sess = child(features, 'session', NS_SESSION);
    if (sess && !child(sess, 'optional')) {
      this.socket.write(`<iq type='set' id='sess1'><session xmlns='${NS_SESSION}'/></iq>`);
      const s = await this.nextEl('session');
      if (s.attrs.type !== 'result') throw new Error(`session: server answered ${JSON.stringify(s)}`);
    }
    // Anything that arrived meanwhile is delivered through the bound path.
    this.bound = true;
    const q = this.queue;
    this.queue = [];
    for (const raw of q) if (raw !== HEADER_MARK && raw !== END_MARK) this.xStanza(raw);
  }

  /** @internal */
  static async open(o: ConnectOptions): Promise<XmppClient> {
    const { server } = o;
    const host = server.host ?? '127.0.0.1';
    const stepTimeoutMs = o.stepTimeoutMs ?? 10_000;
    const ctx = secureContext(server.caFile);
    const marks = o.marks;
    marks?.push(performance.now());
    let c: XmppClient;
    if (o.directTls) {
      if (!server.ports.directTls) throw new Error('connect: the server has no Direct TLS port');
      const s = tls.connect({ host, port: server.ports.directTls, servername: server.domain, secureContext: ctx, ALPNProtocols: ['xmpp-client'] });
      s.setNoDelay(true);
      c = new XmppClient(s, server.domain, stepTimeoutMs);
      await c.tlsReady(s, 'Direct TLS handshake');
    } else {
      const s = net.connect({ host, port: server.ports.c2s });
      s.setNoDelay(true);
      c = new XmppClient(s, server.domain, stepTimeoutMs);
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => { s.destroy(); reject(new Error(`TCP connect: timed out after ${stepTimeoutMs} ms`)); }, stepTimeoutMs);
        s.once('connect', () => { clearTimeout(timer); resolve(); });
        s.once('error', (e) => { clearTimeout(timer); reject(new Error(`TCP connect: ${e.message}`)); });
      });
    }
    marks?.push(performance.now());
    try {
      let f = await c.streamFeatures('stream');
      if (!o.directTls) {
        if (!child(f, 'starttls', NS_TLS)) throw new Error('STARTTLS: not offered');
        await c.startTls(server.domain, ctx);
        marks?.push(performance.now());
        f = await c.streamFeatures('stream after TLS');
      }
      await c.auth(f, o.user, o.password);
      marks?.push(performance.now());
      f = await c.streamFeatures('stream after SASL');
      c.handler = o.onStanza;
      await c.bind(f, o.resource);
      marks?.push(performance.now());
      if (o.roster) {
        const r = await c.iq(`<iq type='get' id='roster1'><query xmlns='jabber:iq:roster'/></iq>`);
        c.rosterSize = (child(r, 'query', 'jabber:iq:roster')?.children.length) ?? 0;
      }
      if (o.presence) c.send('<presence/>');
      marks?.push(performance.now());
    } catch (e) {
      c.socket.destroy();
      throw e;
    }
    return c;
  }

  /** Write raw XML (a complete stanza). */
  send(xml: string): void { this.socket.write(xml); }

  /** Handler for stanzas other than IQ replies (raw slices: copy what must outlive the call). */
  onStanza(cb: ((raw: Buffer) => void) | undefined): void { this.handler = cb; }

  private onIq(raw: Buffer): void {
    const type = rawAttr(raw, 'type');
    const id = rawAttr(raw, 'id') ?? '';
    if (type === 'result' || type === 'error') {
      const p = this.iqs?.get(id);
      if (!p) { this.handler?.(raw); return; }
      this.iqs!.delete(id);
      clearTimeout(p.timer);
      if (type === 'error') p.reject(new Error(`iq ${id}: error reply: ${snippet(raw)}`));
      else p.resolve(raw);
      return;
    }
    // An IQ request from the server (or a contact): answer, or the server may drop us.
    this.serverIqs++;
    const from = rawAttr(raw, 'from');
    const to = from ? ` to='${escapeXml(from)}'` : '';
    if (type === 'get' && raw.includes('urn:xmpp:ping')) this.send(`<iq type='result' id='${escapeXml(id)}'${to}/>`);
    else this.send(`<iq type='error' id='${escapeXml(id)}'${to}><error type='cancel'><service-unavailable xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error></iq>`);
  }

  private request(id: string, xml: string, timeoutMs: number): Promise<Buffer> {
    if (this.closed) return Promise.reject(new Error(`iq ${id}: connection closed`));
    return new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => { this.iqs?.delete(id); reject(new Error(`iq ${id}: no reply within ${timeoutMs} ms`)); }, timeoutMs);
      (this.iqs ??= new Map()).set(id, { resolve, reject, timer });
      this.socket.write(xml);
    });
  }

  /** Send an IQ and resolve with its parsed result (id-matched; an id is added when missing). */
  async iq(xml: string, timeoutMs = this.stepTimeoutMs): Promise<El> {
    const m = /^<iq\b[^>]*?\sid=(['"])(.*?)\1/.exec(xml);
    let id: string;
    if (m) id = decodeEntities(m[2]!);
    else { id = `q${++idCounter}`; xml = `<iq id='${id}'${xml.slice(3)}`; }
    if (!this.bound) throw new Error(`iq ${id}: not bound yet`);
    return parseXml(await this.request(id, xml, timeoutMs));
  }

  /** XEP-0199 ping to the server; resolves when the result arrives. */
  async ping(timeoutMs = this.stepTimeoutMs): Promise<void> {
    const id = `p${++idCounter}`;
    await this.request(id, `<iq type='get' id='${id}' to='${this.domain}'><ping xmlns='urn:xmpp:ping'/></iq>`, timeoutMs);
  }

  /**
   * Close the stream and wait until the server closed its stream or the connection (bounded);
   * rejects, after destroying the socket, when the server did not.
   */
  async close(timeoutMs = this.stepTimeoutMs): Promise<void> {
    if (this.closed) return;
    const started = this.closing;
    this.closing = true;
    if (!started) this.socket.write(STREAM_END);
    const waitFor = (cond: () => boolean, ms: number) => new Promise<boolean>((resolve) => {
      if (cond()) return resolve(true);
      const timer = setTimeout(() => resolve(cond()), ms);
      (this.closeWaiters ??= []).push(() => { clearTimeout(timer); resolve(true); });
    });
    const t0 = Date.now();
    const ended = await waitFor(() => this.serverEnded || this.closed, timeoutMs);
    if (!ended) {
      this.socket.destroy();
      throw new Error(`close: server did not close the stream within ${timeoutMs} ms`);
    }
    if (!this.closed) {
      this.socket.end();
      await waitFor(() => this.closed, Math.max(100, timeoutMs - (Date.now() - t0)));
      if (!this.closed) this.socket.destroy();
    }
  }

  /** Drop the connection without a stream close. */
  destroy(): void { this.closing = true; this.socket.destroy(); }
}

function saslFailure(el: El): string {
  if (el.name !== 'failure') return `unexpected <${el.name}>`;
  const cond = el.children.find((c) => c.name !== 'text')?.name ?? 'no condition';
  const text = child(el, 'text')?.text;
  return text ? `${cond} (${text})` : cond;
}

/** Log in: connect, TLS, SCRAM-SHA-1, bind, optional roster and presence. */
export function connect(o: ConnectOptions): Promise<XmppClient> {
  return XmppClient.open(o).catch((e: unknown) => {
    throw new Error(`login ${o.user}@${o.server.domain}: ${(e as Error).message}`);
  });
}
