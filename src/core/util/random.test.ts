import { test } from 'node:test';
import assert from 'node:assert/strict';
import { randomBase64, randomBase64url, randomHex } from './random.ts';

test('pooled random ids: right length and alphabet, no repeats across pool refills', () => {
  const seen = new Set<string>();
  // 3000 × 18 bytes crosses the 4 KiB pool a dozen times.
  for (let i = 0; i < 3000; i++) {
    const n = randomBase64(18);
    assert.match(n, /^[A-Za-z0-9+/]{24}$/);
    assert.ok(!seen.has(n), 'a nonce repeated');
    seen.add(n);
  }
  assert.match(randomBase64url(12), /^[A-Za-z0-9_-]{16}$/);
  assert.match(randomHex(3), /^[0-9a-f]{6}$/);
  // Not constant: the bytes change between calls.
  assert.notEqual(randomHex(16), randomHex(16));
  assert.throws(() => randomHex(5000), RangeError);
});
