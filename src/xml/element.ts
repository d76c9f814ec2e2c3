// Immutable XML element: the one tree type of Amsel (ARCHITECTURE.md §1.5, "immutable stanzas").
//
// `ns` is the resolved namespace URI. The empty string means "inherit from the parent"; only
// builder-made elements that have not been adopted by a namespaced parent carry it. Parsed
// elements always carry their resolved namespace. Prefixes are not kept: `name` is the local
// name, so `<stream:features>` is `{ name: 'features', ns: NS.STREAM }`.

import { serialize } from './serialize.ts';

export type XmlNode = XmlElement | string;

/** Shared empty values: most elements have no attributes or no children. Never mutated. */
export const EMPTY_ATTRS: Readonly<Record<string, string>> = Object.freeze({});
export const EMPTY_CHILDREN: readonly XmlNode[] = Object.freeze([]) as readonly XmlNode[];

export class XmlElement {
  /** Local name, no prefix. */
  readonly name: string;
  /** Resolved namespace URI ('' = inherit from the parent; builder-made elements only). */
  readonly ns: string;
  /**
   * Attributes by qualified name. Never contains the default `xmlns`; may contain `xml:lang`,
   * `xmlns:foo` declarations and other prefixed attributes. Not copied: callers must not
   * mutate the object they pass in.
   */
  readonly attrs: Readonly<Record<string, string>>;
  readonly children: readonly XmlNode[];

  constructor(
    name: string,
    ns: string,
    attrs: Readonly<Record<string, string>> = EMPTY_ATTRS,
    children: readonly XmlNode[] = EMPTY_CHILDREN,
  ) {
    this.name = name;
    this.ns = ns;
    this.attrs = attrs;
    this.children = children;
  }

  /** An attribute value, or undefined. Inherited Object.prototype members are never returned. */
  attr(name: string): string | undefined {
    const v = this.attrs[name];
    return typeof v === 'string' ? v : undefined;
  }

  /** First child element with this local name (and namespace, when given). */
  getChild(name: string, ns?: string): XmlElement | undefined {
    const children = this.children;
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      if (typeof c !== 'string' && c.name === name && (ns === undefined || c.ns === ns)) return c;
    }
    return undefined;
  }

  /** All child elements with this local name (and namespace, when given). */
  getChildren(name: string, ns?: string): XmlElement[] {
    const out: XmlElement[] = [];
    const children = this.children;
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      if (typeof c !== 'string' && c.name === name && (ns === undefined || c.ns === ns)) out.push(c);
    }
    return out;
  }

  /** Element children only, in document order. */
  elements(): XmlElement[] {
    const out: XmlElement[] = [];
    const children = this.children;
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      if (typeof c !== 'string') out.push(c);
    }
    return out;
  }

  firstElement(): XmlElement | undefined {
    const children = this.children;
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      if (typeof c !== 'string') return c;
    }
    return undefined;
  }

  /** Concatenated direct text children (not the text of descendants). */
  text(): string {
    const children = this.children;
    if (children.length === 1) {
      const c = children[0]!;
      return typeof c === 'string' ? c : '';
    }
    let s = '';
    for (let i = 0; i < children.length; i++) {
      const c = children[i]!;
      if (typeof c === 'string') s += c;
    }
    return s;
  }

  /** Text of the first matching child element, or undefined when there is no such child. */
  getChildText(name: string, ns?: string): string | undefined {
    return this.getChild(name, ns)?.text();
  }

  /**
   * A copy with attributes changed: a string sets, `undefined` removes. `xmlns` in the patch
   * changes the element's namespace instead (attrs never hold the default xmlns).
   */
  withAttrs(patch: Record<string, string | undefined>): XmlElement {
    let ns = this.ns;
    const next: Record<string, string> = {};
    const cur = this.attrs;
    for (const k in cur) {
      if (!Object.hasOwn(patch, k)) next[k] = cur[k]!;
    }
    for (const k in patch) {
      const v = patch[k];
      if (k === 'xmlns') {
        if (v !== undefined) ns = v;
        continue;
      }
      if (v !== undefined) next[k] = v;
    }
    return new XmlElement(this.name, ns, next, this.children);
  }

  /** A copy with new children (not adopted: use x() to build namespaced subtrees). */
  withChildren(children: readonly XmlNode[]): XmlElement {
    return new XmlElement(this.name, this.ns, this.attrs, children);
  }

  toString(): string {
    return serialize(this);
  }
}
