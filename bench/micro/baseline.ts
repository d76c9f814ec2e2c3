// Fixed reference workloads for the micro-benchmarks. They use no project code, only what the
// subjects rely on (saxes, Map, strings, promises), and do comparable kinds of work, so the
// ratio subject/baseline moves when the project code changes and stays put when the machine,
// its load or (mostly) the Node version changes. Do not "optimise" these: any change here
// shifts every recorded ratio (re-record figures.json if you must).

import { SaxesParser } from 'saxes';
import type { Workload } from './harness.ts';

// --- XML: raw saxes ------------------------------------------------------------------------

// Handlers on the subclass prototype, as in src/xml/parser.ts (registering them with on() adds
// own properties and makes saxes 3-4x slower: the baseline should be saxes at its best).
interface SaxCore { write(chunk: string): unknown }
const SaxBase = SaxesParser as unknown as new (opt: object) => SaxCore;
let sink: BaselineSax | null = null;

class BaselineSax extends SaxBase {
  depth = 0;
  stanzas = 0;
  textChars = 0;
  openTagHandler(): void { sink!.depth++; }
  closeTagHandler(): void { if (--sink!.depth === 1) sink!.stanzas++; }
  textHandler(t: string): void { sink!.textChars += t.length; }
}

/**
 * saxes (strict, xmlns: false, its own attribute dictionaries) over the same chunks, decoded
 * with a streaming TextDecoder: what the subject does minus namespaces, limits, restrictions
 * and the element tree.
 */
export function saxesBaseline(chunks: readonly Uint8Array[], expected: number): Workload {
  return {
    run() {
      const dec = new TextDecoder('utf-8', { fatal: true });
      const sax = new BaselineSax({ xmlns: false, defaultXMLVersion: '1.0', forceXMLVersion: true });
      const prev = sink;
      sink = sax;
      try {
        for (let i = 0; i < chunks.length; i++) {
          const s = dec.decode(chunks[i], { stream: true });
          if (s.length !== 0) sax.write(s);
        }
      } finally {
        sink = prev;
      }
      if (sax.stanzas !== expected) throw new Error(`saxes baseline: ${sax.stanzas} stanzas, expected ${expected}`);
      return sax.stanzas;
    },
  };
}

// --- routing: Map lookups, object dispatch, string building -----------------------------------

export type DispatchKind = 'bare' | 'full' | 'iq';

interface PlainEl { name: string; ns: string; attrs: Record<string, string>; children: unknown[] }
interface Target { available: boolean; priority: number; count: number; send(el: PlainEl): void }

const HOST = 'example.test';
const RE_HOST = /^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?(?:\.[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?)*$/;

/** Lower-case a printable-ASCII string, rejecting a few characters (a JID part check in kind). */
function asciiPart(s: string): string {
  let upper = false;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x21 || c > 0x7e || c === 0x22 || c === 0x26 || c === 0x27 || c === 0x3c || c === 0x3e) throw new Error('bad char');
    if (c >= 0x41 && c <= 0x5a) upper = true;
  }
  return upper ? s.toLowerCase() : s;
}

/**
 * Per stanza: split and check an address, build the bare/full strings, copy the attributes
 * with 'from'/'to' replaced into a new element object, classify by a host Set, find the target
 * through nested Maps (or a handler through a string-keyed Map), and dispatch through two levels
 * of async functions (as fromClient -> route); IQs also await the handler and build a reply.
 * Sizes are chosen to be of the same order as the router's work, not equal to it.
 */
export function dispatchBaseline(kind: DispatchKind, batch = 1000): Workload {
  const hosts = new Set([HOST]);
  const sessions = new Map<string, Map<string, Target>>();
  const mk = (priority: number): Target => ({
    available: true, priority, count: 0,
    send(this: Target) { this.count++; },
  });
  const sender = mk(0);
  const phone = mk(0);
  const desk = mk(5);
  sessions.set(`alice@${HOST}`, new Map([['desk', sender]]));
  sessions.set(`bob@${HOST}`, new Map([['phone', phone], ['desk', desk]]));
  const handlers = new Map<string, (el: PlainEl) => PlainEl | undefined>([
    [`get\u0000host\u0000urn:xmpp:ping\u0000ping`, () => undefined],
  ]);
  const from = `alice@${HOST}/desk`;
  const to = kind === 'iq' ? HOST : kind === 'full' ? `Bob@${HOST}/phone` : `Bob@${HOST}`;
  const pool: PlainEl[] = [];
  for (let i = 0; i < 64; i++) {
    const attrs: Record<string, string> = kind === 'iq'
      ? { type: 'get', id: `ping-${i}`, to }
      : { to, type: 'chat', id: `m-${i}`, 'xml:lang': 'en' };
    const payload = kind === 'iq'
      ? [{ name: 'ping', ns: 'urn:xmpp:ping', attrs: {}, children: [] }]
      : [{ name: 'body', ns: 'jabber:client', attrs: {}, children: [`hello ${i}`] }];
    pool.push({ name: kind === 'iq' ? 'iq' : 'message', ns: 'jabber:client', attrs, children: payload });
  }
  const expected = kind === 'iq' ? sender : kind === 'full' ? phone : desk;

  const deliver = async (el: PlainEl, domain: string, bare: string, resource: string): Promise<void> => {
    if (el.name === 'iq') {
      const first = el.children[0] as PlainEl;
      const h = handlers.get(`${el.attrs['type']}\u0000${bare === domain ? 'host' : 'account'}\u0000${first.ns}\u0000${first.name}`);
      const result = h ? await h(el) : undefined;
      const reply: PlainEl = { name: 'iq', ns: el.ns, attrs: { type: 'result', id: el.attrs['id']!, from: el.attrs['to']!, to: el.attrs['from']! }, children: result ? [result] : [] };
      const s = sessions.get(`alice@${HOST}`)!.get(reply.attrs['to']!.slice(reply.attrs['to']!.indexOf('/') + 1));
      s?.send(reply);
      return;
    }
    const m = sessions.get(bare);
    if (!m) return;
    if (resource !== '') {
      const t = m.get(resource);
      if (t) return t.send(el);
    }
    const avail = [...m.values()].filter((t) => t.available && t.priority >= 0);
    const top = Math.max(...avail.map((t) => t.priority));
    for (const t of avail) if (t.priority === top) t.send(el);
  };

  const route = async (el: PlainEl): Promise<void> => {
    const raw = el.attrs['to']!;
    const slash = raw.indexOf('/');
    const head = slash < 0 ? raw : raw.slice(0, slash);
    const at = head.indexOf('@');
    const local = at < 0 ? '' : asciiPart(head.slice(0, at));
    const domain = asciiPart(at < 0 ? head : head.slice(at + 1)).toLowerCase();
    if (!RE_HOST.test(domain) || !hosts.has(domain)) return;
    const resource = slash < 0 ? '' : raw.slice(slash + 1);
    const bare = local === '' ? domain : `${local}@${domain}`;
    const full = resource === '' ? bare : `${bare}/${resource}`;
    const attrs: Record<string, string> = {};
    for (const k in el.attrs) if (k !== 'from' && k !== 'to') attrs[k] = el.attrs[k]!;
    attrs['from'] = from;
    attrs['to'] = full;
    await deliver({ name: el.name, ns: el.ns, attrs, children: el.children }, domain, bare, resource);
  };

  return {
    async run() {
      const before = expected.count;
      for (let i = 0; i < batch; i++) await route(pool[i & 63]!);
      if (expected.count - before !== batch) throw new Error(`dispatch baseline (${kind}): delivered ${expected.count - before} of ${batch}`);
      return batch;
    },
  };
}
