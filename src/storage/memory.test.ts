import assert from 'node:assert/strict';
import { test } from 'node:test';
import { storageContract } from './contract.suite.ts';
import { memoryStorage } from './db.ts';

storageContract({
  name: 'memory',
  sql: false,
  async fresh() {
    const s = memoryStorage();
    return { open: async () => s, dispose: async () => {} };
  },
});

test('memory storage: dialect "memory", db throws', () => {
  const s = memoryStorage();
  assert.equal(s.dialect, 'memory');
  assert.throws(() => s.db, /no SQL database/);
});
