// A client logs in with an independent XMPP library (@xmpp/client) over real TLS sockets:
// STARTTLS on the c2s port and Direct TLS (XEP-0368), SCRAM-SHA-1 and PLAIN.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { xml } from '@xmpp/client';
import { login } from '../clients/xmpp.ts';
import { startServer, type TestServer } from '../../src/testing/index.ts';

let srv: TestServer;

before(async () => {
  srv = await startServer();
  await srv.adduser('alice@localhost', 'correct horse');
  await srv.adduser('bob@localhost', 'battery staple');
});
after(async () => {
  assert.equal(await srv.stop(), 0, 'server exits cleanly on SIGTERM');
  await srv.cleanup();
});

test('STARTTLS login with SCRAM-SHA-1, resource binding and ping', async () => {
  const c = await login({ service: `xmpp://localhost:${srv.ports.c2s}`, username: 'alice', password: 'correct horse', resource: 'laptop', mechanism: 'SCRAM-SHA-1' });
  try {
    assert.equal(c.jid?.toString(), 'alice@localhost/laptop');
    const res = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost', id: 'p1' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    assert.equal(res.attrs.type, 'result');
  } finally {
    await c.stop();
  }
});

test('Direct TLS login (XEP-0368) with PLAIN inside TLS', async () => {
  const c = await login({ service: `xmpps://localhost:${srv.ports.c2sDirectTls}`, username: 'bob', password: 'battery staple', mechanism: 'PLAIN' });
  try {
    assert.match(c.jid!.toString(), /^bob@localhost\/.+/, 'server generated a resource');
    const info = await c.iqCaller.request(xml('iq', { type: 'get', to: 'localhost', id: 'd1' }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })));
    const features = info.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
    assert.ok(features.includes('urn:xmpp:ping'), 'the ping module advertises itself');
    assert.ok(features.includes('http://jabber.org/protocol/disco#info'));
  } finally {
    await c.stop();
  }
});

test('a wrong password is refused with not-authorized', async () => {
  await assert.rejects(
    login({ service: `xmpp://localhost:${srv.ports.c2s}`, username: 'alice', password: 'wrong', mechanism: 'SCRAM-SHA-1' }),
    (err: Error & { condition?: string }) => err.condition === 'not-authorized',
  );
});

test('an unknown user gets the same answer as a wrong password', async () => {
  await assert.rejects(
    login({ service: `xmpp://localhost:${srv.ports.c2s}`, username: 'nobody', password: 'whatever', mechanism: 'SCRAM-SHA-1' }),
    (err: Error & { condition?: string }) => err.condition === 'not-authorized',
  );
});

test('a second login with the same resource replaces the first with <conflict/>', async () => {
  const first = await login({ service: `xmpp://localhost:${srv.ports.c2s}`, username: 'alice', password: 'correct horse', resource: 'phone' });
  const streamError = new Promise<string>((resolve) => {
    first.on('error', (err: Error & { condition?: string }) => resolve(err.condition ?? err.message));
  });
  const second = await login({ service: `xmpps://localhost:${srv.ports.c2sDirectTls}`, username: 'alice', password: 'correct horse', resource: 'phone' });
  try {
    assert.equal(await streamError, 'conflict');
    assert.equal(second.jid?.toString(), 'alice@localhost/phone');
    const res = await second.iqCaller.request(xml('iq', { type: 'get', id: 'p2' }, xml('ping', { xmlns: 'urn:xmpp:ping' })));
    assert.equal(res.attrs.type, 'result', 'the new session works');
  } finally {
    await second.stop();
    await first.stop().catch(() => undefined);
  }
});

test('closed connections leave no sessions behind', async () => {
  const { notifyServer } = await import('../../src/admin/control.ts');
  const clients = await Promise.all([1, 2, 3].map((i) => login({ service: `xmpp://localhost:${srv.ports.c2s}`, username: 'bob', password: 'battery staple', resource: `r${i}` })));
  assert.equal((await notifyServer(srv.dataDir, { op: 'status' }))?.sessions, 3);
  await Promise.all(clients.map((c) => c.stop()));
  // The server notices each close; poll briefly.
  let sessions: unknown;
  for (let i = 0; i < 50; i++) {
    sessions = (await notifyServer(srv.dataDir, { op: 'status' }))?.sessions;
    if (sessions === 0) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.equal(sessions, 0);
});
