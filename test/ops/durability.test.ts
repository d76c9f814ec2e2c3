// Durability (issue 5 item 5): what the server acknowledged survives `kill -9` and a restart on
// the same database, on SQLite and on PostgreSQL. "Acknowledged" (no stream management yet):
// a message to an offline account is stored once the server has handled it, which the sender
// knows when the answer to a later ping arrives (a connection's stanzas are handled in order);
// a roster change or a password change is acknowledged by its IQ result.
// Also: the SQLite settings of a running server, read from its database file and observed from
// outside (WAL, a busy timeout that waits for another writer, one fsync per acknowledged commit).
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import Database from 'better-sqlite3';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { bodies, bounces, chat, collectOffline, iqAnswer, password, sendAndSync, session, until } from './faults.ts';

const N = 50;
const pgOff = process.env.AMSEL_TEST_PG === 'off';

for (const storage of ['sqlite', 'postgres'] as const) {
  describe(`kill -9 loses nothing acknowledged (${storage})`, { skip: storage === 'postgres' && pgOff ? 'AMSEL_TEST_PG=off' : undefined }, () => {
    let srv: TestServer;
    before(async () => {
      srv = await startServer({ storage });
      for (const u of ['alice', 'bob']) await srv.adduser(`${u}@localhost`, password(u));
    });
    after(async () => {
      await srv?.cleanup();
    });

    test(`${N} offline messages, a roster change and a password change survive SIGKILL; each message arrives exactly once`, async () => {
      const alice = await session(srv, 'alice');
      const bob = await session(srv, 'bob');
      const sent = Array.from({ length: N }, (_, i) => `durable ${i}`);
      await sendAndSync(alice, sent.map((b, i) => chat('bob@localhost', `m${i}`, b)));
      assert.deepEqual(bounces(alice.received), [], 'every message was accepted');

      alice.send(`<iq type='set' id='roster1'><query xmlns='jabber:iq:roster'><item jid='carol@localhost' name='Carol'><group>Durable</group></item></query></iq>`);
      assert.equal(await iqAnswer(alice, 'roster1'), undefined, 'roster set answered with a result');
      bob.send(`<iq type='set' id='pw1' to='localhost'><query xmlns='jabber:iq:register'><username>bob</username><password>bob changed pw</password></query></iq>`);
      assert.equal(await iqAnswer(bob, 'pw1'), undefined, 'password change answered with a result');

      // Nothing between the acknowledgements and the kill: no graceful shutdown, no flush.
      await srv.kill('SIGKILL');
      assert.equal(srv.process.signalCode, 'SIGKILL');
      alice.destroy();
      bob.destroy();
      await srv.restart();

      await assert.rejects(session(srv, 'bob', 'old'), /SASL failure/, 'the old password no longer works');
      const { c: bob2, got } = await collectOffline(srv, 'bob', N, 'bob changed pw');
      assert.deepEqual(got, sent, 'all messages, in order, exactly once');
      bob2.destroy();

      const alice2 = await session(srv, 'alice');
      alice2.send(`<iq type='get' id='roster2'><query xmlns='jabber:iq:roster'/></iq>`);
      const roster = await alice2.expect(/<iq\b[^>]*id="roster2"[\s\S]*?<\/iq>/);
      assert.match(roster[0], /<item[^>]*jid="carol@localhost"[^>]*>[\s\S]*<group>Durable<\/group>/);
      alice2.destroy();

      // Delivered means deleted: a second login gets nothing again.
      const bob3 = await session(srv, 'bob', 'again', 'bob changed pw');
      bob3.send('<presence/>');
      await sendAndSync(bob3, []);
      await new Promise((r) => setTimeout(r, 300));
      assert.deepEqual(bodies(bob3.received), []);
      bob3.destroy();
    });
  });
}

describe('SQLite settings of a running server', () => {
  let srv: TestServer;
  let file: string;
  before(async () => {
    srv = await startServer({ storage: 'sqlite' });
    assert.equal(srv.storage.type, 'sqlite');
    file = srv.storage.type === 'sqlite' ? srv.storage.path : '';
    for (const u of ['alice', 'bob']) await srv.adduser(`${u}@localhost`, password(u));
  });
  after(async () => {
    await srv?.cleanup();
  });

  test('the database file is in WAL mode', () => {
    // journal_mode=WAL is recorded in the file itself (header bytes 18-19 = 2): another
    // connection sees it; synchronous and busy_timeout are per connection (see the next tests).
    const db = new Database(file, { readonly: true });
    try {
      assert.equal(db.pragma('journal_mode', { simple: true }), 'wal');
    } finally {
      db.close();
    }
    assert.ok(existsSync(`${file}-wal`), 'the write-ahead log exists while the server runs');
  });

  test('busy timeout: a message arriving while another process holds the write lock waits and is stored', async () => {
    const alice = await session(srv, 'alice');
    const other = new Database(file, { timeout: 0 });
    try {
      other.exec('BEGIN IMMEDIATE'); // the write lock, as `amsel adduser` holds it for a moment
      const released = new Promise<void>((r) => setTimeout(() => { other.exec('COMMIT'); r(); }, 1000));
      // Without a busy timeout the append fails at once with SQLITE_BUSY and the message bounces.
      await sendAndSync(alice, [chat('bob@localhost', 'busy1', 'waited for the lock')]);
      await released;
      assert.deepEqual(bounces(alice.received), []);
    } finally {
      if (other.inTransaction) other.exec('ROLLBACK');
      other.close();
      alice.destroy();
    }
    const { c, got } = await collectOffline(srv, 'bob', 1);
    c.destroy();
    assert.deepEqual(got, ['waited for the lock']);
  });

  test('synchronous=FULL: every acknowledged offline message is fsynced before the next stanza is answered', { skip: existsSync('/usr/bin/strace') ? undefined : 'needs strace (apt-get install strace)' }, async (t) => {
    // Under synchronous=NORMAL a WAL commit is only written, not synced (a power cut could lose
    // it after the sender was told it was stored); FULL syncs the WAL at each commit.
    const alice = await session(srv, 'alice');
    const trace = spawn('/usr/bin/strace', ['-f', '-e', 'trace=fsync,fdatasync', '-p', String(srv.process.pid)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let out = '';
    trace.stderr.setEncoding('utf8').on('data', (d: string) => (out += d));
    const exited = new Promise<number | null>((r) => trace.on('exit', (code) => r(code)));
    try {
      const attached = until('strace attached', () => /Process \d+ attached/.test(out), 5000).then(() => true, () => false);
      if (!(await Promise.race([attached, exited.then(() => false)]))) {
        t.skip(`strace could not trace the server (ptrace not permitted?): ${out.trim().slice(0, 200)}`);
        return;
      }
      await new Promise((r) => setTimeout(r, 200)); // the other threads (strace -f attaches each)
      const before = (out.match(/f(data)?sync\(/g) ?? []).length;
      const n = 5;
      for (let i = 0; i < n; i++) await sendAndSync(alice, [chat('bob@localhost', `sync${i + 1}`, `synced ${i}`)]);
      const syncs = (out.match(/f(data)?sync\(/g) ?? []).length - before;
      assert.ok(syncs >= n, `at least one fsync per stored message (${syncs} for ${n})`);
    } finally {
      trace.kill('SIGINT');
      await exited;
      alice.destroy();
    }
    assert.deepEqual(bounces(alice.received), []);
  });
});
