// Shared plumbing for the reference-server adapters (prosody.ts, ejabberd.ts): free ports,
// readiness probes, process supervision by PID (found by walking /proc), SCRAM-SHA-1
// credentials for writing accounts straight into a server's database, and package versions.
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, pbkdf2Sync } from 'node:crypto';
import { closeSync, openSync, readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { ensureDevCert } from '../../../src/tls/devcert.ts';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const DOMAIN = 'localhost';
/** SCRAM iteration count for bench accounts: the same for every server, so logins cost the same. */
export const SCRAM_ITERATIONS = 4096;

const execFileP = promisify(execFile);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * The bench certificate for 'localhost', signed by the bench dev CA (shared with the Amsel
 * adapter, so every server under test presents a certificate from the same CA).
 */
export function benchCertificates(): Promise<{ caFile: string; certFile: string; keyFile: string }> {
  return ensureDevCert(path.join(ROOT, '.amsel-test/bench-certs'), [DOMAIN]);
}

/** A free loopback TCP port (bound and released; fine on an otherwise idle benchmark box). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/** `count` distinct free ports (kept bound until all are chosen, so none repeats). */
export async function freePorts(count: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    for (let i = 0; i < count; i++) {
      const s = net.createServer();
      await new Promise<void>((resolve, reject) => { s.once('error', reject); s.listen(0, '127.0.0.1', resolve); });
      servers.push(s);
    }
    return servers.map((s) => (s.address() as net.AddressInfo).port);
  } finally {
    await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
  }
}

/** Upstream version of an installed Debian package ("0.12.3-1+deb12u1" → "0.12.3"), and the full one. */
export async function packageVersion(pkg: string): Promise<{ upstream: string; full: string }> {
  const { stdout } = await execFileP('dpkg-query', ['-W', '-f=${Version}', pkg]);
  const full = stdout.trim();
  return { full, upstream: full.replace(/^\d+:/, '').replace(/-[^-]*$/, '') };
}

/** Whether an executable is on PATH (the test skips a server that is not installed). */
export function onPath(cmd: string): boolean {
  return (process.env.PATH ?? '').split(':').some((dir) => {
    try {
      return readdirSync(dir || '.').includes(cmd);
    } catch {
      return false;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// SCRAM-SHA-1 (RFC 5802) stored credentials

export interface ScramSha1 {
  salt: Buffer;
  iterations: number;
  storedKey: Buffer;
  serverKey: Buffer;
}

/**
 * StoredKey and ServerKey for a password. Bench passwords are ASCII, for which SASLprep is the
 * identity; anything else is refused rather than silently hashed differently from the server.
 */
export function scramSha1(password: string, salt: Buffer, iterations = SCRAM_ITERATIONS): ScramSha1 {
  if (!/^[\x21-\x7e]+$/.test(password)) throw new Error('bench passwords must be printable ASCII (no SASLprep here)');
  const salted = pbkdf2Sync(password, salt, iterations, 20, 'sha1');
  const clientKey = createHmac('sha1', salted).update('Client Key').digest();
  return {
    salt,
    iterations,
    storedKey: createHash('sha1').update(clientKey).digest(),
    serverKey: createHmac('sha1', salted).update('Server Key').digest(),
  };
}

/** For every roster group, every ordered pair (owner, contact) of distinct members, once. */
export function rosterPairs(groups: string[][] | undefined): Map<string, Set<string>> {
  const rosters = new Map<string, Set<string>>();
  for (const group of groups ?? []) {
    for (const owner of group) {
      let set = rosters.get(owner);
      if (!set) rosters.set(owner, (set = new Set()));
      for (const contact of group) if (contact !== owner) set.add(contact);
    }
  }
  return rosters;
}

// ---------------------------------------------------------------------------------------------
// Processes

export interface ProcInfo { pid: number; ppid: number; comm: string; startTime: string }

/** /proc/<pid>/stat: comm is in parentheses and may contain spaces, so parse from the last ')'. */
export function procInfo(pid: number): ProcInfo | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const open = stat.indexOf('(');
    const close = stat.lastIndexOf(')');
    const rest = stat.slice(close + 2).split(' ');
    // rest[0] is field 3 (state); ppid is field 4, starttime field 22.
    return { pid, comm: stat.slice(open + 1, close), ppid: Number(rest[1]), startTime: rest[19]! };
  } catch {
    return undefined;
  }
}

/** `root` and all its descendants (breadth first), from a snapshot of /proc. */
export function processTree(root: number): ProcInfo[] {
  const all: ProcInfo[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const info = procInfo(Number(name));
    if (info) all.push(info);
  }
  const self = all.find((p) => p.pid === root);
  if (!self) return [];
  const out = [self];
  for (let i = 0; i < out.length; i++) {
    for (const p of all) if (p.ppid === out[i]!.pid) out.push(p);
  }
  return out;
}

/**
 * The process named `comm` in the tree under `root` (root itself included: wrappers like
 * `erl` and `/usr/bin/env lua5.4` usually exec into it, keeping the PID). Only descendants of
 * our own child are considered, so another beam.smp on the machine (RabbitMQ) is never picked.
 */
export async function findWorker(root: number, comms: string[], deadline: number): Promise<ProcInfo> {
  for (;;) {
    const hit = processTree(root).find((p) => comms.includes(p.comm));
    if (hit) return hit;
    if (Date.now() > deadline) throw new Error(`no ${comms.join('/')} process under pid ${root}`);
    await sleep(50);
  }
}

export interface Supervised {
  child: ChildProcess;
  logFile: string;
  exited(): boolean;
  exit: Promise<void>;
}

/** Spawn a server with stdout/stderr appended to `logFile` (start-up errors land there). */
export function spawnServer(cmd: string, args: string[], opts: { cwd: string; env: NodeJS.ProcessEnv; logFile: string }): Supervised {
  const fd = openSync(opts.logFile, 'a');
  const child = spawn(cmd, args, { cwd: opts.cwd, env: opts.env, stdio: ['ignore', fd, fd] });
  closeSync(fd);
  let done = false;
  const exit = new Promise<void>((r) => {
    child.once('exit', () => { done = true; r(); });
    child.once('error', () => { done = true; r(); });
  });
  return { child, logFile: opts.logFile, exited: () => done, exit };
}

/** Whether `p` is still the same process (same PID and start time: PIDs get reused). */
function alive(p: ProcInfo): boolean {
  const now = procInfo(p.pid);
  return !!now && now.startTime === p.startTime && !/^Z/.test(readState(p.pid));
}

function readState(pid: number): string {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
  } catch {
    return 'X';
  }
}

/**
 * Stop a server: SIGTERM to the worker (Prosody and the Erlang VM both shut down cleanly on
 * it), wait up to `graceMs`, then SIGKILL. Afterwards, any process of the tree recorded at
 * start-up that is still the same process (PID and start time match) is SIGKILLed too, so
 * helpers such as erl_child_setup never outlive the run. Only PIDs from our own tree are
 * signalled.
 */
export async function stopTree(sup: Supervised, worker: ProcInfo, graceMs = 10_000): Promise<void> {
  const tree = processTree(sup.child.pid!).filter((p) => p.pid !== worker.pid);
  const signal = (p: ProcInfo, sig: NodeJS.Signals) => {
    if (!alive(p)) return;
    try { process.kill(p.pid, sig); } catch { /* already gone */ }
  };
  signal(worker, 'SIGTERM');
  const deadline = Date.now() + graceMs;
  while (alive(worker) && Date.now() < deadline) await sleep(100);
  if (alive(worker)) signal(worker, 'SIGKILL');
  if (!sup.exited()) {
    // The spawned process is the worker itself or a wrapper that ends with it.
    const t = setTimeout(() => { if (!sup.exited()) sup.child.kill('SIGKILL'); }, 2000);
    await sup.exit;
    clearTimeout(t);
  }
  for (const p of tree) signal(p, 'SIGKILL');
}

// ---------------------------------------------------------------------------------------------
// Readiness

const STREAM_HEADER = `<?xml version='1.0'?><stream:stream to='${DOMAIN}' xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams' version='1.0'>`;

/** One probe: does the port answer a stream header with features offering STARTTLS? */
function probeXmpp(port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    let buf = '';
    const s = net.connect(port, '127.0.0.1');
    const done = (ok: boolean) => { clearTimeout(t); s.destroy(); resolve(ok); };
    const t = setTimeout(() => done(false), timeoutMs);
    s.once('connect', () => s.write(STREAM_HEADER));
    s.on('data', (d: Buffer) => {
      buf += d.toString('utf8');
      if (/<\/stream:features>/.test(buf)) {
        s.write('</stream:stream>');
        done(/urn:ietf:params:xml:ns:xmpp-tls/.test(buf));
      } else if (/<stream:error/.test(buf)) {
        done(false); // e.g. host-unknown while the virtual host is still starting
      }
    });
    s.once('error', () => done(false));
    s.once('close', () => done(false));
  });
}

/**
 * Resolve once the c2s port serves stream features for the domain (the server has loaded the
 * host, not just bound the port); reject with the log tail if the process exits or the
 * deadline passes.
 */
export async function waitForXmpp(port: number, sup: Supervised, deadline: number, extraLogs: string[] = []): Promise<void> {
  for (;;) {
    if (sup.exited()) throw new Error(`server exited during start-up\n${await logTail([sup.logFile, ...extraLogs])}`);
    if (await probeXmpp(port, 2000)) return;
    if (Date.now() > deadline) throw new Error(`c2s port ${port} not ready in time\n${await logTail([sup.logFile, ...extraLogs])}`);
    await sleep(100);
  }
}

/** Resolve once a TCP connection to `port` succeeds (the Direct TLS port). */
export async function waitForPort(port: number, sup: Supervised, deadline: number): Promise<void> {
  for (;;) {
    if (sup.exited()) throw new Error(`server exited during start-up\n${await logTail([sup.logFile])}`);
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); r(true); });
      c.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not open in time\n${await logTail([sup.logFile])}`);
    await sleep(100);
  }
}

/** The last lines of the given log files, for error messages. */
export async function logTail(files: string[], chars = 3000): Promise<string> {
  const parts: string[] = [];
  for (const f of files) {
    const text = await readFile(f, 'utf8').catch(() => '');
    if (text) parts.push(`--- ${f}\n${text.slice(-chars)}`);
  }
  return parts.join('\n') || '(no log output)';
}
