// c2s listeners: STARTTLS on 5222 (RFC 6120 §5) and Direct TLS on 5223 (XEP-0368, ALPN xmpp-client).
import net from 'node:net';
import tls from 'node:tls';
import { C2sConnection } from './connection.ts';
import type { C2sServices } from './services.ts';
import { StreamError } from '../../xmpp/errors.ts';
import { ipKey } from '../../core/auth/throttle.ts';

/** At most one log line per limit and this interval while connections are being refused. */
const REFUSAL_LOG_INTERVAL_MS = 10_000;

type Refusal = 'per-ip' | 'total';

export interface ListenerSpec { kind: 'c2s' | 'c2sDirectTls'; port: number; addresses: string[] }

export class C2sListeners {
  private readonly servers: net.Server[] = [];
  readonly connections = new Set<C2sConnection>();
  /**
   * Admitted connections not bound yet, per address and in all (refused ones are not counted).
   * Addresses as the auth throttle groups them: an IPv6 /64 is one address (one host or household
   * typically owns a whole /64, and could otherwise use a fresh address per connection).
   */
  private readonly unauthPerIp = new Map<string, number>();
  private unauthTotal = 0;
  /** Refusals since the last log line, and when that was, per limit. */
  private readonly refusals = { 'per-ip': { n: 0, at: -Infinity }, total: { n: 0, at: -Infinity } };

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
      // Over a limit, a Direct TLS connection is dropped before the handshake: no stream error
      // can be sent before TLS, and a flood should not cost a handshake per connection. Runs
      // before the TLS server's own listener wraps the socket.
      server.prependListener('connection', (raw: net.Socket) => {
        const over = this.over(ipKey(raw.remoteAddress ?? '?'));
        if (over) {
          this.refused(over, true);
          raw.destroy();
        }
      });
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

  /** For `amsel stats`: connections waiting to authenticate, and from how many addresses. */
  get unauthenticated(): { connections: number; addresses: number } {
    return { connections: this.unauthTotal, addresses: this.unauthPerIp.size };
  }

  /** Which limit a new connection from `ip` would exceed, if any. */
  private over(ip: string): Refusal | undefined {
    const l = this.svc.config.limits;
    // The total first: it is the one a flood from many addresses hits.
    if (this.unauthTotal >= l.maxUnauthenticatedTotal) return 'total';
    if ((this.unauthPerIp.get(ip) ?? 0) >= l.maxUnauthenticatedPerIp) return 'per-ip';
    return undefined;
  }

  private refused(kind: Refusal, beforeTls: boolean): void {
    const r = this.refusals[kind];
    r.n++;
    const now = performance.now();
    if (now - r.at < REFUSAL_LOG_INTERVAL_MS) return;
    const l = this.svc.config.limits;
    this.svc.log.warn(
      { limit: kind === 'total' ? 'maxUnauthenticatedTotal' : 'maxUnauthenticatedPerIp', max: kind === 'total' ? l.maxUnauthenticatedTotal : l.maxUnauthenticatedPerIp, refused: r.n, beforeTls },
      'unauthenticated connection limit reached: refusing connections',
    );
    r.n = 0;
    r.at = now;
  }

  private accept(socket: net.Socket, direct: boolean): void {
    const ip = ipKey(socket.remoteAddress ?? '?');
    const over = this.over(ip);
    if (over) {
      // RFC 6120 §4.9.3: per address, the client broke a policy (<policy-violation/>); in all,
      // the server is out of room for more connections, which is no fault of this client
      // (<resource-constraint/>, "the server lacks the system resources necessary to service the stream").
      this.refused(over, false);
      const err = over === 'total'
        ? new StreamError('resource-constraint', 'Too many connections are waiting to authenticate; try again later')
        : new StreamError('policy-violation', 'Too many unauthenticated connections from your address');
      const conn = new C2sConnection(this.svc, socket, direct, err);
      this.connections.add(conn);
      socket.once('close', () => this.connections.delete(conn));
      return;
    }
    this.unauthPerIp.set(ip, (this.unauthPerIp.get(ip) ?? 0) + 1);
    this.unauthTotal++;
    const conn = new C2sConnection(this.svc, socket, direct);
    this.connections.add(conn);
    let counted = true;
    const uncount = () => {
      if (!counted) return;
      counted = false;
      this.unauthTotal--;
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
