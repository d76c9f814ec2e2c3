// PostgreSQL unreachable when the server starts (the machine boots and Amsel comes up before
// PostgreSQL, or PostgreSQL restarts): `amsel start` waits for it instead of exiting (a
// supervisor would restart it in a loop). The real server process runs against a proxy that is
// cut off (src/testing/pg-proxy.ts; the shared PostgreSQL is never touched): it logs one warning
// naming host:port and the code, opens no listener, keeps running; once the proxy passes again it
// connects, migrates, listens, and a client logs in. SIGTERM during the wait is a normal stop.
// A configuration error (a database that does not exist) fails at once, naming storage.url.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as delay } from 'node:timers/promises';
import { freshPgSchema, PgProxy, pgUrl, startServer, type TestServer } from '../../src/testing/index.ts';
import { login, ping } from '../clients/xmpp.ts';

const WAITING = 'PostgreSQL unreachable: waiting for it before starting';
const CONNECTED = 'PostgreSQL reachable: starting';
const skip = process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined;

/** The schema's URL with a password in it (if it has none), to check that it is never logged. */
function withPassword(url: string): { url: string; password: string } {
  const u = new URL(url);
  if (!u.password && !process.env.PGPASSWORD) u.password = 'never-logged-pw';
  return { url: u.toString(), password: decodeURIComponent(u.password) };
}

test('PostgreSQL unreachable at start: the server waits (no listener, no exit), then starts once it is back', { skip }, async () => {
  const schema = await freshPgSchema();
  const proxy = await PgProxy.start(schema.url);
  proxy.cut();
  const db = withPassword(proxy.via(schema.url));
  let srv: TestServer | undefined;
  try {
    srv = await startServer({
      config: { storage: { type: 'postgres', url: db.url, poolSize: 4 } },
      readyWhen: WAITING,
      readyTimeoutMs: 60_000,
    });
    const first = srv.logs.find((l) => l.msg === WAITING)!;
    assert.equal(first.level, 'warn');
    assert.equal(first.database, `127.0.0.1:${proxy.port}`, 'names host:port');
    assert.match(String(first.code), /^(ECONNRESET|ECONNREFUSED|connection)$/);

    // A few seconds of waiting: still running, nothing listening, no control socket.
    await delay(3000);
    assert.equal(srv.process.exitCode, null, 'still running');
    assert.equal(srv.process.signalCode, null);
    assert.ok(!srv.logs.some((l) => l.msg === 'listening' || l.msg === 'server started'), 'no listener before storage is ready');
    const stats = await srv.cli(['stats']);
    assert.equal(stats.code, 1);
    assert.match(stats.stderr, /no server is running/);

    proxy.restore();
    await srv.waitForLog('server started', 60_000);
    const msgs = srv.logs.map((l) => l.msg);
    const connected = srv.logs.find((l) => l.msg === CONNECTED)!;
    assert.equal(connected.level, 'info');
    assert.equal(connected.database, `127.0.0.1:${proxy.port}`);
    assert.ok(Number(connected.attempts) >= 2, 'connected after retrying');
    assert.ok(msgs.indexOf(CONNECTED) < msgs.indexOf('listening'), 'listeners open after storage is ready');
    // Rate limit: within the first minute, a further line only when the error changed.
    const waits = srv.logs.filter((l) => l.msg === WAITING);
    for (let i = 1; i < waits.length; i++) assert.notEqual(waits[i]!.code, waits[i - 1]!.code, 'no repeated line within the minute');
    assert.ok(waits.length < Number(connected.attempts), 'not one line per attempt');

    await srv.adduser('carol@localhost', 'waited pw');
    const c = await login({ service: `xmpp://localhost:${srv.ports.c2s}`, username: 'carol', password: 'waited pw', mechanism: 'SCRAM-SHA-1' });
    try {
      assert.equal(await ping(c), 'result');
    } finally {
      await c.stop();
    }
    if (db.password) assert.ok(!srv.output().includes(db.password), 'the password from storage.url is never logged');
    assert.deepEqual(srv.logs.filter((l) => l.level === 'error' || l.level === 'fatal').map((l) => l.msg), []);
    assert.equal(await srv.stop(), 0);
  } finally {
    await srv?.cleanup();
    await proxy.close();
    await schema.drop();
  }
});

test('SIGTERM while waiting for PostgreSQL: a prompt, normal stop (exit 0)', { skip }, async () => {
  const schema = await freshPgSchema();
  const proxy = await PgProxy.start(schema.url);
  proxy.cut();
  let srv: TestServer | undefined;
  try {
    srv = await startServer({
      config: { storage: { type: 'postgres', url: proxy.via(schema.url), poolSize: 4 } },
      readyWhen: WAITING,
      readyTimeoutMs: 60_000,
    });
    const t0 = Date.now();
    assert.equal(await srv.stop(), 0);
    assert.ok(Date.now() - t0 < 5000, `stopped in ${Date.now() - t0} ms`);
    assert.ok(srv.logs.some((l) => l.msg === 'stopped before the server had started'));
    assert.ok(!srv.logs.some((l) => l.msg === 'listening'));
  } finally {
    await srv?.cleanup();
    await proxy.close();
    await schema.drop();
  }
});

test('a database that does not exist fails at once, naming storage.url', { skip }, async () => {
  const u = new URL(withPassword(pgUrl()).url);
  u.pathname = '/amsel_no_such_database';
  const t0 = Date.now();
  await assert.rejects(
    startServer({ config: { storage: { type: 'postgres', url: u.toString() } }, readyTimeoutMs: 60_000 }),
    (err: Error) => {
      assert.match(err.message, /^server exited \(1\) before it was ready/);
      assert.match(err.message, /database "amsel_no_such_database" does not exist \(3D000\); check storage\.url/);
      assert.ok(!err.message.includes(WAITING), 'not waited for');
      if (u.password) assert.ok(!err.message.includes(decodeURIComponent(u.password)), 'password redacted');
      return true;
    },
  );
  assert.ok(Date.now() - t0 < 30_000, 'fails fast');
});

