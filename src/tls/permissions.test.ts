import { test } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { checkSecretDir, checkSecretFile, currentIdentity, secretDirProblems, secretFileProblems } from './permissions.ts';

const me = { uid: 1000, gids: [1000, 111] }; // 111: e.g. Debian's ssl-cert
const file = (mode: number, uid = 1000, gid = 1000) => ({ mode: 0o100000 | mode, uid, gid });

test('secret files: private, root-owned and ssl-cert style keys are fine', () => {
  assert.deepEqual(secretFileProblems(file(0o600), me), []);
  assert.deepEqual(secretFileProblems(file(0o400), me), []);
  assert.deepEqual(secretFileProblems(file(0o600, 0, 0), me), [], 'root may own it (Let’s Encrypt)');
  assert.deepEqual(secretFileProblems(file(0o640, 0, 111), me), [], 'group-readable by a group the server is in');
});

test('secret files: world bits, group write, foreign group, foreign owner', () => {
  assert.match(secretFileProblems(file(0o644), me).join(), /readable by every user on this machine \(mode 0644\)/);
  assert.match(secretFileProblems(file(0o602), me).join(), /writable by every user/);
  assert.match(secretFileProblems(file(0o660), me).join(), /writable by group 1000/);
  assert.match(secretFileProblems(file(0o640, 1000, 50), me).join(), /readable by group 50, which the server's user is not in/);
  assert.match(secretFileProblems(file(0o600, 1001, 1000), me).join(), /owned by uid 1001, not by the server's user \(uid 1000\) or root/);
  assert.equal(secretFileProblems(file(0o666, 1001, 50), me).length, 3);
});

test('secret directories', () => {
  const dir = (mode: number) => ({ mode: 0o040000 | mode, uid: 1000, gid: 1000 });
  assert.deepEqual(secretDirProblems(dir(0o700)), []);
  assert.deepEqual(secretDirProblems(dir(0o750)), []);
  assert.match(secretDirProblems(dir(0o755)).join(), /open to every user \(mode 0755\)/);
  assert.match(secretDirProblems(dir(0o777)).join(), /writable by every user/);
  assert.match(secretDirProblems(dir(0o770)).join(), /writable by group/);
});

test('checkSecretFile / checkSecretDir on real files', async () => {
  const d = await mkdtemp(join(tmpdir(), 'amsel-perm-'));
  try {
    const key = join(d, 'key.pem');
    await writeFile(key, 'x', { mode: 0o600 });
    await chmod(d, 0o700);
    assert.deepEqual(await checkSecretFile(key, 'private key'), []);
    assert.deepEqual(await checkSecretDir(d, 'data directory'), []);
    await chmod(key, 0o644);
    const w = await checkSecretFile(key, 'private key');
    assert.equal(w.length, 1);
    assert.equal(w[0]!.message, `private key ${key} is readable by every user on this machine (mode 0644); chmod 600 it`);
    await chmod(d, 0o777);
    assert.match((await checkSecretFile(key, 'private key')).map((x) => x.message).join('\n'), /directory of private key .* is writable by every user/);
    assert.match((await checkSecretDir(d, 'data directory')).map((x) => x.message).join(), /writable by every user/);
    assert.deepEqual(await checkSecretFile(join(d, 'missing'), 'private key'), [], 'a missing file is reported elsewhere');
    assert.ok(currentIdentity().gids.length >= 1);
  } finally {
    await rm(d, { recursive: true, force: true });
  }
});
