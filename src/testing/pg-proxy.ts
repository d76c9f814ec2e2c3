// A TCP proxy in front of a PostgreSQL server, so that a test can make the database unreachable
// for one server or pool without touching the shared PostgreSQL (never stop that one).
import net from 'node:net';

export class PgProxy {
  private readonly server: net.Server;
  private readonly live = new Set<net.Socket>();
  private mode: 'up' | 'cut' | 'frozen' = 'up';
  port = 0;

  private constructor(private readonly target: { host: string; port: number }) {
    this.server = net.createServer((client) => this.accept(client));
  }

  /** Listens on a free loopback port, forwarding to the host and port of `url`. */
  static async start(url: string): Promise<PgProxy> {
    const u = new URL(url);
    const p = new PgProxy({ host: u.hostname, port: Number(u.port || 5432) });
    await new Promise<void>((r) => p.server.listen(0, '127.0.0.1', r));
    p.port = (p.server.address() as net.AddressInfo).port;
    return p;
  }

  private accept(client: net.Socket): void {
    client.on('error', () => undefined);
    if (this.mode === 'cut') {
      client.destroy();
      return;
    }
    this.live.add(client);
    client.on('close', () => this.live.delete(client));
    if (this.mode === 'frozen') return; // accepted, never answered
    const db = net.connect(this.target.port, this.target.host);
    this.live.add(db);
    const done = () => {
      client.destroy();
      db.destroy();
      this.live.delete(client);
      this.live.delete(db);
    };
    for (const s of [client, db]) {
      s.on('error', done);
      s.on('close', done);
    }
    client.pipe(db);
    db.pipe(client);
  }

  /** The same URL, through this proxy. */
  via(url: string): string {
    const u = new URL(url);
    u.host = `127.0.0.1:${this.port}`;
    return u.toString();
  }

  /** The database went away: every connection is closed, new ones are closed at once. */
  cut(): void {
    this.mode = 'cut';
    // Closed (FIN), not reset: with Node 20.20, resetAndDestroy() here sometimes left a TCP
    // handle that never closed, and the test process then spun at exit waiting for it (found
    // under load in CI; a closed connection is as much "PostgreSQL went away" for a client).
    for (const s of this.live) s.destroy();
    this.live.clear();
  }

  /**
   * The database went silent (a network partition, a frozen host): connections stay open but
   * nothing passes any more, and new ones are accepted but never answered.
   */
  freeze(): void {
    this.mode = 'frozen';
    for (const s of this.live) {
      s.unpipe();
      s.pause();
    }
  }

  /**
   * New connections pass again. Connections frozen meanwhile stay frozen (half-dead: a client
   * must not reuse them) until close().
   */
  restore(): void {
    this.mode = 'up';
  }

  close(): Promise<void> {
    this.cut();
    return new Promise((r) => this.server.close(() => r()));
  }
}
