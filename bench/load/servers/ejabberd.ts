// ejabberd (Debian's package, 23.01) as a benchmark subject: a private Erlang node running as the
// current user from `dir`, configured like a public server (STARTTLS required, Direct TLS,
// SCRAM-hashed passwords, SQLite storage, MAM archiving one-to-one chats, carbons, stream
// management, CSI), but without traffic shapers, and with accounts and rosters written straight
// into its SQLite database before start (ejabberdctl register costs a VM start per account).
//
// The VM is started with `erl` directly, as ejabberdctl would (same flags and environment):
// ejabberdctl, when run as root, switches to the 'ejabberd' system user and insists on its own
// paths. The node gets a unique name and its own distribution port without epmd, so it never
// registers with or disturbs another Erlang node on the machine (RabbitMQ runs one here).
import { randomBytes } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import Database from 'better-sqlite3';
import { stringify } from 'yaml';
import {
  DOMAIN, SCRAM_ITERATIONS, benchCertificates, findWorker, freePorts, packageVersion, rosterPairs, scramSha1,
  spawnServer, stopTree, waitForPort, waitForXmpp, type ProcInfo,
} from './common.ts';
import type { BenchServer, Provision, StartServer } from '../types.ts';

const ERL = '/usr/bin/erl';
/** Where Debian installs ejabberd's OTP application (ejabberdctl's ERL_LIBS). */
const ERL_LIBS = '/usr/lib/x86_64-linux-gnu';
/** ejabberd's schema for SQLite (old single-host schema: new_sql_schema is false by default). */
const LITE_SQL = '/usr/share/ejabberd/sql/lite.sql';

/**
 * Accounts and rosters as ejabberd_auth_sql and mod_roster_sql store them: users.password holds
 * the base64 StoredKey (no "sha256:" prefix for SHA-1), serverkey and salt base64 too;
 * rosterusers rows as mod_roster_sql writes them (subscription 'B' = both, ask 'N' = none).
 */
export function provisionEjabberd(dbFile: string, schema: string, p: Provision): void {
  const db = new Database(dbFile);
  try {
    // One transaction for the ~100 schema statements (autocommit would sync after each).
    db.transaction(() => db.exec(schema))();
    // One salt for all bench users, so PBKDF2 runs once (ejabberd generates 16 random bytes).
    const cred = scramSha1(p.password, Buffer.from('amsel-bench-salt', 'utf8'), SCRAM_ITERATIONS);
    const storedKey = cred.storedKey.toString('base64');
    const serverKey = cred.serverKey.toString('base64');
    const salt = cred.salt.toString('base64');
    const addUser = db.prepare('INSERT INTO users (username, password, serverkey, salt, iterationcount) VALUES (?, ?, ?, ?, ?)');
    const addItem = db.prepare(
      "INSERT INTO rosterusers (username, jid, nick, subscription, ask, askmessage, server, subscribe, type) VALUES (?, ?, '', 'B', 'N', '', 'N', '', 'item')",
    );
    db.transaction(() => {
      for (const user of p.users) addUser.run(user, storedKey, serverKey, salt, SCRAM_ITERATIONS);
      for (const [owner, contacts] of rosterPairs(p.rosterGroups)) {
        for (const contact of contacts) addItem.run(owner, `${contact}@${DOMAIN}`);
      }
    })();
  } finally {
    db.close();
  }
}

/** Modules: what a public c2s service runs (Debian's default list minus MUC, HTTP, MQTT, STUN, push, admin). */
const MODULES: Record<string, Record<string, unknown>> = {
  mod_disco: {},
  mod_roster: { versioning: true },
  mod_offline: { access_max_user_messages: 'max_user_offline_messages' },
  mod_mam: { default: 'always' }, // archive all one-to-one messages unless the user opts out
  mod_carboncopy: {},
  mod_stream_mgmt: { resend_on_timeout: 'if_offline' },
  mod_client_state: {},
  mod_ping: {},
  mod_caps: {},
  mod_pubsub: { access_createnode: 'pubsub_createnode', plugins: ['flat', 'pep'] },
  mod_private: {},
  mod_privacy: {},
  mod_blocking: {},
  mod_last: {},
  mod_vcard: { search: false },
  mod_vcard_xupdate: {},
  mod_version: {},
};
// Not loaded, unlike Debian's ejabberd.yml: mod_fail2ban (bans an IP after failed logins; all
// load comes from 127.0.0.1), mod_pres_counter (presence rate limit), mod_register (no in-band
// registration), mod_s2s_dialback, MUC, HTTP/BOSH/WebSocket/API, MQTT, STUN, push, admin.

export const startEjabberd: StartServer = async ({ dir, provision, env }) => {
  dir = path.resolve(dir);
  const dbFile = path.join(dir, 'ejabberd.db');
  // `dir` should be fresh; if it is not, start from an empty database and a new mnesia schema
  // (an old one belongs to another node name and would stop the VM).
  const spool = path.join(dir, 'spool');
  await Promise.all([spool, ...['', '-wal', '-shm', '-journal'].map((x) => dbFile + x)].map((f) => rm(f, { recursive: true, force: true })));
  const logs = path.join(dir, 'logs');
  const home = path.join(dir, 'home'); // private ~/.erlang.cookie
  await Promise.all([spool, logs, home].map((d) => mkdir(d, { recursive: true })));
  const certs = await benchCertificates();
  const version = await packageVersion('ejabberd');
  const [c2s, directTls, dist] = await freePorts(3) as [number, number, number];

  const t0 = Date.now();
  provisionEjabberd(dbFile, await readFile(LITE_SQL, 'utf8'), provision);
  const provisionMs = Date.now() - t0;

  const tlsOpts = ['no_sslv3', 'no_tlsv1', 'no_tlsv1_1', 'cipher_server_preference', 'no_compression']; // TLS 1.2+
  const listener = {
    ip: '127.0.0.1',
    module: 'ejabberd_c2s',
    access: 'c2s',
    shaper: 'none', // Debian's file says c2s_shaper (3000 B/s for everyone but admins)
    max_stanza_size: 262144, // Debian's value (the built-in default is infinity)
    max_fsm_queue: 10000, // the built-in default, stated: stanzas queued for one session
    backlog: 511, // built-in default is 5: bursts of connects would stall in the kernel
    protocol_options: tlsOpts,
  };
  const config = {
    hosts: [DOMAIN],
    loglevel: 'warning',
    log_rotate_count: 0,
    certfiles: [certs.certFile, certs.keyFile],
    ca_file: certs.caFile, // so that ejabberd_pkix can validate the chain
    c2s_ciphers: 'HIGH:!aNULL:!eNULL:!3DES:@STRENGTH',
    c2s_protocol_options: tlsOpts,
    listen: [
      { ...listener, port: c2s, starttls_required: true },
      { ...listener, port: directTls, tls: true }, // XEP-0368 Direct TLS
    ],
    // No ejabberd_s2s_in listener, and no outgoing s2s either.
    s2s_access: 's2s',
    sql_type: 'sqlite',
    sql_database: dbFile,
    default_db: 'sql',
    auth_method: 'sql',
    auth_password_format: 'scram', // SCRAM-SHA-1 stored keys, no plaintext passwords
    disable_sasl_mechanisms: ['digest-md5', 'x-oauth2'],
    acl: { local: { user_regexp: '' } },
    access_rules: {
      local: { allow: 'local' },
      c2s: { allow: 'all' },
      s2s: { deny: 'all' },
      pubsub_createnode: { allow: 'local' },
      register: { deny: 'all' },
    },
    shaper_rules: {
      c2s_shaper: 'none',
      max_user_sessions: 100, // Debian's is 10; the load tool may open more resources per user
      max_user_offline_messages: 10000, // Debian's is 100: offline scenarios must not bounce
    },
    modules: MODULES,
  };
  const configFile = path.join(dir, 'ejabberd.yml');
  await writeFile(configFile, `# Generated by bench/load/servers/ejabberd.ts\n${stringify(config, { aliasDuplicateObjects: false })}`);

  const node = `ejabberd_bench_${randomBytes(4).toString('hex')}@localhost`;
  const logFile = path.join(logs, 'ejabberd.log');
  // The erl command line ejabberdctl builds for `foreground`, plus an epmd-less distribution
  // port bound to loopback.
  const args = [
    '-sname', node,
    '-start_epmd', 'false', '-erl_epmd_port', String(dist),
    '-kernel', 'inet_dist_use_interface', '{127,0,0,1}',
    '+K', 'true', '+P', '250000',
    '-env', 'ERL_CRASH_DUMP_BYTES', '0',
    '-mnesia', 'dir', JSON.stringify(spool),
    '-s', 'ejabberd',
    '-noinput',
  ];
  const sup = spawnServer(ERL, args, {
    cwd: spool,
    env: {
      ...process.env,
      HOME: home,
      EJABBERD_CONFIG_PATH: configFile,
      EJABBERD_LOG_PATH: logFile,
      ERL_LIBS,
      ERL_INETRC: '/etc/ejabberd/inetrc',
      ERL_MAX_PORTS: '32000',
      ERL_MAX_ETS_TABLES: '1400',
      ERL_CRASH_DUMP: path.join(logs, 'erl_crash.dump'),
      ...env,
    },
    logFile: path.join(logs, 'stdout.log'),
  });
  const deadline = Date.now() + 60_000;
  let worker: ProcInfo;
  try {
    // erl is a shell script that execs erlexec, which execs beam.smp: normally the same PID.
    worker = await findWorker(sup.child.pid!, ['beam.smp'], deadline);
    await waitForXmpp(c2s, sup, deadline, [logFile, path.join(logs, 'error.log')]);
    await waitForPort(directTls, sup, deadline);
  } catch (err) {
    // Only our own child and its descendants: never another beam.smp on the machine.
    const w = await findWorker(sup.child.pid!, ['beam.smp'], 0).catch(() => undefined);
    if (w) await stopTree(sup, w, 2000);
    else sup.child.kill('SIGKILL');
    throw err;
  }
  const startupMs = Date.now() - t0 - provisionMs;

  const server: BenchServer = {
    name: 'ejabberd',
    version: version.upstream,
    domain: DOMAIN,
    ports: { c2s, directTls },
    caFile: certs.caFile,
    pid: worker.pid,
    notes: [
      `Debian ejabberd ${version.full}, Erlang node ${node} (+K true +P 250000)`,
      'storage: SQLite (sql_type sqlite via erlang-p1-sqlite3, default_db sql, lite.sql schema; mnesia in dir/spool only for internal tables (sessions, routes))',
      `auth: sql, auth_password_format scram, SCRAM-SHA-1 (${SCRAM_ITERATIONS} iterations); starttls_required; TLS 1.2+`,
      `modules: ${Object.keys(MODULES).join(', ')}`,
      'MAM: default always',
      'no traffic shaping (listener shaper none, c2s_shaper none); max_user_sessions 100; max_user_offline_messages 10000; no mod_fail2ban; no registration; s2s and HTTP off; backlog 511',
      'log level warning (file)',
      `provisioned ${provision.users.length} accounts in ${provisionMs} ms; start-up ${startupMs} ms`,
      ...(env?.LD_PRELOAD ? [`LD_PRELOAD=${path.basename(env.LD_PRELOAD)}`] : []),
    ].join('; '),
    stop: () => stopTree(sup, worker),
  };
  return server;
};
