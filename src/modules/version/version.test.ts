// XEP-0092 Software Version on the server, in process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import os from 'node:os';
import { createModuleHarness } from '../../testing/modules.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import disco from '../disco/index.ts';
import version, { NS_VERSION } from './index.ts';

const HOST = 'example.test';
const pkgVersion = (JSON.parse(await readFile(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string }).version;

async function run(modules: Record<string, unknown> = {}, to: string | undefined = HOST) {
  const h = await createModuleHarness([disco, version] as ModuleDefinition[], { hosts: [HOST], modules });
  try {
    const s = await h.connect(`alice@${HOST}/desk`);
    await h.router.fromClient(s, x('iq', { xmlns: NS.CLIENT, type: 'get', id: 'v1', to }, x('query', { xmlns: NS_VERSION })));
    await h.router.fromClient(s, x('iq', { xmlns: NS.CLIENT, type: 'get', id: 'd1', to: HOST }, x('query', { xmlns: NS.DISCO_INFO })));
    const [reply, info] = s.take() as [XmlElement, XmlElement];
    const features = info.getChild('query', NS.DISCO_INFO)!.getChildren('feature').map((f) => f.attr('var'));
    return { reply, features };
  } finally {
    await h.stop();
  }
}

test("the server answers with name 'Amsel' and the package version; no OS by default (§5)", async () => {
  const { reply, features } = await run();
  assert.equal(reply.attr('type'), 'result');
  assert.equal(reply.attr('from'), HOST);
  const q = reply.getChild('query', NS_VERSION)!;
  assert.equal(q.getChildText('name', NS_VERSION), 'Amsel');
  assert.equal(q.getChildText('version', NS_VERSION), pkgVersion);
  assert.equal(q.getChild('os', NS_VERSION), undefined);
  assert.ok(features.includes(NS_VERSION), 'advertised in disco#info (§4)');
});

test('hideOs: false adds the operating system', async () => {
  const { reply } = await run({ version: { hideOs: false } });
  assert.equal(reply.getChild('query', NS_VERSION)!.getChildText('os', NS_VERSION), `${os.type()} ${os.release()}`);
});

test('hideVersion: not advertised and answered with service-unavailable (a result must carry the version, §2)', async () => {
  const { reply, features } = await run({ version: { hideVersion: true } });
  assert.equal(reply.attr('type'), 'error');
  assert.ok(reply.getChild('error')!.getChild('service-unavailable', NS.STANZAS));
  assert.ok(!features.includes(NS_VERSION));
});

test('only the server answers: a request to an account is not answered on its behalf', async () => {
  const { reply } = await run({}, `bob@${HOST}`);
  assert.ok(reply.getChild('error')!.getChild('service-unavailable', NS.STANZAS));
});

test('a bad setting is reported at load', async () => {
  await assert.rejects(createModuleHarness([version] as ModuleDefinition[], { hosts: [HOST], modules: { version: { hideOS: true } } }), /modules\.version/);
});
