import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StoredCredentials } from './credentials.ts';
import { createMechanism, type SaslContext, type SaslStep } from './mechanisms.ts';
import {
  decodeBase64Strict,
  decodeSaslName,
  deriveCredentials,
  deriveScramCredential,
  encodeSaslName,
  fakeCredential,
  parseClientFirst,
  ScramServer,
  scramCredentialFromSaltedPassword,
  saltedPassword,
} from './scram.ts';
import { runScram, scramClient, testSaslContext } from './scram-client.ts';

const EXPORTER = Buffer.alloc(32, 0xab);
const ENDPOINT = Buffer.alloc(32, 0xcd);

function mustStep<K extends SaslStep['kind']>(s: SaslStep, kind: K): asserts s is Extract<SaslStep, { kind: K }> {
  assert.equal(s.kind, kind, `expected ${kind}, got ${JSON.stringify(s)}`);
}

function failure(s: SaslStep): Extract<SaslStep, { kind: 'failure' }> {
  assert.equal(s.kind, 'failure', `expected failure, got ${JSON.stringify(s)}`);
  return s as Extract<SaslStep, { kind: 'failure' }>;
}

describe('SCRAM test vectors', () => {
  test('RFC 5802 §5 SCRAM-SHA-1 (user/pencil)', async () => {
    const cred = await deriveScramCredential('pencil', 'SHA-1', 4096, Buffer.from('QSXCR+Q6sek8bf92', 'base64'));
    const users: Record<string, StoredCredentials> = { user: { 'SHA-1': cred, 'SHA-256': cred } };
    const ctx = testSaslContext(users, { randomNonce: () => '3rfcNHYJY1ZVvWVs7j' });
    const m = createMechanism('SCRAM-SHA-1', ctx)!;
    const s1 = await m.step(Buffer.from('n,,n=user,r=fyko+d2lbbFgONRv9qkxdawL'));
    mustStep(s1, 'challenge');
    assert.equal(s1.data.toString(), 'r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,s=QSXCR+Q6sek8bf92,i=4096');
    const s2 = await m.step(
      Buffer.from('c=biws,r=fyko+d2lbbFgONRv9qkxdawL3rfcNHYJY1ZVvWVs7j,p=v0X8v3Bz2T0CJGbJQyF0X+HI4Ts='),
    );
    mustStep(s2, 'success');
    assert.equal(s2.data?.toString(), 'v=rmF9pqV8S7suAoZWja4dJRkFsKQ=');
    assert.equal(s2.username, 'user');
  });

  test('RFC 7677 §3 SCRAM-SHA-256 (user/pencil)', async () => {
    const cred = await deriveScramCredential('pencil', 'SHA-256', 4096, Buffer.from('W22ZaJ0SNY7soEsUEjb6gQ==', 'base64'));
    const ctx = testSaslContext({ user: { 'SHA-1': cred, 'SHA-256': cred } }, { randomNonce: () => '%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0' });
    const m = createMechanism('SCRAM-SHA-256', ctx)!;
    const s1 = await m.step(Buffer.from('n,,n=user,r=rOprNGfwEbeRWgbNEkqO'));
    mustStep(s1, 'challenge');
    assert.equal(
      s1.data.toString(),
      'r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,s=W22ZaJ0SNY7soEsUEjb6gQ==,i=4096',
    );
    const s2 = await m.step(
      Buffer.from(
        'c=biws,r=rOprNGfwEbeRWgbNEkqO%hvYDpWUa2RaTCAfuxFIlj)hNlF$k0,p=dHzbZapWIk4jUhN+Ute9ytag9zjfMHgsqmmiz7AndVQ=',
      ),
    );
    mustStep(s2, 'success');
    assert.equal(s2.data?.toString(), 'v=6rriTRBi23WpRR/wtup+mMhUZUn/dB5nLTJRsjl95G4=');
  });

  test('scramCredentialFromSaltedPassword matches deriveScramCredential', async () => {
    const salt = Buffer.from('QSXCR+Q6sek8bf92', 'base64');
    const sp = await saltedPassword('pencil', salt, 4096, 'SHA-1');
    assert.deepEqual(scramCredentialFromSaltedPassword('SHA-1', sp, salt, 4096), await deriveScramCredential('pencil', 'SHA-1', 4096, salt));
  });
});

describe('credential derivation', () => {
  test('deriveCredentials: both hashes, 16-byte independent random salts', async () => {
    const a = await deriveCredentials('secret', 1000);
    const b = await deriveCredentials('secret', 1000);
    for (const h of ['SHA-1', 'SHA-256'] as const) {
      assert.equal(Buffer.from(a[h].salt, 'base64').length, 16);
      assert.equal(a[h].iterations, 1000);
      assert.notEqual(a[h].salt, b[h].salt);
      assert.notEqual(a[h].storedKey, b[h].storedKey);
    }
    assert.notEqual(a['SHA-1'].salt, a['SHA-256'].salt);
    assert.equal(Buffer.from(a['SHA-1'].storedKey, 'base64').length, 20);
    assert.equal(Buffer.from(a['SHA-256'].serverKey, 'base64').length, 32);
  });

  test('SASLprep is applied (soft hyphen mapped to nothing, NBSP to space)', async () => {
    const salt = Buffer.alloc(16, 1);
    const x = await deriveScramCredential('pen\u00ADcil', 'SHA-256', 100, salt);
    const y = await deriveScramCredential('pencil', 'SHA-256', 100, salt);
    assert.deepEqual(x, y);
    const z = await deriveScramCredential('a\u00A0b', 'SHA-256', 100, salt);
    assert.deepEqual(z, await deriveScramCredential('a b', 'SHA-256', 100, salt));
  });

  test('prohibited or empty passwords are rejected', async () => {
    await assert.rejects(deriveScramCredential('bad\u0007', 'SHA-256', 100));
    await assert.rejects(deriveScramCredential('', 'SHA-256', 100));
    await assert.rejects(deriveScramCredential('\u00AD', 'SHA-256', 100));
    await assert.rejects(deriveScramCredential('x', 'SHA-256', 0));
  });
});

describe('parsing helpers', () => {
  test('saslname escapes', () => {
    assert.equal(decodeSaslName('a=2Cb=3Dc'), 'a,b=c');
    assert.equal(decodeSaslName('a=2cb'), undefined);
    assert.equal(decodeSaslName('a=b'), undefined);
    assert.equal(decodeSaslName('a='), undefined);
    assert.equal(decodeSaslName(''), undefined);
    assert.equal(encodeSaslName('a,b=c'), 'a=2Cb=3Dc');
  });

  test('strict base64', () => {
    assert.deepEqual(decodeBase64Strict('biws'), Buffer.from('n,,'));
    assert.equal(decodeBase64Strict('biw'), undefined);
    assert.equal(decodeBase64Strict('QR=='), undefined);
    assert.equal(decodeBase64Strict('bi ws'), undefined);
    assert.deepEqual(decodeBase64Strict(''), Buffer.alloc(0));
  });

  test('GS2 header forms', () => {
    const r = (s: string) => parseClientFirst(s);
    assert.deepEqual(r('n,,n=u,r=x').ok && (r('n,,n=u,r=x') as any).value.gs2, { flag: 'n', raw: 'n,,' });
    assert.deepEqual((r('y,,n=u,r=x') as any).value.gs2, { flag: 'y', raw: 'y,,' });
    assert.deepEqual((r('p=tls-exporter,a=u@h,n=u,r=x') as any).value.gs2, {
      flag: 'p',
      cbName: 'tls-exporter',
      authzid: 'u@h',
      raw: 'p=tls-exporter,a=u@h,',
    });
    assert.equal(r('x,,n=u,r=x').ok, false);
    assert.equal(r('n,b=u,n=u,r=x').ok, false);
    assert.equal(r('n,,m=foo,n=u,r=x').ok, false);
    assert.equal(r('n,,n=u').ok, false);
    assert.equal(r('n,,r=x,n=u').ok, false);
    assert.equal(r('n,,n=u,r=a,b').ok, false);
    assert.equal(r('n,,n=u,r=x,q=ext').ok, true);
  });
});

describe('SCRAM server exchanges', () => {
  let users: Map<string, StoredCredentials>;
  before(async () => {
    users = new Map([
      ['juliet', await deriveCredentials('r0m30myr0m30', 4096)],
      ['a,b=c', await deriveCredentials('p\u00E4ssw\u00F6rd', 4096)],
    ]);
  });
  const ctxWith = (o: Parameters<typeof testSaslContext>[1] = {}) =>
    testSaslContext(users, { bindings: { 'tls-exporter': EXPORTER, 'tls-server-end-point': ENDPOINT }, ...o });

  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    test(`SCRAM-${hash} happy path, server signature verified`, async () => {
      const m = createMechanism(`SCRAM-${hash}`, ctxWith({ plusAdvertised: false }))!;
      const { final, serverVerified } = await runScram(m, scramClient({ hash, username: 'juliet', password: 'r0m30myr0m30' }));
      mustStep(final, 'success');
      assert.equal(final.username, 'juliet');
      assert.equal(serverVerified, true);
    });

    for (const cbName of ['tls-exporter', 'tls-server-end-point'] as const) {
      test(`SCRAM-${hash}-PLUS with ${cbName}`, async () => {
        const m = createMechanism(`SCRAM-${hash}-PLUS`, ctxWith())!;
        const cbData = cbName === 'tls-exporter' ? EXPORTER : ENDPOINT;
        const client = scramClient({ hash, username: 'juliet', password: 'r0m30myr0m30', flag: 'p', cbName, cbData });
        const { final, serverVerified } = await runScram(m, client);
        mustStep(final, 'success');
        assert.equal(serverVerified, true);
      });

      test(`SCRAM-${hash}-PLUS with ${cbName}: wrong channel binding data (MITM) fails`, async () => {
        const m = createMechanism(`SCRAM-${hash}-PLUS`, ctxWith())!;
        const client = scramClient({
          hash,
          username: 'juliet',
          password: 'r0m30myr0m30',
          flag: 'p',
          cbName,
          cbData: Buffer.alloc(32, 0x11),
        });
        const { final } = await runScram(m, client);
        assert.equal(failure(final).condition, 'not-authorized');
        assert.equal(failure(final).username, 'juliet');
      });
    }
  }

  test('-PLUS: binding data of the other type is rejected', async () => {
    const m = createMechanism('SCRAM-SHA-256-PLUS', ctxWith())!;
    const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', flag: 'p', cbName: 'tls-exporter', cbData: ENDPOINT });
    assert.equal(failure((await runScram(m, c)).final).condition, 'not-authorized');
  });

  test('server nonce: extends the client nonce, random per exchange', async () => {
    const nonces = new Set<string>();
    for (let i = 0; i < 20; i++) {
      const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
      const s = await m.step(Buffer.from('n,,n=juliet,r=clientnonce'));
      mustStep(s, 'challenge');
      const r = /^r=([^,]+),s=[^,]+,i=4096$/.exec(s.data.toString())![1]!;
      assert.ok(r.startsWith('clientnonce') && r.length >= 'clientnonce'.length + 16);
      nonces.add(r);
    }
    assert.equal(nonces.size, 20);
  });

  test('-PLUS with a binding type not offered fails', async () => {
    const ctx = ctxWith({ offeredBindings: ['tls-exporter'] });
    const m = createMechanism('SCRAM-SHA-256-PLUS', ctx)!;
    const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', flag: 'p', cbName: 'tls-server-end-point', cbData: ENDPOINT });
    assert.equal(failure(await m.step(c.first())).condition, 'not-authorized');
    const m2 = createMechanism('SCRAM-SHA-256-PLUS', ctx)!;
    const c2 = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'x', flag: 'p', cbName: 'tls-unique', cbData: ENDPOINT });
    assert.equal(failure(await m2.step(c2.first())).condition, 'not-authorized');
  });

  test('-PLUS offered but the binding data is missing on this connection', async () => {
    const ctx = testSaslContext(users, { bindings: { 'tls-server-end-point': ENDPOINT } });
    const m = createMechanism('SCRAM-SHA-256-PLUS', ctx)!;
    const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', flag: 'p', cbName: 'tls-exporter', cbData: EXPORTER });
    assert.equal(failure(await m.step(c.first())).condition, 'not-authorized');
    // no binding at all → createMechanism gives a refusing mechanism
    const none = createMechanism('SCRAM-SHA-256-PLUS', testSaslContext(users))!;
    assert.equal(failure(await none.step(c.first())).condition, 'not-authorized');
  });

  test('-PLUS mechanism with flag n or y is malformed; non-PLUS with flag p is malformed', async () => {
    for (const flag of ['n', 'y'] as const) {
      const m = createMechanism('SCRAM-SHA-256-PLUS', ctxWith())!;
      const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', flag });
      assert.equal(failure(await m.step(c.first())).condition, 'malformed-request');
    }
    const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
    const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', flag: 'p', cbName: 'tls-exporter', cbData: EXPORTER });
    assert.equal(failure(await m.step(c.first())).condition, 'malformed-request');
  });

  test("flag 'y' is a downgrade when -PLUS is advertised, fine otherwise", async () => {
    const c = () => scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', flag: 'y' });
    const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
    const f = failure(await m.step(c().first()));
    assert.equal(f.condition, 'not-authorized');
    assert.match(f.text ?? '', /channel binding/);
    // explicit override (enabled list without -PLUS)
    const m2 = createMechanism('SCRAM-SHA-256', ctxWith({ plusAdvertised: false }))!;
    mustStep((await runScram(m2, c())).final, 'success');
    // no TLS binding data → not advertised
    const m3 = createMechanism('SCRAM-SHA-256', testSaslContext(users))!;
    mustStep((await runScram(m3, c())).final, 'success');
    // without TLS
    const m4 = createMechanism('SCRAM-SHA-256', ctxWith({ tls: false }))!;
    mustStep((await runScram(m4, c())).final, 'success');
  });

  test('wrong password → not-authorized, no server signature', async () => {
    const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
    const { final } = await runScram(m, scramClient({ hash: 'SHA-256', username: 'juliet', password: 'wrong' }));
    const f = failure(final);
    assert.equal(f.condition, 'not-authorized');
    assert.equal(f.username, 'juliet');
  });

  test('unknown user is indistinguishable from a wrong password', async () => {
    const ctx = ctxWith();
    const firstOf = async (username: string) => {
      const m = createMechanism('SCRAM-SHA-256', ctx)!;
      const s = await m.step(scramClient({ hash: 'SHA-256', username, password: 'x', nonce: 'abc' }).first());
      mustStep(s, 'challenge');
      const attrs = Object.fromEntries(s.data.toString().split(',').map((a) => [a[0], a.slice(2)]));
      return { m, attrs };
    };
    const real = await firstOf('juliet');
    const ghost1 = await firstOf('romeo');
    const ghost2 = await firstOf('romeo');
    const ghost3 = await firstOf('Romeo');
    const other = await firstOf('mercutio');
    // Stable, real-looking salt with the same iteration count
    assert.equal(ghost1.attrs.s, ghost2.attrs.s);
    assert.equal(ghost1.attrs.s, ghost3.attrs.s);
    assert.notEqual(ghost1.attrs.s, other.attrs.s);
    assert.equal(Buffer.from(ghost1.attrs.s!, 'base64').length, Buffer.from(real.attrs.s!, 'base64').length);
    assert.equal(ghost1.attrs.i, real.attrs.i);
    // a different secret gives a different fake salt
    assert.notEqual(fakeCredential(Buffer.from('other'), 'romeo', 'SHA-256', 4096).salt, ghost1.attrs.s);

    const wrong = await runScram(createMechanism('SCRAM-SHA-256', ctx)!, scramClient({ hash: 'SHA-256', username: 'juliet', password: 'nope' }));
    const unknown = await runScram(createMechanism('SCRAM-SHA-256', ctx)!, scramClient({ hash: 'SHA-256', username: 'romeo', password: 'nope' }));
    const { username: u1, ...f1 } = failure(wrong.final);
    const { username: u2, ...f2 } = failure(unknown.final);
    assert.deepEqual(f1, f2);
    assert.equal(u1, 'juliet');
    assert.equal(u2, 'romeo');
  });

  test('username escapes =2C / =3D and non-ASCII password', async () => {
    const m = createMechanism('SCRAM-SHA-256', ctxWith({ plusAdvertised: false }))!;
    const c = scramClient({ hash: 'SHA-256', username: 'a,b=c', password: 'p\u00E4ssw\u00F6rd' });
    assert.match(c.first().toString(), /n=a=2Cb=3Dc,/);
    const { final, serverVerified } = await runScram(m, c);
    mustStep(final, 'success');
    assert.equal(final.username, 'a,b=c');
    assert.equal(serverVerified, true);
  });

  test('bad username escape → malformed-request', async () => {
    const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
    assert.equal(failure(await m.step(Buffer.from('n,,n=a=2Xb,r=abc'))).condition, 'malformed-request');
  });

  test('m= extension → failure', async () => {
    const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
    assert.equal(failure(await m.step(Buffer.from('n,,m=ext,n=juliet,r=abc'))).condition, 'malformed-request');
  });

  test('authzid: own bare JID accepted (returned for the domain check), others refused', async () => {
    const ok = await runScram(
      createMechanism('SCRAM-SHA-256', ctxWith({ plusAdvertised: false }))!,
      scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', authzid: 'juliet@capulet.lit' }),
    );
    mustStep(ok.final, 'success');
    assert.equal(ok.final.authzid, 'juliet@capulet.lit');
    assert.equal(ok.serverVerified, true);
    for (const authzid of ['romeo@montague.lit', 'juliet', 'juliet@capulet.lit/balcony', '@capulet.lit', 'juliet@']) {
      const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
      const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', authzid });
      assert.equal(failure(await m.step(c.first())).condition, 'invalid-authzid', authzid);
    }
  });

  test('tampered client-final messages', async () => {
    const tamper = async (f: (final: string, c: ReturnType<typeof scramClient>) => string) => {
      const m = createMechanism('SCRAM-SHA-256-PLUS', ctxWith())!;
      const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30', flag: 'p', cbName: 'tls-exporter', cbData: EXPORTER });
      const s1 = await m.step(c.first());
      mustStep(s1, 'challenge');
      const fin = (await c.final(s1.data)).toString();
      return m.step(Buffer.from(f(fin, c)));
    };
    // flip a bit of the proof
    const flip = (fin: string) => {
      const [head, p] = fin.split(',p=') as [string, string];
      const proof = Buffer.from(p, 'base64');
      proof[0]! ^= 1;
      return `${head},p=${proof.toString('base64')}`;
    };
    assert.equal(failure(await tamper(flip)).condition, 'not-authorized');
    // truncated proof
    assert.equal(failure(await tamper((fin) => fin.replace(/,p=.*/, ',p=AAAA'))).condition, 'malformed-request');
    // wrong nonce
    assert.equal(failure(await tamper((fin) => fin.replace(/r=([^,]*)/, 'r=$1x'))).condition, 'malformed-request');
    // c= without the binding data (strip to the bare GS2 header)
    assert.equal(
      failure(await tamper((fin, c) => fin.replace(/c=[^,]*/, `c=${Buffer.from(c.gs2Header).toString('base64')}`))).condition,
      'not-authorized',
    );
    // extra extension between r= and p= changes AuthMessage → not-authorized (proof covers it)
    assert.equal(failure(await tamper((fin) => fin.replace(',p=', ',x=1,p='))).condition, 'not-authorized');
    // missing proof
    assert.equal(failure(await tamper((fin) => fin.replace(/,p=.*/, ''))).condition, 'malformed-request');
    // invalid UTF-8 is checked on bytes
    const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
    assert.equal(failure(await m.step(Buffer.from([0x6e, 0x2c, 0x2c, 0xff]))).condition, 'malformed-request');
  });

  test('client-final replayed on another exchange fails (fresh server nonce)', async () => {
    // Complete on connection A; replay client-final on connection B (different nonce) → nonce mismatch.
    const c = scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30' });
    const a = createMechanism('SCRAM-SHA-256', ctxWith({ plusAdvertised: false }))!;
    const s1 = await a.step(c.first());
    mustStep(s1, 'challenge');
    const fin = await c.final(s1.data);
    const b = createMechanism('SCRAM-SHA-256', ctxWith({ plusAdvertised: false }))!;
    mustStep(await b.step(c.first()), 'challenge');
    assert.equal(failure(await b.step(fin)).condition, 'malformed-request');
    mustStep(await a.step(fin), 'success');
  });

  test('no initial response: empty challenge first, then the exchange', async () => {
    const m = createMechanism('SCRAM-SHA-1', ctxWith({ plusAdvertised: false }))!;
    const s0 = await m.step(null);
    mustStep(s0, 'challenge');
    assert.equal(s0.data.length, 0);
    const { final } = await runScram(m, scramClient({ hash: 'SHA-1', username: 'juliet', password: 'r0m30myr0m30' }));
    mustStep(final, 'success');
  });

  test('empty initial response, steps after the end, lookup errors', async () => {
    const m = createMechanism('SCRAM-SHA-256', ctxWith())!;
    assert.equal(failure(await m.step(Buffer.alloc(0))).condition, 'malformed-request');
    assert.equal(failure(await m.step(Buffer.from('n,,n=juliet,r=abc'))).condition, 'malformed-request');

    const ok = createMechanism('SCRAM-SHA-256', ctxWith({ plusAdvertised: false }))!;
    mustStep((await runScram(ok, scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30' }))).final, 'success');
    assert.equal(failure(await ok.step(Buffer.from('x'))).condition, 'malformed-request');

    const broken = createMechanism('SCRAM-SHA-256', ctxWith({ lookup: async () => { throw new Error('db down'); } }))!;
    const f = failure(await broken.step(Buffer.from('n,,n=juliet,r=abc')));
    assert.equal(f.condition, 'temporary-auth-failure');
  });

  test('corrupt stored credential is treated like an unknown user', async () => {
    const good = users.get('juliet')!;
    const bad: StoredCredentials = { ...good, 'SHA-256': { ...good['SHA-256'], storedKey: 'AAAA' } };
    const ctx = testSaslContext({ juliet: bad }, { plusAdvertised: false });
    const { final } = await runScram(createMechanism('SCRAM-SHA-256', ctx)!, scramClient({ hash: 'SHA-256', username: 'juliet', password: 'r0m30myr0m30' }));
    assert.equal(failure(final).condition, 'not-authorized');
  });

  test('fuzz: random messages never throw and always produce a SaslStep', async () => {
    const ctx = ctxWith();
    const kinds = new Set(['challenge', 'success', 'failure']);
    const pieces = fc.constantFrom(
      'n', 'y', 'p=tls-exporter', 'p=', 'a=', 'n=', 'r=', 'c=', 'p=', 'm=', 's=', 'i=', ',', '=', '=2C', '=3D', 'juliet', 'biws', '\0', '\u00e9', 'x',
    );
    const message = fc.oneof(
      fc.uint8Array({ maxLength: 64 }).map((a) => Buffer.from(a)),
      fc.array(pieces, { maxLength: 12 }).map((p) => Buffer.from(p.join(''))),
      fc.string({ maxLength: 40 }).map((s) => Buffer.from(s)),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom('SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS'),
        fc.option(message, { nil: null }),
        message,
        fc.boolean(),
        async (name, first, second, validFirst) => {
          const m = createMechanism(name, ctx)!;
          const plus = name.endsWith('-PLUS');
          const firstMsg = validFirst
            ? Buffer.from(`${plus ? 'p=tls-exporter' : 'n'},,n=juliet,r=abc`)
            : first;
          for (const msg of [firstMsg, second, second]) {
            const s = await m.step(msg);
            assert.ok(kinds.has(s.kind));
            if (s.kind === 'success') return false;
            // temporary-auth-failure would mean an internal exception was swallowed
            if (s.kind === 'failure') assert.notEqual(s.condition, 'temporary-auth-failure', JSON.stringify(s));
          }
          return true;
        },
      ),
      { seed: 20240611, numRuns: 400 },
    );
  });

  test('ScramServer name', () => {
    const ctx: SaslContext = ctxWith();
    assert.equal(new ScramServer(ctx, { hash: 'SHA-1', plus: true }).name, 'SCRAM-SHA-1-PLUS');
    assert.equal(new ScramServer(ctx, { hash: 'SHA-256', plus: false }).name, 'SCRAM-SHA-256');
  });
});
