// The control socket: a running server listens on <dataDir>/amsel.sock (mode 0600, owner only)
// so that CLI commands that change accounts can tell it to act (close sessions, run module hooks).
// One JSON request per connection, one JSON reply.
import net from 'node:net';
import path from 'node:path';
import { chmod, unlink } from 'node:fs/promises';

export type ControlRequest =
  | { op: 'deluser'; host: string; username: string }
  | { op: 'passwd-changed'; host: string; username: string }
  | { op: 'status' }
  /** Health figures (src/core/server.ts): memory, event-loop delay, counts. `reset` starts a new
   *  event-loop delay window after reading; `gc` runs a full garbage collection first (a pause of
   *  some milliseconds per 100 MB of heap: for leak checks, not for routine polling). */
  | { op: 'stats'; reset?: boolean; gc?: boolean };

export interface ControlReply { ok: boolean; error?: string; [k: string]: unknown }

export type ControlHandler = (req: ControlRequest) => Promise<ControlReply>;

export function socketPath(dataDir: string): string {
  return path.join(dataDir, 'amsel.sock');
}

const MAX_REQUEST = 64 * 1024;

export async function listenControl(dataDir: string, handler: ControlHandler): Promise<() => Promise<void>> {
  const file = socketPath(dataDir);
  // A stale socket from a crashed server: remove it only if nobody answers on it.
  if (await notifyServer(dataDir, { op: 'status' })) throw new Error(`another Amsel server is already running on ${dataDir}`);
  await unlink(file).catch(() => undefined);
  const server = net.createServer((sock) => {
    let buf = '';
    sock.setEncoding('utf8');
    sock.on('error', () => undefined);
    sock.on('data', (d: string) => {
      buf += d;
      if (buf.length > MAX_REQUEST) return sock.destroy();
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      let req: ControlRequest;
      try { req = JSON.parse(buf.slice(0, nl)) as ControlRequest; } catch { return void sock.end(JSON.stringify({ ok: false, error: 'bad request' }) + '\n'); }
      handler(req).then(
        (reply) => sock.end(JSON.stringify(reply) + '\n'),
        (err: unknown) => sock.end(JSON.stringify({ ok: false, error: err instanceof Error ? err.message : String(err) }) + '\n'),
      );
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(file, () => { server.removeListener('error', reject); resolve(); });
  });
  await chmod(file, 0o600);
  return () => new Promise<void>((r) => server.close(() => { void unlink(file).catch(() => undefined).then(() => r()); }));
}

/** Send a request to a running server; undefined when none is running. */
export function notifyServer(dataDir: string, req: ControlRequest, timeoutMs = 10_000): Promise<ControlReply | undefined> {
  return new Promise((resolve) => {
    const sock = net.connect(socketPath(dataDir));
    let buf = '';
    const done = (v: ControlReply | undefined) => { clearTimeout(t); sock.destroy(); resolve(v); };
    const t = setTimeout(() => done(undefined), timeoutMs);
    sock.setEncoding('utf8');
    sock.on('connect', () => sock.write(JSON.stringify(req) + '\n'));
    sock.on('data', (d: string) => { buf += d; });
    sock.on('end', () => { try { done(JSON.parse(buf) as ControlReply); } catch { done(undefined); } });
    sock.on('error', () => done(undefined));
  });
}
