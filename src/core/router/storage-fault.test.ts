// The router's answer when a handler fails because storage is unavailable (disk full, database
// unreachable): <resource-constraint/> of type wait to the sender (RFC 6120 §8.3.3.18), for
// messages and IQs alike, and one warning per interval in the log however many fail.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Router, STORAGE_FAULT_LOG_INTERVAL_MS } from './router.ts';
import { LocalSessionRegistry } from '../sessions/registry.ts';
import type { Session } from '../sessions/session.ts';
import { Jid } from '../../jid/index.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { collectingLogger } from '../../testing/modules.ts';
import { StorageUnavailableError } from '../../storage/faults.ts';

const HOST = 'example.test';

function fakeSession(jid: string): Session & { sent: XmlElement[] } {
  const j = Jid.parse(jid);
  const sent: XmlElement[] = [];
  return {
    id: 'sess-1', kind: 'c2s', jid: j, host: j.domain, username: j.local, ip: '127.0.0.1', secure: true,
    marks: new Set<string>(), available: true, priority: 0, sent,
    send(el: XmlElement) { sent.push(el); },
    async close() {},
  } as unknown as Session & { sent: XmlElement[] };
}

test('a handler failing with StorageUnavailableError: resource-constraint/wait to the sender, the log rate-limited', async (t) => {
  t.mock.timers.enable({ apis: ['Date'], now: 1_000_000 });
  const { log, lines } = collectingLogger('trace');
  const registry = new LocalSessionRegistry();
  const router = new Router({ log, registry, isLocalHost: (d) => d === HOST });
  const alice = fakeSession('alice@example.test/desk');
  registry.add(alice);
  const full = () => new StorageUnavailableError('SQLITE_FULL', Object.assign(new Error('database or disk is full'), { code: 'SQLITE_FULL' }));
  router.registerStanza(HOST, 'message', 'bare', async () => { throw full(); });
  router.registerIq(HOST, 'set', 'account', 'jabber:iq:roster', 'query', async () => { throw full(); });

  const condition = (el: XmlElement) => {
    const e = el.getChild('error')!;
    return { type: e.attr('type'), condition: e.elements().find((c) => c.ns === NS.STANZAS && c.name !== 'text')?.name };
  };
  for (let i = 0; i < 5; i++) {
    await router.fromClient(alice, x('message', { xmlns: NS.CLIENT, to: 'bob@example.test', id: `m${i}`, type: 'chat' }, x('body', null, 'hi')));
  }
  await router.fromClient(alice, x('iq', { xmlns: NS.CLIENT, type: 'set', id: 'r1' }, x('query', { xmlns: 'jabber:iq:roster' })));
  assert.equal(alice.sent.length, 6);
  for (const el of alice.sent) {
    assert.equal(el.attr('type'), 'error');
    assert.deepEqual(condition(el), { type: 'wait', condition: 'resource-constraint' });
  }
  assert.deepEqual(alice.sent.map((el) => el.attr('id')), ['m0', 'm1', 'm2', 'm3', 'm4', 'r1']);

  const warnings = () => lines.filter((l) => l.msg === 'storage unavailable: stanzas answered with resource-constraint');
  assert.equal(warnings().length, 1, 'one line for six failures within the interval');
  assert.equal(warnings()[0]!.level, 'warn');
  assert.equal(warnings()[0]!.code, 'SQLITE_FULL');
  assert.ok(!JSON.stringify(lines).includes('<body>'), 'no message content in the log');
  assert.equal(lines.filter((l) => l.level === 'error').length, 0, 'not logged as an internal error');

  t.mock.timers.tick(STORAGE_FAULT_LOG_INTERVAL_MS);
  await router.fromClient(alice, x('message', { xmlns: NS.CLIENT, to: 'bob@example.test', id: 'm5', type: 'chat' }, x('body', null, 'hi')));
  assert.equal(warnings().length, 2, 'the next interval logs again');
  assert.equal(warnings()[1]!.bounced, 6, 'with the number bounced since the previous line');
});
