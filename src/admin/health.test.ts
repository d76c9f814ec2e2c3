import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HealthMonitor } from './health.ts';

test('tracked objects: alive until collected; a held one stays alive after a full GC', async () => {
  const h = new HealthMonitor();
  h.start();
  try {
    let held: object | undefined = { name: 'held' };
    h.track('sessions', held);
    (() => { for (let i = 0; i < 100; i++) h.track('sessions', { i }); })();
    const s = await h.snapshot(() => ({ sessions: 0 }), { gc: true });
    assert.equal(s.gc, true);
    assert.deepEqual(s.tracked.sessions, { total: 101, alive: 1 }, 'only the one still referenced');
    assert.deepEqual(s.counts, { sessions: 0 });
    held = undefined;
    const s2 = await h.snapshot(() => ({}), { gc: true });
    assert.deepEqual(s2.tracked.sessions, { total: 101, alive: 0 });
    assert.equal(held, undefined);
  } finally {
    h.stop();
  }
});

test('event-loop delay: a blocked loop shows up in max and p99; reset starts a new window', async () => {
  const h = new HealthMonitor();
  h.start();
  try {
    await new Promise((r) => setTimeout(r, 100));
    const t = Date.now();
    while (Date.now() - t < 80) { /* block the loop */ }
    await new Promise((r) => setTimeout(r, 50));
    const s = await h.snapshot(() => ({}), { reset: true });
    assert.ok(s.eventLoopDelayMs.max >= 60, `max ${s.eventLoopDelayMs.max} ms after an 80 ms block`);
    assert.ok(s.eventLoopDelayMs.samples > 0);
    assert.ok(s.memory.heapUsed > 0 && s.memory.rss >= s.memory.heapUsed);
    await new Promise((r) => setTimeout(r, 100));
    const s2 = await h.snapshot(() => ({}));
    assert.ok(s2.eventLoopDelayMs.max < s.eventLoopDelayMs.max, 'the block is not in the new window');
    assert.ok(s2.eventLoopDelayMs.windowS < s.uptimeS);
  } finally {
    h.stop();
  }
});
