// Authentication abuse (issue 5 item 2), against a real server process: failed SASL attempts are
// delayed per address and per account, an address is refused after auth.refuseAfterFailures
// failures for auth.refuseForMs, and the real user is never locked out: from another address the
// account still logs in at once, while the attacker's address stays refused. Each loopback source
// address (127.0.0.x) plays one IP. The memory of failures (auth.failureMemoryMs) and the exact
// delay curve are unit-tested with a fake clock (src/core/auth/throttle.test.ts).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { plainAttempt, saslStream, scramAttempt } from './auth-util.ts';

const DELAY = 20;
const MAX_DELAY = 160;
const REFUSE_AFTER = 12; // auth.refuseAfterFailures (default 20)
const REFUSE_FOR = 6000; // auth.refuseForMs (default 5 min)

let srv: TestServer;
let ca: Buffer;

before(async () => {
  srv = await startServer({
    config: {
      auth: { failureDelayMs: DELAY, maxFailureDelayMs: MAX_DELAY, refuseAfterFailures: REFUSE_AFTER, refuseForMs: REFUSE_FOR },
      log: { level: 'info', format: 'json' },
    },
  });
  ca = await readFile(srv.caFile);
  await Promise.all([
    srv.adduser('juliet@localhost', 'juliet real secret'),
    srv.adduser('mallory@localhost', 'mallory own secret'),
    srv.adduser('romeo@localhost', 'romeo secret'),
  ]);
});
after(async () => {
  await srv.stop();
  await srv.cleanup();
});

/** Guesses against `user` from `ip`, 5 per connection (the server closes after 5), until `n` were answered. */
async function guess(ip: string, user: string, n: number): Promise<string[]> {
  const conditions: string[] = [];
  while (conditions.length < n) {
    const c = await saslStream(srv.ports.c2sDirectTls, ca, ip);
    try {
      for (let i = 0; i < 5 && conditions.length < n; i++) {
        const a = await plainAttempt(c, user, `guess ${conditions.length}`);
        assert.equal(a.ok, false);
        conditions.push(a.condition!);
        if (a.condition === 'temporary-auth-failure') return conditions;
      }
    } finally {
      c.destroy();
    }
  }
  return conditions;
}

test('an attacker who owns an account cannot reset the refusal of his address by logging into it', async () => {
  const attacker = '127.0.0.2';
  const first = await guess(attacker, 'juliet', REFUSE_AFTER - 5);
  assert.deepEqual(first, Array(REFUSE_AFTER - 5).fill('not-authorized'));

  // A success from the attacker's address (his own account) forgives only his own typos.
  const own = await saslStream(srv.ports.c2sDirectTls, ca, attacker);
  const ok = await plainAttempt(own, 'mallory', 'mallory own secret');
  assert.equal(ok.ok, true, ok.xml);
  own.destroy();

  const rest = await guess(attacker, 'juliet', 10);
  assert.deepEqual(rest, [...Array(5).fill('not-authorized'), 'temporary-auth-failure'],
    `refused after ${REFUSE_AFTER} failures in all, the login in between notwithstanding`);

  // The refusal is logged once, with the address (never the password).
  const refusals = srv.logs.filter((l) => String(l.msg).startsWith('too many failed authentications'));
  assert.equal(refusals.length, 1, JSON.stringify(refusals));
  assert.equal(refusals[0]!.ip, attacker);
  assert.equal(refusals[0]!.level, 'warn');

  // Refused means refused for every account and mechanism, the attacker's own included.
  const again = await saslStream(srv.ports.c2sDirectTls, ca, attacker);
  const refused = await plainAttempt(again, 'mallory', 'mallory own secret');
  assert.equal(refused.condition, 'temporary-auth-failure', refused.xml);
  const refusedScram = await scramAttempt(again, 'SHA-256', 'mallory', 'mallory own secret');
  assert.equal(refusedScram.condition, 'temporary-auth-failure', refusedScram.xml);
  again.destroy();
});

test('the account under attack is slowed down from every address, but the real user logs in at once', async () => {
  // 127.0.0.2 has been attacking juliet (previous test). A new address guessing juliet waits the
  // account's delay (the cap by now) before its <failure/>...
  const other = await saslStream(srv.ports.c2sDirectTls, ca, '127.0.0.3');
  const slowed = await plainAttempt(other, 'juliet', 'another guess');
  assert.equal(slowed.condition, 'not-authorized');
  assert.ok(slowed.ms >= MAX_DELAY - 10, `the account's delay applies at a fresh address (${slowed.ms.toFixed(0)} ms)`);
  other.destroy();

  // ...while the real user, from yet another address, is neither refused nor delayed: a correct
  // password is answered without any throttle delay (PLAIN and SCRAM).
  const real = await saslStream(srv.ports.c2sDirectTls, ca, '127.0.0.4');
  const ok = await plainAttempt(real, 'juliet', 'juliet real secret');
  assert.equal(ok.ok, true, ok.xml);
  real.destroy();
  const real2 = await saslStream(srv.ports.c2sDirectTls, ca, '127.0.0.4');
  const ok2 = await scramAttempt(real2, 'SHA-256', 'juliet', 'juliet real secret');
  assert.equal(ok2.ok, true, ok2.xml);
  real2.destroy();

  // The real user's success cleared the account's counter: a typo now waits nothing extra.
  const typo = await saslStream(srv.ports.c2sDirectTls, ca, '127.0.0.5');
  const t = await plainAttempt(typo, 'juliet', 'typo');
  assert.equal(t.condition, 'not-authorized');
  typo.destroy();

  // The attacker's address is still refused, the real user's login notwithstanding.
  const attacker = await saslStream(srv.ports.c2sDirectTls, ca, '127.0.0.2');
  const still = await plainAttempt(attacker, 'juliet', 'juliet real secret');
  assert.equal(still.condition, 'temporary-auth-failure', 'even the right password is refused from there');
  attacker.destroy();
});

test('delays grow per address: the same guesses against many accounts are slowed down too', async () => {
  const ip = '127.0.0.6';
  const c = await saslStream(srv.ports.c2sDirectTls, ca, ip);
  const times: number[] = [];
  for (const user of ['nobody1', 'nobody2', 'nobody3', 'romeo']) {
    const a = await plainAttempt(c, user, 'password1');
    assert.equal(a.condition, 'not-authorized');
    times.push(a.ms);
  }
  c.destroy();
  // 0, 1, 2, 4 × DELAY before the answers: each only a lower bound (a loaded machine adds time).
  assert.ok(times[3]! >= 4 * DELAY - 10, `4th failure after ${times.map((x) => x.toFixed(0)).join(', ')} ms`);
  assert.ok(times[2]! >= 2 * DELAY - 10, `3rd failure after ${times.map((x) => x.toFixed(0)).join(', ')} ms`);
  // The failed-authentication log lines carry the address and the delay, never a password.
  const lines = srv.logs.filter((l) => l.msg === 'authentication failed' && l.ip === ip);
  assert.equal(lines.length, 4);
  assert.deepEqual(lines.map((l) => l.delayMs), [0, DELAY, 2 * DELAY, 4 * DELAY]);
  assert.doesNotMatch(srv.output(), /password1/);
});

test('the refusal ends after auth.refuseForMs: the address may try again', async () => {
  const ip = '127.0.0.8';
  const conditions = await guess(ip, 'nobody-here', REFUSE_AFTER + 1);
  const refusedAt = Date.now();
  assert.equal(conditions.at(-1), 'temporary-auth-failure', `refused after ${REFUSE_AFTER} failures: ${conditions.join(', ')}`);
  assert.equal(conditions.length, REFUSE_AFTER + 1);
  const attempt = async () => {
    const c = await saslStream(srv.ports.c2sDirectTls, ca, ip);
    try {
      return await plainAttempt(c, 'romeo', 'romeo secret');
    } finally {
      c.destroy();
    }
  };
  // Still refused well before the time is up (even with the right password)...
  await new Promise((r) => setTimeout(r, REFUSE_FOR / 2));
  const early = await attempt();
  if (Date.now() - refusedAt < REFUSE_FOR - 500) assert.equal(early.condition, 'temporary-auth-failure', early.xml);
  // ...and let in once it is over.
  let ok = false;
  while (!ok && Date.now() - refusedAt < REFUSE_FOR + 15_000) {
    await new Promise((r) => setTimeout(r, 500));
    ok = (await attempt()).ok;
  }
  const after = Date.now() - refusedAt;
  assert.ok(ok, 'admitted again after the refusal');
  assert.ok(after >= REFUSE_FOR - 100, `admitted after ${after} ms, not before ${REFUSE_FOR}`);
});
