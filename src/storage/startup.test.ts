// Opening PostgreSQL at start-up (startup.ts): connection faults are waited for with backoff and a
// rate-limited log; configuration errors fail at once, naming storage.url; the wait ends at once
// on abort. In process, with a stand-in for openStorage, and once for real through a cut proxy.
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { test } from 'node:test';
import { PgProxy } from '../testing/pg-proxy.ts';
import { freshPgSchema } from '../testing/index.ts';
import { memoryStorage, openStorage, StorageOpenError, type Storage } from './db.ts';
import { StorageUnavailableError } from './faults.ts';
import { MigrationError, UnknownMigrationError } from './migrate.ts';
import { openStorageWhenReachable, pgTarget, startupFault, STARTUP_CONNECTED_MSG, STARTUP_WAIT_MSG } from './startup.ts';

const coded = (code: string, message = `error ${code}`) => Object.assign(new Error(message), { code });
/** What openStorage throws when the connection checkout fails with `raw` (see db.ts, faults.ts). */
const opening = (raw: Error, code = 'connection') =>
  new StorageOpenError(`cannot open PostgreSQL x: ${raw.message}`, { cause: new StorageUnavailableError(code, raw) });

const URL_ = 'postgres://amsel:hunter2@db.example:6543/amsel';
const PG = { type: 'postgres' as const, url: URL_ };

function recorder() {
  const lines: { level: string; msg: string; obj: Record<string, unknown> }[] = [];
  return {
    lines,
    warn: (obj: object, msg: string) => void lines.push({ level: 'warn', msg, obj: obj as Record<string, unknown> }),
    info: (obj: object, msg: string) => void lines.push({ level: 'info', msg, obj: obj as Record<string, unknown> }),
  };
}

/** A stand-in for openStorage failing with the given errors in turn, then succeeding. */
function failing(errors: Error[]): { open: typeof openStorage; calls: () => number } {
  let n = 0;
  const open = (async () => {
    const e = errors[n++];
    if (e) throw e;
    return memoryStorage();
  }) as unknown as typeof openStorage;
  return { open, calls: () => n };
}

test('startupFault: unreachable or not ready is waited for; configuration and migration errors are not', () => {
  for (const raw of [coded('ECONNREFUSED'), coded('ECONNRESET'), coded('ETIMEDOUT'), coded('EHOSTUNREACH'), coded('ENOTFOUND'), coded('EAI_AGAIN'),
    coded('57P03', 'the database system is starting up'), coded('57P01', 'terminating connection due to administrator command'),
    coded('53300', 'sorry, too many clients already'), new Error('timeout exceeded when trying to connect'), new Error('Connection terminated unexpectedly')]) {
    const f = startupFault(opening(raw));
    assert.ok(f instanceof StorageUnavailableError, `${raw.message} is waited for`);
    assert.equal(f.cause, raw);
  }
  assert.equal(startupFault(opening(coded('57P03')))!.code, '57P03');
  // A connection lost in the middle of a migration (rolled back): waited for as well.
  assert.ok(startupFault(new MigrationError('migration core/002-kv failed', { cause: new StorageUnavailableError('ECONNRESET', coded('ECONNRESET')) })));

  for (const raw of [coded('28P01', 'password authentication failed for user "amsel"'), coded('28000', 'role "x" does not exist'),
    coded('3D000', 'database "x" does not exist'), coded('42501', 'permission denied for schema public'),
    Object.assign(new TypeError('Invalid URL'), { code: 'ERR_INVALID_URL' })]) {
    assert.equal(startupFault(opening(raw)), undefined, `${raw.message} fails at once`);
  }
  assert.equal(startupFault(new UnknownMigrationError('core/999-future')), undefined);
  assert.equal(startupFault(new MigrationError('migration x failed', { cause: coded('42P07', 'relation exists') })), undefined);
  assert.equal(startupFault(new Error('something else')), undefined);
});

test('pgTarget: host:port only, never the user or password', () => {
  assert.equal(pgTarget(URL_), 'db.example:6543');
  assert.equal(pgTarget('postgres://u:p@localhost/amsel'), 'localhost:5432');
  assert.equal(pgTarget('postgresql://u@[::1]:5433/amsel'), '[::1]:5433');
  assert.equal(pgTarget('postgres://u:p@/amsel?host=/var/run/postgresql'), '/var/run/postgresql:5432');
  assert.equal(pgTarget('postgres:///amsel?host=/run/postgresql&port=5433'), '/run/postgresql:5433');
  assert.equal(pgTarget('postgres://u:p@[bad/x'), '<unparsable URL>');
});

test('waits with doubling delays up to the cap; one warning, then one line when connected', async () => {
  const log = recorder();
  const f = failing([opening(coded('ECONNREFUSED')), opening(coded('ECONNREFUSED')), opening(coded('ECONNREFUSED')), opening(coded('ECONNREFUSED')), opening(coded('ECONNREFUSED'))]);
  const delays: number[] = [];
  const s = await openStorageWhenReachable(PG, {}, {
    log: { warn: (o, m) => { delays.push((o as { retryInMs: number }).retryInMs); log.warn(o, m); }, info: log.info },
    open: f.open, initialDelayMs: 5, maxDelayMs: 20, logIntervalMs: 60_000,
  });
  await s.close();
  assert.equal(f.calls(), 6);
  assert.deepEqual(log.lines.map((l) => [l.level, l.msg]), [['warn', STARTUP_WAIT_MSG], ['info', STARTUP_CONNECTED_MSG]], 'one warning within the interval');
  assert.deepEqual(delays, [5]);
  const w = log.lines[0]!.obj;
  assert.equal(w.database, 'db.example:6543');
  assert.equal(w.code, 'ECONNREFUSED');
  assert.equal(log.lines[1]!.obj.attempts, 6);
  assert.ok(!JSON.stringify(log.lines).includes('hunter2'), 'never the password');

  // Every attempt logged when the interval is 0: the delays double up to the cap.
  const all: number[] = [];
  const g = failing(Array.from({ length: 5 }, () => opening(coded('ECONNREFUSED'))));
  await (await openStorageWhenReachable(PG, {}, {
    log: { warn: (o) => void all.push((o as { retryInMs: number }).retryInMs), info: () => undefined },
    open: g.open, initialDelayMs: 5, maxDelayMs: 20, logIntervalMs: 0,
  })).close();
  assert.deepEqual(all, [5, 10, 20, 20, 20]);
});

test('a new line when the error changes (refused, then "starting up")', async () => {
  const log = recorder();
  const f = failing([opening(coded('ECONNREFUSED')), opening(coded('ECONNREFUSED')), opening(coded('57P03', 'the database system is starting up'), '57P03')]);
  await (await openStorageWhenReachable(PG, {}, { log, open: f.open, initialDelayMs: 1, maxDelayMs: 1 })).close();
  assert.deepEqual(log.lines.map((l) => l.obj.code ?? l.msg), ['ECONNREFUSED', '57P03', STARTUP_CONNECTED_MSG]);
});

test('configuration errors fail at once with a message naming storage.url (password redacted)', async () => {
  for (const [raw, code] of [
    [coded('28P01', 'password authentication failed for user "amsel"'), '28P01'],
    [coded('3D000', 'database "amsel" does not exist'), '3D000'],
    [Object.assign(new TypeError('Invalid URL'), { code: 'ERR_INVALID_URL' }), 'ERR_INVALID_URL'],
  ] as const) {
    const log = recorder();
    const f = failing([opening(raw), opening(raw)]);
    await assert.rejects(openStorageWhenReachable(PG, {}, { log, open: f.open, initialDelayMs: 1 }), (err: Error) => {
      assert.ok(err instanceof StorageOpenError);
      assert.ok(err.message.includes(raw.message), err.message);
      assert.ok(err.message.includes(`(${code})`), err.message);
      assert.match(err.message, /check storage\.url$/);
      assert.ok(!err.message.includes('hunter2'), err.message);
      assert.ok(err.message.includes('postgres://amsel:***@db.example:6543/amsel'), err.message);
      return true;
    });
    assert.equal(f.calls(), 1, 'no retry');
    assert.deepEqual(log.lines, [], 'no waiting line');
  }
  const unknown = new UnknownMigrationError('core/999-future');
  await assert.rejects(openStorageWhenReachable(PG, {}, { log: recorder(), open: failing([unknown]).open }), (err) => err === unknown);
});

test('abort ends the wait at once, between attempts and during one', async () => {
  // Between attempts (a 1 h delay).
  const log = recorder();
  const ac = new AbortController();
  const f = failing([opening(coded('ECONNREFUSED'))]);
  const p = openStorageWhenReachable(PG, {}, { log, open: f.open, signal: ac.signal, initialDelayMs: 3_600_000 });
  while (log.lines.length === 0) await new Promise((r) => setTimeout(r, 5));
  const t0 = Date.now();
  ac.abort();
  await assert.rejects(p, (err: Error) => err.name === 'AbortError');
  assert.ok(Date.now() - t0 < 500);

  // During an attempt that would never finish; a storage it opens later is closed.
  let closed = false;
  let finish!: (s: Storage) => void;
  const hanging = (() => new Promise<Storage>((r) => { finish = r; })) as unknown as typeof openStorage;
  const ac2 = new AbortController();
  const q = openStorageWhenReachable(PG, {}, { log: recorder(), open: hanging, signal: ac2.signal });
  await new Promise((r) => setTimeout(r, 20));
  ac2.abort();
  await assert.rejects(q, (err: Error) => err.name === 'AbortError');
  finish({ ...memoryStorage(), close: async () => { closed = true; } } as Storage);
  await new Promise((r) => setTimeout(r, 20));
  assert.ok(closed, 'a late storage is closed');

  // Already aborted: no attempt at all.
  const g = failing([]);
  await assert.rejects(openStorageWhenReachable(PG, {}, { log: recorder(), open: g.open, signal: AbortSignal.abort() }), (err: Error) => err.name === 'AbortError');
  assert.equal(g.calls(), 0);
});

test('SQLite is not waited for: an unusable path fails at once', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'amsel-startup-'));
  try {
    const log = recorder();
    // The path is a directory: not a database.
    await assert.rejects(openStorageWhenReachable({ type: 'sqlite', path: dir }, {}, { log, initialDelayMs: 1 }), StorageOpenError);
    assert.deepEqual(log.lines, []);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('real PostgreSQL behind a cut proxy: waits, then opens once the proxy passes again', { skip: process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined }, async () => {
  const schema = await freshPgSchema();
  const proxy = await PgProxy.start(schema.url);
  try {
    proxy.cut();
    const log = recorder();
    const p = openStorageWhenReachable({ type: 'postgres', url: proxy.via(schema.url), poolSize: 2 }, {}, { log, initialDelayMs: 50, maxDelayMs: 200 });
    while (log.lines.length === 0) await new Promise((r) => setTimeout(r, 10));
    assert.equal(log.lines[0]!.msg, STARTUP_WAIT_MSG);
    assert.equal(log.lines[0]!.obj.database, `127.0.0.1:${proxy.port}`);
    assert.match(String(log.lines[0]!.obj.code), /^(ECONNRESET|ECONNREFUSED|connection)$/);
    await new Promise((r) => setTimeout(r, 300)); // a few more attempts
    proxy.restore();
    const s = await p;
    try {
      assert.equal(s.dialect, 'postgres');
      assert.deepEqual(log.lines.map((l) => l.msg), [STARTUP_WAIT_MSG, STARTUP_CONNECTED_MSG]);
      assert.ok(Number(log.lines[1]!.obj.attempts) >= 2);
    } finally {
      await s.close();
    }
    // A database that does not exist is a configuration error, also through the proxy.
    const u = new URL(proxy.via(schema.url));
    u.pathname = '/amsel_no_such_database';
    await assert.rejects(openStorageWhenReachable({ type: 'postgres', url: u.toString() }, {}, { log: recorder() }),
      /database "amsel_no_such_database" does not exist \(3D000\); check storage\.url/);
  } finally {
    await proxy.close();
    await schema.drop();
  }
});
