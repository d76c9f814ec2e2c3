// Amsel as a benchmark subject: a fresh server process (`amsel start`) on loopback ports with
// SQLite storage, its production defaults, and accounts/rosters written straight into the
// database before it starts (the CLI's adduser costs a process start per account).
import { spawn } from 'node:child_process';
import { writeFile, readFile, mkdir } from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { stringify } from 'yaml';
import { ensureDevCert } from '../../../src/tls/devcert.ts';
import { openStorage } from '../../../src/storage/index.ts';
import { moduleStorageOptions } from '../../../src/modules/storage-options.ts';
import { deriveScramCredential } from '../../../src/core/auth/scram.ts';
import { ROOT, AMSEL_BIN } from '../../../src/testing/index.ts';
import type { BenchServer, Provision, StartServer } from '../types.ts';
import { notifyServer } from '../../../src/admin/control.ts';
import type { HealthStats } from '../../../src/admin/health.ts';
import { freePorts } from './common.ts';

const DOMAIN = 'localhost';
const ITERATIONS = 4096;

async function waitForPort(port: number, deadline: number, exited: () => boolean): Promise<void> {
  for (;;) {
    if (exited()) throw new Error('server exited before it was ready');
    const ok = await new Promise<boolean>((r) => {
      const c = net.connect(port, '127.0.0.1');
      c.once('connect', () => { c.destroy(); r(true); });
      c.once('error', () => r(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`port ${port} not open in time`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Accounts and roster items in one transaction each batch: same salt for all (one PBKDF2). */
async function provision(dbPath: string, p: Provision): Promise<void> {
  const storage = await openStorage({ type: 'sqlite', path: dbPath }, moduleStorageOptions());
  try {
    const salt = Buffer.alloc(16, 7);
    const credentials = JSON.stringify({
      'SHA-1': await deriveScramCredential(p.password, 'SHA-1', ITERATIONS, salt),
      'SHA-256': await deriveScramCredential(p.password, 'SHA-256', ITERATIONS, salt),
    });
    const now = Date.now();
    const db = storage.db;
    const BATCH = 500;
    for (let i = 0; i < p.users.length; i += BATCH) {
      const rows = p.users.slice(i, i + BATCH).map((username) => ({ host: DOMAIN, username, credentials, created_at: now }));
      await db.insertInto('accounts').values(rows).execute();
    }
    for (const group of p.rosterGroups ?? []) {
      await db.transaction().execute(async (trx) => {
        for (const owner of group) {
          const items = group.filter((c) => c !== owner).map((c, n) => ({
            host: DOMAIN, owner, contact: `${c}@${DOMAIN}`, name: null, subscription: 'both', ask: 0, approved: 0, groups: '[]', ver: n + 1,
          }));
          for (let j = 0; j < items.length; j += 100) await trx.insertInto('roster_items').values(items.slice(j, j + 100)).execute();
          await trx.insertInto('roster_versions').values({ host: DOMAIN, owner, epoch: 'bench0', ver: items.length, purged: 0 }).execute();
        }
      });
    }
  } finally {
    await storage.close();
  }
}

export const startAmsel: StartServer = async ({ dir, provision: p, env }) => {
  await mkdir(dir, { recursive: true });
  const certs = await ensureDevCert(path.join(ROOT, '.amsel-test/bench-certs'), [DOMAIN]);
  const dbPath = path.join(dir, 'amsel.db');
  await provision(dbPath, p);
  const [c2s, directTls] = (await freePorts(2)) as [number, number];
  const config = {
    hosts: [DOMAIN],
    dataDir: dir,
    storage: { type: 'sqlite', path: dbPath },
    tls: { certificates: [{ cert: certs.certFile, key: certs.keyFile }] },
    listeners: {
      c2s: { port: c2s, address: '127.0.0.1' },
      c2sDirectTls: { port: directTls, address: '127.0.0.1' },
      s2s: { enabled: false },
    },
    // All load comes from 127.0.0.1: the per-IP and total pre-auth caps would throttle the load
    // tool, and the read shaper would measure itself; the reference servers run unshaped too.
    limits: { maxUnauthenticatedPerIp: 100_000, maxUnauthenticatedTotal: 100_000, bytesPerSecond: 0, unauthenticatedBytesPerSecond: 0 },
    log: { level: 'warn', format: 'json' },
  };
  const configFile = path.join(dir, 'amsel.yaml');
  await writeFile(configFile, stringify(config));
  const logFile = path.join(dir, 'amsel.log');
  const { openSync, closeSync } = await import('node:fs');
  const fd = openSync(logFile, 'a');
  // Extra node flags for profiling runs, e.g. AMSEL_BENCH_NODE_ARGS='--cpu-prof --cpu-prof-dir=/tmp/prof'
  // (NODE_OPTIONS refuses --cpu-prof).
  const nodeArgs = (process.env.AMSEL_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const child = spawn(process.execPath, [...nodeArgs, process.env.AMSEL_BENCH_BIN ?? AMSEL_BIN, '--config', configFile, 'start'], {
    cwd: ROOT,
    env: { ...process.env, ...env },
    stdio: ['ignore', fd, fd],
  });
  closeSync(fd);
  let exited = false;
  const exit = new Promise<void>((r) => child.once('exit', () => { exited = true; r(); }));
  try {
    await waitForPort(c2s, Date.now() + 60_000, () => exited);
    await waitForPort(directTls, Date.now() + 10_000, () => exited);
  } catch (err) {
    child.kill('SIGKILL');
    const tail = (await readFile(logFile, 'utf8').catch(() => '')).slice(-2000);
    throw new Error(`${(err as Error).message}\n${tail}`);
  }
  const pkg = JSON.parse(await readFile(path.join(ROOT, 'package.json'), 'utf8')) as { version: string };
  const server: BenchServer = {
    name: 'amsel',
    version: pkg.version,
    domain: DOMAIN,
    ports: { c2s, directTls },
    caFile: certs.caFile,
    pid: child.pid!,
    notes: `SQLite (WAL, synchronous=FULL); modules: ${'roster, presence, offline, disco, caps, ping, version, time, last, private, account'}; no MAM/carbons/stream management yet; log level warn${env?.LD_PRELOAD ? `; LD_PRELOAD=${path.basename(env.LD_PRELOAD)}` : ''}`,
    async stats(opts = {}) {
      const r = await notifyServer(dir, { op: 'stats', ...opts }, 30_000);
      return r?.ok ? (r as unknown as HealthStats) : undefined;
    },
    async stop() {
      if (exited) return;
      child.kill('SIGTERM');
      const t = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await exit;
      clearTimeout(t);
    },
  };
  return server;
};
