// The x() builder: x('message', { to, type: 'chat', xmlns: NS.CLIENT }, x('body', null, 'hi')).

import { EMPTY_ATTRS, EMPTY_CHILDREN, XmlElement, type XmlNode } from './element.ts';

export type XmlChild = XmlNode | XmlNode[] | null | undefined | false;

/**
 * Build an element. `attrs.xmlns` sets the namespace; undefined (and null) attribute values are
 * dropped; numbers are stringified. Falsy children (null, undefined, false, '') are skipped and
 * arrays are flattened one level. Child elements without a namespace (ns '') are adopted:
 * re-created, recursively, with this element's namespace, so getChild(name, ns) works on
 * built trees as on parsed ones.
 */
export function x(
  name: string,
  attrs?: Record<string, string | number | undefined> | null,
  ...children: XmlChild[]
): XmlElement {
  let ns = '';
  let a: Record<string, string> | undefined;
  if (attrs) {
    for (const k in attrs) {
      const v = attrs[k];
      if (v === undefined || v === null) continue;
      if (k === 'xmlns') {
        ns = typeof v === 'string' ? v : String(v);
        continue;
      }
      (a ??= {})[k] = typeof v === 'string' ? v : String(v);
    }
  }
  if (children.length === 0) return new XmlElement(name, ns, a ?? EMPTY_ATTRS, EMPTY_CHILDREN);
  const kids: XmlNode[] = [];
  for (let i = 0; i < children.length; i++) {
    const c = children[i];
    if (Array.isArray(c)) {
      for (let j = 0; j < c.length; j++) push(kids, c[j], ns);
    } else {
      push(kids, c, ns);
    }
  }
  return new XmlElement(name, ns, a ?? EMPTY_ATTRS, kids);
}

function push(kids: XmlNode[], c: XmlNode | null | undefined | false, ns: string): void {
  if (c === null || c === undefined || c === false || c === '') return;
  if (typeof c === 'string') {
    const last = kids.length - 1;
    // Merge adjacent text so text() and serialization stay simple.
    if (last >= 0 && typeof kids[last] === 'string') kids[last] = (kids[last] as string) + c;
    else kids.push(c);
    return;
  }
  kids.push(ns !== '' && c.ns === '' ? adopt(c, ns) : c);
}

/** Re-create an inheriting ('' ns) subtree in namespace `ns`. Namespaced subtrees are shared. */
export function adopt(el: XmlElement, ns: string): XmlElement {
  if (el.ns !== '' || ns === '') return el;
  const src = el.children;
  let kids: XmlNode[] | undefined;
  for (let i = 0; i < src.length; i++) {
    const c = src[i]!;
    if (typeof c !== 'string' && c.ns === '') {
      kids ??= src.slice();
      kids[i] = adopt(c, ns);
    }
  }
  return new XmlElement(el.name, ns, el.attrs, kids ?? src);
}
