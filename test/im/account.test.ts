// Account self-service (issue 3 item 7, XEP-0077 without registration) through real sockets,
// with two independent clients: @xmpp/client and slixmpp (test/im/slix_account.py, its xep_0077
// plugin). Password change (old password refused afterwards, other sessions reset or kept per
// modules.account.closeOtherSessionsOnPasswordChange), account deletion (result, then the
// <not-authorized/> stream error, then no row of the account left in any table, checked in the
// SQLite file and in the PostgreSQL schema), and registration refused before authentication.
import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { startServer, runPythonJson, PYTHON, RawClient, ROOT, type TestServer } from '../../src/testing/index.ts';
import { client as xmppClient } from '@xmpp/client';
import { login, ping, plainMessage, xml, type XmppClient } from '../clients/xmpp.ts';

const SCRIPT = path.join(ROOT, 'test/im/slix_account.py');
const NS_REGISTER = 'jabber:iq:register';

const service = (srv: TestServer) => `xmpp://localhost:${srv.ports.c2s}`;
const loginAs = (srv: TestServer, username: string, password: string, resource?: string) =>
  login({ service: service(srv), username, password, resource });

/** Resolves with the condition of the stream error (or 'closed') that ends this client's stream. */
function streamEnd(c: XmppClient): Promise<string> {
  return new Promise((resolve) => {
    c.on('error', (err: Error & { condition?: string }) => resolve(err.condition ?? err.message));
    c.on('disconnect', () => setTimeout(() => resolve('closed'), 200));
  });
}

/** Try to log in; resolves with the SASL failure condition, or undefined when the login worked. */
async function refused(srv: TestServer, username: string, password: string): Promise<string | undefined> {
  const c = xmppClient({ service: service(srv), domain: 'localhost', username, password });
  (c as unknown as { reconnect?: { stop(): void } }).reconnect?.stop();
  (c as unknown as { timeout: number }).timeout = 15_000;
  // A listener for good: @xmpp/client emits the SASL failure more than once, and an 'error'
  // emitted without a listener becomes an unhandled rejection.
  const failed = new Promise<never>((_, reject) => c.on('error', reject));
  const started = c.start();
  started.catch(() => undefined); // the SASL failure also rejects start(), later
  try {
    await Promise.race([started, failed]);
    await c.stop();
    return undefined;
  } catch (err) {
    await c.stop().catch(() => undefined);
    return (err as { condition?: string }).condition ?? String(err);
  }
}

async function changePassword(c: XmppClient, username: string, password: string, to?: string) {
  return c.iqCaller.request(xml('iq', { type: 'set', to },
    xml('query', { xmlns: NS_REGISTER }, xml('username', {}, username), xml('password', {}, password))), 10_000);
}

interface SlixResult { ok: boolean; type?: string; condition?: string; text?: string; streamError?: string | null; disconnected?: boolean; registered?: boolean; username?: string; error?: string; echoedPassword?: boolean }

function slix(srv: TestServer, args: { jid: string; password: string; action: 'get' | 'change-password' | 'cancel'; new?: string; to?: string }) {
  const argv = ['--jid', args.jid, '--password', args.password, '--port', String(srv.ports.c2s), '--ca', srv.caFile, '--action', args.action];
  if (args.new !== undefined) argv.push('--new', args.new);
  if (args.to !== undefined) argv.push('--to', args.to);
  return runPythonJson<SlixResult>(SCRIPT, argv, 40_000);
}

// --- rows of an account, straight from the database -------------------------------------

/** Columns that name the account a row belongs to (the host column, when the table has one, must match too). */
const OWNER_COLUMNS = ['owner', 'username', 'user', 'account', 'localpart'];

interface RowReport { owned: Record<string, number>; mentions: Record<string, number> }

function sqliteRows(file: string, username: string, host = 'localhost'): RowReport {
  const db = new Database(file, { readonly: true, fileMustExist: true });
  try {
    const report: RowReport = { owned: {}, mentions: {} };
    const tables = db.prepare("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'").all() as { name: string }[];
    for (const { name } of tables) {
      const cols = (db.prepare(`PRAGMA table_info("${name}")`).all() as { name: string }[]).map((c) => c.name);
      const hostCond = cols.includes('host') ? ' AND "host" = ?' : '';
      for (const col of cols.filter((c) => OWNER_COLUMNS.includes(c))) {
        const params = hostCond ? [username, host] : [username];
        const { n } = db.prepare(`SELECT count(*) AS n FROM "${name}" WHERE "${col}" = ?${hostCond}`).get(...params) as { n: number };
        if (n > 0) report.owned[`${name}.${col}`] = n;
      }
      for (const col of cols) {
        const { n } = db.prepare(`SELECT count(*) AS n FROM "${name}" WHERE CAST("${col}" AS TEXT) LIKE ?`).get(`%${username}@${host}%`) as { n: number };
        if (n > 0) report.mentions[`${name}.${col}`] = n;
      }
    }
    return report;
  } finally {
    db.close();
  }
}

async function pgRows(db: pg.Client, username: string, host = 'localhost'): Promise<RowReport> {
  const report: RowReport = { owned: {}, mentions: {} };
  const { rows } = await db.query<{ table_name: string; column_name: string }>(
    'SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position');
  const tables = new Map<string, string[]>();
  for (const r of rows) tables.set(r.table_name, [...(tables.get(r.table_name) ?? []), r.column_name]);
  for (const [name, cols] of tables) {
    const hostCond = cols.includes('host') ? ' AND "host" = $2' : '';
    for (const col of cols.filter((c) => OWNER_COLUMNS.includes(c))) {
      const r = await db.query<{ n: string }>(`SELECT count(*) AS n FROM "${name}" WHERE "${col}"::text = $1${hostCond}`, hostCond ? [username, host] : [username]);
      if (Number(r.rows[0]!.n) > 0) report.owned[`${name}.${col}`] = Number(r.rows[0]!.n);
    }
    for (const col of cols) {
      const r = await db.query<{ n: string }>(`SELECT count(*) AS n FROM "${name}" WHERE "${col}"::text LIKE $1`, [`%${username}@${host}%`]);
      if (Number(r.rows[0]!.n) > 0) report.mentions[`${name}.${col}`] = Number(r.rows[0]!.n);
    }
  }
  return report;
}

/**
 * Give the account data in whatever the IM modules store (roster, private XML, an offline
 * message from bob). Modules still being written may refuse some of it; what they keep must go.
 */
async function makeData(srv: TestServer, username: string, password: string, bob: XmppClient): Promise<XmppClient[]> {
  await bob.send(xml('message', { to: `${username}@localhost`, type: 'chat', id: 'off1' }, xml('body', {}, 'while you were away')));
  const a = await loginAs(srv, username, password, 'laptop');
  const b = await loginAs(srv, username, password, 'phone');
  const tries = [
    xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:roster' }, xml('item', { jid: 'bob@localhost', name: 'Bob' }, xml('group', {}, 'Friends')))),
    xml('iq', { type: 'set' }, xml('query', { xmlns: 'jabber:iq:private' }, xml('notes', { xmlns: 'amsel:test:notes' }, 'secret notes'))),
    xml('iq', { type: 'set', to: 'bob@localhost' }, xml('query', { xmlns: 'jabber:iq:roster' })),
  ];
  for (const el of tries) await a.iqCaller.request(el, 5000).catch(() => undefined);
  await bob.send(xml('presence', { to: `${username}@localhost`, type: 'subscribe' }));
  await ping(a);
  return [a, b];
}

async function deleteAndCheck(srv: TestServer, username: string, password: string, rows: () => Promise<RowReport>, t: { diagnostic(s: string): void }) {
  const bob = await loginAs(srv, 'bob', 'bob password', `b-${username}`);
  try {
    const [a, b] = await makeData(srv, username, password, bob);
    const beforeRows = await rows();
    assert.ok(Object.keys(beforeRows.owned).length > 0, 'the query finds the account before (accounts table at least)');
    t.diagnostic(`rows of ${username} before deletion: ${JSON.stringify(beforeRows.owned)}`);
    const aEnd = streamEnd(a);
    const bEnd = streamEnd(b);
    const res = await a.iqCaller.request(xml('iq', { type: 'set', id: `del-${username}` }, xml('query', { xmlns: NS_REGISTER }, xml('remove'))), 10_000);
    assert.equal(res.attrs.type, 'result', 'XEP-0077 §3.2: the result first');
    assert.equal(await aEnd, 'not-authorized', '§3.2: then the <not-authorized/> stream error');
    assert.equal(await bEnd, 'not-authorized', 'every session of the account ends');
    await a.stop().catch(() => undefined);
    await b.stop().catch(() => undefined);
    assert.equal(await refused(srv, username, password), 'not-authorized', 'the account is gone');
    const afterRows = await rows();
    assert.deepEqual(afterRows.owned, {}, 'no row owned by the account is left in any table');
    // Rows of other accounts that mention it (bob's roster item, bob's pending subscription) are
    // theirs; the roster/presence modules clean them up on 'user:deleted' (XEP-0077 §3.2 SHOULD).
    t.diagnostic(`rows of other accounts still mentioning ${username}@localhost: ${JSON.stringify(afterRows.mentions)}`);
    assert.equal(await ping(bob), 'result', 'other accounts are not affected');
  } finally {
    await bob.stop();
  }
}

// --- the tests ----------------------------------------------------------------------------

describe('account self-service on SQLite', () => {
  let srv: TestServer;
  before(async () => {
    assert.ok(existsSync(PYTHON), `${PYTHON} (with python3-slixmpp) is needed`);
    srv = await startServer();
    await Promise.all(['alice', 'bob', 'dave', 'erin', 'frank'].map((u) => srv.adduser(`${u}@localhost`, `${u} password`)));
  });
  after(async () => {
    assert.equal(await srv.stop(), 0);
    await srv.cleanup();
  });

  test('no registration before authentication: no stream feature, <not-allowed/>, and the stream stays usable for login', async () => {
    const c = await RawClient.connect(srv.ports.c2s);
    try {
      c.header();
      await c.expect(/<\/stream:features>/);
      assert.doesNotMatch(c.received, /iq-register/, 'no feature before TLS');
      await c.startTls(await readFile(srv.caFile));
      c.header();
      await c.expect(/<\/stream:features>/);
      assert.match(c.received, /<mechanisms/);
      assert.doesNotMatch(c.received, /iq-register/, 'XEP-0077 §8: registration is not advertised');
      c.clear();
      c.send(`<iq type='get' id='reg1' to='localhost'><query xmlns='${NS_REGISTER}'/></iq>`);
      const get = (await c.expect(/<iq[^>]*id=["']reg1["'][\s\S]*?<\/iq>/))[0];
      assert.match(get, /type=["']error["']/);
      assert.match(get, /<not-allowed xmlns=["']urn:ietf:params:xml:ns:xmpp-stanzas["']/);
      c.clear();
      c.send(`<iq type='set' id='reg2'><query xmlns='${NS_REGISTER}'><username>newbie</username><password>hunter2-secret</password></query></iq>`);
      const set = (await c.expect(/<iq[^>]*id=["']reg2["'][\s\S]*?<\/iq>/))[0];
      assert.match(set, /<not-allowed /);
      assert.doesNotMatch(set, /hunter2-secret/, 'the password is not echoed');
      // Still the same stream: log in and bind.
      c.clear();
      c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${plainMessage('alice', 'alice password')}</auth>`);
      await c.expect(/<success/);
      c.clear();
      c.header();
      await c.expect(/<\/stream:features>/);
      c.send(`<iq type='set' id='bind1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'><resource>raw</resource></bind></iq>`);
      await c.expect(/<jid>alice@localhost\/raw<\/jid>/);
      assert.equal(await refused(srv, 'newbie', 'hunter2-secret'), 'not-authorized', 'nothing was registered');
    } finally {
      c.destroy();
    }
  });

  test('repeated registration attempts before authentication end the stream; before TLS any attempt does', async () => {
    const c = await RawClient.connect(srv.ports.c2sDirectTls, { directTls: true, ca: await readFile(srv.caFile) });
    try {
      c.header();
      await c.expect(/<\/stream:features>/);
      for (let i = 0; i < 6; i++) c.send(`<iq type='get' id='r${i}'><query xmlns='${NS_REGISTER}'/></iq>`);
      await c.expect(/<policy-violation/);
      assert.equal((c.received.match(/<not-allowed /g) ?? []).length, 5);
      await c.closed;
    } finally {
      c.destroy();
    }
    const plain = await RawClient.connect(srv.ports.c2s);
    try {
      plain.header();
      await plain.expect(/<\/stream:features>/);
      plain.send(`<iq type='get' id='r0'><query xmlns='${NS_REGISTER}'/></iq>`);
      await plain.expect(/<policy-violation/); // RFC 6120 §5.3.1: STARTTLS first
    } finally {
      plain.destroy();
    }
  });

  test('@xmpp/client: the password changes, the old one is refused, the other session gets <reset/>', async () => {
    const laptop = await loginAs(srv, 'alice', 'alice password', 'laptop');
    const phone = await loginAs(srv, 'alice', 'alice password', 'phone');
    const bob = await loginAs(srv, 'bob', 'bob password', 'desk');
    const phoneEnd = streamEnd(phone);
    try {
      const info = await laptop.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
      assert.ok(info.getChild('query')!.getChildren('feature').some((f) => f.attrs.var === NS_REGISTER), 'XEP-0077 §10 disco feature');
      const reg = await laptop.iqCaller.request(xml('iq', { type: 'get', to: 'localhost' }, xml('query', { xmlns: NS_REGISTER })));
      assert.ok(reg.getChild('query')!.getChild('registered'), '§3.1 <registered/>');
      assert.equal(reg.getChild('query')!.getChildText('username'), 'alice');

      await assert.rejects(changePassword(laptop, 'alice', 'short', 'localhost'), (e: { condition?: string }) => e.condition === 'not-acceptable');
      await assert.rejects(changePassword(laptop, 'bob', 'bob is mine now', 'localhost'), (e: { condition?: string }) => e.condition === 'not-allowed');
      const res = await changePassword(laptop, 'alice', 'new alice password', 'localhost');
      assert.equal(res.attrs.type, 'result');
      assert.equal(await phoneEnd, 'reset', 'RFC 6120 §4.9.3.18: the other session is reset');
      assert.equal(await ping(laptop), 'result', 'the session that changed it keeps working');
      assert.equal(await ping(bob), 'result');
      assert.equal(await refused(srv, 'alice', 'alice password'), 'not-authorized', 'the old password is refused');
      assert.equal(await refused(srv, 'bob', 'bob is mine now'), 'not-authorized', "bob's password did not change");
      const again = await loginAs(srv, 'alice', 'new alice password', 'again');
      assert.equal(await ping(again), 'result', 'the new password works');
      await again.stop();
    } finally {
      await laptop.stop();
      await phone.stop().catch(() => undefined);
      await bob.stop();
    }
  });

  test('slixmpp (xep_0077): get_registration, change_password without "to", and a refused short password', async () => {
    const get = await slix(srv, { jid: 'dave@localhost/slix', password: 'dave password', action: 'get' });
    assert.equal(get.code, 0, `${JSON.stringify(get.result)}\n${get.stderr}`);
    assert.equal(get.result.registered, true);
    assert.equal(get.result.username, 'dave');
    const short = await slix(srv, { jid: 'dave@localhost/slix', password: 'dave password', action: 'change-password', new: 'tiny' });
    assert.equal(short.result.ok, false);
    assert.equal(short.result.condition, 'not-acceptable', JSON.stringify(short.result));
    const r = await slix(srv, { jid: 'dave@localhost/slix', password: 'dave password', action: 'change-password', new: 'dave’s new pässword' });
    assert.equal(r.code, 0, `${JSON.stringify(r.result)}\n${r.stderr}`);
    assert.equal(r.result.type, 'result');
    assert.equal(await refused(srv, 'dave', 'dave password'), 'not-authorized');
    const c = await loginAs(srv, 'dave', 'dave’s new pässword');
    assert.equal(await ping(c), 'result', 'the new (non-ASCII) password works with another client');
    await c.stop();
    // And to the server domain, as Conversations and Gajim address it.
    const back = await slix(srv, { jid: 'dave@localhost', password: 'dave’s new pässword', action: 'change-password', new: 'dave password', to: 'localhost' });
    assert.equal(back.result.type, 'result', JSON.stringify(back.result));
    assert.equal(await refused(srv, 'dave', 'dave’s new pässword'), 'not-authorized');
  });

  test('password errors do not echo the new password (XEP-0077 §3.3 SHOULD NOT)', async () => {
    const short = await slix(srv, { jid: 'dave@localhost/slix', password: 'dave password', action: 'change-password', new: 'tiny' });
    assert.equal(short.result.condition, 'not-acceptable');
    assert.equal(short.result.echoedPassword, false);
  });

  test('slixmpp (xep_0077): cancel_registration gets the result, then <not-authorized/>; no row of the account is left', async (t) => {
    const dbFile = path.join(srv.dataDir, 'amsel.db');
    const bob = await loginAs(srv, 'bob', 'bob password', 'b-erin');
    try {
      await bob.send(xml('message', { to: 'erin@localhost', type: 'chat' }, xml('body', {}, 'hello erin')));
      await ping(bob);
    } finally {
      await bob.stop();
    }
    assert.ok(Object.keys(sqliteRows(dbFile, 'erin').owned).length > 0, 'erin has rows before');
    const r = await slix(srv, { jid: 'erin@localhost/slix', password: 'erin password', action: 'cancel' });
    assert.equal(r.code, 0, `${JSON.stringify(r.result)}\n${r.stderr}`);
    assert.equal(r.result.type, 'result');
    assert.equal(r.result.streamError, 'not-authorized');
    assert.equal(r.result.disconnected, true);
    assert.equal(await refused(srv, 'erin', 'erin password'), 'not-authorized');
    const rows = sqliteRows(dbFile, 'erin');
    assert.deepEqual(rows.owned, {});
    t.diagnostic(`mentions of erin@localhost left: ${JSON.stringify(rows.mentions)}`);
  });

  test('@xmpp/client: <remove/> deletes the account with its data; every table of the SQLite file is checked', async (t) => {
    await deleteAndCheck(srv, 'frank', 'frank password', async () => sqliteRows(path.join(srv.dataDir, 'amsel.db'), 'frank'), t);
  });
});

describe('closeOtherSessionsOnPasswordChange: false', () => {
  let srv: TestServer;
  before(async () => {
    srv = await startServer({ config: { modules: { account: { closeOtherSessionsOnPasswordChange: false } } } });
    await srv.adduser('carol@localhost', 'carol password');
  });
  after(async () => {
    assert.equal(await srv.stop(), 0);
    await srv.cleanup();
  });

  test('the other sessions keep working after a password change; new logins need the new password', async () => {
    const laptop = await loginAs(srv, 'carol', 'carol password', 'laptop');
    const phone = await loginAs(srv, 'carol', 'carol password', 'phone');
    let phoneError: string | undefined;
    phone.on('error', (e: { condition?: string }) => { phoneError = e.condition ?? 'error'; });
    try {
      assert.equal((await changePassword(laptop, 'carol', 'carol new password')).attrs.type, 'result');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(phoneError, undefined);
      assert.equal(await ping(phone), 'result', 'the other session still works');
      assert.equal(await refused(srv, 'carol', 'carol password'), 'not-authorized');
      const again = await loginAs(srv, 'carol', 'carol new password');
      await again.stop();
    } finally {
      await laptop.stop();
      await phone.stop();
    }
  });
});

describe('account self-service on PostgreSQL', () => {
  let srv: TestServer;
  let db: pg.Client;
  before(async () => {
    srv = await startServer({ storage: 'postgres' });
    assert.equal(srv.storage.type, 'postgres');
    db = new pg.Client({ connectionString: srv.storage.type === 'postgres' ? srv.storage.url : '' });
    await db.connect();
    await Promise.all(['bob', 'gina', 'hank'].map((u) => srv.adduser(`${u}@localhost`, `${u} password`)));
  });
  after(async () => {
    await db?.end();
    if (srv) {
      assert.equal(await srv.stop(), 0);
      await srv.cleanup();
    }
  });

  test('password change: the stored credentials are replaced', async () => {
    const before = (await db.query<{ credentials: string }>("SELECT credentials FROM accounts WHERE host = 'localhost' AND username = 'hank'")).rows[0]!.credentials;
    const c = await loginAs(srv, 'hank', 'hank password');
    try {
      assert.equal((await changePassword(c, 'hank', 'hank new password', 'localhost')).attrs.type, 'result');
    } finally {
      await c.stop();
    }
    const after = (await db.query<{ credentials: string }>("SELECT credentials FROM accounts WHERE host = 'localhost' AND username = 'hank'")).rows[0]!.credentials;
    assert.notEqual(after, before);
    assert.ok(!after.includes('hank new password'), 'no plaintext');
    assert.equal(await refused(srv, 'hank', 'hank password'), 'not-authorized');
    const again = await loginAs(srv, 'hank', 'hank new password');
    await again.stop();
  });

  test('<remove/>: no row of the account is left in any table of the schema', async (t) => {
    await deleteAndCheck(srv, 'gina', 'gina password', () => pgRows(db, 'gina'), t);
  });
});
