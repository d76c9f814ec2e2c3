// The one CLI: amsel start | adduser | passwd | deluser | users | cert | check | stats | config-reference
import { Command, Option } from 'commander';
import path from 'node:path';
import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { loadConfig, devConfig } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';
import type { Config } from '../config/schema.ts';
import { configReference, modulesReference } from '../config/docs.ts';
import { builtinModules } from '../modules/index.ts';
import { createServer, type Server } from '../core/server.ts';
import { createLogger } from '../observability/log.ts';
import { openStorage, AccountExistsError, configurationError, startupFault, type Storage } from '../storage/index.ts';
import { deriveCredentials } from '../core/auth/scram.ts';
import { Jid, JidError } from '../jid/index.ts';
import { TlsManager, TlsCertificateError, checkCertificates, createDevCa, issueDevCert, ensureDevCert, devCertPaths } from '../tls/index.ts';
import { readPassword } from './password.ts';
import { notifyServer } from '../admin/control.ts';
import { moduleStorageOptions } from '../modules/storage-options.ts';
import { securityWarnings } from './security.ts';
import type { HealthStats } from '../admin/health.ts';

const DEFAULT_CONFIG = process.env.AMSEL_CONFIG ?? '/etc/amsel/amsel.yaml';
const DEV_DIR = '.amsel-dev';

class CliError extends Error {}

interface GlobalOpts { config?: string; dev?: boolean }

/** The development setup: a local CA and a certificate for localhost in ./.amsel-dev. */
async function prepareDev(dataDir: string): Promise<Config> {
  const dir = path.resolve(dataDir);
  await mkdir(dir, { recursive: true });
  const fresh = !existsSync(devCertPaths(dir).certFile);
  const files = await ensureDevCert(dir, ['localhost']);
  if (fresh) process.stderr.write(`amsel: created a development CA (${files.caFile}) and a certificate for localhost (${files.certFile})\n`);
  return devConfig(dir);
}

async function resolveConfig(o: GlobalOpts): Promise<Config> {
  if (o.dev) return prepareDev(DEV_DIR);
  const file = o.config ?? DEFAULT_CONFIG;
  if (!existsSync(file)) {
    throw new CliError(`config file ${file} not found (use --config FILE, set AMSEL_CONFIG, or --dev for a local development server)`);
  }
  return loadConfig(file);
}

function parseAccountJid(s: string, config: Config): Jid {
  let jid: Jid;
  try {
    jid = Jid.parse(s);
  } catch (err) {
    throw new CliError(`invalid JID '${s}': ${err instanceof JidError ? err.message : String(err)}`);
  }
  if (!jid.local || jid.resource) throw new CliError(`'${s}' is not an account address (expected name@domain)`);
  if (!config.hosts.includes(jid.domain)) throw new CliError(`${jid.domain} is not one of this server's hosts (${config.hosts.join(', ')})`);
  return jid;
}

async function withStorage<T>(config: Config, fn: (s: Storage) => Promise<T>): Promise<T> {
  // Account commands do not wait for an unreachable PostgreSQL (the server's start does): an
  // operator at the console is told at once; a configuration error names storage.url.
  const storage = await openStorage(config.storage.type === 'sqlite'
    ? { type: 'sqlite', path: config.storage.path }
    : { type: 'postgres', url: config.storage.url, poolSize: 2 }, moduleStorageOptions())
    .catch((err: unknown) => {
      throw config.storage.type === 'postgres' && startupFault(err) === undefined ? configurationError(config.storage.url, err) : err;
    });
  try {
    return await fn(storage);
  } finally {
    await storage.close();
  }
}

export function buildCli(): Command {
  const program = new Command('amsel')
    .description('Amsel XMPP server')
    .addOption(new Option('-c, --config <file>', 'configuration file').env('AMSEL_CONFIG'))
    .option('--dev', `development mode: localhost, a generated certificate, SQLite in ./${DEV_DIR}`)
    .showHelpAfterError();

  const g = () => program.opts<GlobalOpts>();

  program.command('start')
    .description('run the server in the foreground until SIGTERM')
    .action(async () => {
      const config = await resolveConfig(g());
      const log = createLogger({ level: config.log.level, format: config.log.format });
      // Signals are handled from the beginning: the start may wait a long time for PostgreSQL
      // (src/storage/startup.ts), and SIGTERM then is a normal stop (exit 0), not a crash. A
      // signal during the rest of the start lets it finish, then stops the server.
      const abort = new AbortController();
      let server: Server | undefined;
      const starting = (async () => {
        server = await createServer(config, { log, signal: abort.signal });
        await server.start();
      })();
      let stopping = false;
      const stop = async (signal: string) => {
        if (stopping) return;
        stopping = true;
        log.info({ signal }, 'signal received');
        abort.abort();
        // A failed or aborted start exits below.
        if (!(await starting.then(() => true, () => false))) return;
        try {
          await server!.stop();
          process.exit(0);
        } catch (err) {
          log.error({ err }, 'error during shutdown');
          process.exit(1);
        }
      };
      process.on('SIGTERM', () => void stop('SIGTERM'));
      process.on('SIGINT', () => void stop('SIGINT'));
      process.on('SIGHUP', () => {
        void starting.then(
          () => server!.reloadTls().catch((err: unknown) => log.error({ err }, 'certificate reload failed; keeping the old certificates')),
          () => undefined,
        );
      });
      try {
        await starting;
      } catch (err) {
        if (abort.signal.aborted && err === abort.signal.reason) {
          log.info('stopped before the server had started');
          process.exit(0);
        }
        throw err;
      }
      // Weak settings and unsafe key/data permissions: logged, never fatal (src/cli/security.ts).
      for (const w of await securityWarnings(config, { configFile: g().dev ? undefined : (g().config ?? DEFAULT_CONFIG) })) log.warn({ check: w.topic }, w.message);
      const certs = await TlsManager.create(config.tls, config.hosts).then((m) => checkCertificates(m.certificates(), config.hosts)).catch(() => []);
      for (const c of certs) if (c.level !== 'ok') log.warn({ check: 'certificate', domain: c.domain }, c.message);
      if (g().dev) {
        process.stderr.write(`amsel: development server for 'localhost' is running. Add a user with: ./bin/amsel.js --dev adduser alice@localhost\n`);
      }
    });

  program.command('adduser <jid>')
    .description('create an account (password from a prompt, or stdin when it is not a terminal)')
    .action(async (jidArg: string) => {
      const config = await resolveConfig(g());
      const jid = parseAccountJid(jidArg, config);
      const password = await readPassword(`Password for ${jid}: `, true);
      const credentials = await deriveCredentials(password, config.auth.scramIterations);
      await withStorage(config, async (s) => {
        try {
          await s.accounts.create(jid.domain, jid.local, credentials);
        } catch (err) {
          if (err instanceof AccountExistsError) throw new CliError(`${jid} already exists`);
          throw err;
        }
      });
      process.stdout.write(`created ${jid}\n`);
    });

  program.command('passwd <jid>')
    .description("change an account's password")
    .action(async (jidArg: string) => {
      const config = await resolveConfig(g());
      const jid = parseAccountJid(jidArg, config);
      const password = await readPassword(`New password for ${jid}: `, true);
      const credentials = await deriveCredentials(password, config.auth.scramIterations);
      const ok = await withStorage(config, (s) => s.accounts.setCredentials(jid.domain, jid.local, credentials));
      if (!ok) throw new CliError(`${jid} does not exist`);
      // Fix: a running server was never told (the control socket has 'passwd-changed' for
      // this), so the 'user:password-changed' hook did not run for CLI password changes.
      await notifyServer(config.dataDir, { op: 'passwd-changed', host: jid.domain, username: jid.local });
      process.stdout.write(`password changed for ${jid}\n`);
    });

  program.command('deluser <jid>')
    .description('delete an account and everything it owns; its sessions are closed')
    .action(async (jidArg: string) => {
      const config = await resolveConfig(g());
      const jid = parseAccountJid(jidArg, config);
      // A running server does the deletion itself (closing sessions, running module hooks);
      // otherwise delete in storage directly.
      const viaServer = await notifyServer(config.dataDir, { op: 'deluser', host: jid.domain, username: jid.local });
      let ok: boolean;
      if (viaServer) ok = viaServer.ok === true;
      else ok = await withStorage(config, (s) => s.accounts.delete(jid.domain, jid.local));
      if (!ok) throw new CliError(`${jid} does not exist`);
      process.stdout.write(`deleted ${jid}\n`);
    });

  program.command('users [host]')
    .description('list accounts')
    .action(async (host: string | undefined) => {
      const config = await resolveConfig(g());
      const list = await withStorage(config, (s) => s.accounts.list(host));
      for (const a of list) process.stdout.write(`${a.username}@${a.host}\n`);
    });

  program.command('cert [domains...]')
    .description('create a development CA and a certificate for the given domains (default: the configured hosts)')
    .option('--ca-dir <dir>', 'where the development CA lives')
    .option('--out <dir>', 'where to write the certificate and key')
    .action(async (domains: string[], o: { caDir?: string; out?: string }) => {
      let names = domains;
      let base = path.resolve(DEV_DIR);
      if (names.length === 0) {
        const config = await resolveConfig(g());
        names = config.hosts;
        base = config.dataDir;
      }
      const caDir = path.resolve(o.caDir ?? devCertPaths(base).caDir);
      const out = path.resolve(o.out ?? path.join(base, 'tls'));
      const ca = await createDevCa(caDir);
      const cert = await issueDevCert(caDir, names, out);
      process.stdout.write(`CA certificate: ${ca.certFile}\ncertificate:    ${cert.certFile}\nkey:            ${cert.keyFile}\n` +
        `(clients and other servers will not trust this CA: it is for development and tests only)\n`);
    });

  program.command('check')
    .description('validate the config and certificates, warn about weak settings and unsafe permissions; print the DNS records to create')
    .action(async () => {
      const config = await resolveConfig(g());
      process.stdout.write(`config: ok (${config.hosts.length} host${config.hosts.length === 1 ? '' : 's'})\n`);
      const tlsm = await TlsManager.create(config.tls, config.hosts);
      const results = checkCertificates(tlsm.certificates(), config.hosts);
      let errors = 0;
      for (const r of results) {
        process.stdout.write(`certificate ${r.domain}: ${r.level}: ${r.message}\n`);
        if (r.level === 'error') errors++;
      }
      const warnings = await securityWarnings(config, { configFile: g().dev ? undefined : (g().config ?? DEFAULT_CONFIG) });
      for (const w of warnings) process.stdout.write(`security ${w.topic}: warn: ${w.message}\n`);
      if (warnings.length === 0) process.stdout.write('security: ok (settings, key and data permissions)\n');
      process.stdout.write('\nDNS records to create (replace the target with this machine\'s name; it needs A/AAAA records):\n');
      const l = config.listeners;
      for (const host of config.hosts) {
        if (l.c2s.enabled) process.stdout.write(`  _xmpp-client._tcp.${host}. 3600 IN SRV 0 5 ${l.c2s.port} ${host}.\n`);
        if (l.c2sDirectTls.enabled) process.stdout.write(`  _xmpps-client._tcp.${host}. 3600 IN SRV 0 5 ${l.c2sDirectTls.port} ${host}.\n`);
        if (l.s2s.enabled) process.stdout.write(`  _xmpp-server._tcp.${host}. 3600 IN SRV 0 5 ${l.s2s.port} ${host}.\n`);
        process.stdout.write(`  ${host}. 3600 IN A <this server's IPv4 address>\n  ${host}. 3600 IN AAAA <this server's IPv6 address>\n`);
      }
      if (errors > 0) throw new CliError(`${errors} certificate problem${errors === 1 ? '' : 's'}`);
    });

  program.command('stats')
    .description('health of the running server: memory, event-loop delay, sessions and connections')
    .option('--json', 'print the figures as one JSON object')
    .option('--reset', 'start a new event-loop delay window after reading (for periodic polling)')
    .option('--gc', 'run a full garbage collection first (a short pause; for leak checks)')
    .action(async (o: { json?: boolean; reset?: boolean; gc?: boolean }) => {
      const config = await resolveConfig(g());
      const r = await notifyServer(config.dataDir, { op: 'stats', reset: o.reset === true, gc: o.gc === true });
      if (!r) throw new CliError(`no server is running on ${config.dataDir}`);
      if (!r.ok) throw new CliError(`stats failed: ${r.error ?? 'unknown error'}`);
      if (o.json) return void process.stdout.write(JSON.stringify(r) + '\n');
      process.stdout.write(formatStats(r as unknown as HealthStats));
    });

  program.command('config-reference')
    .description('print the configuration reference (Markdown)')
    .action(() => { process.stdout.write(configReference() + '\n' + modulesReference(builtinModules)); });

  return program;
}

function formatStats(s: HealthStats): string {
  const mib = (b: number) => `${(b / 1048576).toFixed(1)} MiB`;
  const d = s.eventLoopDelayMs;
  const lines = [
    `uptime:                      ${s.uptimeS.toFixed(0)} s`,
    ...Object.entries(s.counts).map(([k, v]) => `${(k + ':').padEnd(29)}${v}`),
    ...Object.entries(s.tracked).map(([k, v]) => `${(k + ' objects:').padEnd(29)}${v.alive} alive of ${v.total} since start`),
    `memory:                      rss ${mib(s.memory.rss)}, heap ${mib(s.memory.heapUsed)} used of ${mib(s.memory.heapTotal)} (limit ${mib(s.memory.heapLimit)}), external ${mib(s.memory.external)}${s.gc ? ' (after a full GC)' : ''}`,
    `event-loop delay:            p50 ${d.p50} ms, p90 ${d.p90} ms, p99 ${d.p99} ms, max ${d.max} ms (over ${d.windowS.toFixed(0)} s)`,
    `event-loop busy:             ${(s.eventLoopUtilization * 100).toFixed(1)} %`,
  ];
  return lines.join('\n') + '\n';
}

export async function main(argv: string[]): Promise<void> {
  // Everything Amsel writes (database, keys, control socket) is private to its user.
  process.umask(0o077);
  try {
    await buildCli().parseAsync(argv);
  } catch (err) {
    if (err instanceof CliError || err instanceof ConfigError || err instanceof JidError || err instanceof TlsCertificateError) {
      process.stderr.write(`amsel: ${err.message}\n`);
    } else {
      process.stderr.write(`amsel: ${err instanceof Error ? err.message : String(err)}\n`);
      if (process.env.AMSEL_DEBUG) process.stderr.write(`${(err as Error).stack}\n`);
    }
    process.exitCode = 1;
  }
}
