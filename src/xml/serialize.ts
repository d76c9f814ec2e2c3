// XML serializer. Output is UTF-16 JS text; the transport encodes it as UTF-8.

import type { XmlElement } from './element.ts';

// Characters XML 1.0 cannot carry at all (§2.2 Char): C0 controls except TAB, LF, CR, and
// U+FFFE/U+FFFF. Parsed input never contains them (the parser rejects them), but text from
// elsewhere (a database, an HTTP upload name) might; one of them in an outgoing stanza would
// make the peer drop the whole stream, so they become U+FFFD. (Lone surrogates become U+FFFD
// when the transport encodes the string as UTF-8.)
const TEXT_TEST = /[&<>\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const TEXT_ALL = /[&<>\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;
const ATTR_TEST = /[&<"\t\n\r\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/;
const ATTR_ALL = /[&<"\t\n\r\u0000-\u0008\u000B\u000C\u000E-\u001F\uFFFE\uFFFF]/g;

function replaceChar(c: string): string {
  switch (c) {
    case '&': return '&amp;';
    case '<': return '&lt;';
    case '>': return '&gt;';
    case '"': return '&quot;';
    // In attribute values a literal TAB, LF or CR would be normalised to a space by the
    // reader (XML 1.0 §3.3.3); character references survive.
    case '\t': return '&#9;';
    case '\n': return '&#10;';
    case '\r': return '&#13;';
    default: return '\uFFFD';
  }
}

/** Escape character data: & < > (and replace characters XML cannot carry). */
export function escapeText(s: string): string {
  return TEXT_TEST.test(s) ? s.replace(TEXT_ALL, replaceChar) : s;
}

/** Escape a double-quoted attribute value: & < " and TAB/LF/CR as character references. */
export function escapeAttr(s: string): string {
  return ATTR_TEST.test(s) ? s.replace(ATTR_ALL, replaceChar) : s;
}

/**
 * Serialize an element. `xmlns="..."` is emitted only where the element's namespace differs
 * from `parentNs` (pass the stream's content namespace, e.g. 'jabber:client', to omit it on
 * stanzas). Elements with ns '' inherit and never emit xmlns.
 */
export function serialize(el: XmlElement, parentNs?: string): string {
  return write(el, parentNs ?? '');
}

function write(el: XmlElement, parentNs: string): string {
  const name = el.name;
  let ns = el.ns;
  let s = '<' + name;
  if (ns === '') ns = parentNs;
  else if (ns !== parentNs) s += ' xmlns="' + escapeAttr(ns) + '"';
  const attrs = el.attrs;
  for (const k in attrs) {
    const v = attrs[k];
    if (typeof v === 'string') s += ' ' + k + '="' + escapeAttr(v) + '"';
  }
  const children = el.children;
  const n = children.length;
  if (n === 0) return s + '/>';
  s += '>';
  for (let i = 0; i < n; i++) {
    const c = children[i]!;
    s += typeof c === 'string' ? escapeText(c) : write(c, ns);
  }
  return s + '</' + name + '>';
}
