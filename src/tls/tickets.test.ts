// Session-ticket key rotation (TlsManager.rotateTicketKeys, startTicketKeyRotation): a ticket
// issued before a rotation no longer resumes a session, on Direct TLS servers and on STARTTLS
// sockets, for TLS 1.2 tickets and TLS 1.3 PSK tickets; open connections are untouched.

import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as tls from 'node:tls';
import { after, before, describe, it } from 'node:test';
import { parseConfig } from '../config/load.ts';
import { createDevCa, issueDevCert, TlsManager } from './index.ts';

type Version = 'TLSv1.2' | 'TLSv1.3';
const VERSIONS: Version[] = ['TLSv1.2', 'TLSv1.3'];

let dir: string;
let caPem: string;
let certs: { certFile: string; keyFile: string }[];

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'amsel-tickets-'));
  const caDir = join(dir, 'ca');
  caPem = await readFile((await createDevCa(caDir)).certFile, 'utf8');
  certs = [
    await issueDevCert(caDir, ['example.org'], join(dir, 'certs')),
    await issueDevCert(caDir, ['example.net'], join(dir, 'certs')),
  ];
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

/** A manager serving example.org (fallback) and example.net. */
function manager(): Promise<TlsManager> {
  const cfg = parseConfig(
    { hosts: ['example.org'], tls: { certificates: certs.map((c) => ({ cert: c.certFile, key: c.keyFile })) } },
    '/',
  ).tls;
  return TlsManager.create(cfg, ['example.org']);
}

interface Listener {
  port: number;
  close(): Promise<void>;
}

function listen(server: net.Server, sockets: Set<net.Socket>): Promise<Listener> {
  return new Promise((resolve) =>
    server.listen(0, '127.0.0.1', () =>
      resolve({
        port: (server.address() as net.AddressInfo).port,
        close: () =>
          new Promise<void>((done) => {
            for (const s of sockets) s.destroy();
            server.close(() => done());
          }),
      }),
    ),
  );
}

const echoing = (s: tls.TLSSocket, sockets: Set<net.Socket>) => {
  sockets.add(s);
  s.on('close', () => sockets.delete(s));
  s.on('error', () => undefined);
  s.pipe(s);
};

/** XEP-0368 Direct TLS: tls.createServer with serverOptions(), attached to the manager. */
async function directTls(m: TlsManager, setup?: (server: tls.Server) => void): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const server = tls.createServer(m.serverOptions(['xmpp-client']), (s) => echoing(s, sockets));
  setup?.(server);
  m.attach(server);
  return listen(server, sockets);
}

/**
 * STARTTLS (RFC 6120 §5): `new tls.TLSSocket` on an accepted socket with tlsSocketOptions();
 * `byHost` starts with the context for the stream's host, as the c2s connection does.
 */
async function startTls(m: TlsManager, byHost?: string): Promise<Listener> {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((raw) => {
    sockets.add(raw);
    const opts = m.tlsSocketOptions();
    const secureContext = byHost === undefined ? opts.secureContext : (m.contextFor(byHost) ?? opts.secureContext);
    echoing(new tls.TLSSocket(raw, { ...opts, secureContext }), sockets);
  });
  return listen(server, sockets);
}

interface Handshake {
  socket: tls.TLSSocket;
  reused: boolean;
  /** The first session (ticket) the server sent, for the next connection. */
  session: Buffer;
}

/**
 * Connects and echoes once; without `session` also waits for a session ticket (TLS 1.3 sends
 * it after the handshake; a resumed TLS 1.2 session gets none).
 */
function handshake(port: number, version: Version, servername: string | undefined, session?: Buffer): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    let echoed = false;
    const timeout = setTimeout(() => {
      s.destroy();
      reject(new Error(`${version} ${servername ?? '(no SNI)'}: ${echoed ? 'no session ticket' : 'no echo'} within 5 s`));
    }, 5000);
    const done = () => {
      if (!echoed || (!ticket && !session)) return;
      clearTimeout(timeout);
      resolve({ socket: s, reused: s.isSessionReused(), session: ticket ?? Buffer.alloc(0) });
    };
    const s = tls.connect(
      {
        host: '127.0.0.1',
        port,
        ca: caPem,
        minVersion: version,
        maxVersion: version,
        ...(servername !== undefined ? { servername } : { checkServerIdentity: () => undefined }),
        ...(session ? { session } : {}),
      },
      () => {
        assert.equal(s.getProtocol(), version);
        s.once('data', () => {
          echoed = true;
          done();
        });
        s.write('ping');
      },
    );
    s.on('session', (t: Buffer) => {
      ticket ??= t;
      done();
    });
    s.once('error', (err) => {
      clearTimeout(timeout);
      reject(err);
    });
  });
}

function echo(s: tls.TLSSocket, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    s.once('data', (d: Buffer) => resolve(d.toString()));
    s.once('error', reject);
    s.write(text);
  });
}

/** Resumes with `ticket` and reports whether the server accepted it. */
async function resumes(port: number, version: Version, servername: string | undefined, ticket: Buffer): Promise<boolean> {
  const h = await handshake(port, version, servername, ticket);
  h.socket.destroy();
  return h.reused;
}

/**
 * For each version and SNI name: a ticket resumes before a rotation and not after it; a ticket
 * issued after the rotation resumes again; a connection opened before stays usable.
 */
async function checkRotation(m: TlsManager, port: number, names: (string | undefined)[]): Promise<void> {
  for (const version of VERSIONS) {
    for (const name of names) {
      const what = `${version} SNI ${name ?? '(none)'}`;
      const first = await handshake(port, version, name);
      assert.equal(first.reused, false, what);
      assert.equal(await resumes(port, version, name, first.session), true, `${what}: resumes before the rotation`);

      m.rotateTicketKeys();

      assert.equal(await resumes(port, version, name, first.session), false, `${what}: ticket from before the rotation`);
      assert.equal(await echo(first.socket, 'still open'), 'still open', `${what}: open connection`);
      first.socket.destroy();
      const fresh = await handshake(port, version, name);
      assert.equal(await resumes(port, version, name, fresh.session), true, `${what}: ticket from after the rotation`);
      fresh.socket.destroy();
    }
  }
}

describe('session-ticket key rotation', () => {
  it('Direct TLS (serverOptions + attach): tickets from before a rotation no longer resume', async () => {
    const m = await manager();
    const srv = await directTls(m);
    try {
      // example.net is served from its SNI context, yet the tickets use the server's own context
      await checkRotation(m, srv.port, [undefined, 'example.org', 'example.net']);
    } finally {
      await srv.close();
    }
  });

  it('STARTTLS (new tls.TLSSocket with tlsSocketOptions): tickets from before a rotation no longer resume', async () => {
    const m = await manager();
    const srv = await startTls(m);
    try {
      await checkRotation(m, srv.port, [undefined, 'example.org', 'example.net']);
    } finally {
      await srv.close();
    }
  });

  it('STARTTLS starting with the context for the stream host (contextFor) rotates too', async () => {
    const m = await manager();
    const srv = await startTls(m, 'example.net');
    try {
      await checkRotation(m, srv.port, ['example.net']);
    } finally {
      await srv.close();
    }
  });

  it('the timer rotates every interval without holding the process open, and stops', async () => {
    const m = await manager();
    const srv = await directTls(m);
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    try {
      const first = await handshake(srv.port, 'TLSv1.2', 'example.org');
      first.socket.destroy();
      const ctx = m.contextFor('example.org');
      let rotations = 0;
      const errors: Error[] = [];
      const refTimers = timers();
      m.startTicketKeyRotation({ intervalMs: 10, onRotate: () => rotations++, onError: (e) => errors.push(e) });
      assert.equal(timers(), refTimers, 'the rotation timer is unref()ed');
      for (let i = 0; i < 200 && rotations < 2; i++) await new Promise((r) => setTimeout(r, 5));
      assert.ok(rotations >= 2, `rotations: ${rotations}`);
      assert.deepEqual(errors, []);
      assert.notEqual(m.contextFor('example.org'), ctx, 'contexts rebuilt');
      assert.equal(await resumes(srv.port, 'TLSv1.2', 'example.org', first.session), false);

      m.stopTicketKeyRotation();
      const stoppedAt = rotations;
      await new Promise((r) => setTimeout(r, 50));
      assert.equal(rotations, stoppedAt, 'no rotation after stopTicketKeyRotation()');
      const again = await handshake(srv.port, 'TLSv1.2', 'example.org');
      again.socket.destroy();
      assert.equal(await resumes(srv.port, 'TLSv1.2', 'example.org', again.session), true);
    } finally {
      m.stopTicketKeyRotation();
      await srv.close();
    }
  });

  it('a failed rotation is reported, keeps the old keys everywhere and does not stop the timer', async () => {
    const m = await manager();
    const good = await directTls(m);
    let failing = true;
    const bad = await directTls(m, (server) => {
      const setTicketKeys = server.setTicketKeys.bind(server);
      server.setTicketKeys = (keys: Buffer) => {
        if (failing) throw new Error('injected failure');
        setTicketKeys(keys);
      };
    });
    const starttls = await startTls(m);
    try {
      const tickets = {
        good: (await handshake(good.port, 'TLSv1.2', 'example.net')).session,
        bad: (await handshake(bad.port, 'TLSv1.2', 'example.net')).session,
        starttls: (await handshake(starttls.port, 'TLSv1.3', 'example.net')).session,
      };
      const ctx = m.contextFor('example.net');
      assert.throws(() => m.rotateTicketKeys(), /injected failure/);

      const errors: string[] = [];
      let rotations = 0;
      m.startTicketKeyRotation({ intervalMs: 10, onRotate: () => rotations++, onError: (e) => errors.push(e.message) });
      for (let i = 0; i < 200 && errors.length < 2; i++) await new Promise((r) => setTimeout(r, 5));
      assert.ok(errors.length >= 2, 'reported on every attempt');
      assert.equal(errors[0], 'injected failure');
      assert.equal(rotations, 0);

      // nothing changed: the server rotated before the failing one got its old keys back
      assert.equal(m.contextFor('example.net'), ctx);
      assert.equal(await resumes(good.port, 'TLSv1.2', 'example.net', tickets.good), true);
      assert.equal(await resumes(bad.port, 'TLSv1.2', 'example.net', tickets.bad), true);
      assert.equal(await resumes(starttls.port, 'TLSv1.3', 'example.net', tickets.starttls), true);

      failing = false; // the fault is gone: the next tick rotates
      for (let i = 0; i < 200 && rotations < 1; i++) await new Promise((r) => setTimeout(r, 5));
      m.stopTicketKeyRotation();
      assert.ok(rotations >= 1);
      assert.equal(await resumes(good.port, 'TLSv1.2', 'example.net', tickets.good), false);
      assert.equal(await resumes(bad.port, 'TLSv1.2', 'example.net', tickets.bad), false);
      assert.equal(await resumes(starttls.port, 'TLSv1.3', 'example.net', tickets.starttls), false);
    } finally {
      m.stopTicketKeyRotation();
      await Promise.all([good.close(), bad.close(), starttls.close()]);
    }
  });

  it('a throwing onError callback does not escape the timer', async () => {
    const m = await manager();
    const srv = await directTls(m, (server) => {
      server.setTicketKeys = () => {
        throw new Error('injected failure');
      };
    });
    let calls = 0;
    try {
      m.startTicketKeyRotation({
        intervalMs: 10,
        onError: () => {
          calls++;
          throw new Error('logger broke');
        },
      });
      for (let i = 0; i < 200 && calls < 2; i++) await new Promise((r) => setTimeout(r, 5));
      assert.ok(calls >= 2);
    } finally {
      m.stopTicketKeyRotation();
      await srv.close();
    }
  });

  it('the configured interval defaults to one hour and cannot go below 60 s', () => {
    const parse = (tlsInput: Record<string, unknown>) => parseConfig({ hosts: ['example.org'], tls: tlsInput }, '/').tls;
    assert.equal(parse({}).ticketKeyRotationMs, 3_600_000);
    assert.equal(parse({ ticketKeyRotationMs: 60_000 }).ticketKeyRotationMs, 60_000);
    assert.throws(() => parse({ ticketKeyRotationMs: 59_999 }));
  });
});
