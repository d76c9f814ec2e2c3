// Prosody (Debian's package, 0.12.x) as a benchmark subject: a private instance running as the
// current user from `dir`, configured like a public server (STARTTLS required, Direct TLS,
// hashed passwords, SQLite storage, MAM archiving one-to-one chats, carbons, stream management,
// CSI), but with no traffic shaping, and with accounts and rosters written straight into its
// SQLite database before start (prosodyctl adduser costs a process start per account).
import { mkdir, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import {
  DOMAIN, SCRAM_ITERATIONS, type ProcInfo, benchCertificates, findWorker, freePorts, packageVersion, rosterPairs, scramSha1,
  spawnServer, stopTree, waitForPort, waitForXmpp,
} from './common.ts';
import type { BenchServer, Provision, StartServer } from '../types.ts';

const PROSODY = '/usr/bin/prosody';

/** Modules on top of the ones Prosody always loads (presence, message, iq, offline, c2s). */
const MODULES = [
  'disco', 'roster', 'saslauth', 'tls', // core of any c2s service
  'blocklist', 'carbons', 'pep', 'private', 'smacks', 'vcard4', 'vcard_legacy', // Debian's defaults
  'csi_simple', 'ping', 'time', 'uptime', 'version',
  'mam', // off in Debian's file but on at any public server that supports multiple devices
  'posix', // pidfile, signal handling (SIGTERM → clean shutdown)
];
// Not loaded, unlike Debian's prosody.cfg.lua: limits (traffic shaping), register / invites
// (no in-band registration), dialback and s2s (no federation), admin_adhoc / admin_shell.

/** Prosody's own schema for SQL storage (mod_storage_sql create_table, as util.sql renders it for SQLite). */
const SCHEMA = `
CREATE TABLE IF NOT EXISTS "prosody" ("host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS "prosody_index" ON "prosody" ("host", "user", "store", "key");
CREATE TABLE IF NOT EXISTS "prosodyarchive" ("sort_id" INTEGER PRIMARY KEY AUTOINCREMENT, "host" TEXT NOT NULL, "user" TEXT NOT NULL, "store" TEXT NOT NULL, "key" TEXT NOT NULL, "when" INTEGER NOT NULL, "with" TEXT NOT NULL, "type" TEXT NOT NULL, "value" TEXT NOT NULL);
CREATE UNIQUE INDEX IF NOT EXISTS "prosodyarchive_index" ON "prosodyarchive" ("host", "user", "store", "key");
CREATE INDEX IF NOT EXISTS "prosodyarchive_with_when" ON "prosodyarchive" ("host", "user", "store", "with", "when");
CREATE INDEX IF NOT EXISTS "prosodyarchive_when" ON "prosodyarchive" ("host", "user", "store", "when");
CREATE INDEX IF NOT EXISTS "prosodyarchive_sort" ON "prosodyarchive" ("host", "user", "store", "sort_id");
`;

/**
 * Accounts and rosters as mod_auth_internal_hashed and rostermanager store them through
 * mod_storage_sql's keyval store: one row per key; numbers typed 'number', tables 'json'.
 * Prosody's salt is a plain string (a UUID normally) used as-is in PBKDF2.
 */
export function provisionProsody(dbFile: string, p: Provision): void {
  const db = new Database(dbFile);
  try {
    db.exec(SCHEMA);
    // One salt for all bench users, so PBKDF2 runs once.
    const salt = 'b3c5e2a0-bench-salt-amsel';
    const cred = scramSha1(p.password, Buffer.from(salt, 'utf8'), SCRAM_ITERATIONS);
    const insert = db.prepare('INSERT INTO "prosody" ("host","user","store","key","type","value") VALUES (?,?,?,?,?,?)');
    const rosters = rosterPairs(p.rosterGroups);
    const item = JSON.stringify({ subscription: 'both', groups: {} });
    db.transaction(() => {
      for (const user of p.users) {
        insert.run(DOMAIN, user, 'accounts', 'stored_key', 'string', cred.storedKey.toString('hex'));
        insert.run(DOMAIN, user, 'accounts', 'server_key', 'string', cred.serverKey.toString('hex'));
        insert.run(DOMAIN, user, 'accounts', 'salt', 'string', salt);
        insert.run(DOMAIN, user, 'accounts', 'iteration_count', 'number', String(SCRAM_ITERATIONS));
      }
      for (const [owner, contacts] of rosters) {
        for (const contact of contacts) insert.run(DOMAIN, owner, 'roster', `${contact}@${DOMAIN}`, 'json', item);
        // The roster[false] metadata entry (version, pending requests): non-string keys are
        // stored JSON-encoded under key '' (util.json's "__hash" form for a boolean key).
        insert.run(DOMAIN, owner, 'roster', '', 'json', JSON.stringify({ __hash: [false, { pending: {}, version: 1 }] }));
      }
    })();
  } finally {
    db.close();
  }
}

/** Lua string literal (JSON string escapes are valid Lua for the paths used here). */
const lua = (s: string) => JSON.stringify(s);

export const startProsody: StartServer = async ({ dir, provision, env }) => {
  dir = path.resolve(dir);
  const dataDir = path.join(dir, 'data');
  await mkdir(dataDir, { recursive: true });
  await mkdir(path.join(dir, 'certs'), { recursive: true }); // empty: certificates come from `ssl`
  const certs = await benchCertificates();
  const version = await packageVersion('prosody');
  const [c2s, directTls] = await freePorts(2) as [number, number];
  const dbFile = path.join(dataDir, 'prosody.sqlite');

  // `dir` should be fresh; if it is not, start from an empty database anyway.
  await Promise.all(['', '-wal', '-shm', '-journal'].map((x) => rm(dbFile + x, { force: true })));
  const t0 = Date.now();
  provisionProsody(dbFile, provision);
  const provisionMs = Date.now() - t0;

  const logFile = path.join(dir, 'prosody.log');
  const configFile = path.join(dir, 'prosody.cfg.lua');
  await writeFile(configFile, `-- Generated by bench/load/servers/prosody.ts
run_as_root = true -- the bench runs as root; otherwise mod_posix refuses to start
pidfile = ${lua(path.join(dir, 'prosody.pid'))}
data_path = ${lua(dataDir)}
plugin_paths = { }
certificates = ${lua(path.join(dir, 'certs'))}

-- Loopback only, free ports; no s2s, no HTTP (no module that needs mod_http is loaded).
interfaces = { "127.0.0.1" }
local_interfaces = { "127.0.0.1" }
c2s_ports = { ${c2s} }
c2s_interfaces = { "127.0.0.1" }
c2s_direct_tls_ports = { ${directTls} }
c2s_direct_tls_interfaces = { "127.0.0.1" }
legacy_ssl_ports = { }
c2s_require_encryption = true
modules_enabled = { ${MODULES.map(lua).join(', ')} }
modules_disabled = { "s2s" }

-- epoll is 0.12's default backend (no select() FD_SETSIZE cap; the fd limit is the process's
-- ulimit -n). Listen backlog raised from 128 to Node's 511 so that connection bursts from the
-- load tool are not dropped in the kernel for Prosody alone.
network_backend = "epoll"
network_settings = { tcp_backlog = 511 }

authentication = "internal_hashed"
storage = "sql"
sql = { driver = "SQLite3", database = ${lua(dbFile)} }

default_archive_policy = true -- archive all one-to-one messages unless the user opts out
archive_expires_after = "1w"  -- Debian's default

-- TLS 1.2+ (also 0.12's "intermediate" profile default) with the bench certificate.
ssl = { certificate = ${lua(certs.certFile)}, key = ${lua(certs.keyFile)}, protocol = "tlsv1_2+" }
-- XEP-0368: answer ALPN "xmpp-client" on the Direct TLS port.
c2s_direct_tls_ssl = { alpn = { "xmpp-client" } }

log = { { levels = { min = "warn" }, to = "file", filename = ${lua(logFile)} } }

VirtualHost ${lua(DOMAIN)}
`);

  const sup = spawnServer(PROSODY, ['-F', '--config', configFile], {
    cwd: dir,
    env: { ...process.env, ...env },
    logFile: path.join(dir, 'prosody.stdout.log'),
  });
  const deadline = Date.now() + 60_000;
  let worker: ProcInfo;
  try {
    // /usr/bin/prosody is `#!/usr/bin/env lua5.4`: env execs into lua, keeping the PID.
    worker = await findWorker(sup.child.pid!, ['lua5.4', 'lua'], deadline);
    await waitForXmpp(c2s, sup, deadline, [logFile]);
    await waitForPort(directTls, sup, deadline);
  } catch (err) {
    sup.child.kill('SIGKILL');
    throw err;
  }
  const startupMs = Date.now() - t0 - provisionMs;

  const server: BenchServer = {
    name: 'prosody',
    version: version.upstream,
    domain: DOMAIN,
    ports: { c2s, directTls },
    caFile: certs.caFile,
    pid: worker.pid,
    notes: [
      `Debian prosody ${version.full}, lua5.4, epoll backend`,
      'storage: SQLite via mod_storage_sql (lua-dbi-sqlite3; default journal mode)',
      `auth: internal_hashed, SCRAM-SHA-1 (${SCRAM_ITERATIONS} iterations); c2s_require_encryption; TLS 1.2+`,
      `modules: presence, message, iq, offline, c2s (auto), ${MODULES.join(', ')}`,
      'MAM: default_archive_policy = true, archive_expires_after = 1w',
      'no traffic shaping (mod_limits not loaded); no registration; s2s and HTTP off; tcp_backlog 511',
      'log level warn (file)',
      `provisioned ${provision.users.length} accounts in ${provisionMs} ms; start-up ${startupMs} ms`,
      ...(env?.LD_PRELOAD ? [`LD_PRELOAD=${path.basename(env.LD_PRELOAD)}`] : []),
    ].join('; '),
    stop: () => stopTree(sup, worker),
  };
  return server;
};
