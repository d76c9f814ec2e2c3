// XEP-0077 account self-service in process: the real router, loader and AccountOps over memory,
// SQLite and PostgreSQL storage, with fake sessions. PostgreSQL: a fresh schema per run
// (freshPgSchema); AMSEL_TEST_PG=off skips those, visibly.
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import account, { NS_REGISTER } from './index.ts';
import { defineModule } from '../../core/modules/define.ts';
import disco from '../disco/index.ts';
import { createModuleHarness, fakeSession, type FakeSession, type ModuleHarness } from '../../testing/modules.ts';
import { freshPgSchema } from '../../testing/index.ts';
import { ModuleConfigError } from '../../core/modules/loader.ts';
import { deriveScramCredential } from '../../core/auth/scram.ts';
import { SCRAM_HASHES } from '../../core/auth/scram.ts';
import { memoryStorage, openStorage, type Storage } from '../../storage/index.ts';
import { moduleStorageOptions } from '../storage-options.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import type { StreamError } from '../../xmpp/errors.ts';

const HOST = 'example.test';
const ALICE = `alice@${HOST}`;
const OLD = 'old password';
const NEW = 'new password';

/** Does the stored SCRAM credential (both hashes) match this password? */
async function passwordIs(storage: Storage, username: string, password: string): Promise<boolean> {
  const rec = await storage.accounts.get(HOST, username);
  assert.ok(rec, `${username} exists`);
  for (const hash of SCRAM_HASHES) {
    const stored = rec.credentials[hash];
    const again = await deriveScramCredential(password, hash, stored.iterations, Buffer.from(stored.salt, 'base64'));
    if (again.storedKey !== stored.storedKey || again.serverKey !== stored.serverKey) return false;
  }
  return true;
}

let nextId = 0;
function iq(type: 'get' | 'set', payload: XmlElement, to?: string): XmlElement {
  return x('iq', { type, id: `a${++nextId}`, to }, payload);
}
const query = (...children: (XmlElement | null)[]) => x('query', { xmlns: NS_REGISTER }, ...children);
const change = (username: string | null, password: string | null) =>
  query(username === null ? null : x('username', null, username), password === null ? null : x('password', null, password));

/** The reply to the last request, from what the session was sent. */
function reply(s: FakeSession, id?: string): XmlElement {
  const all = s.take().filter((e) => e.name === 'iq' && (id === undefined || e.attr('id') === id));
  assert.ok(all.length > 0, 'a reply was sent');
  return all[0]!;
}
const condition = (el: XmlElement) => el.getChild('error')?.elements()[0]?.name;

async function send(h: ModuleHarness, s: FakeSession, el: XmlElement): Promise<XmlElement> {
  await h.router.fromClient(s, el);
  return reply(s, el.attr('id'));
}

/** Like the last module (XEP-0012): writes a row for the account when its session closes. */
const lateWriter = defineModule({
  name: 'late-writer',
  defaultEnabled: true,
  setup(ctx) {
    ctx.on('session:closed', async ({ session }) => {
      await ctx.storage.keyval<{ at: number }>('test-last').set(ctx.host, session.username, { at: Date.now() });
    });
  },
});

// --- storages ---------------------------------------------------------------------------

interface Backend { name: string; open(): Promise<{ storage: Storage; done(): Promise<void> }>; skip?: string }
const backends: Backend[] = [
  { name: 'memory', async open() { return { storage: memoryStorage(), done: async () => {} }; } },
  {
    name: 'sqlite',
    async open() {
      const dir = await mkdtemp(path.join(os.tmpdir(), 'amsel-account-'));
      const storage = await openStorage({ type: 'sqlite', path: path.join(dir, 'amsel.db') }, moduleStorageOptions([account]));
      return { storage, done: () => rm(dir, { recursive: true, force: true }) };
    },
  },
  {
    name: 'postgres',
    skip: process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined,
    async open() {
      const pg = await freshPgSchema();
      const storage = await openStorage({ type: 'postgres', url: pg.url, poolSize: 2 }, moduleStorageOptions([account]));
      return { storage, done: () => pg.drop() };
    },
  },
];

for (const backend of backends) {
  describe(`account self-service on ${backend.name} storage`, { skip: backend.skip }, () => {
    let h: ModuleHarness;
    let done: () => Promise<void>;
    const open = async (modules: Record<string, unknown> = {}) => {
      const o = await backend.open();
      done = o.done;
      h = await createModuleHarness([disco, lateWriter, account], { hosts: [HOST], storage: o.storage, modules });
      await h.addUser(ALICE, OLD);
      await h.addUser(`bob@${HOST}`, 'bob password');
    };
    const close = async () => {
      await h.stop(); // closes the storage
      await done();
    };

    describe('with the defaults', () => {
      before(() => open());
      after(() => close());

      test('§3.1: an authenticated user is <registered/> and sees the username, never a password', async () => {
        const a = await h.connect(`${ALICE}/laptop`);
        for (const to of [undefined, HOST, ALICE]) {
          const r = await send(h, a, iq('get', query(), to));
          assert.equal(r.attr('type'), 'result', `to=${to}`);
          const q = r.getChild('query', NS_REGISTER)!;
          assert.ok(q.getChild('registered'), 'registered');
          assert.equal(q.getChildText('username'), 'alice');
          assert.equal(q.getChildText('password'), '');
          assert.match(q.getChildText('instructions') ?? '', /password/);
        }
        await h.disconnect(a);
      });

      test('§3.3: the password is replaced (new SCRAM keys); the other sessions get <reset/>, the changing one stays', async () => {
        const a = await h.connect(`${ALICE}/laptop`);
        const other = await h.connect(`${ALICE}/phone`);
        const bob = await h.connect(`bob@${HOST}/pc`);
        const before = (await h.storage.accounts.get(HOST, 'alice'))!.credentials;
        // slixmpp's change_password sends no 'to'; Conversations and Gajim send to the domain.
        const r = await send(h, a, iq('set', change('alice', NEW)));
        assert.equal(r.attr('type'), 'result');
        assert.equal(await passwordIs(h.storage, 'alice', NEW), true, 'the new password works');
        assert.equal(await passwordIs(h.storage, 'alice', OLD), false, 'the old password no longer works');
        const after = (await h.storage.accounts.get(HOST, 'alice'))!.credentials;
        for (const hash of SCRAM_HASHES) assert.notEqual(after[hash].salt, before[hash].salt, `fresh ${hash} salt`);
        assert.equal(other.closedWith, 'reset', 'RFC 6120 §4.9.3.18: the other session is reset');
        assert.equal(a.closedWith, undefined, 'the session that changed it stays');
        assert.equal(bob.closedWith, undefined, 'other accounts are untouched');
        assert.equal(await passwordIs(h.storage, 'bob', 'bob password'), true);
        // Back, addressed to the server and to the own bare JID this time.
        assert.equal((await send(h, a, iq('set', change('alice', OLD), HOST))).attr('type'), 'result');
        assert.equal((await send(h, a, iq('set', change(ALICE, NEW), ALICE))).attr('type'), 'result', 'username as a bare JID (§3.3 form example)');
        assert.equal((await send(h, a, iq('set', change('ALICE', OLD), HOST))).attr('type'), 'result', 'username compared after PRECIS preparation');
        assert.equal(await passwordIs(h.storage, 'alice', OLD), true);
        for (const s of [a, other, bob]) await h.disconnect(s);
      });

      test('refused changes keep the old password', async () => {
        const a = await h.connect(`${ALICE}/laptop`);
        const other = await h.connect(`${ALICE}/phone`);
        const cases: [XmlElement, string, string][] = [
          [change('bob', 'bobs new password'), 'not-allowed', 'another account'],
          [change(`bob@${HOST}`, 'bobs new password'), 'not-allowed', 'another account as a JID'],
          [change('alice@other.test', NEW), 'not-allowed', 'same localpart, other domain'],
          [change('', NEW), 'not-allowed', 'empty username'],
          [change(null, NEW), 'bad-request', 'no username (§3.3 table)'],
          [change('alice', null), 'bad-request', 'no password'],
          [change('alice', ''), 'not-acceptable', 'empty password (§3.3 MUST NOT change to a null value)'],
          [change('alice', 'short'), 'not-acceptable', 'shorter than minPasswordLength'],
          [change('alice', 'bell\u0007password'), 'not-acceptable', 'a control character (RFC 8265 OpaqueString)'],
          [change('alice', 'x'.repeat(1025)), 'not-acceptable', 'longer than maxPasswordLength'],
          [query(x('x', { xmlns: 'jabber:x:data', type: 'submit' })), 'bad-request', 'a data form'],
        ];
        for (const [payload, cond, why] of cases) {
          const r = await send(h, a, iq('set', payload, HOST));
          assert.equal(r.attr('type'), 'error', why);
          assert.equal(condition(r), cond, why);
        }
        assert.equal(await passwordIs(h.storage, 'alice', OLD), true, 'unchanged');
        assert.equal(await passwordIs(h.storage, 'bob', 'bob password'), true, 'bob unchanged');
        assert.equal(other.closedWith, undefined, 'nothing was reset');
        // Somebody else's account JID is not a place to manage one's account (RFC 6120 §8.4).
        const r = await send(h, a, iq('set', change('alice', NEW), `bob@${HOST}`));
        assert.equal(condition(r), 'service-unavailable');
        const g = await send(h, a, iq('get', query(), `bob@${HOST}`));
        assert.equal(condition(g), 'service-unavailable');
        assert.equal(await passwordIs(h.storage, 'alice', OLD), true);
        await h.disconnect(a);
        await h.disconnect(other);
      });

      test('a password change from outside the module (`amsel passwd`) resets every session', async () => {
        const a = await h.connect(`${ALICE}/laptop`);
        const b = await h.connect(`${ALICE}/phone`);
        await h.hooks.emit('user:password-changed', { host: HOST, username: 'alice' });
        await new Promise((r) => setImmediate(r));
        assert.equal(a.closedWith, 'reset');
        assert.equal(b.closedWith, 'reset');
        await h.disconnect(a);
        await h.disconnect(b);
      });

      test('jabber:iq:register is a server disco feature, for clients that offer a password change (§10)', async () => {
        const a = await h.connect(`${ALICE}/laptop`);
        const r = await send(h, a, iq('get', x('query', { xmlns: NS.DISCO_INFO }), HOST));
        const vars = r.getChild('query')!.getChildren('feature').map((f) => f.attr('var'));
        assert.ok(vars.includes(NS_REGISTER), 'on the server');
        assert.ok(!h.disco.featuresOf(HOST, 'account').includes(NS_REGISTER), 'not on account JIDs');
        await h.disconnect(a);
      });

      test('§3.2: <remove/> answers first, then deletes everything and closes every session with <not-authorized/>', async () => {
        // Data the account owns in the generic kinds, and bob's, which must stay.
        await h.storage.keyval<{ v: number }>('test-doc').set(HOST, 'alice', { v: 1 });
        await h.storage.archive<{ v: number }>('test-archive').append(HOST, 'alice', { value: { v: 1 }, with: `bob@${HOST}` });
        await h.storage.keyval<{ v: number }>('test-doc').set(HOST, 'bob', { v: 2 });
        const events: string[] = [];
        const fake = fakeSession(`${ALICE}/laptop`);
        const a: FakeSession = {
          ...fake,
          send(el) { events.push(`send ${el.name} ${el.attr('type')}`); fake.send(el); },
          // Like a transport: close() resolves after the 'session:closed' handlers have run.
          async close(err?: StreamError) { events.push(`close ${err?.condition}`); await fake.close(err); await h.disconnect(a); },
        };
        h.registry.add(a);
        await h.hooks.emit('session:bound', { session: a });
        const other = await h.connect(`${ALICE}/phone`);
        const deleted: string[] = [];
        const off = h.hooks.on('user:deleted', ({ username }) => { deleted.push(username); });

        const el = iq('set', query(x('remove')));
        await h.router.fromClient(a, el);
        assert.equal(events[0], 'send iq result', 'the result comes first');
        assert.equal(events[1], 'close not-authorized', 'then the stream error (§3.2)');
        const first = fake.sent[0]!;
        assert.equal(first.attr('id'), el.attr('id'));
        assert.equal(first.attr('to'), `${ALICE}/laptop`);
        assert.equal(other.closedWith, 'not-authorized', 'all sessions of the account end');
        assert.equal(await h.storage.accounts.get(HOST, 'alice'), null, 'account gone');
        assert.equal(await h.storage.keyval('test-doc').get(HOST, 'alice'), null, 'its documents gone');
        assert.equal((await h.storage.archive('test-archive').query(HOST, 'alice')).length, 0, 'its archive gone');
        assert.deepEqual(await h.storage.keyval('test-doc').get(HOST, 'bob'), { v: 2 }, "bob's data stays");
        assert.deepEqual(deleted, ['alice'], "'user:deleted' ran for the modules' own tables");
        off();
        // Modules that write on 'session:closed' (the last module) ran before the purge: they must
        // not leave rows of the deleted account behind.
        assert.equal(await h.storage.keyval('test-last').get(HOST, 'alice'), null, 'rows written after the purge are swept');
        const bob = await h.connect(`bob@${HOST}/pc`);
        await h.disconnect(bob);
        assert.ok(await h.storage.keyval('test-last').get(HOST, 'bob'), 'existing accounts keep theirs');
        await h.addUser(ALICE, OLD); // for the tests after this one
      });

      test('<remove/> with other children is a bad request (§3.2 table); nothing is deleted', async () => {
        const a = await h.connect(`${ALICE}/laptop`);
        const r = await send(h, a, iq('set', query(x('remove'), x('username', null, 'alice')), HOST));
        assert.equal(condition(r), 'bad-request');
        assert.equal(a.closedWith, undefined);
        assert.ok(await h.storage.accounts.get(HOST, 'alice'), 'the account is still there');
        await h.disconnect(a);
      });
    });

    describe('with self-service turned off and other sessions kept', () => {
      before(() => open({ account: { allowPasswordChange: false, allowAccountDeletion: false } }));
      after(() => close());

      test('both operations are not-allowed; no disco feature', async () => {
        const a = await h.connect(`${ALICE}/laptop`);
        assert.equal(condition(await send(h, a, iq('set', change('alice', NEW), HOST))), 'not-allowed');
        assert.equal(condition(await send(h, a, iq('set', query(x('remove'))))), 'not-allowed');
        assert.equal(a.closedWith, undefined);
        assert.equal(await passwordIs(h.storage, 'alice', OLD), true);
        assert.ok(!h.disco.featuresOf(HOST, 'host').includes(NS_REGISTER), 'no disco feature');
        const g = await send(h, a, iq('get', query()));
        assert.equal(g.attr('type'), 'result', 'the registration can still be read');
        assert.equal(g.getChild('query', NS_REGISTER)!.getChildText('instructions'), 'You are registered.');
        await h.disconnect(a);
      });
    });

    describe('closeOtherSessionsOnPasswordChange: false, minPasswordLength: 3', () => {
      before(() => open({ account: { closeOtherSessionsOnPasswordChange: false, minPasswordLength: 3 } }));
      after(() => close());

      test('the other sessions keep working; short passwords follow the setting', async () => {
        const a = await h.connect(`${ALICE}/laptop`);
        const other = await h.connect(`${ALICE}/phone`);
        assert.equal(condition(await send(h, a, iq('set', change('alice', 'ab')))), 'not-acceptable');
        assert.equal((await send(h, a, iq('set', change('alice', 'abc')))).attr('type'), 'result');
        assert.equal(await passwordIs(h.storage, 'alice', 'abc'), true);
        assert.equal(other.closedWith, undefined);
        assert.equal((await send(h, other, iq('get', query()))).attr('type'), 'result', 'the other session still works');
        await h.hooks.emit('user:password-changed', { host: HOST, username: 'alice' });
        assert.equal(other.closedWith, undefined);
        await h.disconnect(a);
        await h.disconnect(other);
      });
    });
  });
}

test('module settings are validated (all problems at once, unknown keys refused)', async () => {
  await assert.rejects(
    createModuleHarness([account], { hosts: [HOST], modules: { account: { minPasswordLength: 0, closeOtherSessionsOnPaswordChange: false } } }),
    (err: Error) => err instanceof ModuleConfigError && /minPasswordLength/.test(err.message) && /closeOtherSessionsOnPaswordChange/.test(err.message),
  );
  await assert.rejects(
    createModuleHarness([account], { hosts: [HOST], modules: { account: { minPasswordLength: 20, maxPasswordLength: 10 } } }),
    /minPasswordLength must not exceed maxPasswordLength/,
  );
});

test('a password change on one host leaves the same username on another host alone', async () => {
  const h = await createModuleHarness([account], { hosts: [HOST, 'other.test'] });
  try {
    await h.addUser(ALICE, OLD);
    await h.addUser('alice@other.test', OLD);
    const a = await h.connect(`${ALICE}/laptop`);
    const elsewhere = await h.connect('alice@other.test/phone');
    assert.equal((await send(h, a, iq('set', change('alice', NEW)))).attr('type'), 'result');
    assert.equal(elsewhere.closedWith, undefined, 'a different account');
    const rec = await h.storage.accounts.get('other.test', 'alice');
    const again = await deriveScramCredential(OLD, 'SHA-256', rec!.credentials['SHA-256'].iterations, Buffer.from(rec!.credentials['SHA-256'].salt, 'base64'));
    assert.equal(again.storedKey, rec!.credentials['SHA-256'].storedKey, 'its password is unchanged');
  } finally {
    await h.stop();
  }
});
