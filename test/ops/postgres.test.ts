// The same server on PostgreSQL: startServer({ storage: 'postgres' }) runs it on a fresh
// schema (freshPgSchema); accounts are created and deleted with the CLI, a client logs in over
// STARTTLS, and the rows are checked directly in that schema with `pg`.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import pg from 'pg';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { login, ping } from '../clients/xmpp.ts';

let srv: TestServer;
let db: pg.Client;

before(async () => {
  srv = await startServer({ storage: 'postgres' });
  assert.equal(srv.storage.type, 'postgres');
  // the URL carries `options=-c search_path=<schema>`: the same schema the server uses
  db = new pg.Client({ connectionString: srv.storage.type === 'postgres' ? srv.storage.url : '' });
  await db.connect();
});
after(async () => {
  await db?.end();
  if (srv) {
    assert.equal(await srv.stop(), 0);
    await srv.cleanup(); // drops the schema
  }
});

async function accountRows(): Promise<{ host: string; username: string; credentials: string }[]> {
  const r = await db.query<{ host: string; username: string; credentials: string }>('SELECT host, username, credentials FROM accounts ORDER BY username');
  return r.rows;
}

test('the server runs on PostgreSQL in its own schema', async () => {
  assert.ok(srv.logs.some((l) => l.msg === 'server started' && l.storage === 'postgres'), 'storage dialect in the startup log');
  const schema = await db.query<{ s: string }>('SELECT current_schema() AS s');
  assert.match(schema.rows[0]!.s, /^amsel_t_[0-9a-f]+$/);
  assert.deepEqual(await accountRows(), []);
});

test('adduser via the CLI, STARTTLS login, deluser: the accounts table follows', async () => {
  const add = await srv.cli(['adduser', 'pat@localhost'], 'postgres pw\n');
  assert.equal(add.code, 0, add.stderr);
  const rows = await accountRows();
  assert.equal(rows.length, 1);
  assert.equal(rows[0]!.host, 'localhost');
  assert.equal(rows[0]!.username, 'pat');
  assert.ok(!rows[0]!.credentials.includes('postgres pw'), 'no plaintext password stored');
  const creds = JSON.parse(rows[0]!.credentials) as Record<string, unknown>;
  assert.ok(Object.keys(creds).length > 0, 'SCRAM credentials stored as JSON');

  const dup = await srv.cli(['adduser', 'pat@localhost'], 'x\n');
  assert.equal(dup.code, 1);
  assert.match(dup.stderr, /pat@localhost already exists/);

  const c = await login({ service: `xmpp://localhost:${srv.ports.c2s}`, username: 'pat', password: 'postgres pw', mechanism: 'SCRAM-SHA-1' });
  try {
    assert.match(c.jid!.toString(), /^pat@localhost\//);
    assert.equal(await ping(c), 'result');
  } finally {
    await c.stop();
  }

  const users = await srv.cli(['users']);
  assert.equal(users.stdout, 'pat@localhost\n');
  const del = await srv.cli(['deluser', 'pat@localhost']);
  assert.equal(del.code, 0, del.stderr);
  assert.deepEqual(await accountRows(), []);
  assert.ok(srv.logs.some((l) => l.msg === 'account deleted' && l.jid === 'pat@localhost'), 'deleted by the running server');
});
