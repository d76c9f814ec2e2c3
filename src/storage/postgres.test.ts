// The storage contract on PostgreSQL. URL: AMSEL_TEST_PG_URL (default
// postgres://postgres@127.0.0.1:5432/test). Every database of the suite is a fresh schema with a
// random run prefix, dropped afterwards. PostgreSQL unreachable → the suite FAILS, unless
// AMSEL_TEST_PG=off (then it is skipped, visibly).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { storageContract } from './contract.suite.ts';
import { openStorage, StorageOpenError, type StorageConfig } from './db.ts';

const url = process.env.AMSEL_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/test';
const off = process.env.AMSEL_TEST_PG === 'off';
const run = `amsel_t_${randomBytes(4).toString('hex')}`;
let n = 0;
const created = new Set<string>();

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const c = new pg.Client({ connectionString: url, connectionTimeoutMillis: 5000 });
  await c.connect();
  try {
    return await fn(c);
  } finally {
    await c.end();
  }
}

async function dropSchema(schema: string): Promise<void> {
  await admin((c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`));
  created.delete(schema);
}

if (off) {
  test('postgres storage contract', { skip: 'AMSEL_TEST_PG=off' }, () => {});
} else {
  before(async () => {
    try {
      await admin((c) => c.query('SELECT 1'));
    } catch (err) {
      throw new Error(`PostgreSQL at ${url} is unreachable (${(err as Error).message}); set AMSEL_TEST_PG=off to skip the PostgreSQL suite`);
    }
  });
  after(async () => {
    for (const schema of [...created]) await dropSchema(schema);
    // nothing of this run may remain
    const left = await admin((c) => c.query(`SELECT nspname FROM pg_namespace WHERE nspname LIKE $1`, [`${run}%`]));
    assert.deepEqual(left.rows, []);
  });

  const cfg = (schema: string): StorageConfig => ({ type: 'postgres', url, schema, poolSize: 4 });

  storageContract({
    name: 'postgres',
    sql: true,
    inProcessRace: true,
    async fresh() {
      const schema = `${run}_${++n}`;
      created.add(schema);
      return {
        open: (opts) => openStorage(cfg(schema), opts),
        dispose: () => dropSchema(schema),
      };
    },
  });

  describe('postgres specifics', () => {
    test('tables live in the configured schema, created if missing', async () => {
      const schema = `${run}_${++n}`;
      created.add(schema);
      const s = await openStorage(cfg(schema));
      try {
        assert.equal(s.dialect, 'postgres');
        const r = await admin((c) => c.query(`SELECT table_name FROM information_schema.tables WHERE table_schema = $1 ORDER BY 1`, [schema]));
        assert.deepEqual(r.rows.map((x) => x.table_name), ['accounts', 'archive', 'kv', 'schema_migrations']);
        // every pooled connection has the search_path (use more connections than one)
        const paths = await Promise.all(Array.from({ length: 8 }, () => s.db.selectNoFrom((eb: any) => eb.fn('current_schema', []).as('cs')).executeTakeFirstOrThrow()));
        assert.ok(paths.every((p: any) => p.cs === schema));
      } finally {
        await s.close();
        await dropSchema(schema);
      }
    });

    test('int8 comes back as number through this pool only; pg.types stays global default', async () => {
      const schema = `${run}_${++n}`;
      created.add(schema);
      const s = await openStorage(cfg(schema));
      try {
        await s.archive('a').append('h', 'o', { value: 1, when: new Date(1_700_000_000_123) });
        const row = await s.db.selectFrom('archive').select(['ts', 'seq']).executeTakeFirstOrThrow();
        assert.equal(row.ts, 1_700_000_000_123);
        assert.equal(typeof row.seq, 'number');
        assert.equal((pg.types.getTypeParser as any)(20, 'text')('42'), '42', 'global parser untouched');
        const plain = await admin((c) => c.query('SELECT 5::int8 AS v'));
        assert.equal(plain.rows[0].v, '5', 'a client outside the pool still gets strings');
      } finally {
        await s.close();
        await dropSchema(schema);
      }
    });

    test('an unreachable server fails opening with the URL, password redacted', async () => {
      const bad = 'postgres://postgres:s3cret@127.0.0.1:1/test';
      await assert.rejects(openStorage({ type: 'postgres', url: bad }), (e: unknown) => {
        assert.ok(e instanceof StorageOpenError);
        const m = (e as Error).message;
        assert.match(m, /^cannot open PostgreSQL postgres:\/\/postgres:\*\*\*@127\.0\.0\.1:1\/test: /);
        assert.ok(!m.includes('s3cret'));
        return true;
      });
    });

    test('a bad schema name is refused before connecting', async () => {
      await assert.rejects(openStorage({ type: 'postgres', url, schema: 'x"; DROP TABLE y; --' }), StorageOpenError);
    });

    test('a server going away makes calls throw, not silently succeed', async () => {
      const schema = `${run}_${++n}`;
      created.add(schema);
      const errors: Error[] = [];
      // Tag this pool's connections so only they are killed (other suites may share the server).
      const tagged = new URL(url);
      tagged.searchParams.set('application_name', schema);
      const s = await openStorage({ type: 'postgres', url: tagged.toString(), schema, poolSize: 4 }, { onPoolError: (e) => errors.push(e) });
      try {
        await Promise.all([s.accounts.count(), s.accounts.count(), s.accounts.count()]);
        // kill this pool's backends, as a server restart would
        const killed = await admin((c) => c.query('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [schema]));
        assert.ok(killed.rowCount! >= 1);
        await new Promise((r) => setTimeout(r, 100));
        // the broken idle clients were reported and dropped; the next query reconnects
        assert.ok(errors.length >= 1, 'idle client errors reach onPoolError');
        assert.equal(await s.accounts.count(), 0);
      } finally {
        await s.close();
        await dropSchema(schema);
      }
    });
  });
}
