// Fake iteration counts for unknown users (scram.ts fakeIterations) and their cached census
// (census.ts IterationCensus).
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { IterationCensus, type IterationShare } from './census.ts';
import { fakeIterations } from './scram.ts';
import { HookBus } from '../hooks.ts';
import { silentLogger, type Logger } from '../../observability/log.ts';

const SECRET = Buffer.from('amsel-test-fake-salt-secret');
const names = (n: number) => Array.from({ length: n }, (_, i) => `nobody${i}`);

describe('fakeIterations', () => {
  test('no census, an empty one, or one without valid entries: the configured count', () => {
    assert.equal(fakeIterations(SECRET, 'x', undefined, 10_000), 10_000);
    assert.equal(fakeIterations(SECRET, 'x', [], 10_000), 10_000);
    assert.equal(fakeIterations(SECRET, 'x', [{ iterations: 0, accounts: 5 }, { iterations: 4096, accounts: 0 }], 10_000), 10_000);
  });

  test('one count in the census (the normal case): that count, for every name', () => {
    for (const u of names(200)) {
      assert.equal(fakeIterations(SECRET, u, [{ iterations: 4096, accounts: 1234 }], 4096), 4096);
      // after raising the configured count, with every account still at the old one: the old one
      assert.equal(fakeIterations(SECRET, u, [{ iterations: 4096, accounts: 1 }], 10_000), 4096);
    }
  });

  test('stable per name (folded like the fake salt), independent of the census order; depends on the secret', () => {
    const census = [{ iterations: 4096, accounts: 50 }, { iterations: 10_000, accounts: 50 }];
    const reversed = [...census].reverse();
    let differ = 0;
    for (const u of names(200)) {
      const i = fakeIterations(SECRET, u, census, 10_000);
      assert.equal(fakeIterations(SECRET, u, census, 10_000), i);
      assert.equal(fakeIterations(SECRET, u.toUpperCase(), census, 10_000), i, 'Bob and bob are one name');
      assert.equal(fakeIterations(SECRET, u, reversed, 10_000), i);
      if (fakeIterations(Buffer.from('another installation'), u, census, 10_000) !== i) differ++;
    }
    assert.ok(differ > 50, `another secret gives other picks (${differ} of 200 differ)`);
  });

  test('the picks follow the census, weighted by accounts', () => {
    const census: IterationShare[] = [{ iterations: 4096, accounts: 600 }, { iterations: 10_000, accounts: 300 }, { iterations: 20_000, accounts: 100 }];
    const n = 6000;
    const seen = new Map<number, number>();
    for (const u of names(n)) {
      const i = fakeIterations(SECRET, u, census, 10_000);
      seen.set(i, (seen.get(i) ?? 0) + 1);
    }
    assert.deepEqual([...seen.keys()].sort((a, b) => a - b), [4096, 10_000, 20_000], 'only counts of the census');
    for (const { iterations, accounts } of census) {
      const share = seen.get(iterations)! / n;
      // binomial standard deviation at n = 6000 is below 0.0065: 5 sigma
      assert.ok(Math.abs(share - accounts / 1000) < 0.033, `${iterations}: ${share} vs ${accounts / 1000}`);
    }
  });

  test('as an old count loses accounts, names only move to a higher count, as real accounts do', () => {
    const before = [{ iterations: 4096, accounts: 900 }, { iterations: 10_000, accounts: 100 }];
    const after = [{ iterations: 4096, accounts: 500 }, { iterations: 10_000, accounts: 500 }];
    let moved = 0;
    for (const u of names(2000)) {
      const a = fakeIterations(SECRET, u, before, 10_000);
      const b = fakeIterations(SECRET, u, after, 10_000);
      assert.ok(b >= a, `${u}: ${a} → ${b}`);
      if (b !== a) moved++;
    }
    assert.ok(moved > 0);
  });
});

/** A fake clock and a count() that records its calls and can be held. */
function harness(initial: Map<number, number>, extra: { hooks?: HookBus; log?: Logger } = {}) {
  let t = 1_000_000;
  let result = initial;
  let fail: Error | undefined;
  const calls: string[] = [];
  let release: (() => void) | undefined;
  let hold = false;
  const census = new IterationCensus({
    async count(host) {
      calls.push(host);
      if (hold) await new Promise<void>((r) => (release = r));
      if (fail) throw fail;
      return new Map(result);
    },
    log: extra.log ?? silentLogger(),
    hooks: extra.hooks,
    maxAgeMs: 300_000,
    minIntervalMs: 30_000,
    now: () => t,
  });
  return {
    census,
    calls,
    advance: (ms: number) => (t += ms),
    set: (m: Map<number, number>) => (result = m),
    fail: (e: Error | undefined) => (fail = e),
    hold: () => (hold = true),
    release: () => { hold = false; release?.(); },
  };
}

const flush = () => new Promise((r) => setImmediate(r));

describe('IterationCensus', () => {
  test('the first get of a host waits for one query (shared); later ones are served from memory', async () => {
    const h = harness(new Map([[10_000, 1], [4096, 3]]));
    const [a, b] = await Promise.all([h.census.get('example.org'), h.census.get('example.org')]);
    assert.deepEqual(a, [{ iterations: 4096, accounts: 3 }, { iterations: 10_000, accounts: 1 }], 'ascending');
    assert.equal(b, a);
    assert.deepEqual(h.calls, ['example.org']);
    h.advance(299_000);
    await h.census.get('example.org');
    assert.deepEqual(h.calls, ['example.org'], 'no query within maxAgeMs');
    await h.census.get('example.net');
    assert.deepEqual(h.calls, ['example.org', 'example.net'], 'per host');
  });

  test('a stale census is returned at once and reloaded in the background', async () => {
    const h = harness(new Map([[4096, 3]]));
    await h.census.get('h');
    h.set(new Map([[4096, 2], [10_000, 1]]));
    h.advance(300_000);
    h.hold();
    const stale = await h.census.get('h');
    assert.deepEqual(stale, [{ iterations: 4096, accounts: 3 }], 'not waiting for the reload');
    await h.census.get('h');
    assert.equal(h.calls.length, 2, 'one reload at a time');
    h.release();
    await flush();
    assert.deepEqual(await h.census.get('h'), [{ iterations: 4096, accounts: 2 }, { iterations: 10_000, accounts: 1 }]);
    assert.equal(h.calls.length, 2);
  });

  test('changes (hooks, invalidate) bring the reload forward, but not within minIntervalMs', async () => {
    const hooks = new HookBus(silentLogger());
    const h = harness(new Map([[4096, 3]]), { hooks });
    await h.census.get('h');
    await hooks.emit('user:password-changed', { host: 'h', username: 'a' });
    await h.census.get('h');
    assert.equal(h.calls.length, 1, 'within minIntervalMs of the last load');
    h.advance(30_000);
    await h.census.get('h');
    assert.equal(h.calls.length, 2, 'reloaded after the change');
    await flush();
    h.advance(30_000);
    await h.census.get('h');
    assert.equal(h.calls.length, 2, 'no change since: back to maxAgeMs');
    for (const event of ['user:created', 'user:deleted'] as const) {
      await hooks.emit(event, { host: 'h', username: 'b' });
      h.advance(30_000);
      const before: number = h.calls.length;
      await h.census.get('h');
      assert.equal(h.calls.length, before + 1, event);
      await flush();
    }
    h.census.invalidate('other'); // never loaded: nothing to do
    h.advance(30_000);
    h.census.invalidate('h');
    await h.census.get('h');
    assert.equal(h.calls.length, 5);
  });

  test('a change while a load runs is not lost', async () => {
    const h = harness(new Map([[4096, 1]]));
    await h.census.get('h');
    h.advance(300_000);
    h.hold();
    await h.census.get('h'); // reload starts (held)
    h.census.invalidate('h'); // meanwhile
    h.release();
    await flush();
    h.advance(30_000);
    await h.census.get('h');
    assert.equal(h.calls.length, 3);
  });

  test('a failing query keeps the previous census, is retried after minIntervalMs, and is logged', async () => {
    const warnings: unknown[] = [];
    const log = { ...silentLogger(), warn: (o: unknown) => warnings.push(o) } as unknown as Logger;
    const h = harness(new Map([[4096, 2]]), { log });
    h.fail(new Error('disk on fire'));
    assert.deepEqual(await h.census.get('h'), [], 'never loaded: empty (fakes get the configured count)');
    assert.equal(warnings.length, 1);
    assert.equal(h.calls.length, 1);
    await h.census.get('h');
    assert.equal(h.calls.length, 1, 'no retry before minIntervalMs');
    h.fail(undefined);
    h.advance(30_000);
    assert.deepEqual(await h.census.get('h'), [{ iterations: 4096, accounts: 2 }]);
    h.fail(new Error('again'));
    h.advance(300_000);
    await h.census.get('h');
    await flush();
    assert.deepEqual(await h.census.get('h'), [{ iterations: 4096, accounts: 2 }], 'kept');
    assert.equal(warnings.length, 2);
  });
});
