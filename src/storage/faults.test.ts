// Storage faults are thrown as StorageUnavailableError (faults.ts): the classification, a full
// SQLite database (PRAGMA max_page_count: SQLITE_FULL without filling a disk), and PostgreSQL
// behind a proxy that is cut off or goes silent (src/testing/pg-proxy.ts; the shared server is
// never touched). Each recovers once the fault is gone, on the same Storage.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { sql } from 'kysely';
import pg from 'pg';
import { PgProxy } from '../testing/pg-proxy.ts';
import { openStorage, type Storage } from './db.ts';
import { storageFault, StorageUnavailableError } from './faults.ts';

const coded = (code: string, message = 'x') => Object.assign(new Error(message), { code });

test('classification: faults of the disk, the engine and the network; not errors of the request', () => {
  for (const e of [
    coded('SQLITE_FULL'), coded('SQLITE_IOERR_WRITE'), coded('SQLITE_BUSY'), coded('SQLITE_READONLY_DBMOVED'), coded('SQLITE_CANTOPEN'),
    coded('ENOSPC'), coded('ECONNREFUSED'), coded('ECONNRESET'), coded('ETIMEDOUT'),
    coded('08006'), coded('08001'), coded('53100'), coded('53300'), coded('57P01'), coded('57P03'), coded('25006'),
    new Error('Connection terminated unexpectedly'), new Error('timeout exceeded when trying to connect'), new Error('Query read timeout'),
    new AggregateError([coded('ECONNREFUSED'), coded('ECONNREFUSED')], 'connect failed'),
  ]) {
    const f = storageFault(e);
    assert.ok(f instanceof StorageUnavailableError, `${(e as { code?: string }).code ?? e.message} is a fault`);
    assert.equal(f.cause, e);
  }
  for (const e of [
    coded('SQLITE_CONSTRAINT_PRIMARYKEY'), coded('SQLITE_ERROR'), coded('SQLITE_CORRUPT'), coded('23505'), coded('42P01'), coded('22P02'),
    new Error('no such table: x'), new TypeError('invalid date'), 'a string', undefined,
    new AggregateError([coded('ECONNREFUSED'), new Error('other')], 'mixed'),
  ]) {
    assert.equal(storageFault(e), undefined, `${String((e as { code?: string })?.code ?? (e as Error)?.message ?? e)} is not a fault`);
  }
  const f = storageFault(coded('SQLITE_FULL', 'database or disk is full'))!;
  assert.equal(f.code, 'SQLITE_FULL');
  assert.equal(f.message, 'storage unavailable (SQLITE_FULL): database or disk is full');
  assert.equal(storageFault(f), f, 'already classified: the same error');
});

describe('SQLite full', () => {
  const root = mkdtempSync(join(tmpdir(), 'amsel-faults-'));
  after(() => rmSync(root, { recursive: true, force: true }));

  test('writes and transactions throw StorageUnavailableError(SQLITE_FULL); reads go on; writes resume once there is room', async () => {
    const s = await openStorage({ type: 'sqlite', path: join(root, 'full.sqlite') });
    try {
      const pages = (await sql<{ page_count: number }>`PRAGMA page_count`.execute(s.db)).rows[0]!.page_count;
      // The database may not grow: the next write that needs a page fails as on a full disk.
      await sql.raw(`PRAGMA max_page_count = ${pages}`).execute(s.db);
      const big = randomBytes(64 * 1024).toString('base64');
      const archive = s.archive<string>('offline');
      await assert.rejects(archive.append('h', 'bob', { value: big }), (e: unknown) => e instanceof StorageUnavailableError && e.code === 'SQLITE_FULL');
      // In a transaction: the fault, not the error of the ROLLBACK that follows it.
      await assert.rejects(
        s.db.transaction().execute(async (trx) => {
          await trx.insertInto('kv').values({ host: 'h', owner: 'bob', store: 's', key: '', value: JSON.stringify(big), updated_at: 1 }).execute();
          await trx.insertInto('kv').values({ host: 'h', owner: 'bob', store: 't', key: '', value: JSON.stringify(big), updated_at: 1 }).execute();
        }),
        (e: unknown) => e instanceof StorageUnavailableError && e.code === 'SQLITE_FULL',
      );
      assert.equal(await archive.count('h', 'bob'), 0, 'reads still work; nothing half-written');
      assert.equal(await s.keyval('s').get('h', 'bob'), null);

      await sql.raw('PRAGMA max_page_count = 1073741823').execute(s.db);
      await archive.append('h', 'bob', { value: big });
      assert.equal(await archive.count('h', 'bob'), 1);
    } finally {
      await s.close();
    }
  });
});

const pgUrl = process.env.AMSEL_TEST_PG_URL || 'postgres://postgres@127.0.0.1:5432/test';

describe('PostgreSQL unreachable', { skip: process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined }, () => {
  const schema = `amsel_t_faults_${randomBytes(4).toString('hex')}`;
  after(async () => {
    const c = new pg.Client({ connectionString: pgUrl });
    await c.connect();
    await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await c.end();
  });

  async function through(proxy: PgProxy, opts: { queryTimeoutMs?: number; poolSize?: number } = {}): Promise<{ s: Storage; poolErrors: Error[] }> {
    const poolErrors: Error[] = [];
    const s = await openStorage({ type: 'postgres', url: proxy.via(pgUrl), schema, poolSize: opts.poolSize ?? 2, queryTimeoutMs: opts.queryTimeoutMs }, { onPoolError: (e) => poolErrors.push(e) });
    return { s, poolErrors };
  }

  test('cut off: idle and new connections fail with StorageUnavailableError; the pool reconnects once it is back', async () => {
    const proxy = await PgProxy.start(pgUrl);
    const { s, poolErrors } = await through(proxy);
    try {
      assert.equal(await s.accounts.count(), 0);
      proxy.cut();
      await assert.rejects(s.accounts.count(), StorageUnavailableError);
      await assert.rejects(s.archive('offline').append('h', 'bob', { value: 1 }), StorageUnavailableError);
      await assert.rejects(s.deleteOwner('h', 'bob'), StorageUnavailableError, 'a transaction too');
      proxy.restore();
      assert.equal(await s.accounts.count(), 0);
      await s.archive('offline').append('h', 'bob', { value: 1 });
      assert.equal(await s.archive('offline').count('h', 'bob'), 1);
      assert.ok(poolErrors.every((e) => e instanceof Error));
    } finally {
      await s.close();
      await proxy.close();
    }
  });

  test('gone silent: a query times out with StorageUnavailableError, and its connection is never reused', { timeout: 30_000 }, async () => {
    const proxy = await PgProxy.start(pgUrl);
    // One connection: if the timed-out client went back to the pool, the next query would queue
    // behind the lost one on it and time out too.
    const { s } = await through(proxy, { queryTimeoutMs: 400, poolSize: 1 });
    try {
      assert.equal(await s.accounts.count(), 0);
      proxy.freeze();
      const t0 = Date.now();
      await assert.rejects(s.accounts.count(), (e: unknown) => e instanceof StorageUnavailableError && e.code === 'connection');
      assert.ok(Date.now() - t0 < 8000, 'answered by the query timeout, not by TCP');
      proxy.restore(); // new connections pass; the frozen one stays frozen
      assert.equal(await s.accounts.count(), 0);
      await s.archive('offline').append('h', 'bob', { value: 2 });
    } finally {
      await s.close();
      await proxy.close();
    }
  });
});
