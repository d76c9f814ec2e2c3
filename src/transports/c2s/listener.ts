// c2s listeners: STARTTLS on 5222 (RFC 6120 §5) and Direct TLS on 5223 (XEP-0368, ALPN xmpp-client).
import net from 'node:net';
import tls from 'node:tls';
import { C2sConnection } from './connection.ts';
import type { C2sServices } from './services.ts';

export interface ListenerSpec { kind: 'c2s' | 'c2sDirectTls'; port: number; addresses: string[] }

export class C2sListeners {
  private readonly servers: net.Server[] = [];
  readonly connections = new Set<C2sConnection>();
  private readonly unauthPerIp = new Map<string, number>();

  constructor(private readonly svc: C2sServices) {}

  /** Start listening on every address; resolves with the bound port (port 0 picks a free one, shared by all addresses). */
  async listen(spec: ListenerSpec): Promise<number> {
    let port = spec.port;
    for (const address of spec.addresses) port = await this.listenOne(spec, address, port);
    return port;
  }

  private async listenOne(spec: ListenerSpec, address: string, wantPort: number): Promise<number> {
    const direct = spec.kind === 'c2sDirectTls';
    const server = direct
      ? tls.createServer(this.svc.tls.serverOptions(['xmpp-client'], { handshakeTimeoutMs: this.svc.config.limits.tlsHandshakeTimeoutMs }))
      : net.createServer();
    // Keep the no-SNI certificate in step with reloads (SIGHUP).
    if (server instanceof tls.Server) this.svc.tls.attach(server);
    server.on(direct ? 'secureConnection' : 'connection', (socket: net.Socket) => this.accept(socket, direct));
    if (direct) {
      server.on('tlsClientError', (err: NodeJS.ErrnoException, socket: tls.TLSSocket) => {
        this.svc.log.debug({ err: err.code ?? err.message, ip: socket.remoteAddress }, 'direct TLS handshake failed');
      });
    }
    server.on('error', (err) => this.svc.log.error({ err, listener: spec.kind }, 'listener error'));
    await new Promise<void>((resolve, reject) => {
      const fail = (err: NodeJS.ErrnoException) => reject(new Error(`cannot listen on ${address} port ${wantPort} (listeners.${spec.kind}): ${err.code ?? err.message}`));
      server.once('error', fail);
      server.listen({ port: wantPort, host: address }, () => {
        server.removeListener('error', fail);
        resolve();
      });
    });
    this.servers.push(server);
    const port = (server.address() as net.AddressInfo).port;
    this.svc.log.info({ listener: spec.kind, address, port }, 'listening');
    return port;
  }

  private accept(socket: net.Socket, direct: boolean): void {
    const ip = socket.remoteAddress ?? '?';
    const n = (this.unauthPerIp.get(ip) ?? 0) + 1;
    this.unauthPerIp.set(ip, n);
    const conn = new C2sConnection(this.svc, socket, direct, n > this.svc.config.limits.maxUnauthenticatedPerIp);
    this.connections.add(conn);
    let counted = true;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      const left = (this.unauthPerIp.get(ip) ?? 1) - 1;
      if (left <= 0) this.unauthPerIp.delete(ip); else this.unauthPerIp.set(ip, left);
    };
    conn.onBound = uncount;
    socket.once('close', () => {
      uncount();
      this.connections.delete(conn);
    });
  }

  /** Stop accepting; existing connections are closed by the caller. */
  async stopListening(): Promise<void> {
    await Promise.all(this.servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    this.servers.length = 0;
  }
}
