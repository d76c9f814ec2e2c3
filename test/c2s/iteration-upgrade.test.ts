// The operator raises auth.scramIterations (4096 → 10 000) and restarts: accounts created before
// keep 4096 until a PLAIN login re-derives them; meanwhile an unknown name shows 4096 too (it is
// drawn from the stored counts), so `i=` does not tell an old account from no account.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import { parse, stringify } from 'yaml';
import { startServer, type TestServer } from '../../src/testing/index.ts';
import { plainAttempt, saslStream, scramAttempt } from '../security/auth-util.ts';

let srv: TestServer;
let ca: Buffer;

before(async () => {
  srv = await startServer({ config: { auth: { failureDelayMs: 1, maxFailureDelayMs: 2 } } });
  ca = await readFile(srv.caFile);
  await srv.adduser('alice@localhost', 'alice password'); // at the default 4096
  await srv.adduser('bob@localhost', 'bob password');
  await srv.stop();
  const config = parse(await readFile(srv.configFile, 'utf8')) as { auth: Record<string, unknown> };
  config.auth.scramIterations = 10_000;
  await writeFile(srv.configFile, stringify(config));
  await srv.restart();
});
after(async () => {
  await srv.stop();
  await srv.cleanup();
});

async function scram(user: string, pass: string, hash: 'SHA-1' | 'SHA-256' = 'SHA-1') {
  const c = await saslStream(srv.ports.c2sDirectTls, ca);
  try {
    const a = await scramAttempt(c, hash, user, pass);
    return { ok: a.ok, iterations: Number(/,i=(\d+)$/.exec(a.serverFirst)?.[1]) };
  } finally {
    c.destroy();
  }
}

test('unknown names show the stored count, not the raised configured one; PLAIN upgrades, SCRAM cannot', async () => {
  assert.deepEqual(await scram('alice', 'alice password'), { ok: true, iterations: 4096 }, 'SCRAM logs in, the count stays');
  assert.deepEqual(await scram('alice', 'alice password', 'SHA-256'), { ok: true, iterations: 4096 });
  for (const u of ['nobody', 'nobody-else', 'Mallory']) {
    for (const hash of ['SHA-1', 'SHA-256'] as const) assert.deepEqual(await scram(u, 'guess', hash), { ok: false, iterations: 4096 }, `${u} ${hash}`);
  }

  const c = await saslStream(srv.ports.c2sDirectTls, ca);
  try {
    const a = await plainAttempt(c, 'alice', 'alice password');
    assert.ok(a.ok, a.xml);
  } finally {
    c.destroy();
  }
  const line = await srv.waitForLog('stored credentials upgraded to the configured iteration count');
  assert.deepEqual({ jid: line.jid, from: line.from, iterations: line.iterations }, { jid: 'alice@localhost', from: 4096, iterations: 10_000 });
  assert.ok(!srv.output().includes('alice password'), 'the password is not logged');

  assert.deepEqual(await scram('alice', 'alice password'), { ok: true, iterations: 10_000 }, 'same password, new count');
  assert.deepEqual(await scram('alice', 'alice password', 'SHA-256'), { ok: true, iterations: 10_000 });
  assert.deepEqual(await scram('bob', 'bob password'), { ok: true, iterations: 4096 }, 'bob has not used PLAIN');
});
