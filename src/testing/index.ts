// Test harness: a real server process on free loopback ports, a raw-socket XMPP client for
// negative tests, and helpers for the independent clients (@xmpp/client, slixmpp).
// Not shipped; used by integration tests only.
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { ensureDevCert } from '../tls/devcert.ts';

export { PgProxy } from './pg-proxy.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TEST_DIR = path.join(ROOT, '.amsel-test');
export const AMSEL_BIN = path.join(ROOT, 'bin/amsel.js');
export const TEST_DOMAINS = ['localhost', 'example.test', 'other.test'];

/** The shared test CA and a certificate for the test domains (created once, reused). */
export async function testCertificates(): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  return ensureDevCert(TEST_DIR, TEST_DOMAINS);
}

export function pgUrl(): string {
  return process.env.AMSEL_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
}

export interface CliResult { code: number | null; stdout: string; stderr: string }

/** Debian's interpreter, which has python3-slixmpp (the PATH python3 may be another one). */
export const PYTHON = '/usr/bin/python3';

/**
 * Run a Python test client that prints one JSON result as its last stdout line; resolves with
 * it (killed after timeoutMs). Rejects when no JSON came out.
 */
export function runPythonJson<T>(script: string, args: string[], timeoutMs: number): Promise<{ code: number | null; result: T; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(PYTHON, [script, ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(t);
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve({ code, result: JSON.parse(line) as T, stderr });
      } catch {
        reject(new Error(`${path.basename(script)} printed no JSON (exit ${code}):\nstdout: ${stdout}\nstderr: ${stderr}`));
      }
    });
  });
}

export function runCli(args: string[], opts: { stdin?: string; env?: NodeJS.ProcessEnv; cwd?: string } = {}): Promise<CliResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [AMSEL_BIN, ...args], {
      cwd: opts.cwd ?? ROOT,
      env: { ...process.env, ...opts.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code, stdout, stderr }));
    child.stdin.end(opts.stdin ?? '');
  });
}

export interface TestServerOptions {
  hosts?: string[];
  storage?: 'sqlite' | 'postgres';
  /**
   * Extra config, merged over the generated one (top-level keys replaced, one level deep merged);
   * a `storage` section replaces the generated one (the test owns that database).
   */
  config?: Record<string, unknown>;
  env?: NodeJS.ProcessEnv;
  /**
   * The log message (`msg`) after which startServer resolves, default 'server started'; e.g. a
   * line logged while the server still waits for something (then use waitForLog()).
   */
  readyWhen?: string;
  /** How long startServer waits for that line, default 20 s. */
  readyTimeoutMs?: number;
}

export interface TestServer {
  readonly ports: { c2s: number; c2sDirectTls: number };
  readonly dataDir: string;
  readonly configFile: string;
  readonly caFile: string;
  /** The storage the server was configured with (the PostgreSQL URL selects its own schema). */
  readonly storage: { type: 'sqlite'; path: string } | { type: 'postgres'; url: string };
  readonly process: ChildProcess;
  /** Parsed JSON log lines so far. */
  readonly logs: Record<string, unknown>[];
  /** Raw stdout+stderr so far. */
  output(): string;
  /** The first log line (so far or later) with this `msg`; rejects if the process exits first or after timeoutMs. */
  waitForLog(msg: string, timeoutMs?: number): Promise<Record<string, unknown>>;
  cli(args: string[], stdin?: string): Promise<CliResult>;
  adduser(jid: string, password: string): Promise<void>;
  /** SIGTERM and wait; resolves with the exit code (null if killed by a signal). */
  stop(): Promise<number | null>;
  kill(signal?: NodeJS.Signals): Promise<void>;
  /**
   * Start a new server process on the same config file, data directory and database (after
   * stop() or kill(); a running one is stopped first). Listening ports are new (port 0), and
   * `ports`, `process`, `logs` and `output()` refer to the new process from then on.
   */
  restart(): Promise<void>;
  /** Remove the data directory (after stop). */
  cleanup(): Promise<void>;
}

function merge(base: Record<string, unknown>, extra: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(extra)) {
    const b = out[k];
    out[k] = b && typeof b === 'object' && !Array.isArray(b) && v && typeof v === 'object' && !Array.isArray(v)
      ? { ...(b as Record<string, unknown>), ...(v as Record<string, unknown>) }
      : v;
  }
  return out;
}

/** Prepare a PostgreSQL schema for one test server and return a URL that uses it. */
export async function freshPgSchema(): Promise<{ url: string; drop(): Promise<void> }> {
  const { default: pg } = await import('pg');
  const schema = `amsel_t_${randomBytes(6).toString('hex')}`;
  const client = new pg.Client({ connectionString: pgUrl() });
  await client.connect();
  await client.query(`CREATE SCHEMA ${schema}`);
  await client.end();
  const u = new URL(pgUrl());
  u.searchParams.set('options', `-c search_path=${schema}`);
  return {
    url: u.toString(),
    async drop() {
      const c = new pg.Client({ connectionString: pgUrl() });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
      await c.end();
    },
  };
}

/** One server process on a config file: its output, parsed log lines and listening ports. */
interface Launched {
  child: ChildProcess;
  logs: Record<string, unknown>[];
  raw: () => string;
  ports: Record<string, number>;
  exited: Promise<number | null>;
}

async function launch(configFile: string, env: NodeJS.ProcessEnv | undefined, readyWhen = 'server started', readyTimeoutMs = 20_000): Promise<Launched> {
  const child = spawn(process.execPath, [AMSEL_BIN, '--config', configFile, 'start'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  let raw = '';
  let pending = '';
  const ports: Record<string, number> = {};
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  const ready = new Promise<void>((resolve, reject) => {
    const onLine = (line: string) => {
      let rec: Record<string, unknown>;
      try { rec = JSON.parse(line) as Record<string, unknown>; } catch { return; }
      logs.push(rec);
      if (rec.msg === 'listening') ports[String(rec.listener)] = Number(rec.port);
      if (rec.msg === readyWhen) resolve();
    };
    child.stdout!.setEncoding('utf8').on('data', (d: string) => {
      raw += d;
      pending += d;
      let nl: number;
      while ((nl = pending.indexOf('\n')) >= 0) {
        onLine(pending.slice(0, nl));
        pending = pending.slice(nl + 1);
      }
    });
    child.stderr!.setEncoding('utf8').on('data', (d: string) => (raw += d));
    void exited.then((code) => reject(new Error(`server exited (${code}) before it was ready:\n${raw}`)));
    setTimeout(() => reject(new Error(`server not ready (no '${readyWhen}') after ${readyTimeoutMs / 1000} s:\n${raw}`)), readyTimeoutMs).unref();
  });
  await ready;
  return { child, logs, raw: () => raw, ports, exited };
}

export async function startServer(opts: TestServerOptions = {}): Promise<TestServer> {
  const certs = await testCertificates();
  const dataDir = await mkdtemp(path.join(os.tmpdir(), 'amsel-test-'));
  const hosts = opts.hosts ?? ['localhost'];
  let pg: { url: string; drop(): Promise<void> } | undefined;
  let storage: Record<string, unknown> = { type: 'sqlite', path: path.join(dataDir, 'amsel.db') };
  if (opts.config?.storage) {
    // Replaces the generated section (merged, a sqlite path would stay beside a postgres url).
    storage = {};
  } else if ((opts.storage ?? process.env.AMSEL_TEST_STORAGE) === 'postgres') {
    pg = await freshPgSchema();
    storage = { type: 'postgres', url: pg.url, poolSize: 4 };
  }
  const config = merge({
    hosts,
    dataDir,
    storage,
    tls: { certificates: [{ cert: certs.certFile, key: certs.keyFile }] },
    listeners: {
      c2s: { port: 0, address: ['127.0.0.1', '::1'] },
      c2sDirectTls: { port: 0, address: ['127.0.0.1', '::1'] },
      s2s: { enabled: false, port: 0, address: '127.0.0.1' },
    },
    auth: { failureDelayMs: 50, maxFailureDelayMs: 400 },
    log: { level: 'debug', format: 'json' },
  }, opts.config ?? {});
  const configFile = path.join(dataDir, 'amsel.yaml');
  await writeFile(configFile, stringify(config));

  let cur: Launched;
  try {
    cur = await launch(configFile, opts.env, opts.readyWhen, opts.readyTimeoutMs);
  } catch (err) {
    await rm(dataDir, { recursive: true, force: true });
    await pg?.drop();
    throw err;
  }

  const cli = (args: string[], stdin?: string) => runCli(['--config', configFile, ...args], { stdin, env: opts.env });
  const stop = async () => {
    const { child, exited } = cur;
    if (child.exitCode !== null || child.signalCode !== null) return child.exitCode;
    child.kill('SIGTERM');
    const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
    const code = await exited;
    clearTimeout(t);
    return code;
  };
  const kill = async (signal: NodeJS.Signals = 'SIGKILL') => {
    const { child, exited } = cur;
    if (child.exitCode !== null || child.signalCode !== null) return;
    child.kill(signal);
    await exited;
  };
  return {
    get ports() { return { c2s: cur.ports.c2s!, c2sDirectTls: cur.ports.c2sDirectTls! }; },
    dataDir,
    configFile,
    caFile: certs.caFile,
    // What the server really uses (opts.config may replace the generated storage).
    storage: config.storage as TestServer['storage'],
    get process() { return cur.child; },
    get logs() { return cur.logs; },
    output: () => cur.raw(),
    async waitForLog(msg, timeoutMs = 20_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rec = cur.logs.find((l) => l.msg === msg);
        if (rec) return rec;
        if (cur.child.exitCode !== null || cur.child.signalCode !== null) {
          throw new Error(`server exited (${cur.child.exitCode ?? cur.child.signalCode}) without logging '${msg}':\n${cur.raw()}`);
        }
        if (Date.now() > deadline) throw new Error(`no '${msg}' after ${timeoutMs / 1000} s:\n${cur.raw()}`);
        await new Promise((r) => setTimeout(r, 50));
      }
    },
    cli,
    async adduser(jid, password) {
      const r = await cli(['adduser', jid], password + '\n');
      if (r.code !== 0) throw new Error(`adduser ${jid} failed: ${r.stderr}`);
    },
    stop,
    kill,
    async restart() {
      await stop();
      cur = await launch(configFile, opts.env);
    },
    async cleanup() {
      await kill('SIGKILL');
      await rm(dataDir, { recursive: true, force: true });
      await pg?.drop();
    },
  };
}

/**
 * A raw XMPP client over a real socket, for tests of what a well-behaved library won't send.
 * It accumulates everything received as text; expect() waits for a pattern.
 */
export class RawClient {
  private buf = '';
  private waiters: (() => void)[] = [];
  private closedFlag = false;
  readonly closed: Promise<void>;
  socket: net.Socket;

  private constructor(socket: net.Socket) {
    this.socket = socket;
    this.closed = new Promise((r) => socket.once('close', () => { this.closedFlag = true; this.wake(); r(); }));
    this.attach(socket);
  }

  private attach(s: net.Socket) {
    s.on('data', (d: Buffer) => { this.buf += d.toString('utf8'); this.wake(); });
    s.on('error', () => undefined);
  }

  private wake() { const w = this.waiters; this.waiters = []; for (const f of w) f(); }

  static connect(port: number, opts: { directTls?: boolean; ca?: string | Buffer; servername?: string; tlsOptions?: tls.ConnectionOptions } = {}): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      if (opts.directTls) {
        const s = tls.connect({ port, host: '127.0.0.1', servername: opts.servername ?? 'localhost', ca: opts.ca, ALPNProtocols: ['xmpp-client'], ...opts.tlsOptions });
        s.once('secureConnect', () => resolve(new RawClient(s)));
        s.once('error', reject);
      } else {
        const s = net.connect({ port, host: '127.0.0.1' });
        s.once('connect', () => resolve(new RawClient(s)));
        s.once('error', reject);
      }
    });
  }

  get received(): string { return this.buf; }
  get isClosed(): boolean { return this.closedFlag; }

  send(data: string | Buffer): void { this.socket.write(data); }

  /** Wait until the received text (since the last clear) matches; returns the match. */
  async expect(re: RegExp, timeoutMs = 5000): Promise<RegExpMatchArray> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const m = this.buf.match(re);
      if (m) return m;
      if (this.closedFlag) throw new Error(`connection closed while waiting for ${re}; received:\n${this.buf}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timed out waiting for ${re}; received:\n${this.buf}`);
      await new Promise<void>((r) => { const t = setTimeout(r, left); this.waiters.push(() => { clearTimeout(t); r(); }); });
    }
  }

  clear(): void { this.buf = ''; }

  header(to = 'localhost'): void {
    this.send(`<?xml version='1.0'?><stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' to='${to}' version='1.0'>`);
  }

  /** Do STARTTLS on a plain connection (after the features were received). */
  async startTls(ca: string | Buffer, opts: tls.ConnectionOptions = {}): Promise<tls.TLSSocket> {
    this.send(`<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>`);
    await this.expect(/<proceed[^>]*\/>/);
    this.clear();
    const plain = this.socket;
    plain.removeAllListeners('data');
    const s = tls.connect({ socket: plain, servername: 'localhost', ca, ...opts });
    await new Promise<void>((resolve, reject) => { s.once('secureConnect', resolve); s.once('error', reject); });
    this.socket = s;
    this.attach(s);
    return s;
  }

  end(): void { this.socket.end(); }
  destroy(): void { this.socket.destroy(); }
}

export async function readCa(file: string): Promise<Buffer> {
  return readFile(file);
}
