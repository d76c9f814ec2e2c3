// Property and fuzz tests of SASL message parsing and the server mechanisms (issue 5 item 3):
// valid SCRAM client-first/client-final and PLAIN messages from the test client, mutated at the
// byte level (flips, inserted tokens such as ',', '=2C', 'p=', NUL, invalid UTF-8, deletions,
// duplications), plus random step sequences. Properties:
//  - the parsers never throw; what they accept re-encodes to exactly what was sent;
//  - a mechanism never throws and never fails with temporary-auth-failure (which would mean an
//    internal exception was swallowed); after a success or failure every step fails;
//  - SCRAM succeeds only for the unmodified exchange of a known user with the right password;
//    PLAIN only when the authcid is a known user and the password prepares to the right one.
// Run longer: FUZZ_RUNS=100000 or FUZZ_SECONDS=600 (see test/security/fuzz.ts).
import { describe, it, before } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import type { StoredCredentials } from './credentials.ts';
import { ALL_MECHANISMS, createMechanism, type SaslStep } from './mechanisms.ts';
import { parsePlain } from './plain.ts';
import {
  decodeBase64Strict, decodeSaslName, deriveCredentials, encodeSaslName, parseClientFinal, parseClientFirst, preparePassword,
} from './scram.ts';
import { scramClient, testSaslContext } from './scram-client.ts';
import { fuzzParams } from '../../../test/security/fuzz.ts';

const ITERATIONS = 16; // the properties test the protocol, not the cost of PBKDF2
const PASSWORDS: Record<string, string> = { juliet: 'r0m30myr0m30', 'a,b=c': 'p\u00e4ss w\u00f6rd' };
const EXPORTER = Buffer.alloc(32, 0xab);
const ENDPOINT = Buffer.alloc(32, 0xcd);

const TOKENS = [',', '=', '=2C', '=3D', '=2c', 'n=', 'r=', 'c=', 'p=', 'a=', 'm=', 'x=', 'n,,', 'y,,', 'p=tls-exporter,', ',p=', '==',
  '\0', '\u00e9', 'juliet', 'biws', 'QQ==', '\u00ad', '\u00a0', '\u0007'].map((s) => Buffer.from(s));
const BYTES = [[0xff], [0xc3], [0xed, 0xa0, 0x80], [0x00], [0x2c], [0x3d]].map((b) => Buffer.from(b));
const ALL_TOKENS = [...TOKENS, ...BYTES];

const edit = fc.record({
  op: fc.integer({ min: 0, max: 3 }), at: fc.nat(), len: fc.integer({ min: 1, max: 8 }),
  tok: fc.nat({ max: ALL_TOKENS.length - 1 }), byte: fc.integer({ min: 0, max: 255 }),
});
type Edit = typeof edit extends fc.Arbitrary<infer T> ? T : never;
const edits = fc.array(edit, { minLength: 1, maxLength: 4 });

function mutate(b: Buffer, es: readonly Edit[]): Buffer {
  for (const e of es) {
    const at = e.at % (b.length + 1);
    switch (e.op) {
      case 0: if (at < b.length) { b = Buffer.from(b); b[at] = e.byte; } break;
      case 1: b = Buffer.concat([b.subarray(0, at), ALL_TOKENS[e.tok]!, b.subarray(at)]); break;
      case 2: b = Buffer.concat([b.subarray(0, at), b.subarray(at + e.len)]); break;
      default: b = Buffer.concat([b.subarray(0, at + e.len), b.subarray(at)]);
    }
  }
  return b;
}

const KINDS = new Set(['challenge', 'success', 'failure']);
function sane(s: SaslStep, what: string): void {
  assert.ok(KINDS.has(s.kind), `${what}: ${JSON.stringify(s)}`);
  if (s.kind === 'failure') assert.notEqual(s.condition, 'temporary-auth-failure', `${what}: an exception was swallowed: ${JSON.stringify(s)}`);
}

describe('SASL fuzz', () => {
  let users: Map<string, StoredCredentials>;
  before(async () => {
    users = new Map();
    for (const [u, p] of Object.entries(PASSWORDS)) users.set(u, await deriveCredentials(p, ITERATIONS));
  });
  const ctx = () => testSaslContext(users, { iterations: ITERATIONS, bindings: { 'tls-exporter': EXPORTER, 'tls-server-end-point': ENDPOINT } });

  it('message parsers never throw; what they accept re-encodes to the input', () => {
    const pieces = fc.array(fc.constantFrom(...ALL_TOKENS.map((t) => t.toString('latin1')), 'a', 'b', '1', '+', '/'), { maxLength: 16 }).map((a) => a.join(''));
    const text = fc.oneof(pieces, fc.string({ unit: 'binary', maxLength: 60 }), fc.string({ maxLength: 60 }));
    fc.assert(fc.property(text, fc.uint8Array({ maxLength: 64 }), (s, bytes) => {
      const first = parseClientFirst(s);
      if (first.ok) {
        assert.equal(first.value.gs2.raw + first.value.bare, s);
        assert.equal(decodeSaslName(encodeSaslName(first.value.username)), first.value.username);
        assert.ok(first.value.bare.startsWith(`n=${encodeSaslName(first.value.username)},r=${first.value.nonce}`), s);
      } else {
        assert.equal(first.condition, 'malformed-request');
      }
      const fin = parseClientFinal(s);
      if (fin.ok) {
        assert.equal(`${fin.value.withoutProof},p=${fin.value.proof.toString('base64')}`, s);
        assert.ok(fin.value.withoutProof.startsWith(`c=${fin.value.channelBinding.toString('base64')},r=${fin.value.nonce}`));
      }
      const b64 = decodeBase64Strict(s);
      if (b64 !== undefined) assert.equal(b64.toString('base64'), s);
      const name = decodeSaslName(s);
      if (name !== undefined) assert.equal(decodeSaslName(encodeSaslName(name)), name);
      for (const input of [Buffer.from(s, 'utf8'), Buffer.from(bytes)]) {
        const p = parsePlain(input);
        if (p) assert.deepEqual(Buffer.from(`${p.authzid}\0${p.authcid}\0${p.password}`, 'utf8'), input);
      }
    }), fuzzParams(6001, 1500));
  });

  /** One SCRAM exchange; `mutate` may change what is sent. Returns the outcome and whether what was sent is what the client made. */
  async function exchange(name: string, client: ReturnType<typeof scramClient>, mutFirst?: readonly Edit[], mutFinal?: readonly Edit[]) {
    const m = createMechanism(name, ctx())!;
    const first = client.first();
    const sentFirst = mutFirst ? mutate(first, mutFirst) : first;
    const s1 = await m.step(sentFirst);
    sane(s1, 'client-first');
    let outcome: SaslStep = s1;
    let intact = sentFirst.equals(first);
    if (s1.kind === 'challenge') {
      let fin: Buffer;
      try {
        fin = await client.final(s1.data);
      } catch {
        fin = Buffer.from('c=biws,r=x,p=AAAA'); // the mutated first made the nonce unusable for the client
        intact = false;
      }
      const sentFinal = mutFinal ? mutate(fin, mutFinal) : fin;
      intact &&= sentFinal.equals(fin);
      outcome = await m.step(sentFinal);
      sane(outcome, 'client-final');
    }
    if (outcome.kind === 'success') assert.ok(client.verifyServerFinal(outcome.data!), 'server signature');
    const after = await m.step(Buffer.from('n,,n=juliet,r=again'));
    assert.equal(after.kind, 'failure', 'nothing after the outcome');
    return { outcome, intact };
  }

  const scramNames = fc.constantFrom('SCRAM-SHA-1', 'SCRAM-SHA-256', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256-PLUS');
  const usernames = fc.constantFrom('juliet', 'a,b=c', 'nobody', 'JULIET');
  const authzids = fc.option(fc.constantFrom('juliet@example.com', 'juliet@example.com/res', 'romeo@example.com', 'a,b=c@example.com', 'a=2Cb=3Dc@example.com'));
  const hashOf = (name: string) => (name.includes('256') ? 'SHA-256' : 'SHA-1');
  /** What an honest client on this connection sends: -PLUS with the right exporter data, else 'n'. */
  const honest = (name: string) => (name.endsWith('-PLUS') ? { flag: 'p' as const, cbName: 'tls-exporter', cbData: EXPORTER } : { flag: 'n' as const });

  it('SCRAM: a mutated client-first or client-final never succeeds; only the untouched exchange of a known user with the right password does', async () => {
    await fc.assert(fc.asyncProperty(
      scramNames, usernames, fc.boolean(), fc.constantFrom('first', 'final', 'both', 'none'), edits, edits, authzids,
      async (name, username, right, target, e1, e2, authzid) => {
        const client = scramClient({
          hash: hashOf(name), username, password: right ? (PASSWORDS[username] ?? 'whatever') : 'wrong password', ...honest(name),
          ...(authzid ? { authzid } : {}),
        });
        const { outcome, intact } = await exchange(name, client, target === 'first' || target === 'both' ? e1 : undefined, target === 'final' || target === 'both' ? e2 : undefined);
        const authzOk = authzid === null || authzid === `${username}@example.com`;
        const shouldSucceed = intact && right && PASSWORDS[username] !== undefined && authzOk;
        assert.equal(outcome.kind, shouldSucceed ? 'success' : 'failure', `${name} ${username} right=${right} ${target}: ${JSON.stringify(outcome)}`);
      },
    ), fuzzParams(6002, 500));
  });

  it('SCRAM: a client with the right password but another channel binding (flag, type or data) fails', async () => {
    // The server offers both types (exporter data EXPORTER, end-point data ENDPOINT), so it
    // advertises -PLUS: a 'y' flag is a downgrade. Wrong data is a man in the middle.
    const binding = fc.record({
      flag: fc.constantFrom('n' as const, 'y' as const, 'p' as const, 'p' as const),
      cbName: fc.constantFrom('tls-exporter', 'tls-server-end-point', 'tls-unique'),
      cbData: fc.constantFrom(EXPORTER, ENDPOINT, Buffer.alloc(32, 0x11), Buffer.alloc(0)),
    });
    await fc.assert(fc.asyncProperty(scramNames, fc.constantFrom('juliet', 'a,b=c'), binding, async (name, username, cb) => {
      const client = scramClient({ hash: hashOf(name), username, password: PASSWORDS[username]!, ...cb });
      const { outcome } = await exchange(name, client);
      const ok = name.endsWith('-PLUS')
        ? cb.flag === 'p' && ((cb.cbName === 'tls-exporter' && cb.cbData === EXPORTER) || (cb.cbName === 'tls-server-end-point' && cb.cbData === ENDPOINT))
        : cb.flag === 'n';
      assert.equal(outcome.kind, ok ? 'success' : 'failure', `${name} ${JSON.stringify({ ...cb, cbData: cb.cbData.toString('hex').slice(0, 8) })}: ${JSON.stringify(outcome)}`);
    }), fuzzParams(6005, 300));
  });

  it('PLAIN: succeeds only for a known authcid whose password prepares to the right one', async () => {
    const authcid = fc.constantFrom('juliet', 'a,b=c', 'nobody', 'Juliet', '');
    const password = fc.oneof(
      fc.constantFrom(...Object.values(PASSWORDS)),
      fc.constantFrom('r0m30my\u00adr0m30', 'p\u00e4ss\u00a0w\u00f6rd', 'pa\u0308ss w\u00f6rd', 'r0m30myr0m30 ', 'R0M30MYR0M30', ''),
      fc.string({ maxLength: 20 }),
    );
    const authzid = fc.constantFrom('', 'juliet@example.com', 'romeo@example.com', 'juliet', '@');
    await fc.assert(fc.asyncProperty(authzid, authcid, password, fc.option(edits), async (az, ac, pw, es) => {
      const sent = es ? mutate(Buffer.from(`${az}\0${ac}\0${pw}`), es) : Buffer.from(`${az}\0${ac}\0${pw}`);
      const m = createMechanism('PLAIN', ctx())!;
      const s = await m.step(sent);
      sane(s, 'PLAIN');
      assert.notEqual(s.kind, 'challenge');
      if (s.kind === 'success') {
        const msg = parsePlain(sent)!;
        const real = PASSWORDS[msg.authcid];
        assert.ok(real !== undefined, `success for unknown authcid ${JSON.stringify(msg.authcid)}`);
        assert.equal(preparePassword(msg.password), preparePassword(real), `success with password ${JSON.stringify(msg.password)}`);
        assert.equal(s.username, msg.authcid);
        if (msg.authzid !== '') assert.ok(msg.authzid.toLowerCase().startsWith(`${msg.authcid.toLowerCase()}@`), `authzid ${msg.authzid}`);
      }
      assert.equal((await m.step(sent)).kind, 'failure', 'nothing after the outcome');
    }), fuzzParams(6003, 400));
  });

  it('random step sequences never throw; after an outcome every step fails', async () => {
    const names = fc.constantFrom(...ALL_MECHANISMS, 'DIGEST-MD5', '');
    const message = fc.oneof(
      fc.constant(null), fc.constant(Buffer.alloc(0)),
      fc.uint8Array({ maxLength: 48 }).map((a) => Buffer.from(a)),
      fc.constantFrom('n,,n=juliet,r=abc', 'p=tls-exporter,,n=juliet,r=abc', 'y,,n=juliet,r=abc', 'c=biws,r=abc,p=AAAA', '\0juliet\0r0m30myr0m30')
        .map((s) => Buffer.from(s)),
      fc.tuple(fc.constantFrom('n,,n=juliet,r=abc', 'c=biws,r=abc,p=AAAA', '\0juliet\0x'), edits).map(([s, es]) => mutate(Buffer.from(s), es)),
    );
    await fc.assert(fc.asyncProperty(names, fc.boolean(), fc.array(message, { minLength: 1, maxLength: 5 }), async (name, tls, steps) => {
      const m = createMechanism(name, testSaslContext(users, { iterations: ITERATIONS, tls, bindings: { 'tls-exporter': EXPORTER } }));
      if (m === null) {
        assert.ok(!(ALL_MECHANISMS as readonly string[]).includes(name));
        return;
      }
      let over = false;
      for (const data of steps) {
        const s = await m.step(data);
        sane(s, name);
        if (over) assert.equal(s.kind, 'failure', `${name}: a step after the outcome gave ${JSON.stringify(s)}`);
        if (s.kind !== 'challenge') over = true;
      }
    }), fuzzParams(6004, 800));
  });
});
