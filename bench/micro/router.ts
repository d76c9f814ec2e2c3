// Micro-benchmark: the router hot path, in process. A Router built as createServer() and the
// module harness build it (silent logger, LocalSessionRegistry, isLocalHost), sessions that
// only count what they are sent, stanzas parsed once up front by XmlStreamParser (so they are
// the elements a connection would hand over). Measured: Router.fromClient, one stanza at a
// time with await, as a connection's queue does it. Baseline: dispatchBaseline (baseline.ts).

import { Router } from '../../src/core/router/router.ts';
import { LocalSessionRegistry } from '../../src/core/sessions/registry.ts';
import type { Session } from '../../src/core/sessions/session.ts';
import { Jid } from '../../src/jid/index.ts';
import { silentLogger } from '../../src/observability/log.ts';
import { XmlElement, XmlStreamParser, type XmlNode } from '../../src/xml/index.ts';
import { STREAM_HEADER } from '../xml-parser.ts';
import { dispatchBaseline, type DispatchKind } from './baseline.ts';
import type { MicroBench, Workload } from './harness.ts';

const HOST = 'example.test';
const PING = 'urn:xmpp:ping';

export interface CountingSession extends Session { count: number }

let nextId = 0;
function countingSession(jid: string, priority = 0): CountingSession {
  const j = Jid.parse(jid);
  return {
    id: `bench-${++nextId}`, kind: 'c2s', jid: j, host: j.domain, username: j.local, ip: '127.0.0.1',
    secure: true, marks: new Set(), available: true, priority, count: 0,
    send() { this.count++; },
    async close() {},
  };
}

/** Parse stanzas the way a connection gets them (jabber:client, resolved namespaces). */
function parseStanzas(xml: string[]): XmlElement[] {
  const out: XmlElement[] = [];
  const p = new XmlStreamParser({ streamStart() {}, stanza(el) { out.push(el); }, streamEnd() {}, error(e) { throw e; } });
  p.write(Buffer.from(STREAM_HEADER + xml.join('')));
  return out;
}

export interface RouterFixture {
  router: Router;
  registry: LocalSessionRegistry;
  /** The sender, alice@example.test/desk. */
  alice: CountingSession;
  /** bob@example.test/phone (priority 0) and bob@example.test/desk (priority 5). */
  bobPhone: CountingSession;
  bobDesk: CountingSession;
  /** 64 different stanzas of the kind, all to the same address. */
  stanzas: XmlElement[];
  /** The session every stanza of the kind ends up at. */
  receiver: CountingSession;
}

export function routerFixture(kind: DispatchKind): RouterFixture {
  const registry = new LocalSessionRegistry();
  const router = new Router({ log: silentLogger(), registry, isLocalHost: (d) => d === HOST });
  // What the ping module registers (an empty result), without the module loader around it.
  router.registerIq(HOST, 'get', 'host', PING, 'ping', () => undefined);
  const alice = countingSession(`alice@${HOST}/desk`);
  const bobPhone = countingSession(`bob@${HOST}/phone`, 0);
  const bobDesk = countingSession(`bob@${HOST}/desk`, 5);
  for (const s of [alice, bobPhone, bobDesk]) registry.add(s);
  const xml: string[] = [];
  for (let i = 0; i < 64; i++) {
    if (kind === 'iq') {
      xml.push(`<iq type='get' id='ping-${i}' to='${HOST}'><ping xmlns='${PING}'/></iq>`);
    } else {
      // Mixed case in the address: the localpart gets prepared like real input.
      const to = kind === 'full' ? `Bob@${HOST}/phone` : `Bob@${HOST}`;
      xml.push(`<message to='${to}' type='chat' id='m-${i}' xml:lang='en'><body>hello ${i}, see you at the usual place</body>` +
        `<active xmlns='http://jabber.org/protocol/chatstates'/><request xmlns='urn:xmpp:receipts'/></message>`);
    }
  }
  const receiver = kind === 'iq' ? alice : kind === 'full' ? bobPhone : bobDesk;
  return { router, registry, alice, bobPhone, bobDesk, stanzas: parseStanzas(xml), receiver };
}

/** `batch` stanzas per call through fromClient; throws unless each reached the receiver once. */
export function routerWorkload(f: RouterFixture, batch = 1000): Workload {
  const { router, alice, stanzas, receiver } = f;
  return {
    async run() {
      const before = receiver.count;
      for (let i = 0; i < batch; i++) await router.fromClient(alice, stanzas[i & 63]!);
      if (receiver.count - before !== batch) throw new Error(`router bench: delivered ${receiver.count - before} of ${batch}`);
      return batch;
    },
  };
}

const KINDS: readonly DispatchKind[] = ['bare', 'full', 'iq'];

let primed = false;
/**
 * Run every kind through the router and the baseline once per process before measuring any.
 * V8's type feedback is shared by all routers (and all baseline instances), so without this a
 * kind measured first would see monomorphic code and one measured later polymorphic code, and
 * the ratios would depend on which benchmarks ran before (measured: up to 25 %).
 */
export async function primeRouterPaths(): Promise<void> {
  if (primed) return;
  primed = true;
  for (let round = 0; round < 3; round++) {
    for (const kind of KINDS) {
      const s = routerWorkload(routerFixture(kind));
      const b = dispatchBaseline(kind);
      for (let i = 0; i < 5; i++) { await s.run(); await b.run(); }
    }
  }
}

const DESCRIPTIONS: Record<DispatchKind, [string, string]> = {
  bare: ['router.message.bare', 'chat message, local full JID -> other local bare JID (2 resources, highest priority)'],
  full: ['router.message.full', 'chat message, local full JID -> other local full JID'],
  iq: ['router.iq.host', 'IQ get (ping) to the server, answered by a registered handler'],
};

export function routerBench(kind: DispatchKind): MicroBench {
  const [name, description] = DESCRIPTIONS[kind];
  return {
    name,
    unit: 'stanzas',
    description,
    subject: async () => { await primeRouterPaths(); return routerWorkload(routerFixture(kind)); },
    baseline: async () => { await primeRouterPaths(); return dispatchBaseline(kind); },
  };
}

export function routerBenches(): MicroBench[] {
  return KINDS.map(routerBench);
}

interface JsonElement { name: string; ns: string; attrs: Record<string, string>; children: (JsonElement | string)[] }
function revive(o: JsonElement): XmlElement {
  const kids: XmlNode[] = o.children.map((c) => (typeof c === 'string' ? c : revive(c)));
  return new XmlElement(o.name, o.ns, o.attrs, kids);
}

/**
 * The guard's self-test: the same benchmark (same name, same recorded figure) with a wrapper
 * in front of the real router that deep-copies every stanza through JSON, as a careless
 * "defensive copy" would (3-6x slower). The guard must report it as a regression.
 */
export function slowedRouterBench(kind: DispatchKind): MicroBench {
  const normal = routerBench(kind);
  return {
    ...normal,
    description: `${normal.description} [SLOWED: JSON round trip per stanza]`,
    async subject() {
      await primeRouterPaths();
      const { router, alice, stanzas, receiver } = routerFixture(kind);
      return {
        async run() {
          const before = receiver.count;
          for (let i = 0; i < 1000; i++) {
            await router.fromClient(alice, revive(JSON.parse(JSON.stringify(stanzas[i & 63]!)) as JsonElement));
          }
          if (receiver.count - before !== 1000) throw new Error(`router bench: delivered ${receiver.count - before} of 1000`);
          return 1000;
        },
      };
    },
  };
}
