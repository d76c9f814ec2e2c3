// Test helper (not shipped): the storages a module test runs on: memory, a fresh SQLite file and
// a fresh PostgreSQL schema (AMSEL_TEST_PG=off skips PostgreSQL, visibly).
import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { ModuleDefinition } from '../core/modules/define.ts';
import { memoryStorage, openStorage, type Storage } from '../storage/index.ts';
import { moduleStorageOptions } from '../modules/storage-options.ts';
import { freshPgSchema } from './index.ts';

export interface OpenedStorage {
  storage: Storage;
  /** Remove what open() created (call after the storage is closed). */
  cleanup(): Promise<void>;
}

export interface StorageVariant {
  name: 'memory' | 'sqlite' | 'postgres';
  /** Set when the variant cannot run here (node:test `skip`). */
  skip?: string;
  open(): Promise<OpenedStorage>;
}

export function storageVariants(defs: readonly ModuleDefinition[]): StorageVariant[] {
  const opts = moduleStorageOptions(defs);
  return [
    { name: 'memory', open: async () => ({ storage: memoryStorage(), cleanup: async () => {} }) },
    {
      name: 'sqlite',
      async open() {
        const dir = await mkdtemp(path.join(os.tmpdir(), 'amsel-mod-'));
        const storage = await openStorage({ type: 'sqlite', path: path.join(dir, 'amsel.db') }, opts);
        return { storage, cleanup: () => rm(dir, { recursive: true, force: true }) };
      },
    },
    {
      name: 'postgres',
      skip: process.env.AMSEL_TEST_PG === 'off' ? 'AMSEL_TEST_PG=off' : undefined,
      async open() {
        const pg = await freshPgSchema();
        const storage = await openStorage({ type: 'postgres', url: pg.url, poolSize: 4 }, opts);
        return { storage, cleanup: () => pg.drop() };
      },
    },
  ];
}
