// XEP-0115 Entity Capabilities: the verification string (§5) against the XEP's own examples,
// and the server's caps in stream features (§6.3) matching its disco#info (§6.2).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModuleHarness } from '../../testing/modules.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import caps from './index.ts';
import disco from '../disco/index.ts';
import ping from '../ping/index.ts';
import version from '../version/index.ts';
import time from '../time/index.ts';
import { CAPS_NODE, capsString, capsVer, type CapsIdentity } from './ver.ts';

const HOST = 'example.test';
const FEATURES = ['http://jabber.org/protocol/caps', 'http://jabber.org/protocol/disco#info', 'http://jabber.org/protocol/disco#items', 'http://jabber.org/protocol/muc'];

test('§5.2 simple example: QgayPKawpkPSDYmwT/WM94uAlu0=', () => {
  const input = { identities: [{ category: 'client', type: 'pc', name: 'Exodus 0.9.1' }], features: [...FEATURES].reverse() };
  assert.equal(capsString(input), 'client/pc//Exodus 0.9.1<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<');
  assert.equal(capsVer(input), 'QgayPKawpkPSDYmwT/WM94uAlu0=');
});

const softwareInfo = (fieldsReversed = false): XmlElement => {
  const fields = [
    x('field', { var: 'ip_version', type: 'text-multi' }, x('value', null, 'ipv6'), x('value', null, 'ipv4')),
    x('field', { var: 'os' }, x('value', null, 'Mac')),
    x('field', { var: 'os_version' }, x('value', null, '10.5.1')),
    x('field', { var: 'software' }, x('value', null, 'Psi')),
    x('field', { var: 'software_version' }, x('value', null, '0.11')),
  ];
  return x('x', { xmlns: 'jabber:x:data', type: 'result' },
    fieldsReversed ? fields.reverse() : fields,
    x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', null, 'urn:xmpp:dataforms:softwareinfo')));
};

test('§5.3 complex example (identities with xml:lang, an extended form): q07IKJEyjvHSyhy//CH0CxmKi8w=', () => {
  const identities: CapsIdentity[] = [
    { category: 'client', type: 'pc', lang: 'en', name: 'Psi 0.11' },
    { category: 'client', type: 'pc', lang: 'el', name: 'Ψ 0.11' },
  ];
  const input = { identities, features: FEATURES, forms: [softwareInfo()] };
  assert.equal(capsString(input),
    'client/pc/el/Ψ 0.11<client/pc/en/Psi 0.11<http://jabber.org/protocol/caps<http://jabber.org/protocol/disco#info<'
    + 'http://jabber.org/protocol/disco#items<http://jabber.org/protocol/muc<urn:xmpp:dataforms:softwareinfo<'
    + 'ip_version<ipv4<ipv6<os<Mac<os_version<10.5.1<software<Psi<software_version<0.11<');
  assert.equal(capsVer(input), 'q07IKJEyjvHSyhy//CH0CxmKi8w=');
  // The order of the input does not matter (§5.1 sorts everything).
  assert.equal(capsVer({ identities: [...identities].reverse(), features: [...FEATURES].reverse(), forms: [softwareInfo(true)] }), 'q07IKJEyjvHSyhy//CH0CxmKi8w=');
});

test('forms are sorted by FORM_TYPE; a form without FORM_TYPE is not hashed; sorting is by UTF-8 octets', () => {
  const form = (type: string, v: string) => x('x', { xmlns: 'jabber:x:data', type: 'result' },
    x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', null, type)), x('field', { var: 'f' }, x('value', null, v)));
  const noType = x('x', { xmlns: 'jabber:x:data', type: 'result' }, x('field', { var: 'g' }, x('value', null, 'z')));
  const s = capsString({ identities: [{ category: 'server', type: 'im' }], features: ['b', 'a'], forms: [form('urn:z', '2'), noType, form('urn:a', '1')] });
  assert.equal(s, 'server/im//<a<b<urn:a<f<1<urn:z<f<2<');
  // U+FF21 (one UTF-16 unit, EF BC A1) sorts before U+1F600 (a surrogate pair, F0 9F 98 80) by
  // octets, though after it by UTF-16 code units.
  assert.equal(capsString({ identities: [], features: ['\u{1F600}', '\uFF21'] }), '\uFF21<\u{1F600}<');
});

async function harness(config: Record<string, unknown> = {}, modules: Record<string, unknown> = {}) {
  const h = await createModuleHarness([disco, caps, ping, version, time] as ModuleDefinition[], { hosts: [HOST], config, modules });
  const alice = await h.connect(`alice@${HOST}/desk`);
  return { h, alice };
}

function capsOf(features: XmlElement[]): XmlElement {
  const c = features.find((f) => f.name === 'c' && f.ns === NS.CAPS);
  assert.ok(c, 'a caps <c/> stream feature');
  return c;
}

/** The ver recomputed from a disco#info result, as a client would (§5.4). */
function verFromDisco(query: XmlElement): string {
  return capsVer({
    identities: query.getChildren('identity', NS.DISCO_INFO).map((i) => ({ category: i.attr('category')!, type: i.attr('type')!, lang: i.attr('xml:lang'), name: i.attr('name') })),
    features: query.getChildren('feature', NS.DISCO_INFO).map((f) => f.attr('var')!),
    forms: query.getChildren('x', 'jabber:x:data'),
  });
}

const infoIq = (id: string, node?: string) => x('iq', { xmlns: NS.CLIENT, type: 'get', id, to: HOST }, x('query', { xmlns: NS.DISCO_INFO, node }));

test('the stream feature carries hash, node and the ver of the current disco#info (§6.3), which also answers on the caps node (§6.2)', async () => {
  const { h, alice } = await harness({ contact: { admin: ['mailto:admin@example.test'], abuse: ['xmpp:abuse@example.test'] } });
  try {
    const c = capsOf(h.streamFeatures.for(alice));
    assert.equal(c.attr('hash'), 'sha-1');
    assert.equal(c.attr('node'), CAPS_NODE);
    await h.router.fromClient(alice, infoIq('d1'));
    const q = alice.take()[0]!.getChild('query', NS.DISCO_INFO)!;
    assert.ok(q.getChildren('feature').some((f) => f.attr('var') === NS.CAPS), 'caps is advertised (§7)');
    assert.equal(q.getChildren('x', 'jabber:x:data').length, 1, 'the serverinfo form is part of it');
    assert.equal(c.attr('ver'), verFromDisco(q));

    await h.router.fromClient(alice, infoIq('d2', `${CAPS_NODE}#${c.attr('ver')}`));
    const r = alice.take()[0]!;
    assert.equal(r.attr('type'), 'result');
    const q2 = r.getChild('query', NS.DISCO_INFO)!;
    assert.equal(q2.attr('node'), `${CAPS_NODE}#${c.attr('ver')}`, 'the node is mirrored (XEP-0030 §3.2)');
    assert.equal(verFromDisco(q2), c.attr('ver'));

    // A stale or foreign ver is an unknown node.
    await h.router.fromClient(alice, infoIq('d3', `${CAPS_NODE}#AAAAAAAAAAAAAAAAAAAAAAAAAAA=`));
    assert.ok(alice.take()[0]!.getChild('error')?.getChild('item-not-found', NS.STANZAS));
  } finally {
    await h.stop();
  }
});

test('the ver follows what is loaded: another module set or contact list gives another ver', async () => {
  const a = await harness();
  const b = await harness({}, { time: false });
  const c = await harness({ contact: { security: ['mailto:security@example.test'] } });
  try {
    const vers = [a, b, c].map(({ h, alice }) => capsOf(h.streamFeatures.for(alice)).attr('ver'));
    assert.equal(new Set(vers).size, 3);
    // Stable for the same configuration.
    assert.equal(capsOf(a.h.streamFeatures.for(a.alice)).attr('ver'), vers[0]);
    // Computed once, but not kept past a change of what disco#info says: a feature declared
    // after the first login (a module loading later) gives the next login another ver.
    const undo = a.h.disco.addFeature(HOST, 'host', 'urn:example:late');
    const later = capsOf(a.h.streamFeatures.for(a.alice)).attr('ver');
    assert.notEqual(later, vers[0]);
    await a.h.router.fromClient(a.alice, infoIq('late'));
    assert.equal(verFromDisco(a.alice.take()[0]!.getChild('query', NS.DISCO_INFO)!), later);
    undo();
    assert.equal(capsOf(a.h.streamFeatures.for(a.alice)).attr('ver'), vers[0]);
  } finally {
    await Promise.all([a, b, c].map(({ h }) => h.stop()));
  }
});

test('without the disco module there is nothing to verify: no stream feature; disabled caps: no feature, no caps node', async () => {
  const noDisco = await createModuleHarness([disco, caps] as ModuleDefinition[], { hosts: [HOST], modules: { disco: false } });
  const s = await noDisco.connect(`alice@${HOST}/a`);
  assert.deepEqual(noDisco.streamFeatures.for(s), []);
  await noDisco.stop();

  const { h, alice } = await harness({}, { caps: false });
  try {
    assert.deepEqual(h.streamFeatures.for(alice), []);
    await h.router.fromClient(alice, infoIq('d1'));
    const q = alice.take()[0]!.getChild('query', NS.DISCO_INFO)!;
    assert.ok(!q.getChildren('feature').some((f) => f.attr('var') === NS.CAPS));
    const ver = verFromDisco(q);
    await h.router.fromClient(alice, infoIq('d2', `${CAPS_NODE}#${ver}`));
    assert.ok(alice.take()[0]!.getChild('error')?.getChild('item-not-found', NS.STANZAS));
  } finally {
    await h.stop();
  }
});
