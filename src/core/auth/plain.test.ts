import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StoredCredentials } from './credentials.ts';
import { createMechanism, type SaslStep } from './mechanisms.ts';
import { parsePlain } from './plain.ts';
import { deriveCredentials } from './scram.ts';
import { testSaslContext } from './scram-client.ts';

const msg = (authzid: string, authcid: string, pw: string) => Buffer.from(`${authzid}\0${authcid}\0${pw}`);

function failure(s: SaslStep): Extract<SaslStep, { kind: 'failure' }> {
  assert.equal(s.kind, 'failure', `expected failure, got ${JSON.stringify(s)}`);
  return s as Extract<SaslStep, { kind: 'failure' }>;
}

describe('PLAIN', () => {
  let users: Map<string, StoredCredentials>;
  before(async () => {
    const sha1Only = await deriveCredentials('only-sha1', 1000);
    users = new Map<string, StoredCredentials>([
      ['juliet', await deriveCredentials('r0m30myr0m30', 4096)],
      ['nonascii', await deriveCredentials('p\u00E4ss w\u00F6rd', 1000)],
      // SHA-256 row corrupt/missing: falls back to SHA-1
      ['legacy', { 'SHA-1': sha1Only['SHA-1'], 'SHA-256': undefined as never }],
    ]);
  });
  const ctx = () => testSaslContext(users);

  test('parsePlain', () => {
    assert.deepEqual(parsePlain(msg('', 'a', 'b')), { authzid: '', authcid: 'a', password: 'b' });
    assert.deepEqual(parsePlain(msg('a@h', 'a', 'b c')), { authzid: 'a@h', authcid: 'a', password: 'b c' });
    assert.equal(parsePlain(Buffer.from('a\0b')), undefined);
    assert.equal(parsePlain(Buffer.from('\0a\0b\0c')), undefined);
    assert.equal(parsePlain(msg('', '', 'b')), undefined);
    assert.equal(parsePlain(msg('', 'a', '')), undefined);
    assert.equal(parsePlain(Buffer.from([0, 0x61, 0, 0xff])), undefined);
    assert.equal(parsePlain(Buffer.alloc(0)), undefined);
    assert.equal(parsePlain(Buffer.alloc(5000, 0x61)), undefined);
  });

  test('correct password', async () => {
    const s = await createMechanism('PLAIN', ctx())!.step(msg('', 'juliet', 'r0m30myr0m30'));
    assert.deepEqual(s, { kind: 'success', username: 'juliet' });
  });

  test('SASLprep on verification (NBSP = space, soft hyphen ignored)', async () => {
    const s = await createMechanism('PLAIN', ctx())!.step(msg('', 'nonascii', 'p\u00E4ss\u00A0w\u00F6\u00ADrd'));
    assert.equal(s.kind, 'success');
  });

  test('falls back to the SHA-1 credential', async () => {
    assert.equal((await createMechanism('PLAIN', ctx())!.step(msg('', 'legacy', 'only-sha1'))).kind, 'success');
    assert.equal(failure(await createMechanism('PLAIN', ctx())!.step(msg('', 'legacy', 'nope'))).condition, 'not-authorized');
  });

  test('wrong password and unknown user give the same failure; unknown pays PBKDF2', async () => {
    const f1 = failure(await createMechanism('PLAIN', ctx())!.step(msg('', 'juliet', 'wrong')));
    const t0 = performance.now();
    const f2 = failure(await createMechanism('PLAIN', ctx())!.step(msg('', 'romeo', 'wrong')));
    const unknownMs = performance.now() - t0;
    assert.deepEqual({ ...f1, username: undefined }, { ...f2, username: undefined });
    assert.equal(f1.username, 'juliet');
    assert.equal(f2.username, 'romeo');
    // The unknown user's attempt runs a real 4096-iteration PBKDF2 (≈1 ms on this hardware, slower
    // under load); an early return would take microseconds. A fixed floor, not a ratio against a
    // second timing, so machine load can only make it pass more clearly.
    assert.ok(unknownMs > 0.4, `unknown user took ${unknownMs} ms: no PBKDF2 was run`);
  });

  test('unpreparable password fails without throwing', async () => {
    assert.equal(failure(await createMechanism('PLAIN', ctx())!.step(msg('', 'juliet', 'bad\u0007'))).condition, 'not-authorized');
  });

  test('authzid policy', async () => {
    const ok = await createMechanism('PLAIN', ctx())!.step(msg('juliet@capulet.lit', 'juliet', 'r0m30myr0m30'));
    assert.deepEqual(ok, { kind: 'success', username: 'juliet', authzid: 'juliet@capulet.lit' });
    const bad = failure(await createMechanism('PLAIN', ctx())!.step(msg('romeo@montague.lit', 'juliet', 'r0m30myr0m30')));
    assert.equal(bad.condition, 'invalid-authzid');
  });

  test('no initial response → empty challenge, then response', async () => {
    const m = createMechanism('PLAIN', ctx())!;
    const c = await m.step(null);
    assert.deepEqual(c, { kind: 'challenge', data: Buffer.alloc(0) });
    assert.equal((await m.step(msg('', 'juliet', 'r0m30myr0m30'))).kind, 'success');
    assert.equal(failure(await m.step(msg('', 'juliet', 'r0m30myr0m30'))).condition, 'malformed-request');
  });

  test('malformed, and not over plaintext', async () => {
    assert.equal(failure(await createMechanism('PLAIN', ctx())!.step(Buffer.from('juliet'))).condition, 'malformed-request');
    assert.equal(failure(await createMechanism('PLAIN', ctx())!.step(Buffer.alloc(0))).condition, 'malformed-request');
    const plain = createMechanism('PLAIN', testSaslContext(users, { tls: false }))!;
    assert.equal(failure(await plain.step(msg('', 'juliet', 'r0m30myr0m30'))).condition, 'encryption-required');
  });

  test('lookup error → temporary-auth-failure', async () => {
    const m = createMechanism('PLAIN', testSaslContext(users, { lookup: async () => { throw new Error('down'); } }))!;
    assert.equal(failure(await m.step(msg('', 'juliet', 'x'))).condition, 'temporary-auth-failure');
  });

  test('fuzz: never throws, never succeeds on random input', async () => {
    const c = testSaslContext(users, { iterations: 1 });
    await fc.assert(
      fc.asyncProperty(fc.uint8Array({ maxLength: 48 }), async (bytes) => {
        const s = await createMechanism('PLAIN', c)!.step(Buffer.from(bytes));
        assert.equal(s.kind, 'failure');
        assert.notEqual((s as { condition: string }).condition, 'temporary-auth-failure');
      }),
      { seed: 4616, numRuns: 200 },
    );
  });
});
