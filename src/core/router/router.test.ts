// Router unit tests: RFC 6120 §8 and §10 (stanza validation and server processing rules) and
// RFC 6121 §8 (delivery to local accounts). In process: fake sessions record what they get.
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { Router, ROUTED_IQ_TIMEOUT_MS, type IqContext, type RoutedStanza } from './router.ts';
import { LocalSessionRegistry } from '../sessions/registry.ts';
import type { Session } from '../sessions/session.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import { collectingLogger } from '../../testing/modules.ts';

const HOST = 'example.test';
const Q = 'urn:test:q';

let nextId = 0;
class FakeSession implements Session {
  readonly id = `sess-${++nextId}`;
  readonly kind = 'c2s' as const;
  readonly jid: Jid;
  readonly host: string;
  readonly username: string;
  readonly ip = '127.0.0.1';
  readonly secure = true;
  readonly marks = new Set<string>();
  readonly sent: XmlElement[] = [];
  available: boolean;
  priority: number;
  constructor(jid: string, opts: { available?: boolean; priority?: number } = {}) {
    this.jid = Jid.parse(jid);
    this.host = this.jid.domain;
    this.username = this.jid.local;
    this.available = opts.available ?? true;
    this.priority = opts.priority ?? 0;
  }
  send(el: XmlElement): void { this.sent.push(el); }
  async close(): Promise<void> {}
}

function setup(opts: { maxIqsInFlight?: number } = {}) {
  const { log, lines } = collectingLogger('trace');
  const registry = new LocalSessionRegistry();
  const router = new Router({ log, registry, isLocalHost: (d) => d === HOST, maxIqsInFlight: opts.maxIqsInFlight });
  const connect = (jid: string, opts?: { available?: boolean; priority?: number }) => {
    const s = new FakeSession(jid, opts);
    registry.add(s);
    return s;
  };
  const alice = connect('alice@example.test/desk');
  return { router, registry, connect, alice, lines };
}

const iq = (attrs: Record<string, string | undefined>, ...payload: XmlElement[]) => x('iq', { xmlns: NS.CLIENT, ...attrs }, ...payload);
const msg = (attrs: Record<string, string | undefined>) => x('message', { xmlns: NS.CLIENT, ...attrs }, x('body', null, 'hi'));
const pres = (attrs: Record<string, string | undefined>) => x('presence', { xmlns: NS.CLIENT, ...attrs });
const q = (attrs: Record<string, string> = {}) => x('query', { xmlns: Q, ...attrs });

/** The condition and type of an error stanza. */
function errorOf(el: XmlElement | undefined): { condition?: string; type?: string } {
  assert.ok(el, 'expected a stanza');
  assert.equal(el.attr('type'), 'error', `expected an error stanza, got ${el.toString()}`);
  const e = el.getChild('error');
  assert.ok(e, 'error stanza without <error/>');
  const cond = e.elements().find((c) => c.ns === NS.STANZAS && c.name !== 'text');
  return { condition: cond?.name, type: e.attr('type') };
}

describe('IQ validation (RFC 6120 §8.2.3)', () => {
  test('an IQ without id is answered with bad-request', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, iq({ type: 'get', to: HOST }, q()));
    assert.equal(alice.sent.length, 1);
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'bad-request', type: 'modify' });
  });

  test('a get with two payloads, or none, is answered with bad-request', async () => {
    const { router, alice } = setup();
    router.registerIq(HOST, 'get', 'host', Q, 'query', () => { throw new Error('must not run'); });
    await router.fromClient(alice, iq({ type: 'get', id: 'two', to: HOST }, q(), q()));
    await router.fromClient(alice, iq({ type: 'set', id: 'none', to: HOST }));
    assert.equal(alice.sent.length, 2);
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'bad-request', type: 'modify' });
    assert.equal(alice.sent[0]!.attr('id'), 'two');
    assert.deepEqual(errorOf(alice.sent[1]), { condition: 'bad-request', type: 'modify' });
    assert.equal(alice.sent[1]!.attr('id'), 'none');
  });

  test('an IQ with a missing or unknown type is answered with bad-request', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, iq({ id: 'a', to: HOST }, q()));
    await router.fromClient(alice, iq({ id: 'b', type: 'fetch', to: HOST }, q()));
    assert.equal(alice.sent.length, 2);
    for (const el of alice.sent) assert.equal(errorOf(el).condition, 'bad-request');
  });

  test('a result without payload is valid and not answered', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, iq({ type: 'result', id: 'r1', to: HOST }));
    assert.equal(alice.sent.length, 0);
  });
});

describe('IQ processing', () => {
  test('an IQ to the host is handled and the result goes back from the host with the same id', async () => {
    const { router, alice } = setup();
    let seen: IqContext | undefined;
    router.registerIq(HOST, 'get', 'host', Q, 'query', (ctx) => {
      seen = ctx;
      return x('query', { xmlns: Q }, x('item', { v: '1' }));
    });
    await router.fromClient(alice, iq({ type: 'get', id: 'q1', to: HOST }, q()));
    assert.ok(seen);
    assert.equal(seen.stanza.addressing, 'host');
    assert.equal(seen.stanza.from.toString(), 'alice@example.test/desk');
    assert.equal(seen.session, alice);
    assert.equal(seen.payload.name, 'query');
    assert.equal(seen.payload.ns, Q);
    assert.equal(alice.sent.length, 1);
    const r = alice.sent[0]!;
    assert.equal(r.name, 'iq');
    assert.equal(r.attr('type'), 'result');
    assert.equal(r.attr('id'), 'q1');
    assert.equal(r.attr('from'), HOST);
    assert.equal(r.attr('to'), 'alice@example.test/desk');
    assert.equal(r.getChild('query', Q)?.getChild('item')?.attr('v'), '1');
  });

  test('a handler returning undefined yields an empty result', async () => {
    const { router, alice } = setup();
    router.registerIq(HOST, 'set', 'host', Q, 'query', () => undefined);
    await router.fromClient(alice, iq({ type: 'set', id: 's1', to: HOST }, q()));
    assert.equal(alice.sent[0]!.attr('type'), 'result');
    assert.equal(alice.sent[0]!.elements().length, 0);
  });

  test('an async handler result is sent like a synchronous one', async () => {
    const { router, alice } = setup();
    router.registerIq(HOST, 'get', 'host', Q, 'query', async () => x('query', { xmlns: Q }, x('item', { v: 'a' })));
    await router.fromClient(alice, iq({ type: 'get', id: 'as1', to: 'Example.Test' }, q()));
    const r = alice.sent[0]!;
    assert.equal(r.toString(), `<iq type="result" id="as1" from="${HOST}" to="alice@example.test/desk"><query xmlns="${Q}"><item v="a"/></query></iq>`);
  });

  test('get and set handlers are distinct', async () => {
    const { router, alice } = setup();
    router.registerIq(HOST, 'get', 'host', Q, 'query', () => undefined);
    await router.fromClient(alice, iq({ type: 'set', id: 's1', to: HOST }, q()));
    assert.equal(errorOf(alice.sent[0]).condition, 'service-unavailable');
  });

  test('a registered key cannot be registered twice; the disposer frees it', () => {
    const { router } = setup();
    const off = router.registerIq(HOST, 'get', 'host', Q, 'query', () => undefined);
    assert.throws(() => router.registerIq(HOST, 'get', 'host', Q, 'query', () => undefined), /already registered/);
    off();
    router.registerIq(HOST, 'get', 'host', Q, 'query', () => undefined);
  });

  test('a handler throwing StanzaError yields that condition, type cancel, from the host', async () => {
    const { router, alice, lines } = setup();
    router.registerIq(HOST, 'get', 'host', Q, 'query', () => { throw new StanzaError('item-not-found'); });
    await router.fromClient(alice, iq({ type: 'get', id: 'e1', to: HOST }, q()));
    assert.equal(alice.sent.length, 1);
    const r = alice.sent[0]!;
    assert.deepEqual(errorOf(r), { condition: 'item-not-found', type: 'cancel' });
    assert.equal(r.attr('id'), 'e1');
    assert.equal(r.attr('from'), HOST);
    assert.equal(r.attr('to'), 'alice@example.test/desk');
    assert.equal(lines.filter((l) => l.level === 'error').length, 0, 'StanzaError is not an internal failure');
  });

  test('a StanzaError text is carried in the error', async () => {
    const { router, alice } = setup();
    router.registerIq(HOST, 'get', 'host', Q, 'query', async () => { throw new StanzaError('not-allowed', 'nope'); });
    await router.fromClient(alice, iq({ type: 'get', id: 'e2', to: HOST }, q()));
    const e = alice.sent[0]!.getChild('error')!;
    assert.equal(e.getChild('text', NS.STANZAS)?.text(), 'nope');
  });

  test('a handler throwing a plain Error yields internal-server-error and is logged with the session id', async () => {
    const { router, alice, lines } = setup();
    router.registerIq(HOST, 'get', 'host', Q, 'query', async () => { throw new Error('database on fire'); });
    await router.fromClient(alice, iq({ type: 'get', id: 'e3', to: HOST }, q()));
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'internal-server-error', type: 'cancel' });
    assert.equal(alice.sent[0]!.attr('id'), 'e3');
    assert.doesNotMatch(alice.sent[0]!.toString(), /database on fire/, 'internal details stay in the log');
    const logged = lines.filter((l) => l.level === 'error');
    assert.equal(logged.length, 1);
    assert.equal(logged[0]!.sid, alice.id);
    assert.match(JSON.stringify(logged[0]!.err), /database on fire/);
  });

  test('an unknown IQ is answered with service-unavailable', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, iq({ type: 'get', id: 'u1', to: HOST }, x('unknown', { xmlns: 'urn:nope' })));
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'service-unavailable', type: 'cancel' });
    assert.equal(alice.sent[0]!.attr('from'), HOST);
    assert.equal(alice.sent[0]!.attr('id'), 'u1');
  });

  test('handlers are per host', async () => {
    const { router, alice } = setup();
    router.registerIq('other.test', 'get', 'host', Q, 'query', () => undefined);
    await router.fromClient(alice, iq({ type: 'get', id: 'h1', to: HOST }, q()));
    assert.equal(errorOf(alice.sent[0]).condition, 'service-unavailable');
  });

  test('an IQ to a connected full JID is delivered, stamped with the sender full JID', async () => {
    const { router, alice, connect } = setup();
    const bob = connect('bob@example.test/phone');
    await router.fromClient(alice, iq({ type: 'get', id: 'f1', to: 'bob@example.test/phone', from: 'mallory@evil.test' }, q()));
    assert.equal(alice.sent.length, 0);
    assert.equal(bob.sent.length, 1);
    assert.equal(bob.sent[0]!.attr('from'), 'alice@example.test/desk', 'RFC 6120 §8.1.2.1: from is stamped');
    assert.equal(bob.sent[0]!.attr('id'), 'f1');
    assert.equal(bob.sent[0]!.attr('type'), 'get');
  });

  test('the response of the recipient client goes back to the requester', async () => {
    const { router, alice, connect } = setup();
    const bob = connect('bob@example.test/phone');
    await router.fromClient(bob, iq({ type: 'result', id: 'f1', to: 'alice@example.test/desk' }));
    assert.equal(alice.sent.length, 1);
    assert.equal(alice.sent[0]!.attr('from'), 'bob@example.test/phone');
  });

  test('an IQ request to an absent full JID is answered with service-unavailable (RFC 6121 §8.5.3.2.1)', async () => {
    const { router, alice, connect } = setup();
    connect('bob@example.test/phone');
    await router.fromClient(alice, iq({ type: 'get', id: 'f2', to: 'bob@example.test/laptop' }, q()));
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'service-unavailable', type: 'cancel' });
    assert.equal(alice.sent[0]!.attr('from'), 'bob@example.test/laptop');
    assert.equal(alice.sent[0]!.attr('id'), 'f2');
  });

  test('an IQ result to an absent full JID is dropped', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, iq({ type: 'result', id: 'f3', to: 'bob@example.test/laptop' }));
    assert.equal(alice.sent.length, 0);
  });

  test("no 'to': the IQ is handled on behalf of the sender's account (RFC 6120 §10.3.3)", async () => {
    const { router, alice } = setup();
    let seen: RoutedStanza | undefined;
    router.registerIq(HOST, 'get', 'host', Q, 'query', () => { throw new Error('host handler must not run'); });
    router.registerIq(HOST, 'get', 'account', Q, 'query', ({ stanza }) => { seen = stanza; return undefined; });
    await router.fromClient(alice, iq({ type: 'get', id: 'n1' }, q()));
    assert.ok(seen);
    assert.equal(seen.addressing, 'bare');
    assert.equal(seen.to.toString(), 'alice@example.test');
    assert.equal(alice.sent.length, 1);
    assert.equal(alice.sent[0]!.attr('type'), 'result');
    assert.equal(alice.sent[0]!.attr('id'), 'n1');
    assert.equal(alice.sent[0]!.attr('to'), 'alice@example.test/desk');
    // RFC 6120 §8.1.2.1: no 'from', or the account's bare JID
    assert.ok([undefined, 'alice@example.test'].includes(alice.sent[0]!.attr('from')));
  });

  test("no 'to' and no account handler: service-unavailable", async () => {
    const { router, alice } = setup();
    router.registerIq(HOST, 'get', 'host', Q, 'query', () => undefined);
    await router.fromClient(alice, iq({ type: 'get', id: 'n2' }, q()));
    assert.equal(errorOf(alice.sent[0]).condition, 'service-unavailable');
    assert.equal(alice.sent[0]!.attr('id'), 'n2');
  });

  test("an IQ to another local account's bare JID uses the account handler; the reply comes from that JID", async () => {
    const { router, alice } = setup();
    router.registerIq(HOST, 'get', 'account', Q, 'query', ({ stanza }) => x('query', { xmlns: Q, owner: stanza.to.toString() }));
    await router.fromClient(alice, iq({ type: 'get', id: 'b1', to: 'Bob@Example.Test' }, q()));
    const r = alice.sent[0]!;
    assert.equal(r.attr('type'), 'result');
    assert.equal(r.attr('from'), 'bob@example.test');
    assert.equal(r.getChild('query', Q)?.attr('owner'), 'bob@example.test');
  });
});

describe('addressing errors', () => {
  test("a malformed 'to' is answered with jid-malformed (RFC 6120 §8.3.3.8)", async () => {
    const { router, alice } = setup();
    router.registerIq(HOST, 'get', 'host', Q, 'query', () => undefined);
    await router.fromClient(alice, iq({ type: 'get', id: 'm1', to: 'bob@example.test/' }, q()));
    await router.fromClient(alice, msg({ type: 'chat', id: 'm2', to: '@example.test' }));
    assert.equal(alice.sent.length, 2);
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'jid-malformed', type: 'modify' });
    assert.equal(alice.sent[0]!.attr('id'), 'm1');
    assert.equal(alice.sent[0]!.attr('to'), 'alice@example.test/desk');
    assert.deepEqual(errorOf(alice.sent[1]), { condition: 'jid-malformed', type: 'modify' });
  });

  test('a remote domain is answered with remote-server-not-found', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, msg({ type: 'chat', id: 'r1', to: 'romeo@montague.example' }));
    await router.fromClient(alice, iq({ type: 'get', id: 'r2', to: 'montague.example' }, q()));
    assert.equal(alice.sent.length, 2);
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'remote-server-not-found', type: 'cancel' });
    assert.equal(alice.sent[0]!.attr('from'), 'romeo@montague.example');
    assert.equal(alice.sent[0]!.getChildText('body'), 'hi', 'the original payload is kept (RFC 6120 §8.3.1)');
    assert.deepEqual(errorOf(alice.sent[1]), { condition: 'remote-server-not-found', type: 'cancel' });
    assert.equal(alice.sent[1]!.attr('id'), 'r2');
  });
});

describe('error stanzas are never answered (no loops)', () => {
  test('errors and IQ results to unknown or unreachable places are dropped', async () => {
    const { router, alice } = setup();
    const err = x('error', { type: 'cancel' }, x('service-unavailable', { xmlns: NS.STANZAS }));
    await router.fromClient(alice, iq({ type: 'error', id: 'x1', to: HOST }, q(), err));
    await router.fromClient(alice, iq({ type: 'error', id: 'x2', to: 'bob@example.test/nowhere' }, err));
    await router.fromClient(alice, iq({ type: 'error', id: 'x3', to: 'romeo@montague.example' }, err));
    await router.fromClient(alice, iq({ type: 'result', id: 'x4', to: 'romeo@montague.example' }));
    await router.fromClient(alice, iq({ type: 'error', to: HOST }, err)); // no id: still an error
    await router.fromClient(alice, iq({ type: 'error', id: 'x5', to: 'bad@example.test/' }, err));
    await router.fromClient(alice, msg({ type: 'error', to: HOST }));
    await router.fromClient(alice, msg({ type: 'error', to: 'bob@example.test' }));
    await router.fromClient(alice, msg({ type: 'error', to: 'bob@example.test/nowhere' }));
    await router.fromClient(alice, msg({ type: 'error', to: 'romeo@montague.example' }));
    assert.deepEqual(alice.sent.map(String), []);
  });

  test('a message handler throwing on an error stanza does not produce an error reply', async () => {
    const { router, alice } = setup();
    router.registerStanza(HOST, 'message', 'host', () => { throw new StanzaError('forbidden'); });
    await router.fromClient(alice, msg({ type: 'error', to: HOST }));
    assert.equal(alice.sent.length, 0);
    await router.fromClient(alice, msg({ type: 'chat', to: HOST }));
    assert.equal(errorOf(alice.sent[0]).condition, 'forbidden');
  });
});

describe('messages to a bare JID (RFC 6121 §8.5.2)', () => {
  test('delivered to the available resources with the highest non-negative priority only', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 5 });
    const b = connect('bob@example.test/b', { priority: 1 });
    const c = connect('bob@example.test/c', { priority: 5 });
    const d = connect('bob@example.test/d', { priority: 10, available: false });
    const e = connect('bob@example.test/e', { priority: -1 });
    for (const type of ['chat', 'normal']) {
      await router.fromClient(alice, msg({ type, id: type, to: 'bob@example.test' }));
    }
    await router.fromClient(alice, x('message', { xmlns: NS.CLIENT, to: 'bob@example.test' }, x('body', null, 'no type')));
    assert.equal(a.sent.length, 3);
    assert.equal(c.sent.length, 3);
    assert.equal(b.sent.length, 0);
    assert.equal(d.sent.length, 0, 'unavailable resources get nothing');
    assert.equal(e.sent.length, 0, 'negative priority never gets bare-JID messages');
    assert.equal(alice.sent.length, 0);
    // RFC 6121 §8.5.2.1.1: the 'to' is not rewritten to a full JID
    assert.equal(a.sent[0]!.attr('to'), 'bob@example.test');
    assert.equal(a.sent[0]!.attr('from'), 'alice@example.test/desk');
  });

  test('a priority of 0 is non-negative', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 0 });
    connect('bob@example.test/b', { priority: -5 });
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    assert.equal(a.sent.length, 1);
  });

  test('only negative-priority resources: service-unavailable back to the sender', async () => {
    const { router, alice, connect } = setup();
    const neg = connect('bob@example.test/a', { priority: -1 });
    await router.fromClient(alice, msg({ type: 'chat', id: 'n1', to: 'bob@example.test' }));
    assert.equal(neg.sent.length, 0);
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'service-unavailable', type: 'cancel' });
    assert.equal(alice.sent[0]!.attr('from'), 'bob@example.test');
    assert.equal(alice.sent[0]!.attr('id'), 'n1');
  });

  test('no available resource: service-unavailable back to the sender', async () => {
    const { router, alice, connect } = setup();
    const off = connect('bob@example.test/a', { priority: 3, available: false });
    await router.fromClient(alice, msg({ type: 'normal', to: 'bob@example.test' }));
    await router.fromClient(alice, msg({ type: 'chat', to: 'nobody@example.test' }));
    assert.equal(off.sent.length, 0);
    assert.equal(alice.sent.length, 2);
    assert.equal(errorOf(alice.sent[0]).condition, 'service-unavailable');
    assert.equal(errorOf(alice.sent[1]).condition, 'service-unavailable');
  });

  test('headline: all non-negative resources; silently dropped when there are none', async () => {
    const { router, alice, connect } = setup();
    await router.fromClient(alice, msg({ type: 'headline', to: 'bob@example.test' }));
    assert.equal(alice.sent.length, 0);
    const a = connect('bob@example.test/a', { priority: 5 });
    const b = connect('bob@example.test/b', { priority: 0 });
    const neg = connect('bob@example.test/c', { priority: -2 });
    await router.fromClient(alice, msg({ type: 'headline', to: 'bob@example.test' }));
    assert.equal(a.sent.length, 1);
    assert.equal(b.sent.length, 1);
    assert.equal(neg.sent.length, 0);
    assert.equal(alice.sent.length, 0);
  });

  test('groupchat to a bare JID is never delivered: service-unavailable', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 5 });
    await router.fromClient(alice, msg({ type: 'groupchat', to: 'bob@example.test' }));
    assert.equal(a.sent.length, 0);
    assert.equal(errorOf(alice.sent[0]).condition, 'service-unavailable');
  });

  test('an error message to a bare JID is silently ignored even with available resources', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 5 });
    await router.fromClient(alice, msg({ type: 'error', to: 'bob@example.test' }));
    assert.equal(a.sent.length, 0);
    assert.equal(alice.sent.length, 0);
  });

  test("a message without 'to' goes to the sender's own account", async () => {
    const { router, alice, connect } = setup();
    const other = connect('alice@example.test/phone', { priority: 1 });
    await router.fromClient(alice, msg({ type: 'chat' }));
    assert.equal(other.sent.length, 1);
  });
});

describe('messages to a full JID (RFC 6121 §8.5.3)', () => {
  test('a connected resource gets it, whatever its priority', async () => {
    const { router, alice, connect } = setup();
    const neg = connect('bob@example.test/a', { priority: -1 });
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test/a' }));
    assert.equal(neg.sent.length, 1);
    assert.equal(neg.sent[0]!.attr('to'), 'bob@example.test/a');
  });

  test('groupchat to an absent full JID: service-unavailable', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 1 });
    await router.fromClient(alice, msg({ type: 'groupchat', id: 'g1', to: 'bob@example.test/gone' }));
    assert.equal(a.sent.length, 0);
    assert.deepEqual(errorOf(alice.sent[0]), { condition: 'service-unavailable', type: 'cancel' });
    assert.equal(alice.sent[0]!.attr('from'), 'bob@example.test/gone');
  });

  test('headline to an absent full JID: silently dropped', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 1 });
    await router.fromClient(alice, msg({ type: 'headline', to: 'bob@example.test/gone' }));
    assert.equal(a.sent.length, 0);
    assert.equal(alice.sent.length, 0);
  });

  test('chat or normal to an absent resource is treated as addressed to the bare JID', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 1 });
    const b = connect('bob@example.test/b', { priority: 0 });
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test/gone' }));
    await router.fromClient(alice, msg({ type: 'normal', to: 'bob@example.test/gone' }));
    assert.equal(a.sent.length, 2);
    assert.equal(b.sent.length, 0);
    assert.equal(alice.sent.length, 0);
  });

  test('chat to an absent resource of an account with nothing available: service-unavailable', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test/gone' }));
    assert.equal(errorOf(alice.sent[0]).condition, 'service-unavailable');
  });
});

describe('messages to the host and stanza handlers', () => {
  test('a message to the host with no handler is answered with service-unavailable', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, msg({ type: 'chat', to: HOST }));
    assert.equal(errorOf(alice.sent[0]).condition, 'service-unavailable');
  });

  test('handlers run by priority; one returning true consumes the stanza', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 1 });
    const ran: string[] = [];
    router.registerStanza(HOST, 'message', 'bare', () => { ran.push('low'); return true; }, -10);
    router.registerStanza(HOST, 'message', 'bare', () => { ran.push('high'); return false; }, 10);
    router.registerStanza(HOST, 'message', 'bare', () => { ran.push('default-1'); return false; });
    router.registerStanza(HOST, 'message', 'bare', () => { ran.push('default-2'); return false; });
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    assert.deepEqual(ran, ['high', 'default-1', 'default-2', 'low']);
    assert.equal(a.sent.length, 0, 'consumed: no default delivery');
  });

  test('handlers returning false fall through to default delivery; disposers remove them', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 1 });
    let n = 0;
    const off = router.registerStanza(HOST, 'message', 'bare', () => { n++; return true; });
    router.registerStanza(HOST, 'message', 'bare', () => false, 5);
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    off();
    off();
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    assert.equal(n, 1);
    assert.equal(a.sent.length, 1);
  });

  test('sync and async handlers run in priority order; an async one can consume or reject', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 1 });
    const ran: string[] = [];
    let consume = false;
    let fail = false;
    router.registerStanza(HOST, 'message', 'bare', () => { ran.push('sync-high'); return false; }, 10);
    router.registerStanza(HOST, 'message', 'bare', async () => {
      ran.push('async');
      if (fail) throw new StanzaError('forbidden');
      return consume;
    }, 5);
    router.registerStanza(HOST, 'message', 'bare', () => { ran.push('sync-low'); return false; }, 0);
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    assert.deepEqual(ran, ['sync-high', 'async', 'sync-low']);
    assert.equal(a.sent.length, 1, 'none consumed: default delivery');
    ran.length = 0;
    consume = true;
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    assert.deepEqual(ran, ['sync-high', 'async']);
    assert.equal(a.sent.length, 1, 'consumed by the async handler');
    fail = true;
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    assert.equal(errorOf(alice.sent[0]).condition, 'forbidden');
    assert.equal(a.sent.length, 1);
  });

  test('handlers added or removed during dispatch take effect from the next stanza', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a', { priority: 1 });
    const ran: string[] = [];
    let offLater: (() => void) | undefined;
    const offFirst = router.registerStanza(HOST, 'message', 'bare', () => {
      ran.push('first');
      offFirst(); // removes itself
      offLater?.(); // and the one after it, which still runs for this stanza
      router.registerStanza(HOST, 'message', 'bare', () => { ran.push('added'); return false; }, 100);
      return false;
    }, 10);
    offLater = router.registerStanza(HOST, 'message', 'bare', () => { ran.push('later'); return false; }, 5);
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    assert.deepEqual(ran, ['first', 'later']);
    await router.fromClient(alice, msg({ type: 'chat', to: 'bob@example.test' }));
    assert.deepEqual(ran, ['first', 'later', 'added']);
    assert.equal(a.sent.length, 2);
  });

  test('a message handler throwing a plain Error: internal-server-error', async () => {
    const { router, alice, lines } = setup();
    router.registerStanza(HOST, 'message', 'host', () => { throw new Error('boom'); });
    await router.fromClient(alice, msg({ type: 'chat', to: HOST }));
    assert.equal(errorOf(alice.sent[0]).condition, 'internal-server-error');
    assert.equal(lines.filter((l) => l.level === 'error').length, 1);
  });
});

describe('presence', () => {
  test('presence to a full JID is delivered', async () => {
    const { router, alice, connect } = setup();
    const a = connect('bob@example.test/a');
    await router.fromClient(alice, pres({ to: 'bob@example.test/a' }));
    assert.equal(a.sent.length, 1);
    assert.equal(a.sent[0]!.name, 'presence');
    assert.equal(a.sent[0]!.attr('from'), 'alice@example.test/desk');
  });

  test('presence to an absent full JID or a remote domain is not answered with an error', async () => {
    const { router, alice } = setup();
    await router.fromClient(alice, pres({ to: 'bob@example.test/gone' }));
    await router.fromClient(alice, pres({ to: 'romeo@montague.example/x' }));
    await router.fromClient(alice, pres({ type: 'unavailable', to: 'romeo@montague.example' }));
    assert.equal(alice.sent.length, 0);
  });

  test('presence handlers see bare-JID presence', async () => {
    const { router, alice } = setup();
    const seen: RoutedStanza[] = [];
    router.registerStanza(HOST, 'presence', 'bare', (s) => { seen.push(s); return true; });
    await router.fromClient(alice, pres({}));
    await router.fromClient(alice, pres({ type: 'subscribe', to: 'bob@example.test' }));
    assert.equal(seen.length, 2);
    assert.equal(seen[0]!.type, 'available');
    assert.equal(seen[0]!.to.toString(), 'alice@example.test');
    assert.equal(seen[1]!.type, 'subscribe');
  });
});

describe('server-originated stanzas (router.send)', () => {
  test('a message from the host to a full JID is delivered', async () => {
    const { router, alice } = setup();
    await router.send(x('message', { xmlns: NS.CLIENT, from: HOST, to: 'alice@example.test/desk', type: 'headline' }));
    assert.equal(alice.sent.length, 1);
    assert.equal(alice.sent[0]!.attr('from'), HOST);
  });
});

test('a server-originated IQ get without payload is answered with bad-request, not a crash', async () => {
  const { router, connect } = setup();
  const bob = connect('bob@example.test/phone');
  await router.send(x('iq', { xmlns: NS.CLIENT, type: 'get', id: 'np', from: 'bob@example.test/phone', to: HOST }));
  assert.deepEqual(errorOf(bob.sent[0]), { condition: 'bad-request', type: 'modify' });
});

describe('IQs in flight per session (limits.maxIqsInFlight)', () => {
  const LIMIT = 4;
  const req = (id: string, to = 'bob@example.test/phone') => iq({ type: 'get', id, to }, q());

  test('requests to another session beyond the limit get resource-constraint (wait) at once, logged once per burst', async () => {
    const { router, connect, alice, lines } = setup({ maxIqsInFlight: LIMIT });
    const bob = connect('bob@example.test/phone');
    for (let i = 0; i < LIMIT + 3; i++) await router.fromClient(alice, req(`r${i}`));
    assert.equal(bob.sent.length, LIMIT, 'only the first LIMIT reach the other session');
    const errors = alice.sent.splice(0);
    assert.equal(errors.length, 3);
    for (const [i, e] of errors.entries()) {
      assert.equal(e.attr('id'), `r${LIMIT + i}`);
      assert.deepEqual(errorOf(e), { condition: 'resource-constraint', type: 'wait' });
      assert.equal(e.attr('from'), 'bob@example.test/phone');
    }
    const warned = () => lines.filter((l) => l.msg === 'IQs in flight limit reached: refusing requests');
    assert.equal(warned().length, 1, 'one log line for the burst');
    assert.equal(warned()[0]!.sid, alice.id);

    // An answer (result or error) frees a place; the next burst is logged again.
    await router.fromClient(bob, iq({ type: 'result', id: 'r0', to: 'alice@example.test/desk' }));
    await router.fromClient(bob, iq({ type: 'error', id: 'r1', to: 'alice@example.test/desk' }, x('error', { type: 'cancel' })));
    assert.equal(alice.sent.splice(0).length, 2, 'the answers reach alice');
    await router.fromClient(alice, req('s1'));
    await router.fromClient(alice, req('s2'));
    assert.equal(bob.sent.length, LIMIT + 2);
    assert.deepEqual(alice.sent, []);
    await router.fromClient(alice, req('s3'));
    assert.deepEqual(errorOf(alice.sent.pop()), { condition: 'resource-constraint', type: 'wait' });
    assert.equal(warned().length, 2);
  });

  test('only answers from the asked session count; other traffic is not limited', async () => {
    const { router, connect, alice } = setup({ maxIqsInFlight: 2 });
    const bob = connect('bob@example.test/phone');
    const carol = connect('carol@example.test/pc');
    await router.fromClient(alice, req('a'));
    await router.fromClient(alice, req('b'));
    // carol answering 'a' (she was not asked) frees nothing.
    await router.fromClient(carol, iq({ type: 'result', id: 'a', to: 'alice@example.test/desk' }));
    alice.sent.length = 0;
    await router.fromClient(alice, req('c'));
    assert.deepEqual(errorOf(alice.sent.pop()), { condition: 'resource-constraint', type: 'wait' });
    // The same id asked twice needs two answers.
    const { router: r2, connect: c2, alice: a2 } = setup({ maxIqsInFlight: 2 });
    const b2 = c2('bob@example.test/phone');
    await r2.fromClient(a2, req('same'));
    await r2.fromClient(a2, req('same'));
    await r2.fromClient(b2, iq({ type: 'result', id: 'same', to: 'alice@example.test/desk' }));
    a2.sent.length = 0;
    await r2.fromClient(a2, req('next'));
    assert.deepEqual(a2.sent, [], 'one answered: one place free');
    await r2.fromClient(a2, req('next2'));
    assert.deepEqual(errorOf(a2.sent.pop()), { condition: 'resource-constraint', type: 'wait' });
    // Requests the server handles, messages and requests to absent resources are not counted.
    router.registerIq(HOST, 'get', 'host', Q, 'query', () => undefined);
    for (let i = 0; i < 5; i++) await router.fromClient(alice, iq({ type: 'get', id: `h${i}`, to: HOST }, q()));
    assert.ok(alice.sent.splice(0).every((e) => e.attr('type') === 'result'));
    for (let i = 0; i < 5; i++) await router.fromClient(alice, msg({ to: 'bob@example.test/phone', type: 'chat' }));
    assert.deepEqual(alice.sent, []);
    assert.equal(bob.sent.filter((e) => e.name === 'message').length, 5);
  });

  test('requests to a session that has gone, or unanswered for too long, stop counting', async (t) => {
    const { router, registry, connect, alice } = setup({ maxIqsInFlight: 2 });
    const bob = connect('bob@example.test/phone');
    const carol = connect('carol@example.test/pc');
    await router.fromClient(alice, req('a'));
    await router.fromClient(alice, req('b'));
    registry.remove(bob);
    alice.sent.length = 0;
    await router.fromClient(alice, req('c', 'carol@example.test/pc'));
    assert.deepEqual(alice.sent, [], 'bob is gone: his two no longer count');
    assert.equal(carol.sent.length, 1);

    t.mock.timers.enable({ apis: ['Date'], now: Date.now() });
    await router.fromClient(alice, req('d', 'carol@example.test/pc'));
    await router.fromClient(alice, req('e', 'carol@example.test/pc'));
    assert.deepEqual(errorOf(alice.sent.pop()), { condition: 'resource-constraint', type: 'wait' });
    t.mock.timers.tick(ROUTED_IQ_TIMEOUT_MS + 1);
    await router.fromClient(alice, req('f', 'carol@example.test/pc'));
    assert.deepEqual(alice.sent, [], 'unanswered past the timeout: forgotten');
    assert.equal(carol.sent.length, 3);
  });
});
