// Storage faults (issue 5 item 5): a full disk (SQLite on a small tmpfs) and an unreachable
// PostgreSQL (behind a proxy the test cuts off; the shared server is never touched). While the
// fault lasts, every message that could not be stored and every roster change that could not be
// saved is answered with <resource-constraint/> of type wait (RFC 6120 §8.3.3.18: the server
// lacks the system resources; "wait": retry later), never silence; the server keeps running and
// says so in its log, rate-limited; logins fail with <temporary-auth-failure/> when accounts
// cannot be read. Once the fault is gone it stores again, without a restart; what was bounced
// is never delivered, what was accepted is delivered exactly once.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { freshPgSchema, PgProxy, pgUrl, startServer, type TestServer } from '../../src/testing/index.ts';
import type { RawClient } from '../../src/testing/index.ts';
import { bounces, chat, collectOffline, iqAnswer, password, sendAndSync, session, type Bounce } from './faults.ts';

const FAULT_LOG = 'storage unavailable: stanzas answered with resource-constraint';
const K = 20;

/** Fill the file system holding `dir` to the last byte; returns the filler's path. */
function fillDisk(dir: string): string {
  const file = path.join(dir, 'filler');
  const fd = openSync(file, 'w');
  try {
    for (const size of [1 << 16, 4096, 512, 1]) {
      const buf = Buffer.alloc(size, 0x55);
      try {
        for (;;) writeSync(fd, buf);
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
      }
    }
  } finally {
    closeSync(fd);
  }
  return file;
}

/** Send K chats and a roster change during a fault; every one must be answered with a wait error. */
async function duringFault(c: RawClient, tag: string): Promise<void> {
  const before = bounces(c.received).length;
  const ids = Array.from({ length: K }, (_, i) => `${tag}${i}`);
  await sendAndSync(c, ids.map((id) => chat('bob@localhost', id, `bounced ${id}`)));
  const got = bounces(c.received).slice(before);
  assert.deepEqual(got, ids.map((id): Bounce => ({ id, type: 'wait', condition: 'resource-constraint' })), 'each message bounced, in order, with resource-constraint/wait');
  c.send(`<iq type='set' id='${tag}roster'><query xmlns='jabber:iq:roster'><item jid='${tag}@localhost'/></query></iq>`);
  assert.deepEqual(await iqAnswer(c, `${tag}roster`), { id: `${tag}roster`, type: 'wait', condition: 'resource-constraint' }, 'the roster change is refused, not lost');
}

/** After the fault: messages and a roster change are accepted again. */
async function afterFault(c: RawClient, tag: string, n: number): Promise<string[]> {
  const before = bounces(c.received).length;
  const sent = Array.from({ length: n }, (_, i) => `stored ${tag}${i}`);
  await sendAndSync(c, sent.map((b, i) => chat('bob@localhost', `${tag}${i}`, b)));
  assert.deepEqual(bounces(c.received).slice(before), [], 'stored again once the fault is gone');
  c.send(`<iq type='set' id='${tag}roster'><query xmlns='jabber:iq:roster'><item jid='${tag}@localhost'/></query></iq>`);
  assert.equal(await iqAnswer(c, `${tag}roster`), undefined);
  return sent;
}

function faultLines(srv: TestServer): Record<string, unknown>[] {
  return srv.logs.filter((l) => l.msg === FAULT_LOG);
}

function assertNoInternalErrors(srv: TestServer): void {
  const bad = srv.logs.filter((l) => l.level === 'error' || l.level === 'fatal');
  assert.deepEqual(bad.map((l) => l.msg), [], 'no internal errors logged');
}

test('full disk (SQLite): senders get resource-constraint, the server keeps running, also across a restart, and stores again once space is freed', async (t) => {
  if (process.platform !== 'linux') return t.skip('needs Linux (tmpfs)');
  const dir = mkdtempSync(path.join(os.tmpdir(), 'amsel-full-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=4m,mode=0700', 'tmpfs', dir], { stdio: 'pipe' });
  } catch (err) {
    rmSync(dir, { recursive: true, force: true });
    return t.skip(`cannot mount a tmpfs (needs root or CAP_SYS_ADMIN): ${(err as Error).message.split('\n')[0]}`);
  }
  let srv: TestServer | undefined;
  try {
    srv = await startServer({ config: { storage: { type: 'sqlite', path: path.join(dir, 'amsel.db') } } });
    for (const u of ['alice', 'bob']) await srv.adduser(`${u}@localhost`, password(u));
    let alice = await session(srv, 'alice');
    await sendAndSync(alice, [chat('bob@localhost', 'b0', 'stored before')]);
    assert.deepEqual(bounces(alice.received), []);

    const filler = fillDisk(dir);
    await duringFault(alice, 'full');
    assert.equal(srv.process.exitCode, null, 'still running');
    const lines = faultLines(srv);
    assert.equal(lines.length, 1, `one log line for ${K + 1} failures within the interval`);
    assert.equal(lines[0]!.level, 'warn');
    assert.equal(lines[0]!.code, 'SQLITE_FULL');
    assertNoInternalErrors(srv);

    // A crash (or an operator's restart) while the disk is still full: it starts and keeps answering.
    alice.destroy();
    await srv.kill('SIGKILL');
    await srv.restart();
    alice = await session(srv, 'alice');
    await duringFault(alice, 'again');
    assertNoInternalErrors(srv);

    unlinkSync(filler);
    const stored = await afterFault(alice, 'freed', 3);
    alice.destroy();
    const { c, got } = await collectOffline(srv, 'bob', 1 + stored.length);
    c.destroy();
    assert.deepEqual(got, ['stored before', ...stored], 'exactly what was accepted, once; nothing that was bounced');
    assert.equal(await srv.stop(), 0);
  } finally {
    await srv?.cleanup();
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('PostgreSQL unreachable: senders get resource-constraint, logins temporary-auth-failure; it recovers without a restart', { skip: process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined }, async (t) => {
  const schema = await freshPgSchema();
  const proxy = await PgProxy.start(pgUrl());
  let srv: TestServer | undefined;
  try {
    srv = await startServer({ config: { storage: { type: 'postgres', url: proxy.via(schema.url), poolSize: 4 } } });
    for (const u of ['alice', 'bob']) await srv.adduser(`${u}@localhost`, password(u));
    const alice = await session(srv, 'alice');
    await sendAndSync(alice, [chat('bob@localhost', 'b0', 'stored before')]);

    proxy.cut();
    await duringFault(alice, 'cut');
    // Accounts cannot be read: SASL answers temporary-auth-failure (RFC 6120 §6.5.12), not a
    // wrong-password failure, and the attempt is not counted against the account.
    await assert.rejects(session(srv, 'bob'), /SASL failure: .*<temporary-auth-failure\/>/);
    assert.equal(srv.process.exitCode, null, 'still running');
    const lines = faultLines(srv);
    assert.equal(lines.length, 1, 'one log line within the interval');
    assert.match(String(lines[0]!.code), /^(ECONNRESET|ECONNREFUSED|connection)$/);
    // The refused login says why in the log too (the SASL failure itself carries no reason).
    assert.ok(srv.logs.some((l) => l.msg === 'storage unavailable: logins and bindings refused' && l.level !== undefined),
      'the login path logs the storage fault');
    assertNoInternalErrors(srv);

    proxy.restore();
    const stored = await afterFault(alice, 'back', 3);

    // Cut in the middle of a burst, with queries in flight (pg emits 'error' on a client that is
    // checked out, an uncaught exception unless the storage listens): each message is either
    // stored or bounced. One whose commit was sent but not answered is bounced and may still
    // have been stored: delivered as well, never lost.
    const burst = Array.from({ length: 100 }, (_, i) => `burst${i}`);
    const before = bounces(alice.received).length;
    alice.send(burst.map((id) => chat('bob@localhost', id, `stored ${id}`)).join(''));
    await new Promise((r) => setTimeout(r, 40));
    proxy.cut();
    await new Promise((r) => setTimeout(r, 200));
    proxy.restore();
    await sendAndSync(alice, []);
    assert.equal(srv.process.exitCode, null, 'still running');
    const bounced = new Set(bounces(alice.received).slice(before).map((b) => b.id));
    const accepted = burst.filter((id) => !bounced.has(id)).map((id) => `stored ${id}`);
    alice.destroy();

    const { c, got } = await collectOffline(srv, 'bob', 1 + stored.length + accepted.length);
    c.destroy();
    assert.equal(new Set(got).size, got.length, 'nothing delivered twice');
    assert.deepEqual(got.slice(0, 1 + stored.length), ['stored before', ...stored]);
    const burstGot = got.slice(1 + stored.length);
    assert.deepEqual(burstGot.filter((b) => accepted.includes(b)), accepted, 'every accepted message, in order');
    assert.ok(burstGot.every((b) => accepted.includes(b) || bounced.has(b.slice('stored '.length))), 'nothing that was not sent');
    t.diagnostic(`burst: ${accepted.length} stored, ${bounced.size} bounced, ${burstGot.length - accepted.length} bounced but stored`);
    assertNoInternalErrors(srv);
    assert.equal(await srv.stop(), 0);
  } finally {
    await srv?.cleanup();
    await proxy.close();
    await schema.drop();
  }
});
