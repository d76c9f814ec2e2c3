// Property and fuzz tests of the router with every built-in module loaded (issue 5 item 3):
// random stanzas (valid, odd and malformed addresses, spoofed 'from', every stanza type and a few
// bogus ones, payloads of every module in plausible and hostile shapes) from three bound fake
// sessions, in random order. Properties, checked after every stanza:
//  - fromClient never throws, and nothing is logged at error level (a module that throws is
//    answered with internal-server-error and logged: that counts as a crash);
//  - an error is never answered with an error, an IQ result never with anything;
//  - every IQ get/set gets exactly one reply (result or error) with its id, unless it was routed
//    on to another session's full JID (then at most one: a refusal);
//  - 'from' is always stamped: whatever a session receives that another session sent carries that
//    session's full or bare JID, never a spoofed one; replies go to the real sender;
//  - nothing for one account lands at another account's session.
// Run longer: FUZZ_RUNS=100000 or FUZZ_SECONDS=600 (see test/security/fuzz.ts).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import fc from 'fast-check';
import { Router } from './router.ts';
import { LocalSessionRegistry } from '../sessions/registry.ts';
import { HookBus } from '../hooks.ts';
import { ModuleLoader, StreamFeatureRegistry } from '../modules/loader.ts';
import { DiscoRegistry } from '../modules/disco.ts';
import { ServiceRegistry } from '../modules/services.ts';
import { createAccountOps } from '../accounts.ts';
import { deriveCredentials } from '../auth/scram.ts';
import type { StoredCredentials } from '../auth/credentials.ts';
import { parseConfig } from '../../config/load.ts';
import { memoryStorage } from '../../storage/index.ts';
import { createLogger } from '../../observability/log.ts';
import { builtinModules } from '../../modules/index.ts';
import { fakeSession, type FakeSession } from '../../testing/modules.ts';
import { parseElement, type XmlElement } from '../../xml/index.ts';
import { Jid } from '../../jid/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { fuzzParams } from '../../../test/security/fuzz.ts';

const HOST = 'example.test';
const SPOOFS = ['romeo@example.test/orchard', 'example.test', 'mallory@evil.example/x', '', '@', 'juliet@example.test/balcony', 'juliet@example.test'];
const MALLORY = 'mallory@evil.example/x';

// --- a router with all modules, three sessions -----------------------------------------------

interface World {
  router: Router;
  sessions: FakeSession[];
  errors: string[];
  stop(): Promise<void>;
}

let creds: StoredCredentials | undefined;

async function world(): Promise<World> {
  creds ??= await deriveCredentials('pw', 1);
  const errors: string[] = [];
  const destination = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) errors.push(line);
      cb();
    },
  });
  const log = createLogger({ level: 'error', format: 'json', destination });
  const config = parseConfig({ hosts: [HOST], tls: { certificates: [] } }, '/tmp');
  const storage = memoryStorage();
  const registry = new LocalSessionRegistry();
  const hooks = new HookBus(log);
  const router = new Router({ log, registry, isLocalHost: (d) => d === HOST });
  const accounts = createAccountOps({ storage, registry, hooks, log, iterations: 1 });
  const loader = new ModuleLoader({
    config, log, storage, hooks, router, registry, disco: new DiscoRegistry(), services: new ServiceRegistry(), accounts,
    streamFeatures: new StreamFeatureRegistry(),
  });
  await loader.loadAll(builtinModules);
  for (const u of ['juliet', 'romeo']) {
    await storage.accounts.create(HOST, u, creds);
    await hooks.emit('user:created', { host: HOST, username: u });
  }
  const sessions: FakeSession[] = [];
  for (const jid of ['juliet@example.test/balcony', 'juliet@example.test/garden', 'romeo@example.test/orchard']) {
    const s = fakeSession(jid);
    s.close = async (err) => {
      if (s.closedWith !== undefined) return;
      s.closedWith = err?.condition ?? 'closed';
      registry.remove(s);
      await hooks.emit('session:closed', { session: s, reason: s.closedWith });
    };
    registry.add(s);
    await hooks.emit('session:bound', { session: s });
    sessions.push(s);
  }
  return {
    router, sessions, errors,
    async stop() {
      await loader.unloadAll();
      await storage.close();
    },
  };
}

// --- stanzas -----------------------------------------------------------------------------------

const TO = [
  'example.test', 'juliet@example.test', 'juliet@example.test/balcony', 'juliet@example.test/garden', 'romeo@example.test',
  'romeo@example.test/orchard', 'romeo@example.test/gone', 'nobody@example.test', 'nobody@example.test/x', 'remote.example',
  'someone@remote.example/r', 'JULIET@EXAMPLE.TEST/balcony', 'ｒｏｍｅｏ@example.test', 'example.test.', 'example.test/res',
  '@', '@example.test', 'juliet@', 'example.test/', 'a@b@c', '[::1', '', ' ', 'juliet@example.test/\u2028', `${'x'.repeat(1100)}@example.test`,
  'juliet@exa mple.test', 'xn--@example.test', '\u200d@example.test',
];
const IQ_PAYLOADS = [
  `<ping xmlns='urn:xmpp:ping'/>`,
  `<query xmlns='http://jabber.org/protocol/disco#info'/>`, `<query xmlns='http://jabber.org/protocol/disco#info' node='x#y'/>`,
  `<query xmlns='http://jabber.org/protocol/disco#items'/>`,
  `<query xmlns='jabber:iq:roster'/>`, `<query xmlns='jabber:iq:roster' ver=''/>`, `<query xmlns='jabber:iq:roster' ver='bogus'/>`,
  `<query xmlns='jabber:iq:roster'><item jid='romeo@example.test' name='Romeo'><group>Friends</group></item></query>`,
  `<query xmlns='jabber:iq:roster'><item jid='romeo@example.test' subscription='remove'/></query>`,
  `<query xmlns='jabber:iq:roster'><item jid='nobody@remote.example' subscription='both' ask='subscribe'/></query>`,
  `<query xmlns='jabber:iq:roster'><item jid='@'/></query>`, `<query xmlns='jabber:iq:roster'><item/></query>`,
  `<query xmlns='jabber:iq:roster'><item jid='a@example.test'/><item jid='b@example.test'/></query>`,
  `<query xmlns='jabber:iq:roster'><item jid='juliet@example.test'><group/><group>g</group><group>g</group></item></query>`,
  `<query xmlns='jabber:iq:private'><x xmlns='urn:fuzz'>data</x></query>`, `<query xmlns='jabber:iq:private'/>`,
  `<query xmlns='jabber:iq:private'><x xmlns='jabber:client'/></query>`, `<query xmlns='jabber:iq:private'><a xmlns='urn:a'/><b xmlns='urn:b'/></query>`,
  `<query xmlns='jabber:iq:private'><x xmlns='urn:fuzz'/></query>`,
  `<query xmlns='jabber:iq:version'/>`, `<time xmlns='urn:xmpp:time'/>`, `<query xmlns='jabber:iq:last'/>`,
  `<query xmlns='jabber:iq:register'/>`, `<query xmlns='jabber:iq:register'><username>juliet</username><password>new pass</password></query>`,
  `<query xmlns='jabber:iq:register'><password/></query>`, `<query xmlns='jabber:iq:register'><username>romeo</username><password>x</password></query>`,
  `<bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>r</resource></bind>`, `<session xmlns='urn:ietf:params:xml:ns:xmpp-session'/>`,
  `<vCard xmlns='vcard-temp'/>`, `<blocklist xmlns='urn:xmpp:blocking'/>`, `<query xmlns='urn:unknown'/>`, `<query/>`,
  `<query xmlns='jabber:iq:roster'><query xmlns='jabber:iq:roster'/></query>`,
];
const MESSAGE_PAYLOADS = [
  `<body>hi</body>`, `<body/>`, `<body xml:lang='de'>hallo</body><body>hi</body>`, `<subject>s</subject>`, `<thread>t1</thread>`,
  `<active xmlns='http://jabber.org/protocol/chatstates'/>`, `<request xmlns='urn:xmpp:receipts'/>`,
  `<delay xmlns='urn:xmpp:delay' stamp='2002-09-10T23:08:25Z'/>`, `<x xmlns='jabber:x:event'><offline/></x>`,
  `<no-store xmlns='urn:xmpp:hints'/>`, `<store xmlns='urn:xmpp:hints'/>`,
];
const PRESENCE_PAYLOADS = [
  `<show>away</show>`, `<show>bogus</show>`, `<status>here</status>`, `<priority>5</priority>`, `<priority>-1</priority>`,
  `<priority>-129</priority>`, `<priority>128</priority>`, `<priority>abc</priority>`, `<priority>99999999999999999999</priority>`,
  `<priority>1</priority><priority>2</priority>`,
  `<c xmlns='http://jabber.org/protocol/caps' hash='sha-1' node='http://x' ver='QgayPKawpkPSDYmwT/WM94uAlu0='/>`,
  `<c xmlns='http://jabber.org/protocol/caps' hash='md5' node='' ver=''/>`, `<c xmlns='http://jabber.org/protocol/caps'/>`,
  `<x xmlns='http://jabber.org/protocol/muc'/>`,
];
const ERROR_CHILD = `<error type='cancel'><item-not-found xmlns='urn:ietf:params:xml:ns:xmpp-stanzas'/></error>`;
const TYPES = {
  iq: ['get', 'set', 'result', 'error', 'get', 'set', 'bogus', ''],
  message: ['chat', 'normal', 'groupchat', 'headline', 'error', 'bogus'],
  presence: ['subscribe', 'subscribed', 'unsubscribe', 'unsubscribed', 'probe', 'unavailable', 'error', 'bogus', ''],
};

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/'/g, '&apos;');

interface Step { sender: number; xml: string; hasId: boolean }

const stepArb: fc.Arbitrary<Step> = fc.constantFrom('iq', 'message', 'presence').chain((kind) => {
  const payloads = kind === 'iq' ? IQ_PAYLOADS : kind === 'message' ? MESSAGE_PAYLOADS : PRESENCE_PAYLOADS;
  return fc.record({
    sender: fc.nat({ max: 2 }),
    to: fc.option(fc.constantFrom(...TO), { freq: 4 }),
    from: fc.option(fc.constantFrom(...SPOOFS), { freq: 2 }),
    type: fc.option(fc.constantFrom(...TYPES[kind]), { freq: kind === 'iq' ? 8 : 2 }),
    noId: fc.nat({ max: 15 }).map((n) => n === 0),
    kids: fc.array(fc.oneof({ weight: 6, arbitrary: fc.constantFrom(...payloads) }, { weight: 1, arbitrary: fc.constant(ERROR_CHILD) }), { maxLength: kind === 'iq' ? 2 : 3 }),
    lang: fc.option(fc.constantFrom('en', 'de', ''), { freq: 1 }),
  }).map((r) => {
    let a = '';
    if (r.to !== null) a += ` to='${esc(r.to)}'`;
    if (r.from !== null) a += ` from='${esc(r.from)}'`;
    if (r.type !== null) a += ` type='${r.type}'`;
    if (!r.noId) a += ` id='ID'`;
    if (r.lang !== null) a += ` xml:lang='${r.lang}'`;
    return { sender: r.sender, xml: `<${kind}${a}>${r.kids.join('')}</${kind}>`, hasId: !r.noId };
  });
});

// --- the property ------------------------------------------------------------------------------

/**
 * Bugs this test found that are outside the router (reported, with a { todo } regression test
 * below): their log lines are set aside so that the property keeps looking for other problems.
 */
const KNOWN: { what: string; matches(el: XmlElement, logLine: string): boolean }[] = [
  {
    what: "presence type='error' without 'to' from a client: the presence module hands it to ctx.send without 'to' (JidError, logged)",
    matches: (el, line) => el.name === 'presence' && el.attr('type') === 'error' && !el.attr('to') && line.includes('JidError'),
  },
];

const isReply = (el: XmlElement) => el.attr('type') === 'result' || el.attr('type') === 'error';
const condition = (el: XmlElement) => el.getChild('error')?.elements().find((e) => e.ns === NS.STANZAS && e.name !== 'text')?.name;

async function settle(): Promise<void> {
  for (let i = 0; i < 3; i++) await new Promise((r) => setImmediate(r));
}

test('fuzz: random stanzas through fromClient with every module loaded', async () => {
  await fc.assert(fc.asyncProperty(fc.array(stepArb, { minLength: 1, maxLength: 12 }), async (steps) => {
    const w = await world();
    try {
      const { router, sessions } = w;
      const senderOf = new Map<string, FakeSession>();
      let n = 0;
      // Everyone online first, most of the time (bare-JID delivery, presence broadcasts).
      for (const s of sessions) await router.fromClient(s, parseElement(`<presence xmlns='jabber:client'><priority>${s.jid.resource === 'garden' ? 1 : 0}</priority></presence>`));
      await settle();
      for (const s of sessions) s.take();
      for (const step of steps) {
        const a = sessions[step.sender]!;
        const id = `fz${++n}`;
        const el = parseElement(step.xml.replace("id='ID'", `id='${id}'`));
        senderOf.set(id, a);
        const before = sessions.map((s) => s.sent.length);
        await router.fromClient(a, el);
        await settle();
        const what = `${a.jid} sent ${step.xml.replace("id='ID'", `id='${id}'`)}`;
        const logged = w.errors.splice(0).filter((line) => !KNOWN.some((k) => k.matches(el, line)));
        assert.deepEqual(logged, [], `${what}: logged an error`);
        const fresh = sessions.map((s, i) => s.sent.slice(before[i]));
        const self = new Set([a.jid.toString(), a.jid.bare.toString()]);
        const type = el.attr('type');
        // Replies to this stanza (matched by id when it has one); not the stanza itself delivered
        // back to a sender that addressed its own full JID (same type, the sender's 'from').
        const delivered = (r: XmlElement) => r.attr('from') === a.jid.toString() && r.attr('type') === type;
        const replies = fresh[step.sender]!.filter((r) => isReply(r) && !delivered(r) && (!step.hasId || r.attr('id') === id));
        for (const [i, got] of fresh.entries()) {
          const t = sessions[i]!;
          for (const r of got) {
            const rid = r.attr('id') ?? '';
            assert.notEqual(condition(r), 'internal-server-error', `${what}: ${t.jid} got ${r}`);
            assert.notEqual(r.attr('from'), MALLORY, `${what}: ${t.jid} got a spoofed from: ${r}`);
            const to = r.attr('to');
            if (to !== undefined) {
              assert.ok(Jid.parse(to).bare.equals(t.jid.bare), `${what}: ${t.jid} got a stanza for ${to}: ${r}`);
            }
            const origin = senderOf.get(rid);
            if (origin !== undefined && origin !== t) {
              // Sent by another session: delivered as is, with the real sender stamped.
              const from = r.attr('from') ?? '';
              assert.ok(from === origin.jid.toString() || from === origin.jid.bare.toString(), `${what}: ${t.jid} got ${r}, sent by ${origin.jid}`);
            }
            if (origin === t && replies.includes(r)) {
              assert.equal(to, t.jid.toString(), `${what}: a reply not to the real sender: ${r}`);
            }
          }
        }
        if (type === 'error') assert.equal(replies.filter((r) => r.attr('type') === 'error').length, 0, `${what}: an error answered with ${replies[0]}`);
        if (el.name === 'iq' && (type === 'result' || type === 'error')) assert.equal(replies.length, 0, `${what}: answered with ${replies[0]}`);
        if (el.name === 'iq' && type !== 'result' && type !== 'error' && step.hasId) {
          const target = Jid.tryParse(el.attr('to') ?? '');
          const routedOn = target !== null && el.elements().length === 1 && (type === 'get' || type === 'set') && sessions.some((s) => s.jid.equals(target) && s.closedWith === undefined);
          if (routedOn) assert.ok(replies.length <= 1, `${what}: ${replies.length} replies`);
          else assert.equal(replies.length, 1, `${what}: ${replies.length} replies: ${replies.join(' ')}`);
        }
      }
    } finally {
      await w.stop();
    }
  }), fuzzParams(8001, 150));
});

// --- regressions found by the property above -----------------------------------------------------

test('regression: a presence of type error without \'to\' from a client is routed without a handler failure', async () => {
  const w = await world();
  try {
    await w.router.fromClient(w.sessions[0]!, parseElement(`<presence xmlns='jabber:client' type='error'/>`));
    await settle();
    assert.deepEqual(w.errors, []);
  } finally {
    await w.stop();
  }
});
