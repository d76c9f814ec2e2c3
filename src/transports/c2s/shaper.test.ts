import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { ReadShaper } from './shaper.ts';

test('ReadShaper: the burst passes at once, then reading pauses as long as the excess takes at the rate', () => {
  const s = new ReadShaper(1000, 4000, 0); // 1000 B/s, 4000 B burst
  assert.equal(s.take(4000, 0), 0, 'a full bucket');
  assert.equal(s.take(500, 0), 500, '500 B over: half a second');
  // After the pause the debt is repaid; the next chunk starts from an empty bucket.
  assert.equal(s.take(100, 500), 100);
  // Idle time refills, but never beyond the burst.
  assert.equal(s.take(4000, 1_000_000), 0);
  assert.equal(s.take(1, 1_000_000), 1);
  s.reset(2000, 1000, 2_000_000);
  assert.equal(s.take(1000, 2_000_000), 0, 'a new full bucket after reset');
  assert.equal(s.take(1000, 2_000_000), 500);
});

test('ReadShaper: a reader that honours every pause never exceeds burst + rate × elapsed', () => {
  fc.assert(fc.property(
    fc.integer({ min: 100, max: 1_000_000 }),
    fc.integer({ min: 1024, max: 300_000 }),
    fc.array(fc.record({ bytes: fc.integer({ min: 1, max: 70_000 }), gap: fc.integer({ min: 0, max: 2000 }) }), { maxLength: 200 }),
    (rate, burst, chunks) => {
      const s = new ReadShaper(rate, burst, 0);
      let now = 0;
      let total = 0;
      let pausedUntil = 0;
      for (const c of chunks) {
        now = Math.max(now + c.gap, pausedUntil); // no data arrives while paused
        // The chunk that ends the bucket is taken whole: at most one chunk beyond the bound.
        assert.ok(total <= burst + (rate * now) / 1000 + 1, `${total} bytes by ${now} ms`);
        total += c.bytes;
        pausedUntil = now + s.take(c.bytes, now);
      }
    },
  ), { seed: 5150, numRuns: 300 });
});
