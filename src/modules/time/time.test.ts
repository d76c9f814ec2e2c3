// XEP-0202 Entity Time on the server, in process.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createModuleHarness } from '../../testing/modules.ts';
import type { ModuleDefinition } from '../../core/modules/define.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import disco from '../disco/index.ts';
import time, { NS_TIME, tzo, utc } from './index.ts';

const HOST = 'example.test';

test('tzo is ±hh:mm (XEP-0082 TZD) for the local offset', () => {
  const d = (offsetMin: number) => ({ getTimezoneOffset: () => offsetMin }) as Date;
  assert.equal(tzo(d(0)), '+00:00');
  assert.equal(tzo(d(-120)), '+02:00');
  assert.equal(tzo(d(360)), '-06:00');
  assert.equal(tzo(d(-345)), '+05:45');
  assert.equal(tzo(d(210)), '-03:30');
  assert.equal(utc(new Date(Date.UTC(2006, 11, 19, 17, 58, 35))), '2006-12-19T17:58:35.000Z');
});

test('the server answers urn:xmpp:time with tzo and a UTC time of now, and advertises it', async () => {
  const h = await createModuleHarness([disco, time] as ModuleDefinition[], { hosts: [HOST] });
  try {
    const s = await h.connect(`alice@${HOST}/desk`);
    const before = Date.now();
    await h.router.fromClient(s, x('iq', { xmlns: NS.CLIENT, type: 'get', id: 't1', to: HOST }, x('time', { xmlns: NS_TIME })));
    await h.router.fromClient(s, x('iq', { xmlns: NS.CLIENT, type: 'get', id: 'd1', to: HOST }, x('query', { xmlns: NS.DISCO_INFO })));
    const [reply, info] = s.take() as [XmlElement, XmlElement];
    assert.equal(reply.attr('type'), 'result');
    const t = reply.getChild('time', NS_TIME)!;
    assert.match(t.getChildText('tzo', NS_TIME)!, /^[+-]\d\d:\d\d$/);
    const u = t.getChildText('utc', NS_TIME)!;
    assert.match(u, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$/, 'XEP-0082 DateTime in UTC');
    assert.ok(Math.abs(Date.parse(u) - before) < 5000);
    assert.ok(info.getChild('query', NS.DISCO_INFO)!.getChildren('feature').some((f) => f.attr('var') === NS_TIME));
    // A time request of type set is not a thing.
    await h.router.fromClient(s, x('iq', { xmlns: NS.CLIENT, type: 'set', id: 't2', to: HOST }, x('time', { xmlns: NS_TIME })));
    assert.ok(s.take()[0]!.getChild('error')!.getChild('service-unavailable', NS.STANZAS));
  } finally {
    await h.stop();
  }
});
