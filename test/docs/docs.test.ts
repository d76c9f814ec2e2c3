// The documentation shipped with the code stays true to it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { configReference, modulesReference } from '../../src/config/docs.ts';
import { builtinModules } from '../../src/modules/index.ts';
import { loadConfig } from '../../src/config/load.ts';
import { ROOT } from '../../src/testing/index.ts';

test('docs/configuration.md is the reference generated from the schema (npm run docs:config)', async () => {
  const committed = await readFile(path.join(ROOT, 'docs/configuration.md'), 'utf8');
  assert.equal(committed, configReference() + '\n' + modulesReference(builtinModules), 'regenerate with: npm run docs:config');
});

test('the example config in contrib/ is valid', async () => {
  const config = await loadConfig(path.join(ROOT, 'contrib/amsel.example.yaml'));
  assert.deepEqual(config.hosts, ['example.org']);
  assert.equal(config.listeners.c2s.port, 5222);
  assert.equal(config.storage.type, 'sqlite');
});

test('the README names the commands that exist', async () => {
  const readme = await readFile(path.join(ROOT, 'README.md'), 'utf8');
  for (const cmd of ['npm ci', 'npm start', 'npm test', 'adduser', 'passwd', 'deluser', 'users', 'check', 'cert']) {
    assert.ok(readme.includes(cmd), `README mentions ${cmd}`);
  }
});
