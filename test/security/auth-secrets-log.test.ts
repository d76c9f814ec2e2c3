// Secrets never reach the log (issue 5 item 7), at the most verbose level there is (trace),
// through everything that handles one: PLAIN and SCRAM-SHA-1/-256 logins that succeed and fail,
// a SCRAM exchange abandoned half-way, a registration attempt carrying a password before
// authentication, an in-band password change (XEP-0077 §3.3) and account deletion (§3.2), and
// the CLI's passwd/deluser. The whole server output and the CLI output are then searched for
// every password (raw, base64, JSON- and URL-escaped), every SASL blob that went over the wire
// (PLAIN messages, SCRAM client-first/-final, proofs, server signatures), the stored SCRAM keys,
// the TLS private key and the installation secret. (test/ops/lifecycle.test.ts has a smaller
// version of this for PLAIN and SCRAM-SHA-1 logins.)
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { openStorage } from '../../src/storage/index.ts';
import { moduleStorageOptions } from '../../src/modules/storage-options.ts';
import { plainAttempt, saslStream, scramAttempt, SASL } from './auth-util.ts';
import type { RawClient } from '../../src/testing/index.ts';

const PW = {
  alice: 'Alice-Geheim-ñ-1',
  aliceWrong: 'Alice-Geheim-ñ-2',
  aliceNew: 'Alice-Neu-€-3',
  aliceCli: 'Alice-Cli-4-secret',
  bob: 'Bob-Secret-5-pw',
  register: 'Register-Attempt-6',
};

let srv: TestServer;
let ca: Buffer;
const wire: string[] = [];
const cliOut: string[] = [];

before(async () => {
  srv = await startServer({ config: { log: { level: 'trace', format: 'json' }, auth: { failureDelayMs: 1, maxFailureDelayMs: 2 } } });
  ca = await readFile(srv.caFile);
  await srv.adduser('alice@localhost', PW.alice);
  await srv.adduser('bob@localhost', PW.bob);
});
after(async () => {
  await srv.stop();
  await srv.cleanup();
});

/** PLAIN success, the stream restart and resource binding. */
async function bound(user: string, pass: string): Promise<RawClient> {
  const c = await saslStream(srv.ports.c2sDirectTls, ca);
  const a = await plainAttempt(c, user, pass);
  assert.ok(a.ok, a.xml);
  c.clear();
  c.header();
  await c.expect(/<\/stream:features>/);
  c.send(`<iq type='set' id='b1'><bind xmlns='urn:ietf:params:xml:ns:xmpp-bind'/></iq>`);
  await c.expect(/id=['"]b1['"]/);
  c.clear();
  return c;
}

const b64 = (s: string) => Buffer.from(s, 'utf8').toString('base64');

test('logins, password changes and deletions at trace level leave no secret in the log', async () => {
  // Keys as stored, read before anything changes them.
  const storage = await openStorage(srv.storage.type === 'sqlite'
    ? { type: 'sqlite', path: srv.storage.path }
    : { type: 'postgres', url: srv.storage.url, poolSize: 1 }, moduleStorageOptions());
  const stored: string[] = [];
  try {
    for (const u of ['alice', 'bob']) {
      const acct = await storage.accounts.get('localhost', u);
      for (const c of Object.values(acct!.credentials)) stored.push(c.storedKey, c.serverKey);
    }
  } finally {
    await storage.close();
  }

  // PLAIN: success and failure.
  let c = await saslStream(srv.ports.c2sDirectTls, ca);
  assert.equal((await plainAttempt(c, 'alice', PW.aliceWrong)).condition, 'not-authorized');
  assert.ok((await plainAttempt(c, 'alice', PW.alice)).ok);
  c.destroy();
  wire.push(b64(`\0alice\0${PW.alice}`), b64(`\0alice\0${PW.aliceWrong}`));

  // SCRAM-SHA-1 and -256: success and failure, every blob kept.
  for (const hash of ['SHA-1', 'SHA-256'] as const) {
    for (const pass of [PW.alice, PW.aliceWrong]) {
      c = await saslStream(srv.ports.c2sDirectTls, ca);
      const a = await scramAttempt(c, hash, 'alice', pass);
      assert.equal(a.ok, pass === PW.alice, a.xml);
      c.destroy();
      wire.push(...a.wire);
      const final = Buffer.from(a.wire[2]!, 'base64').toString('utf8');
      wire.push(final, /,p=(.+)$/.exec(final)![1]!);
      if (a.wire[3]) wire.push(Buffer.from(a.wire[3], 'base64').toString('utf8'));
    }
  }
  // A SCRAM exchange abandoned after the server-first message.
  c = await saslStream(srv.ports.c2sDirectTls, ca);
  c.send(`<auth xmlns='${SASL}' mechanism='SCRAM-SHA-256'>${b64('n,,n=bob,r=abandoned-nonce-123')}</auth>`);
  await c.expect(/<challenge/);
  c.destroy();

  // A registration attempt with a password before authentication (refused, never echoed).
  c = await saslStream(srv.ports.c2sDirectTls, ca);
  c.send(`<iq type='set' id='reg1'><query xmlns='jabber:iq:register'><username>mallory</username><password>${PW.register}</password></query></iq>`);
  await c.expect(/id=['"]reg1['"]/);
  assert.doesNotMatch(c.received, new RegExp(PW.register), 'the refusal does not echo the password');
  c.destroy();

  // In-band password change (XEP-0077 §3.3), then a login with the new password.
  c = await bound('alice', PW.alice);
  c.send(`<iq type='set' id='pw1' to='localhost'><query xmlns='jabber:iq:register'><username>alice</username><password>${PW.aliceNew}</password></query></iq>`);
  const r = await c.expect(/<iq[^>]*id=['"]pw1['"][^>]*>/);
  assert.match(r[0], /type=['"]result['"]/, c.received);
  c.destroy();
  c = await saslStream(srv.ports.c2sDirectTls, ca);
  assert.ok((await plainAttempt(c, 'alice', PW.aliceNew)).ok);
  c.destroy();
  wire.push(b64(`\0alice\0${PW.aliceNew}`));

  // The CLI: passwd (password on stdin) while the server runs, then deluser.
  const pw = await srv.cli(['passwd', 'alice@localhost'], PW.aliceCli + '\n');
  assert.equal(pw.code, 0, pw.stderr);
  cliOut.push(pw.stdout, pw.stderr);
  const del = await srv.cli(['deluser', 'alice@localhost']);
  assert.equal(del.code, 0, del.stderr);
  cliOut.push(del.stdout, del.stderr);

  // In-band account deletion (XEP-0077 §3.2).
  c = await bound('bob', PW.bob);
  c.send(`<iq type='set' id='rm1' to='localhost'><query xmlns='jabber:iq:register'><remove/></query></iq>`);
  await c.expect(/id=['"]rm1['"]|<\/stream:stream>/);
  c.destroy();

  await srv.stop();
  const out = srv.output() + cliOut.join('');
  assert.ok(srv.logs.some((l) => l.msg === 'authentication failed'), 'failures were logged');
  assert.ok(srv.logs.some((l) => l.msg === 'password changed by the user'), 'the password change was logged');
  assert.ok(srv.logs.some((l) => l.msg === 'account deleted by the user'), 'the deletion was logged');
  assert.ok(srv.logs.some((l) => l.level === 'debug'), 'debug lines were written');

  const keyPem = await readFile((await import('../../src/testing/index.ts').then((m) => m.testCertificates())).keyFile, 'utf8');
  const keyLines = keyPem.split('\n').filter((l) => l.length >= 40 && !l.startsWith('-----'));
  const secret = (await readFile(path.join(srv.dataDir, 'secret.key'), 'utf8')).trim();
  const needles: [string, string][] = [];
  for (const [name, p] of Object.entries(PW)) {
    needles.push([`password ${name}`, p], [`password ${name} base64`, b64(p)], [`password ${name} JSON-escaped`, JSON.stringify(p).slice(1, -1)],
      [`password ${name} URL-escaped`, encodeURIComponent(p)], [`password ${name} hex`, Buffer.from(p).toString('hex')]);
  }
  wire.forEach((w, i) => needles.push([`SASL blob #${i}`, w]));
  stored.forEach((k, i) => needles.push([`stored SCRAM key #${i}`, k]));
  keyLines.forEach((l, i) => needles.push([`private key line ${i}`, l]));
  needles.push(['installation secret', secret], ['installation secret hex', Buffer.from(secret, 'base64').toString('hex')]);
  for (const [what, needle] of needles) {
    assert.ok(needle.length >= 8, `${what} is long enough to search for`);
    assert.ok(!out.includes(needle), `the log contains ${what}: ${JSON.stringify(needle)}`);
  }
});
