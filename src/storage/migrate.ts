// Ordered schema migrations, recorded in `schema_migrations(id, applied_at)` (ARCHITECTURE.md §5).
//
// * Ids are '<owner>/<nnn>-<slug>' (owner 'core' for this folder, a module name otherwise).
// * Each pending migration runs in its own transaction together with its schema_migrations row;
//   on PostgreSQL that transaction first takes a transaction-scoped advisory lock (keyed by the
//   schema), on SQLite it is BEGIN IMMEDIATE (the write lock, waited for up to busy_timeout), so
//   two processes starting at once apply each migration exactly once.
// * Downgrade refusal: an applied id of an owner this run knows (core, or an owner of one of the
//   given module migrations) that is not in the list means the database was migrated by a newer
//   Amsel: opening fails with UnknownMigrationError. Applied ids of owners this run does not know
//   at all (a module that is disabled now) are left alone: its tables are simply unused.
// * Migrations are forward-only (no `down`); take a backup before upgrading.

import { sql, type Kysely } from 'kysely';
import type { Dialect } from './db.ts';

export interface Migration {
  /** '<owner>/<nnn>-<slug>', e.g. 'core/001-accounts', 'roster/001-items'. */
  id: string;
  /** Runs inside a transaction: don't open another one. `db` is bound to that transaction's connection. */
  up(db: Kysely<any>, dialect: Dialect): Promise<void>;
}

export class UnknownMigrationError extends Error {
  constructor(readonly migrationId: string) {
    super(`database is newer than this Amsel (unknown migration ${migrationId}); upgrade Amsel or restore a backup`);
    this.name = 'UnknownMigrationError';
  }
}

export class MigrationError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'MigrationError';
  }
}

const ID_RE = /^([a-z0-9][a-z0-9_.-]*)\/(\d{3})-[a-z0-9][a-z0-9-]*$/;

export function migrationOwner(id: string): string {
  const m = ID_RE.exec(id);
  if (!m) throw new MigrationError(`invalid migration id "${id}" (expected '<owner>/<nnn>-<slug>')`);
  return m[1]!;
}

/** The identity column: the only dialect branch of the core schema. */
function identity(dialect: Dialect): { type: 'integer' | 'bigint'; sqlite: boolean } {
  return dialect === 'sqlite' ? { type: 'integer', sqlite: true } : { type: 'bigint', sqlite: false };
}

export const coreMigrations: readonly Migration[] = [
  {
    id: 'core/001-accounts',
    async up(db) {
      await db.schema
        .createTable('accounts')
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('username', 'text', (c) => c.notNull())
        .addColumn('credentials', 'text', (c) => c.notNull()) // JSON StoredCredentials
        .addColumn('created_at', 'bigint', (c) => c.notNull()) // epoch ms
        .addPrimaryKeyConstraint('accounts_pk', ['host', 'username'])
        .execute();
    },
  },
  {
    id: 'core/002-kv',
    async up(db) {
      // keyval uses key = ''; a future map<T> kind uses the key column.
      await db.schema
        .createTable('kv')
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('store', 'text', (c) => c.notNull())
        .addColumn('key', 'text', (c) => c.notNull().defaultTo(''))
        .addColumn('value', 'text', (c) => c.notNull()) // JSON
        .addColumn('updated_at', 'bigint', (c) => c.notNull()) // epoch ms
        .addPrimaryKeyConstraint('kv_pk', ['host', 'owner', 'store', 'key'])
        .execute();
    },
  },
  {
    id: 'core/003-archive',
    async up(db, dialect) {
      const id = identity(dialect);
      await db.schema
        .createTable('archive')
        // Insertion order: breaks ties between items with the same timestamp.
        .addColumn('seq', id.type, (c) => (id.sqlite ? c.primaryKey().autoIncrement() : c.primaryKey().generatedAlwaysAsIdentity()))
        .addColumn('id', 'text', (c) => c.notNull()) // public, opaque, sortable id (see kinds/archive.ts)
        .addColumn('host', 'text', (c) => c.notNull())
        .addColumn('owner', 'text', (c) => c.notNull())
        .addColumn('store', 'text', (c) => c.notNull())
        .addColumn('with_jid', 'text') // the conversation partner ("with"), nullable
        .addColumn('ts', 'bigint', (c) => c.notNull()) // "when", epoch ms
        .addColumn('value', 'text', (c) => c.notNull()) // JSON
        .execute();
      await db.schema.createIndex('archive_id_uq').unique().on('archive').columns(['host', 'owner', 'store', 'id']).execute();
      await db.schema.createIndex('archive_when_ix').on('archive').columns(['host', 'owner', 'store', 'ts', 'seq']).execute();
      await db.schema.createIndex('archive_with_when_ix').on('archive').columns(['host', 'owner', 'store', 'with_jid', 'ts', 'seq']).execute();
      // Retention sweeps (deleteOlderThan) scan by store and time across owners.
      await db.schema.createIndex('archive_store_when_ix').on('archive').columns(['store', 'ts']).execute();
    },
  },
];

/** Runs `fn` in one write transaction on a single connection (advisory-locked on PostgreSQL). */
async function inLockedTx<T>(db: Kysely<any>, dialect: Dialect, lockKey: string, fn: (conn: Kysely<any>) => Promise<T>): Promise<T> {
  return db.connection().execute(async (conn) => {
    await sql.raw(dialect === 'sqlite' ? 'BEGIN IMMEDIATE' : 'BEGIN').execute(conn);
    try {
      if (dialect === 'postgres') await sql`SELECT pg_advisory_xact_lock(hashtext(${lockKey}))`.execute(conn);
      const result = await fn(conn);
      await sql.raw('COMMIT').execute(conn);
      return result;
    } catch (err) {
      await sql.raw('ROLLBACK').execute(conn).catch(() => {});
      throw err;
    }
  });
}

async function appliedIds(conn: Kysely<any>): Promise<Set<string>> {
  const rows = await conn.selectFrom('schema_migrations').select('id').execute();
  return new Set(rows.map((r) => r.id as string));
}

/**
 * Applies pending migrations (core first, then `extra` in order). Returns the ids applied now.
 * Throws UnknownMigrationError on a downgrade, MigrationError on a bad list or a failed migration.
 */
export async function runMigrations(
  db: Kysely<any>,
  dialect: Dialect,
  extra: readonly Migration[] = [],
  opts: { schema?: string } = {},
): Promise<string[]> {
  const all = [...coreMigrations, ...extra];
  const known = new Set<string>();
  const owners = new Set<string>();
  for (const m of all) {
    owners.add(migrationOwner(m.id));
    if (known.has(m.id)) throw new MigrationError(`duplicate migration id "${m.id}"`);
    known.add(m.id);
  }
  const lockKey = `amsel:migrate:${opts.schema ?? ''}`;

  const applied = await inLockedTx(db, dialect, lockKey, async (conn) => {
    if (dialect === 'postgres' && opts.schema) await sql`CREATE SCHEMA IF NOT EXISTS ${sql.id(opts.schema)}`.execute(conn);
    await conn.schema
      .createTable('schema_migrations')
      .ifNotExists()
      .addColumn('id', 'text', (c) => c.primaryKey())
      .addColumn('applied_at', 'bigint', (c) => c.notNull()) // epoch ms
      .execute();
    return appliedIds(conn);
  });

  for (const id of [...applied].sort()) {
    if (known.has(id)) continue;
    const owner = ID_RE.exec(id)?.[1];
    if (owner === undefined || owners.has(owner)) throw new UnknownMigrationError(id);
  }

  const done: string[] = [];
  for (const m of all) {
    if (applied.has(m.id)) continue;
    await inLockedTx(db, dialect, lockKey, async (conn) => {
      // Re-check under the lock: another process may have applied it meanwhile.
      const row = await conn.selectFrom('schema_migrations').select('id').where('id', '=', m.id).executeTakeFirst();
      if (row) return;
      try {
        await m.up(conn, dialect);
      } catch (err) {
        throw new MigrationError(`migration ${m.id} failed: ${(err as Error).message}`, { cause: err });
      }
      await conn.insertInto('schema_migrations').values({ id: m.id, applied_at: Date.now() }).execute();
      done.push(m.id);
    });
  }
  return done;
}
