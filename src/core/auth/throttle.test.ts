import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AuthThrottle, ipKey } from './throttle.ts';

function clock() {
  let t = 1_000_000;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

test('exponential delay in max(ip, account) failures, capped', () => {
  const c = clock();
  const th = new AuthThrottle({ now: c.now, baseDelayMs: 250, maxDelayMs: 30_000, refuseAfter: 1000 });
  assert.equal(th.delayMs('1.2.3.4', 'juliet'), 0);
  th.failure('1.2.3.4', 'juliet');
  assert.equal(th.delayMs('1.2.3.4', 'juliet'), 250);
  th.failure('1.2.3.4', 'juliet');
  assert.equal(th.delayMs('1.2.3.4', 'juliet'), 500);
  th.failure('1.2.3.4', undefined);
  assert.equal(th.delayMs('1.2.3.4', undefined), 1000);
  // account failures follow the account to another IP
  assert.equal(th.delayMs('5.6.7.8', 'juliet'), 500);
  assert.equal(th.delayMs('5.6.7.8', 'Juliet'), 500);
  assert.equal(th.delayMs('5.6.7.8', 'romeo'), 0);
  for (let i = 0; i < 100; i++) th.failure('9.9.9.9', 'x');
  assert.equal(th.delayMs('9.9.9.9', 'x'), 30_000);
  for (let i = 0; i < 2000; i++) th.failure('9.9.9.9', 'x');
  assert.equal(th.delayMs('9.9.9.9', 'x'), 30_000);
});

test('refusal is per IP, after refuseAfter failures, for refuseForMs', () => {
  const c = clock();
  const refused: string[] = [];
  const th = new AuthThrottle({ now: c.now, refuseAfter: 3, refuseForMs: 60_000, decayMs: 600_000, onRefuse: (ip, n) => refused.push(`${ip} ${n}`) });
  th.failure('1.1.1.1', 'juliet');
  th.failure('1.1.1.1', 'juliet');
  assert.equal(th.isRefused('1.1.1.1'), false);
  th.failure('1.1.1.1', 'juliet');
  assert.equal(th.isRefused('1.1.1.1'), true);
  th.failure('1.1.1.1', 'juliet'); // an attempt already in flight: no second log line
  assert.deepEqual(refused, ['1.1.1.1 3'], 'one notice (log line) when the refusal starts');
  // the account is not locked: other IPs are not refused
  assert.equal(th.isRefused('2.2.2.2'), false);
  c.advance(59_999);
  assert.equal(th.isRefused('1.1.1.1'), true);
  c.advance(1);
  assert.equal(th.isRefused('1.1.1.1'), false);
  // still over the threshold: the next failure refuses again
  th.failure('1.1.1.1', undefined);
  assert.equal(th.isRefused('1.1.1.1'), true);
  assert.equal(refused.length, 2);
});

test('refusal survives the decay window until it ends', () => {
  const c = clock();
  const th = new AuthThrottle({ now: c.now, refuseAfter: 1, refuseForMs: 120_000, decayMs: 60_000 });
  th.failure('1.1.1.1', undefined);
  c.advance(90_000);
  assert.equal(th.isRefused('1.1.1.1'), true);
  c.advance(30_000);
  assert.equal(th.isRefused('1.1.1.1'), false);
  assert.equal(th.delayMs('1.1.1.1', undefined), 0);
});

test('failures decay after idle', () => {
  const c = clock();
  const th = new AuthThrottle({ now: c.now, decayMs: 60_000 });
  th.failure('1.1.1.1', 'juliet');
  th.failure('1.1.1.1', 'juliet');
  c.advance(59_000);
  assert.equal(th.delayMs('1.1.1.1', 'juliet'), 500);
  th.failure('1.1.1.1', 'juliet'); // refreshes
  c.advance(59_000);
  assert.equal(th.delayMs('1.1.1.1', 'juliet'), 1000);
  c.advance(1_000);
  assert.equal(th.delayMs('1.1.1.1', 'juliet'), 0);
  th.failure('1.1.1.1', 'juliet');
  assert.equal(th.delayMs('1.1.1.1', 'juliet'), 250);
});

test('success clears the account counter and the failures of that IP against that account', () => {
  const c = clock();
  const th = new AuthThrottle({ now: c.now });
  th.failure('1.1.1.1', 'juliet');
  th.failure('1.1.1.1', 'juliet');
  th.failure('3.3.3.3', 'romeo');
  th.success('1.1.1.1', 'Juliet');
  assert.equal(th.delayMs('1.1.1.1', 'juliet'), 0);
  assert.equal(th.delayMs('3.3.3.3', 'romeo'), 250);
  assert.equal(th.size, 2, 'the emptied IP entry is dropped');
});

test('logging into an own account does not reset the failures against other accounts', () => {
  // Without this an attacker who owns one account could guess 19 passwords, log in to his
  // own account, and start over: the per-IP refusal would never come.
  const c = clock();
  const th = new AuthThrottle({ now: c.now, refuseAfter: 5, refuseForMs: 60_000 });
  for (let i = 0; i < 4; i++) th.failure('6.6.6.6', 'victim');
  th.failure('6.6.6.6', 'mallory'); // a typo on his own account, forgiven below
  th.success('6.6.6.6', 'mallory');
  assert.equal(th.delayMs('6.6.6.6', undefined), 250 * 2 ** 3, 'the 4 failures against victim still count');
  th.failure('6.6.6.6', 'victim');
  assert.equal(th.isRefused('6.6.6.6'), true, 'the 5th failure against victim refuses the IP');
  // Failures without a username (malformed, no account) are never forgiven by a success.
  th.failure('7.7.7.7', undefined);
  th.success('7.7.7.7', 'mallory');
  assert.equal(th.delayMs('7.7.7.7', undefined), 250);
});

test('an account under attack: the attacker IP is refused, the real user elsewhere is never refused', () => {
  const c = clock();
  const th = new AuthThrottle({ now: c.now, refuseAfter: 20, refuseForMs: 5 * 60_000, decayMs: 15 * 60_000 });
  // Attack from 6.6.6.6 until refused, and from a second address.
  for (let i = 0; i < 20; i++) th.failure('6.6.6.6', 'juliet');
  for (let i = 0; i < 10; i++) th.failure('6.6.6.7', 'juliet');
  assert.equal(th.isRefused('6.6.6.6'), true);
  assert.equal(th.isRefused('6.6.6.7'), false);
  // The account is slowed down everywhere (delay before a <failure/>), up to the cap...
  assert.equal(th.delayMs('10.0.0.1', 'juliet'), 30_000);
  // ...but never refused: the real user's address may authenticate, and a success is not delayed
  // (delayMs is only applied before a failure); it clears the account counter.
  assert.equal(th.isRefused('10.0.0.1'), false);
  th.success('10.0.0.1', 'juliet');
  assert.equal(th.delayMs('10.0.0.1', 'juliet'), 0);
  // The attacker's address stays refused, and each new failure after the refusal re-arms it
  // until the counters decay.
  c.advance(5 * 60_000);
  assert.equal(th.isRefused('6.6.6.6'), false);
  th.failure('6.6.6.6', 'juliet');
  assert.equal(th.isRefused('6.6.6.6'), true);
  c.advance(15 * 60_000);
  assert.equal(th.isRefused('6.6.6.6'), false);
  assert.equal(th.delayMs('6.6.6.6', 'juliet'), 0, 'forgotten after decayMs without failures');
});

test('attributed accounts per IP are bounded', () => {
  const c = clock();
  const th = new AuthThrottle({ now: c.now, refuseAfter: 10_000 });
  for (let i = 0; i < 1000; i++) th.failure('8.8.8.8', `user${i}`);
  // Only the first 32 accounts are remembered per IP; a success on a later one forgives nothing.
  th.success('8.8.8.8', 'user999');
  th.success('8.8.8.8', 'user0');
  assert.equal(th.delayMs('8.8.8.8', undefined), 30_000);
  const ipEntry = (th as unknown as { entries: Map<string, { failures: number; byAccount?: Map<string, number> }> }).entries.get(ipKey('8.8.8.8'))!;
  assert.equal(ipEntry.failures, 999);
  assert.ok(ipEntry.byAccount!.size <= 32);
});

test('bounded memory, least recently used dropped', () => {
  const c = clock();
  const th = new AuthThrottle({ now: c.now, maxEntries: 100 });
  th.failure('10.0.0.1', undefined);
  for (let i = 0; i < 1000; i++) {
    th.failure(`192.168.${i >> 8}.${i & 255}`, `user${i}`);
    if (i % 10 === 0) th.failure('10.0.0.1', undefined); // keep it hot
    c.advance(1);
  }
  assert.ok(th.size <= 100);
  assert.ok(th.delayMs('10.0.0.1', undefined) > 0);
  assert.equal(th.delayMs('192.168.0.0', 'user0'), 0);
});

test('IPv6 is aggregated per /64; IPv4-mapped addresses count as IPv4', () => {
  assert.equal(ipKey('2001:db8:1:2:3:4:5:6'), ipKey('2001:db8:1:2::ffff'));
  assert.equal(ipKey('2001:0db8:0001:0002::1'), ipKey('2001:db8:1:2:aaaa::'));
  assert.notEqual(ipKey('2001:db8:1:2::1'), ipKey('2001:db8:1:3::1'));
  assert.equal(ipKey('::ffff:192.0.2.1'), ipKey('192.0.2.1'));
  assert.equal(ipKey('::1'), ipKey('::2'));
  assert.equal(ipKey('fe80::1%eth0'), ipKey('fe80::2'));
  assert.notEqual(ipKey('192.0.2.1'), ipKey('192.0.2.2'));
  const c = clock();
  const th = new AuthThrottle({ now: c.now, refuseAfter: 2 });
  th.failure('2001:db8::1', undefined);
  th.failure('2001:db8::2', undefined);
  assert.equal(th.isRefused('2001:db8::3'), true);
  assert.equal(th.isRefused('2001:db8:0:1::3'), false);
});
