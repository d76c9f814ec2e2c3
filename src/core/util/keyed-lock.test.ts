// KeyedLock (used by roster, presence, offline, private): tasks on one key run one at a time in order; keys are independent; a failure
// does not block the queue; settled keys are forgotten.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KeyedLock } from './keyed-lock.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

test('one key: serial and in order; other keys in parallel; failures do not block; keys forgotten', async () => {
  const lock = new KeyedLock();
  const log: string[] = [];
  const task = (name: string, ms: number, fail = false) => async () => {
    log.push(`start ${name}`);
    await sleep(ms);
    log.push(`end ${name}`);
    if (fail) throw new Error(name);
    return name;
  };
  const a1 = lock.run('a', task('a1', 20));
  const a2 = lock.run('a', task('a2', 1, true));
  const a3 = lock.run('a', task('a3', 1));
  const b1 = lock.run('b', task('b1', 1));
  assert.equal(await b1, 'b1');
  assert.ok(!log.includes('end a1'), 'b does not wait for a');
  assert.equal(await a1, 'a1');
  await assert.rejects(a2, /a2/);
  assert.equal(await a3, 'a3');
  const as = log.filter((l) => l.includes(' a'));
  assert.deepEqual(as, ['start a1', 'end a1', 'start a2', 'end a2', 'start a3', 'end a3']);
  await sleep(1);
  assert.equal(lock.size, 0);
});
