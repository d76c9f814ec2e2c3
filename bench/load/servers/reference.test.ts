// Integration test of the reference-server adapters: each server starts with provisioned accounts
// and a roster group, and an independent client (@xmpp/client) logs in over STARTTLS with
// SCRAM-SHA-1, sees its roster and pings the server. Also checks what the benchmark relies on:
// STARTTLS is required, Direct TLS answers, SM/carbons/MAM are on, and `pid` is the server.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import tls from 'node:tls';
import { RawClient } from '../../../src/testing/index.ts';
import { createClient, ping, startClient, xml, type XmppClient } from '../../../test/clients/xmpp.ts';
import type { BenchServer, StartServer } from '../types.ts';
import { onPath } from './common.ts';
import { startEjabberd } from './ejabberd.ts';
import { startProsody } from './prosody.ts';

const PASSWORD = 'bench-Passw0rd';
const USERS = ['alice', 'bob', 'carol'];
const SKIP = 'not installed: run bench/setup-reference-servers.sh';

const erlLib = (prefix: string) => existsSync('/usr/lib/erlang/lib') && readdirSync('/usr/lib/erlang/lib').some((d) => d.startsWith(prefix));
const prosodyInstalled = onPath('prosody') && existsSync('/usr/lib/x86_64-linux-gnu/lua/5.4/dbd/sqlite3.so');
const ejabberdInstalled = (onPath('ejabberdctl') || existsSync('/usr/sbin/ejabberdctl')) && erlLib('p1_sqlite3-');

// @xmpp/client cannot be given a CA, and NODE_EXTRA_CA_CERTS (read at process start) names the
// test CA, not the bench CA: add the bench CA to TLS connections to 'localhost' that bring none.
let benchCa: Buffer | undefined;
const originalConnect = tls.connect;
function trustBenchCa(ca: Buffer): void {
  benchCa = ca;
  (tls as { connect: typeof tls.connect }).connect = ((...args: unknown[]) => {
    const opts = args[0];
    if (benchCa && opts && typeof opts === 'object' && !('ca' in opts)) {
      const o = opts as tls.ConnectionOptions;
      if (o.host === 'localhost' || o.servername === 'localhost') args[0] = { ...o, ca: [...tls.rootCertificates, benchCa] };
    }
    return (originalConnect as (...a: unknown[]) => tls.TLSSocket)(...args);
  }) as typeof tls.connect;
}

interface Case {
  name: string;
  start: StartServer;
  installed: boolean;
  /** Process name of the worker whose /proc entries the load tool reads. */
  comm: string;
  /** ALPN the Direct TLS port selects when the client offers 'xmpp-client' (false: none). */
  alpn: string | false;
}

const CASES: Case[] = [
  { name: 'prosody', start: startProsody, installed: prosodyInstalled, comm: 'lua5.4', alpn: 'xmpp-client' },
  // ejabberd 23.01's Direct TLS listener does not negotiate ALPN; a client offering it still connects.
  { name: 'ejabberd', start: startEjabberd, installed: ejabberdInstalled, comm: 'beam.smp', alpn: false },
];

for (const tc of CASES) {
  describe(`reference server: ${tc.name}`, { skip: tc.installed ? false : SKIP }, () => {
    let dir: string;
    let server: BenchServer | undefined;
    let ca: Buffer;

    before(async () => {
      dir = await mkdtemp(path.join(os.tmpdir(), `bench-${tc.name}-`));
      server = await tc.start({ dir, provision: { users: USERS, password: PASSWORD, rosterGroups: [USERS] } });
      ca = await readFile(server.caFile);
      trustBenchCa(ca);
    });

    after(async () => {
      await server?.stop();
      if (server) assert.equal(existsSync(`/proc/${server.pid}`), false, 'server process is gone after stop()');
      await rm(dir, { recursive: true, force: true });
    });

    it('describes itself and reports the worker process', () => {
      assert.ok(server);
      assert.equal(server.name, tc.name);
      assert.match(server.version, /^\d+\.\d+/);
      assert.equal(server.domain, 'localhost');
      assert.ok(server.ports.directTls);
      const stat = readFileSync(`/proc/${server.pid}/stat`, 'utf8');
      assert.equal(stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')), tc.comm);
      assert.match(readFileSync(`/proc/${server.pid}/status`, 'utf8'), /VmRSS:\s+\d+ kB/);
      // Our own process, never another Erlang VM on the machine (RabbitMQ's runs as 'rabbitmq').
      assert.match(readFileSync(`/proc/${server.pid}/status`, 'utf8'), new RegExp(`Uid:\\s+${process.getuid!()}\\s`));
    });

    it('requires STARTTLS: no SASL before TLS, and an early auth attempt fails', async (t) => {
      const c = await RawClient.connect(server!.ports.c2s);
      try {
        c.header();
        const [features] = await c.expect(/<stream:features[\s\S]*?<\/stream:features>/);
        assert.match(features, /<starttls[^>]*xmlns=['"]urn:ietf:params:xml:ns:xmpp-tls['"][^>]*>\s*<required\s*\/>/);
        assert.doesNotMatch(features, /<mechanisms/);
        c.clear();
        c.send(`<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='PLAIN'>${Buffer.from(`\0alice\0${PASSWORD}`).toString('base64')}</auth>`);
        const answer = await c.expect(/<failure[\s\S]*?<\/failure>|<stream:error[\s\S]*?<\/stream:error>/).then((m) => m[0], () => `(closed) ${c.received}`);
        assert.doesNotMatch(answer, /<success/);
        t.diagnostic(`auth before STARTTLS: ${answer.replace(/\s+/g, ' ').slice(0, 300)}`);
      } finally {
        c.destroy();
      }
    });

    it('offers SCRAM-SHA-1 after STARTTLS (TLS 1.2+)', async () => {
      const c = await RawClient.connect(server!.ports.c2s);
      try {
        c.header();
        await c.expect(/<\/stream:features>/);
        const s = await c.startTls(ca, { servername: 'localhost' });
        assert.match(String(s.getProtocol()), /^TLSv1\.[23]$/);
        c.clear();
        c.header();
        const [features] = await c.expect(/<stream:features[\s\S]*?<\/stream:features>/);
        assert.match(features, /<mechanism>SCRAM-SHA-1<\/mechanism>/);
        assert.doesNotMatch(features, /<register xmlns=['"]http:\/\/jabber.org\/features\/iq-register/, 'in-band registration is off');
      } finally {
        c.destroy();
      }
    });

    it('Direct TLS: handshake with ALPN xmpp-client', async () => {
      const socket = tls.connect({ host: '127.0.0.1', port: server!.ports.directTls!, servername: 'localhost', ca, ALPNProtocols: ['xmpp-client'], minVersion: 'TLSv1.2' });
      try {
        await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject); });
        assert.equal(socket.authorized, true);
        assert.equal(socket.alpnProtocol, tc.alpn);
        // And it speaks XMPP: stream features without STARTTLS (already encrypted), with SCRAM.
        let buf = '';
        socket.on('data', (d: Buffer) => { buf += d.toString('utf8'); });
        socket.write(`<?xml version='1.0'?><stream:stream to='localhost' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`);
        const until = Date.now() + 5000;
        while (!/<\/stream:features>/.test(buf) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
        assert.match(buf, /<mechanism>SCRAM-SHA-1<\/mechanism>/);
      } finally {
        socket.destroy();
      }
    });

    it('logs in with @xmpp/client (STARTTLS + SCRAM-SHA-1): roster, ping, SM, carbons, MAM', async () => {
      const c: XmppClient = createClient({ service: `xmpp://127.0.0.1:${server!.ports.c2s}`, domain: 'localhost', username: 'alice', password: PASSWORD, resource: 'bench', mechanism: 'SCRAM-SHA-1' });
      await startClient(c);
      try {
        assert.equal(c.jid?.toString(), 'alice@localhost/bench');

        const roster = await c.iqCaller.request(xml('iq', { type: 'get' }, xml('query', { xmlns: 'jabber:iq:roster' })), 5000);
        const items = roster.getChild('query', 'jabber:iq:roster')!.getChildren('item');
        assert.deepEqual(
          Object.fromEntries(items.map((i) => [i.attrs.jid, i.attrs.subscription])),
          { 'bob@localhost': 'both', 'carol@localhost': 'both' },
        );

        assert.equal(await ping(c), 'result');

        // XEP-0198 is enabled by @xmpp/client when the server offers it (after binding).
        const sm = (c as unknown as { streamManagement: { enabled: boolean } }).streamManagement;
        for (let i = 0; i < 50 && !sm.enabled; i++) await new Promise((r) => setTimeout(r, 50));
        assert.equal(sm.enabled, true, 'stream management enabled');

        const features = async (to: string) => {
          const res = await c.iqCaller.request(xml('iq', { type: 'get', to }, xml('query', { xmlns: 'http://jabber.org/protocol/disco#info' })), 5000);
          return res.getChild('query')!.getChildren('feature').map((f) => f.attrs.var);
        };
        const serverFeatures = await features('localhost');
        assert.ok(serverFeatures.includes('urn:xmpp:carbons:2'), 'carbons');
        assert.ok(serverFeatures.includes('urn:xmpp:ping'), 'ping');
        assert.ok((await features('alice@localhost')).includes('urn:xmpp:mam:2'), 'MAM on the account');
      } finally {
        await c.stop().catch(() => undefined);
      }
    });
  });
}
