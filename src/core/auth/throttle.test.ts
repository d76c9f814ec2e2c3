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
  const th = new AuthThrottle({ now: c.now, refuseAfter: 3, refuseForMs: 60_000, decayMs: 600_000 });
  th.failure('1.1.1.1', 'juliet');
  th.failure('1.1.1.1', 'juliet');
  assert.equal(th.isRefused('1.1.1.1'), false);
  th.failure('1.1.1.1', 'juliet');
  assert.equal(th.isRefused('1.1.1.1'), true);
  // the account is not locked: other IPs are not refused
  assert.equal(th.isRefused('2.2.2.2'), false);
  c.advance(59_999);
  assert.equal(th.isRefused('1.1.1.1'), true);
  c.advance(1);
  assert.equal(th.isRefused('1.1.1.1'), false);
  // still over the threshold: the next failure refuses again
  th.failure('1.1.1.1', undefined);
  assert.equal(th.isRefused('1.1.1.1'), true);
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

test('success clears ip and account counters', () => {
  const c = clock();
  const th = new AuthThrottle({ now: c.now });
  th.failure('1.1.1.1', 'juliet');
  th.failure('1.1.1.1', 'juliet');
  th.failure('3.3.3.3', 'romeo');
  th.success('1.1.1.1', 'juliet');
  assert.equal(th.delayMs('1.1.1.1', 'juliet'), 0);
  assert.equal(th.delayMs('3.3.3.3', 'romeo'), 250);
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
