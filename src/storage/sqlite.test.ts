import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync, mkdirSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { storageContract } from './contract.suite.ts';
import { openStorage, StorageOpenError } from './db.ts';

const root = mkdtempSync(join(tmpdir(), 'amsel-sqlite-test-'));
after(() => rmSync(root, { recursive: true, force: true }));
let n = 0;

storageContract({
  name: 'sqlite',
  sql: true,
  async fresh() {
    const dir = join(root, `db${++n}`);
    const path = join(dir, 'amsel.sqlite');
    return {
      open: (opts) => openStorage({ type: 'sqlite', path }, opts),
      dispose: async () => rmSync(dir, { recursive: true, force: true }),
    };
  },
});

describe('sqlite specifics', () => {
  test('pragmas: WAL, synchronous=FULL, foreign_keys, busy_timeout; the directory is created', async () => {
    const path = join(root, 'deep', 'er', 'dir', 'amsel.sqlite');
    const s = await openStorage({ type: 'sqlite', path });
    try {
      assert.equal(s.dialect, 'sqlite');
      const pragma = async (name: string) => Object.values((await (s.db as any).executeQuery({ sql: `PRAGMA ${name}`, parameters: [], query: { kind: 'RawNode' } } as any)).rows[0] as object)[0];
      assert.equal(await pragma('journal_mode'), 'wal');
      assert.equal(await pragma('synchronous'), 2); // FULL
      assert.equal(await pragma('foreign_keys'), 1);
      assert.equal(await pragma('busy_timeout'), 5000);
      assert.ok(existsSync(path));
      assert.ok(existsSync(`${path}-wal`));
    } finally {
      await s.close();
    }
  });

  test('an unopenable path gives StorageOpenError naming the path', async () => {
    const file = join(root, 'a-file');
    writeFileSync(file, 'x');
    const under = join(file, 'sub', 'amsel.sqlite');
    await assert.rejects(openStorage({ type: 'sqlite', path: under }), (e: unknown) => {
      assert.ok(e instanceof StorageOpenError);
      assert.match((e as Error).message, /^cannot open SQLite database ".*a-file\/sub\/amsel\.sqlite": /);
      return true;
    });
    const dir = join(root, 'is-a-dir');
    mkdirSync(dir);
    await assert.rejects(openStorage({ type: 'sqlite', path: dir }), (e: unknown) => {
      assert.ok(e instanceof StorageOpenError);
      assert.ok((e as Error).message.includes(`"${dir}"`), (e as Error).message);
      return true;
    });
    const garbage = join(root, 'garbage.sqlite');
    writeFileSync(garbage, Buffer.alloc(8192, 0x41));
    await assert.rejects(openStorage({ type: 'sqlite', path: garbage }), (e: unknown) => {
      assert.ok(e instanceof StorageOpenError);
      assert.match((e as Error).message, /garbage\.sqlite": file is not a database/);
      return true;
    });
  });

  test('a second process-like handle on the same file sees committed writes (CLI while server runs)', async () => {
    const path = join(root, 'shared', 'amsel.sqlite');
    const server = await openStorage({ type: 'sqlite', path });
    const cli = await openStorage({ type: 'sqlite', path });
    try {
      await cli.accounts.create('h', 'fromcli', { 'SHA-1': { salt: 's', iterations: 1, storedKey: 'a', serverKey: 'b' }, 'SHA-256': { salt: 's', iterations: 1, storedKey: 'a', serverKey: 'b' } });
      assert.ok(await server.accounts.get('h', 'fromcli'));
      await server.archive('a').append('h', 'u', { value: 1 });
      assert.equal(await cli.archive('a').count('h', 'u'), 1);
    } finally {
      await cli.close();
      await server.close();
    }
  });
});

describe('sqlite across processes', () => {
  test('concurrent starts of several processes apply each migration exactly once', async () => {
    const { spawn } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const dbModule = fileURLToPath(new URL('./db.ts', import.meta.url));
    const path = join(root, 'race', 'amsel.sqlite');
    const script = `
      import { openStorage } from ${JSON.stringify(dbModule)};
      const m = { id: 'race/001-t', async up(db) {
        await db.schema.createTable('race_t').addColumn('pid', 'integer').execute();
        await db.insertInto('race_t').values({ pid: process.pid }).execute();
        await new Promise((r) => setTimeout(r, 200)); // widen the window
      } };
      const s = await openStorage({ type: 'sqlite', path: ${JSON.stringify(path)} }, { migrations: [m] });
      await s.accounts.create('h', 'u' + process.pid, { 'SHA-1': { salt: 's', iterations: 1, storedKey: 'a', serverKey: 'b' }, 'SHA-256': { salt: 's', iterations: 1, storedKey: 'a', serverKey: 'b' } });
      await s.close();
    `;
    const run = () =>
      new Promise<{ code: number | null; err: string }>((res) => {
        const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'ignore', 'pipe'] });
        let err = '';
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (code) => res({ code, err }));
      });
    const results = await Promise.all([run(), run(), run(), run()]);
    for (const r of results) assert.equal(r.code, 0, r.err);
    const s = await openStorage({ type: 'sqlite', path }, { migrations: [{ id: 'race/001-t', up: async () => assert.fail('already applied') }] });
    try {
      const { n } = (await s.db.selectFrom('race_t').select((eb: any) => eb.fn.countAll().as('n')).executeTakeFirstOrThrow()) as { n: number };
      assert.equal(n, 1);
      assert.equal(await s.accounts.count('h'), 4);
    } finally {
      await s.close();
    }
  });
});

describe('sqlite durability', () => {
  test('every write acknowledged before kill -9 is there after re-open', async () => {
    const { spawn } = await import('node:child_process');
    const { fileURLToPath } = await import('node:url');
    const dbModule = fileURLToPath(new URL('./db.ts', import.meta.url));
    const path = join(root, 'kill9', 'amsel.sqlite');
    const script = `
      import { openStorage } from ${JSON.stringify(dbModule)};
      const s = await openStorage({ type: 'sqlite', path: ${JSON.stringify(path)} });
      const a = s.archive('offline');
      for (let i = 0; ; i++) {
        const id = await a.append('h', 'u', { value: i });
        process.stdout.write(id + '\\n');
      }
    `;
    const acked: string[] = [];
    await new Promise<void>((res, rej) => {
      const p = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
      let buf = '';
      let err = '';
      p.stderr.on('data', (d) => (err += d));
      p.stdout.on('data', (d) => {
        buf += d;
        const lines = buf.split('\n');
        buf = lines.pop()!;
        acked.push(...lines);
        if (acked.length >= 300) p.kill('SIGKILL');
      });
      p.on('close', (_code, signal) => (signal === 'SIGKILL' ? res() : rej(new Error(`child ended without kill: ${err}`))));
    });
    const s = await openStorage({ type: 'sqlite', path });
    try {
      const stored = new Set((await s.archive('offline').query('h', 'u')).map((i) => i.id));
      const missing = acked.filter((id) => !stored.has(id));
      assert.deepEqual(missing, [], `${missing.length} of ${acked.length} acknowledged items lost`);
    } finally {
      await s.close();
    }
  });
});
