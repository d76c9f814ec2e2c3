// Streaming XMPP parser (RFC 6120 §4 streams, §11 XML usage) over saxes with `xmlns: false`.
//
// One XmlStreamParser per XML stream: make a fresh one after every stream restart (STARTTLS,
// SASL, RFC 6120 §4.3.3). What this wrapper adds to saxes (DEPENDENCIES.md "XML"):
//  - bytes in: a fatal streaming TextDecoder, so invalid UTF-8 is a stream error and chunk
//    boundaries may fall anywhere, also inside a multi-byte character;
//  - its own namespace scope stack (saxes' own is quadratic on deep nesting);
//  - RFC 6120 §11.1 restrictions: no DTD, comments, PIs or entity references beyond the five
//    predefined ones (<restricted-xml/>); CDATA sections are allowed;
//  - limits: bytes per stanza (and for the stream header), nesting depth and attributes per
//    element, enforced while bytes arrive: saxes never sees more than the limit.
// The outcome (events, and which error) depends only on the bytes, never on how they were split
// into writes (src/xml/parser.fuzz.test.ts checks this).
//
// Element trees are built directly from saxes events into immutable XmlElements; no other
// intermediate objects exist per element except the child array each element keeps anyway.

import { SaxesParser, type SaxesTagPlain, type XMLDecl } from 'saxes';
import { StreamError, type StreamErrorCondition } from '../xmpp/errors.ts';
import { NS } from '../xmpp/ns.ts';
import { EMPTY_ATTRS, EMPTY_CHILDREN, XmlElement, type XmlNode } from './element.ts';

export interface StreamParserLimits {
  /**
   * Bytes of one stanza. Whitespace between stanzas counts against it until the next stanza
   * starts (so an endless run of keepalives is refused too, but they never add up).
   */
  maxStanzaBytes: number;
  /** Nesting depth of elements inside a stanza; the stanza itself is depth 1. */
  maxDepth: number;
  /** Attributes (namespace declarations included) on any one element. */
  maxAttributes: number;
  /** Bytes up to and including the `>` of the stream root's start tag. */
  maxHeaderBytes: number;
}

export const DEFAULT_LIMITS: Readonly<StreamParserLimits> = Object.freeze({
  maxStanzaBytes: 262144,
  maxDepth: 64,
  maxAttributes: 64,
  maxHeaderBytes: 8192,
});

export interface StreamHeader {
  /** Local name of the root: always 'stream' (anything else is a stream error). */
  name: string;
  /** Namespace of the root: always NS.STREAM. */
  ns: string;
  /** The default namespace declared on the root (e.g. 'jabber:client'), '' if none. */
  defaultNs: string;
  /** Root attributes, without any xmlns / xmlns:* declarations (xml:lang is kept). */
  attrs: Record<string, string>;
}

export interface StreamParserHandlers {
  streamStart(header: StreamHeader): void;
  /** Every complete depth-1 child of the stream root, namespaces resolved. */
  stanza(el: XmlElement): void;
  /** </stream:stream> was read; no events follow. */
  streamEnd(): void;
  /** Called at most once; the parser ignores all input after it. */
  error(err: StreamError): void;
}

/** Thrown out of saxes' callbacks to abandon the rest of the current write. */
const STOP: unique symbol = Symbol('xml-parser-stop');

const STREAM_OPTIONS = { stream: true } as const;
const XML_NS = NS.XML;
const XMLNS_NS = 'http://www.w3.org/2000/xmlns/';

type Prefixes = Record<string, string>;

function newFrame(): Frame {
  return { name: '', ns: '', attrs: EMPTY_ATTRS, children: null, defaultNs: '', prefixes: EMPTY_ATTRS as Prefixes };
}

/** Scope of every open element: reused frames, indexed by level (root = 1). */
interface Frame {
  name: string; // local name
  ns: string;
  attrs: Readonly<Record<string, string>>;
  children: XmlNode[] | null; // allocated on first child
  defaultNs: string;
  prefixes: Prefixes;
}

function rootPrefixes(): Prefixes {
  const p = Object.create(null) as Prefixes;
  p['xml'] = XML_NS;
  return p;
}

function isXmlWhitespace(s: string): boolean {
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c !== 0x20 && c !== 0x0a && c !== 0x0d && c !== 0x09) return false;
  }
  return true;
}

/** Map a saxes well-formedness message to an RFC 6120 §4.9.3 condition. */
function conditionFor(message: string): StreamErrorCondition {
  // §11.1: entity references other than the predefined five are restricted XML.
  if (message.includes('undefined entity')) return 'restricted-xml';
  // A DOCTYPE where saxes does not even accept one (after the root) is still a DTD.
  if (message.includes('doctype')) return 'restricted-xml';
  return 'not-well-formed';
}

// saxes looks its handlers up as `this.<event>Handler`. Registering them with `on()` adds own
// properties after construction, which made every saxes field access slower (measured: 3-4x
// on the whole parse). Handlers defined on a subclass prototype keep the instance shape intact.
// saxes calls some handlers unbound (text, closetag), so they find their XmlStreamParser in
// `current`, set around each sax.write() call (saved and restored: a handler may feed another
// parser synchronously).
interface SaxCore {
  write(chunk: string): unknown;
  readonly position: number;
}
const SaxBase = SaxesParser as unknown as new (opt: object) => SaxCore;
let current: XmlStreamParser | null = null;

class Sax extends SaxBase {
  // Attributes go straight into a plain object of ours (saxes would build a null-prototype
  // dictionary per tag and we would copy it): these two override saxes 6 internals.
  pushAttribPlain(name: string, value: string): void { current!.onAttribute(name, value); }
  processAttribsPlain(): void {}
  openTagHandler(tag: SaxesTagPlain): void { current!.onOpenTag(tag); }
  closeTagHandler(): void { current!.onCloseTag(); }
  textHandler(text: string): void { current!.onText(text); }
  cdataHandler(text: string): void { current!.onText(text); }
  xmldeclHandler(decl: XMLDecl): void {
    const enc = decl.encoding;
    if (enc !== undefined && !/^utf-?8$/i.test(enc)) {
      current!.fail('unsupported-encoding', `encoding ${enc} (only UTF-8 is allowed)`);
    }
  }
  // RFC 6120 §11.1: MUST NOT contain comments, processing instructions, DTDs.
  doctypeHandler(): void { current!.fail('restricted-xml', 'DTD'); }
  commentHandler(): void { current!.fail('restricted-xml', 'comment'); }
  piHandler(): void { current!.fail('restricted-xml', 'processing instruction'); }
  errorHandler(err: Error): void { current!.fail(conditionFor(err.message), err.message); }
}

export class XmlStreamParser {
  private readonly handlers: StreamParserHandlers;
  private readonly maxStanzaBytes: number;
  private readonly maxDepth: number;
  private readonly maxAttributes: number;
  private readonly maxHeaderBytes: number;

  private readonly decoder = new TextDecoder('utf-8', { fatal: true });
  private readonly sax: Sax;

  /** No more events: after an error, </stream:stream>, end(), or a throwing handler. */
  private done = false;
  private started = false;
  /** Number of open elements (root = 1, stanza = 2). */
  private level = 0;
  private readonly frames: Frame[] = [];

  /** Bytes since the last boundary (end of a stanza or the root start tag, or a stanza's '<' after whitespace). */
  private pending = 0;
  /** Bytes of an incomplete character the decoder holds back (0-3), and those bytes, packed. */
  private held = 0;
  private heldBits = 0;
  /** Bytes handed to the decoder so far. */
  private decoded = 0;
  /** Chars handed to saxes before the current piece. */
  private charsFed = 0;
  /** saxes position just after the last boundary seen in the current piece, or -1. */
  private boundaryPos = -1;

  // Attributes of the start tag being read (see onAttribute).
  private attrs: Record<string, string> | null = null;
  private attrNs: string | undefined = undefined;
  private attrCount = 0;
  private attrDecl = false;
  private attrPrefixed = false;

  constructor(handlers: StreamParserHandlers, limits?: Partial<StreamParserLimits>) {
    this.handlers = handlers;
    this.maxStanzaBytes = limits?.maxStanzaBytes ?? DEFAULT_LIMITS.maxStanzaBytes;
    this.maxDepth = limits?.maxDepth ?? DEFAULT_LIMITS.maxDepth;
    this.maxAttributes = limits?.maxAttributes ?? DEFAULT_LIMITS.maxAttributes;
    this.maxHeaderBytes = limits?.maxHeaderBytes ?? DEFAULT_LIMITS.maxHeaderBytes;
    // Frames are made on first use: most streams never nest beyond 4 or 5 levels, and an idle
    // connection should not carry maxDepth frames (64 × 72 bytes each) for nothing.
    this.frames.push(newFrame(), newFrame());
    this.frames[0]!.prefixes = rootPrefixes();

    // XMPP is XML 1.0 (RFC 6120 §11.6); never switch to 1.1 rules because of a declaration.
    const sax = new Sax({ xmlns: false, defaultXMLVersion: '1.0', forceXMLVersion: true });
    this.sax = sax;
  }

  /** Feed bytes as they arrive; any chunk boundary is fine, and changes nothing in the outcome. */
  write(chunk: Buffer | Uint8Array): void {
    if (this.done) return;
    const len = chunk.length;
    const prev = current;
    current = this;
    try {
      let off = 0;
      while (off < len) {
        // Hand saxes no more than the limit still allows: a stanza (or header) that has not ended
        // once the limit is read is refused then, whatever the size of the write. Before the root
        // is open, also no more than a stanza's worth: stanzas may follow the header in the same
        // piece. (pending < limit here, so n >= 1.)
        let n = this.started
          ? this.maxStanzaBytes - this.pending
          : Math.min(this.maxHeaderBytes - this.pending, this.maxStanzaBytes);
        if (n > len - off) n = len - off;
        let piece = off === 0 && n === len ? chunk : chunk.subarray(off, off + n);
        off += n;
        const heldBefore = this.held;
        this.decoded += n;
        let str: string;
        let badUtf8 = false;
        try {
          str = this.decoder.decode(piece, STREAM_OPTIONS);
        } catch {
          // Parse what precedes the bad byte first, as if the bad byte had come in a write of its
          // own: the outcome (say, a limit hit just before it) must not depend on the chunking.
          badUtf8 = true;
          const d = this.prefixDecoder(piece);
          n = this.validPrefixLength(piece);
          piece = piece.subarray(0, n);
          str = d.decode(piece, STREAM_OPTIONS);
        }
        // All ASCII (the common case) leaves no partial character behind; otherwise find out
        // how many bytes of one the decoder holds, so that they are counted after a boundary.
        const ascii = heldBefore === 0 && str.length === n;
        if (!ascii) this.trackHeld(piece);
        this.boundaryPos = -1;
        if (str.length !== 0) this.sax.write(str);
        const before = this.charsFed;
        this.charsFed = before + str.length;
        if (this.boundaryPos < 0) {
          this.pending += n;
        } else {
          // Bytes after the last boundary in this piece, and those of a character not decoded yet.
          let start = this.boundaryPos - before;
          if (start < 0) start = 0;
          const tail = str.length - start;
          this.pending = ascii ? tail : (tail === 0 ? 0 : Buffer.byteLength(str.slice(start))) + this.held;
        }
        if (this.pending >= (this.started ? this.maxStanzaBytes : this.maxHeaderBytes)) {
          this.fail('policy-violation', this.started
            ? `stanza larger than ${this.maxStanzaBytes} bytes`
            : `stream header larger than ${this.maxHeaderBytes} bytes`);
        }
        if (badUtf8) this.fail('not-well-formed', 'invalid UTF-8');
      }
    } catch (e) {
      if (e === STOP) return;
      // A handler threw: the saxes state is unknown now, so this parser is finished.
      this.done = true;
      throw e;
    } finally {
      current = prev;
    }
  }

  /**
   * Remember the bytes of an incomplete character at the end of the input so far (the streaming
   * decoder holds them back; at most 3). The input decoded so far is valid UTF-8.
   */
  private trackHeld(piece: Uint8Array): void {
    const n = piece.length;
    let bits = n >= 3 ? 0 : this.heldBits;
    let count = n >= 3 ? 0 : this.held;
    for (let i = n >= 3 ? n - 3 : 0; i < n; i++) {
      bits = ((bits << 8) | piece[i]!) & 0xffffff;
      if (count < 3) count++;
    }
    let held = 0;
    for (let k = 1; k <= count; k++) {
      const b = (bits >>> (8 * (k - 1))) & 0xff; // k-th byte from the end
      if (b < 0x80) break;
      if (b >= 0xc0) {
        // A lead byte followed by k-1 continuation bytes: incomplete if it needs more.
        if (k <= (b >= 0xf0 ? 3 : b >= 0xe0 ? 2 : 1)) held = k;
        break;
      }
    }
    this.held = held;
    this.heldBits = held === 0 ? 0 : bits & (held === 3 ? 0xffffff : (1 << (8 * held)) - 1);
  }

  /** A fresh decoder in the state the stream's decoder was in before the current piece. */
  private prefixDecoder(piece: Uint8Array) {
    // Only at the very start of the stream is a byte order mark dropped.
    const atStart = this.decoded - piece.length === this.held;
    const d = new TextDecoder('utf-8', { fatal: true, ignoreBOM: !atStart });
    const h = this.held;
    if (h !== 0) {
      const b = new Uint8Array(h);
      for (let i = 0; i < h; i++) b[i] = (this.heldBits >>> (8 * (h - 1 - i))) & 0xff;
      d.decode(b, STREAM_OPTIONS);
    }
    return d;
  }

  /** Bytes of `piece` before the first one that makes the UTF-8 invalid (binary search: cheap). */
  private validPrefixLength(piece: Uint8Array): number {
    let lo = 0; // valid
    let hi = piece.length; // invalid
    while (hi - lo > 1) {
      const mid = (lo + hi) >>> 1;
      try {
        this.prefixDecoder(piece).decode(piece.subarray(0, mid), STREAM_OPTIONS);
        lo = mid;
      } catch {
        hi = mid;
      }
    }
    return lo;
  }

  /**
   * The transport is gone (or the stream is being restarted): drop all state, fire nothing.
   * May be called from inside a handler; the rest of the current write is then ignored.
   */
  end(): void {
    this.done = true;
    this.frames.length = 0;
  }

  // --- internals ---------------------------------------------------------------------------

  /** @internal */
  fail(condition: StreamErrorCondition, text?: string): never {
    if (!this.done) {
      this.done = true;
      this.handlers.error(new StreamError(condition, text));
    }
    throw STOP;
  }

  /** @internal Called by saxes for each attribute, before the tag's onOpenTag. */
  onAttribute(name: string, value: string): void {
    if (this.done) throw STOP;
    if (++this.attrCount > this.maxAttributes) this.fail('policy-violation', `more than ${this.maxAttributes} attributes`);
    if (name.charCodeAt(0) === 120 /* x */ && name.startsWith('xmlns')) {
      if (name.length === 5) {
        // The default declaration becomes the element's ns, never an attribute.
        if (this.attrNs !== undefined) this.fail('not-well-formed', 'duplicate attribute: xmlns');
        this.attrNs = value;
        return;
      }
      if (name.charCodeAt(5) === 58 /* : */) this.attrDecl = true;
    } else if (!this.attrPrefixed && name.includes(':')) {
      this.attrPrefixed = true;
    }
    let a = this.attrs;
    if (a === null) a = this.attrs = {};
    else if (typeof a[name] === 'string') this.fail('not-well-formed', `duplicate attribute: ${name}`);
    if (name === '__proto__') this.fail('not-well-formed', 'attribute name __proto__ is not supported');
    a[name] = value;
  }

  /** @internal */
  onOpenTag(tag: SaxesTagPlain): void {
    if (this.done) throw STOP;
    const level = this.level + 1;
    if (level - 1 > this.maxDepth) this.fail('policy-violation', `elements nested deeper than ${this.maxDepth}`);
    const parent = this.frames[level - 1]!;
    const attrs = this.attrs;
    const defaultNs = this.attrNs ?? parent.defaultNs;
    let prefixes = parent.prefixes;
    const decl = this.attrDecl;
    const prefixed = this.attrPrefixed;
    this.attrs = null;
    this.attrNs = undefined;
    this.attrCount = 0;
    this.attrDecl = false;
    this.attrPrefixed = false;

    if (decl) {
      for (const k in attrs) {
        if (!k.startsWith('xmlns:')) continue;
        const p = k.slice(6);
        const v = attrs[k]!;
        if (v === '' || p === '' || p === 'xmlns' || (p === 'xml') !== (v === XML_NS) || v === XMLNS_NS) {
          this.fail('bad-namespace-prefix', `invalid declaration of prefix ${p}`);
        }
        if (prefixes === parent.prefixes) prefixes = Object.create(prefixes) as Prefixes;
        prefixes[p] = v;
      }
    }
    if (prefixed) {
      for (const k in attrs) {
        const ci = k.indexOf(':');
        if (ci < 0 || k.startsWith('xmlns:')) continue;
        const p = k.slice(0, ci);
        if (p !== 'xml' && prefixes[p] === undefined) this.fail('bad-namespace-prefix', `undeclared prefix ${p}`);
      }
    }

    // Resolve the element's own name.
    const raw = tag.name;
    let name = raw;
    let ns = defaultNs;
    const ci = raw.indexOf(':');
    if (ci >= 0) {
      const p = raw.slice(0, ci);
      name = raw.slice(ci + 1);
      const uri = p === 'xmlns' ? undefined : prefixes[p];
      if (uri === undefined) this.fail('bad-namespace-prefix', `undeclared prefix ${p}`);
      if (ci === 0 || name === '' || name.includes(':')) this.fail('not-well-formed', `malformed name ${raw}`);
      ns = uri;
    }

    if (level === 1) {
      // RFC 6120 §4.8.1: the root must be <stream> in the streams namespace.
      if (name !== 'stream' || ns !== NS.STREAM) this.fail('invalid-namespace', `root element {${ns}}${name}`);
      const frame = this.frames[1]!;
      frame.name = name;
      frame.ns = ns;
      frame.defaultNs = defaultNs;
      frame.prefixes = prefixes;
      this.level = 1;
      this.started = true;
      this.boundaryPos = this.sax.position;
      const headerAttrs: Record<string, string> = {};
      if (attrs) for (const k in attrs) if (!k.startsWith('xmlns:')) headerAttrs[k] = attrs[k]!;
      this.handlers.streamStart({ name, ns, defaultNs, attrs: headerAttrs });
    } else {
      const frame = this.frames[level] ?? (this.frames[level] = newFrame());
      frame.name = name;
      frame.ns = ns;
      frame.attrs = attrs ?? EMPTY_ATTRS;
      frame.children = null;
      frame.defaultNs = defaultNs;
      frame.prefixes = prefixes;
      this.level = level;
    }
    if (this.done) throw STOP;
  }

  /** @internal */
  onCloseTag(): void {
    if (this.done) throw STOP;
    const level = this.level;
    this.level = level - 1;
    if (level === 1) {
      this.done = true;
      this.handlers.streamEnd();
      throw STOP;
    }
    const frame = this.frames[level]!;
    const el = new XmlElement(frame.name, frame.ns, frame.attrs, frame.children ?? EMPTY_CHILDREN);
    frame.children = null;
    frame.attrs = EMPTY_ATTRS;
    if (level === 2) {
      this.boundaryPos = this.sax.position;
      this.handlers.stanza(el);
      if (this.done) throw STOP;
    } else {
      const parent = this.frames[level - 1]!;
      (parent.children ??= []).push(el);
    }
  }

  /** @internal */
  onText(text: string): void {
    if (this.done) throw STOP;
    const level = this.level;
    if (level >= 2) {
      const frame = this.frames[level]!;
      const kids = frame.children;
      if (kids === null) {
        frame.children = [text];
      } else {
        const last = kids.length - 1;
        if (last >= 0 && typeof kids[last] === 'string') kids[last] = (kids[last] as string) + text;
        else kids.push(text);
      }
    } else if (level === 1) {
      // Between stanzas only whitespace (keepalives) may appear (RFC 6120 §4.6.1).
      if (!isXmlWhitespace(text)) this.fail('not-well-formed', 'text between stanzas');
      // saxes hands over text when it reads the next '<': the next stanza is counted from there,
      // so keepalives of an idle client never add up against it (until then they count: saxes
      // keeps the text, and an endless run of whitespace hits the limit).
      this.boundaryPos = this.sax.position - 1;
    }
    // level 0: saxes itself rejects non-whitespace outside the root.
  }
}
