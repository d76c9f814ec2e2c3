// XEP-0049 Private XML Storage in process (real router, loader, hooks), on memory, SQLite and
// PostgreSQL storage.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { createModuleHarness, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { storageVariants } from '../../testing/storages.ts';
import privateStorage, { NS_PRIVATE, type PrivateDoc } from './index.ts';

const HOST = 'example.test';
const ALICE = `alice@${HOST}`;
const BOB = `bob@${HOST}`;
const defs = [privateStorage] as ModuleDefinition[];

let n = 0;
async function iq(h: ModuleHarness, s: FakeSession, type: 'get' | 'set', children: XmlElement[], to?: string): Promise<XmlElement> {
  s.take();
  const id = `i${++n}`;
  await h.router.fromClient(s, x('iq', { xmlns: NS.CLIENT, type, id, to }, x('query', { xmlns: NS_PRIVATE }, children)));
  const [reply] = s.take();
  assert.ok(reply, 'an answer');
  assert.equal(reply.attr('id'), id);
  return reply;
}
const condition = (el: XmlElement) => el.getChild('error')?.elements().find((c) => c.ns === NS.STANZAS)?.name;
const result = (el: XmlElement) => {
  assert.equal(el.attr('type'), 'result', `expected a result, got ${el.toString()}`);
  return el.getChild('query', NS_PRIVATE)?.elements() ?? [];
};

const prefs = () => x('exodus', { xmlns: 'exodus:prefs' },
  x('defaultnick', null, 'Hamlet'),
  x('note', { lang: 'en', weird: '<&>"\'\t' }, 'a & b < c ', x('deep', { xmlns: 'urn:other' }, x('deeper'))));

for (const variant of storageVariants(defs)) {
  describe(`private XML storage (${variant.name})`, { skip: variant.skip }, () => {
    async function setup(modules: Record<string, unknown> = {}) {
      const opened = await variant.open();
      const h = await createModuleHarness(defs, { hosts: [HOST], storage: opened.storage, modules });
      await h.addUser(ALICE);
      await h.addUser(BOB);
      const alice = await h.connect(`${ALICE}/desk`);
      return { h, alice, async stop() { await h.stop(); await opened.cleanup(); } };
    }

    test('set then get returns the stored XML exactly; nothing stored → the requested element back', async () => {
      const { h, alice, stop } = await setup();
      try {
        assert.deepEqual(result(await iq(h, alice, 'get', [x('exodus', { xmlns: 'exodus:prefs' })])).map(String), ['<exodus xmlns="exodus:prefs"/>']);
        const set = await iq(h, alice, 'set', [prefs()]);
        assert.deepEqual(result(set), []);
        assert.equal(set.children.length, 0, 'empty result (XEP-0049 §2.2)');
        const got = result(await iq(h, alice, 'get', [x('exodus', { xmlns: 'exodus:prefs' })]));
        assert.equal(got.length, 1);
        assert.equal(got[0]!.toString(), prefs().toString());
        // Prefixed names and xml:lang survive too.
        const prefixed = await iq(h, alice, 'set', [x('bm', { xmlns: 'storage:x', 'xmlns:p': 'urn:p', 'p:flag': '1', 'xml:lang': 'de' }, x('item', { 'p:id': '7' }))]);
        assert.equal(prefixed.attr('type'), 'result');
        const [bm] = result(await iq(h, alice, 'get', [x('bm', { xmlns: 'storage:x' })], ALICE));
        assert.equal(bm?.attr('p:flag'), '1');
        assert.equal(bm?.attr('xml:lang'), 'de');
        assert.equal(bm?.getChild('item', 'storage:x')?.attr('p:id'), '7');
        // The other namespace is untouched.
        assert.equal(result(await iq(h, alice, 'get', [x('exodus', { xmlns: 'exodus:prefs' })]))[0]!.toString(), prefs().toString());
      } finally {
        await stop();
      }
    });

    test('several elements per namespace, several namespaces per set, replace and remove', async () => {
      const { h, alice, stop } = await setup();
      try {
        await iq(h, alice, 'set', [
          x('a', { xmlns: 'urn:one', n: '1' }), x('b', { xmlns: 'urn:two' }, 'two'), x('a', { xmlns: 'urn:one', n: '2' }),
        ]);
        assert.deepEqual(result(await iq(h, alice, 'get', [x('a', { xmlns: 'urn:one' })])).map((e) => e.attr('n')), ['1', '2']);
        assert.equal(result(await iq(h, alice, 'get', [x('b', { xmlns: 'urn:two' })]))[0]!.text(), 'two');
        // A set replaces everything of that namespace.
        await iq(h, alice, 'set', [x('a', { xmlns: 'urn:one', n: '3' })]);
        assert.deepEqual(result(await iq(h, alice, 'get', [x('a', { xmlns: 'urn:one' })])).map((e) => e.attr('n')), ['3']);
        // An empty element clears it.
        await iq(h, alice, 'set', [x('a', { xmlns: 'urn:one' })]);
        assert.deepEqual(result(await iq(h, alice, 'get', [x('a', { xmlns: 'urn:one' })])).map(String), ['<a xmlns="urn:one"/>']);
        const doc = await h.storage.keyval<PrivateDoc>('private').get(HOST, 'alice');
        assert.deepEqual(Object.keys(doc ?? {}), ['urn:two']);
        await iq(h, alice, 'set', [x('b', { xmlns: 'urn:two' })]);
        assert.equal(await h.storage.keyval<PrivateDoc>('private').get(HOST, 'alice'), null, 'nothing left: no row');
      } finally {
        await stop();
      }
    });

    test('only the own account: another user’s or an unknown JID → forbidden; the server JID → service-unavailable', async () => {
      const { h, alice, stop } = await setup();
      try {
        const bob = await h.connect(`${BOB}/x`);
        await iq(h, bob, 'set', [x('s', { xmlns: 'urn:bob' }, 'bob’s')]);
        for (const type of ['get', 'set'] as const) {
          assert.equal(condition(await iq(h, alice, type, [x('s', { xmlns: 'urn:bob' })], BOB)), 'forbidden');
          assert.equal(condition(await iq(h, alice, type, [x('s', { xmlns: 'urn:bob' })], `nobody@${HOST}`)), 'forbidden');
          assert.equal(condition(await iq(h, alice, type, [x('s', { xmlns: 'urn:bob' })], HOST)), 'service-unavailable');
        }
        assert.equal(result(await iq(h, bob, 'get', [x('s', { xmlns: 'urn:bob' })]))[0]!.text(), 'bob’s', 'unchanged');
        assert.equal(result(await iq(h, alice, 'get', [x('s', { xmlns: 'urn:bob' })])).map(String).join(), '<s xmlns="urn:bob"/>', 'not shared');
      } finally {
        await stop();
      }
    });

    test('bad requests: no child, two namespaces in a get, reserved namespaces', async () => {
      const { h, alice, stop } = await setup();
      try {
        assert.equal(condition(await iq(h, alice, 'get', [])), 'not-acceptable');
        assert.equal(condition(await iq(h, alice, 'set', [])), 'not-acceptable');
        assert.equal(condition(await iq(h, alice, 'get', [x('a', { xmlns: 'urn:one' }), x('b', { xmlns: 'urn:two' })])), 'bad-request');
        for (const ns of ['jabber:iq:roster', 'jabber:x:data', 'http://jabber.org/protocol/disco#info', 'vcard-temp']) {
          assert.equal(condition(await iq(h, alice, 'set', [x('q', { xmlns: ns }, 'x')])), 'not-acceptable', ns);
          assert.equal(condition(await iq(h, alice, 'get', [x('q', { xmlns: ns })])), 'not-acceptable', ns);
        }
        // A child without its own namespace is in jabber:iq:private.
        assert.equal(condition(await iq(h, alice, 'set', [x('q', null, 'x')])), 'not-acceptable');
        // One bad element refuses the whole set.
        assert.equal(condition(await iq(h, alice, 'set', [x('ok', { xmlns: 'urn:ok' }, 'x'), x('q', { xmlns: 'jabber:iq:last' })])), 'not-acceptable');
        assert.equal(await h.storage.keyval<PrivateDoc>('private').get(HOST, 'alice'), null);
      } finally {
        await stop();
      }
    });

    test('the per-account size limit refuses a set and keeps what was stored', async () => {
      const { h, alice, stop } = await setup({ private: { maxBytes: 2048 } });
      try {
        await iq(h, alice, 'set', [x('a', { xmlns: 'urn:one' }, 'x'.repeat(1000))]);
        const big = await iq(h, alice, 'set', [x('b', { xmlns: 'urn:two' }, 'y'.repeat(1100))]);
        assert.equal(condition(big), 'not-acceptable');
        assert.equal(big.getChild('error')?.attr('type'), 'modify');
        assert.match(big.getChild('error')!.getChildText('text', NS.STANZAS)!, /2048 bytes/);
        assert.equal(result(await iq(h, alice, 'get', [x('a', { xmlns: 'urn:one' })]))[0]!.text().length, 1000);
        assert.equal(result(await iq(h, alice, 'get', [x('b', { xmlns: 'urn:two' })]))[0]!.text(), '');
        // Replacing within the limit works.
        await iq(h, alice, 'set', [x('a', { xmlns: 'urn:one' }, 'short')]);
        assert.equal(result(await iq(h, alice, 'set', [x('b', { xmlns: 'urn:two' }, 'y'.repeat(1100))])).length, 0);
      } finally {
        await stop();
      }
    });

    test('concurrent sets from two resources lose nothing; account deletion removes the data', async () => {
      const { h, alice, stop } = await setup();
      try {
        const phone = await h.connect(`${ALICE}/phone`);
        await Promise.all([
          ...[1, 2, 3, 4].map((i) => h.router.fromClient(alice, x('iq', { xmlns: NS.CLIENT, type: 'set', id: `d${i}` }, x('query', { xmlns: NS_PRIVATE }, x('e', { xmlns: `urn:desk:${i}` }, 'd'))))),
          ...[1, 2, 3, 4].map((i) => h.router.fromClient(phone, x('iq', { xmlns: NS.CLIENT, type: 'set', id: `p${i}` }, x('query', { xmlns: NS_PRIVATE }, x('e', { xmlns: `urn:phone:${i}` }, 'p'))))),
        ]);
        assert.ok([...alice.take(), ...phone.take()].every((r) => r.attr('type') === 'result'));
        const doc = await h.storage.keyval<PrivateDoc>('private').get(HOST, 'alice');
        assert.equal(Object.keys(doc ?? {}).length, 8);
        await h.storage.accounts.delete(HOST, 'alice');
        assert.equal(await h.storage.keyval<PrivateDoc>('private').get(HOST, 'alice'), null);
      } finally {
        await stop();
      }
    });
  });
}
