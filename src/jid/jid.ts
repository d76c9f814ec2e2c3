/**
 * XMPP addresses (RFC 7622). Parts are prepared with the PRECIS profiles in ./precis.ts:
 * localpart UsernameCaseMapped (+ §3.3.1 exclusions), domainpart IDNA (§3.2), resourcepart
 * OpaqueString. Instances are immutable; equality is by prepared parts.
 */
import { JidError, detachString, prepDomain, prepLocalpart, prepResource } from './precis.ts';

export { JidError };

const TOKEN: unique symbol = Symbol('Jid');

// Recently parsed addresses. Routing parses the same few 'to' values over and over, and a Map
// lookup is several times cheaper than preparing the parts. Jids are immutable, so instances
// (with their cached string and bare JID) are shared. Only successes are cached; bounded, with
// first-in-first-out eviction, and only short inputs, so distinct addresses cost churn, not memory.
const PARSE_CACHE_MAX = 1024;
const PARSE_CACHE_MAX_INPUT = 256;
const parseCache = new Map<string, Jid>();

export class Jid {
  /** Prepared localpart, '' when absent. */
  readonly local: string;
  /** Prepared domainpart (lower-case U-labels, IPv4 or [IPv6]). */
  readonly domain: string;
  /** Prepared resourcepart, '' when absent. */
  readonly resource: string;
  #string: string | undefined;
  #bare: Jid | undefined;

  /** Internal: parts must already be prepared. Use Jid.parse / Jid.of. */
  private constructor(token: typeof TOKEN, local: string, domain: string, resource: string) {
    if (token !== TOKEN) throw new TypeError('use Jid.parse() or Jid.of()');
    this.local = local;
    this.domain = domain;
    this.resource = resource;
  }

  /**
   * Parses and prepares a JID string. Splitting follows RFC 7622 §3.1: the resourcepart is
   * everything after the first '/', the localpart everything before the first '@' that comes
   * before that '/'. A present but empty localpart or resourcepart is an error.
   */
  static parse(s: string): Jid {
    if (typeof s !== 'string') throw new JidError('not a string');
    const hit = parseCache.get(s);
    if (hit !== undefined) return hit;
    if (s.length > PARSE_CACHE_MAX_INPUT) return Jid.prepare(s);
    const key = detachString(s);
    const jid = Jid.prepare(key); // throws before anything is cached
    if (parseCache.size >= PARSE_CACHE_MAX) parseCache.delete(parseCache.keys().next().value!);
    parseCache.set(key, jid);
    return jid;
  }

  private static prepare(s: string): Jid {
    const slash = s.indexOf('/');
    const head = slash === -1 ? s : s.slice(0, slash);
    const at = head.indexOf('@');
    let local = '';
    if (at !== -1) {
      if (at === 0) throw new JidError('empty localpart');
      local = prepLocalpart(head.slice(0, at));
    }
    const domain = prepDomain(at === -1 ? head : head.slice(at + 1));
    let resource = '';
    if (slash !== -1) {
      if (slash === s.length - 1) throw new JidError('empty resourcepart');
      resource = prepResource(s.slice(slash + 1));
    }
    return new Jid(TOKEN, local, domain, resource);
  }

  /** Like parse(), but returns null instead of throwing JidError. */
  static tryParse(s: string): Jid | null {
    try {
      return Jid.parse(s);
    } catch (e) {
      if (e instanceof JidError) return null;
      throw e;
    }
  }

  /** Builds a JID from unprepared parts; '' (or undefined resource) means the part is absent. */
  static of(local: string, domain: string, resource?: string): Jid {
    return new Jid(
      TOKEN,
      local === '' ? '' : prepLocalpart(local),
      prepDomain(domain),
      resource === undefined || resource === '' ? '' : prepResource(resource),
    );
  }

  /** The JID without its resourcepart (this when already bare). */
  get bare(): Jid {
    if (this.resource === '') return this;
    return (this.#bare ??= new Jid(TOKEN, this.local, this.domain, ''));
  }

  get isBare(): boolean {
    return this.resource === '';
  }

  /** Same local/domain with resource r (prepared); '' gives the bare JID. */
  withResource(r: string): Jid {
    if (r === '') return this.bare;
    const res = prepResource(r);
    if (res === this.resource) return this;
    return new Jid(TOKEN, this.local, this.domain, res);
  }

  equals(o: Jid | null | undefined): boolean {
    if (o === this) return true;
    if (o == null) return false;
    return this.domain === o.domain && this.local === o.local && this.resource === o.resource;
  }

  toString(): string {
    if (this.#string === undefined) {
      let s = this.local === '' ? this.domain : `${this.local}@${this.domain}`;
      if (this.resource !== '') s += `/${this.resource}`;
      this.#string = s;
    }
    return this.#string;
  }

  toJSON(): string {
    return this.toString();
  }
}
