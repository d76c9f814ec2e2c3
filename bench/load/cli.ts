// The load tool's entry point:
//
//   node --import tsx bench/load/cli.ts --server amsel|prosody|ejabberd --scenario login|idle|chat|roster [params]
//
// starts a fresh server (provisioned with the accounts the scenario needs), runs the scenario,
// prints exactly one JSON line on stdout (the ScenarioResult plus the server's version and
// notes), and stops the server. Scenario parameters are given as --name value (e.g. --logins
// 500 --concurrency 10, --n 5000, --pairs 50 --mode rate --rate 300, --groups 2); progress goes
// to stderr. Against an already-running server instead (provisioned by you with
// `--print-provision`'s accounts):
//
//   ... --port 5222 [--direct-tls-port 5223] --domain example.org --ca ca.pem --pid 1234
//
// Other options: --env KEY=VALUE (repeatable; for the server process), --keep-dir.

import { mkdtemp, rm } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import type { BenchServer, StartServer } from './types.ts';
import { scenarios, withDefaults, type Params } from './scenarios/index.ts';
import { log } from './scenarios/common.ts';

const SERVERS: Record<string, { module: string; export: string }> = {
  amsel: { module: './servers/amsel.ts', export: 'startAmsel' },
  prosody: { module: './servers/prosody.ts', export: 'startProsody' },
  ejabberd: { module: './servers/ejabberd.ts', export: 'startEjabberd' },
};
const OWN_OPTIONS = new Set(['server', 'scenario', 'port', 'direct-tls-port', 'domain', 'ca', 'pid', 'env', 'keep-dir', 'print-provision', 'help']);

function parseArgs(argv: string[]): { opts: Record<string, string | true>; env: Record<string, string>; params: Params } {
  const opts: Record<string, string | true> = {};
  const env: Record<string, string> = {};
  const params: Params = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument "${a}"`);
    let key = a.slice(2);
    let value: string | true;
    const eq = key.indexOf('=');
    if (eq >= 0) { value = key.slice(eq + 1); key = key.slice(0, eq); }
    else if (i + 1 < argv.length && !argv[i + 1]!.startsWith('--')) value = argv[++i]!;
    else value = true;
    if (key === 'env') {
      if (value === true || !value.includes('=')) throw new Error('--env needs KEY=VALUE');
      env[value.slice(0, value.indexOf('='))] = value.slice(value.indexOf('=') + 1);
    } else if (OWN_OPTIONS.has(key)) opts[key] = value;
    else params[key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase())] = value;
  }
  return { opts, env, params };
}

function usage(): string {
  const lines = ['usage: node --import tsx bench/load/cli.ts --server amsel|prosody|ejabberd --scenario NAME [--param value ...]', 'scenarios and their parameters (defaults):'];
  for (const s of Object.values(scenarios)) lines.push(`  ${s.name}: ${Object.entries(s.defaults).map(([k, v]) => `--${k} ${String(v)}`).join(' ')}`);
  return lines.join('\n');
}

async function main(): Promise<number> {
  const { opts, env, params: given } = parseArgs(process.argv.slice(2));
  if (opts.help) { process.stderr.write(usage() + '\n'); return 0; }
  const scenario = scenarios[String(opts.scenario)];
  if (!scenario) throw new Error(`--scenario must be one of ${Object.keys(scenarios).join(', ')}\n${usage()}`);
  const params = withDefaults(scenario.defaults, given);
  const provision = scenario.provision(params);
  if (opts['print-provision']) {
    process.stdout.write(JSON.stringify(provision) + '\n');
    return 0;
  }

  let server: BenchServer;
  let dir: string | undefined;
  if (opts.port !== undefined) {
    for (const k of ['domain', 'ca', 'pid']) if (typeof opts[k] !== 'string') throw new Error(`an external server needs --${k}`);
    const pid = Number(opts.pid);
    server = {
      name: typeof opts.server === 'string' ? opts.server : 'external',
      version: 'unknown',
      domain: String(opts.domain),
      ports: { c2s: Number(opts.port), directTls: opts['direct-tls-port'] ? Number(opts['direct-tls-port']) : undefined },
      caFile: path.resolve(String(opts.ca)),
      pid,
      notes: 'external server (provisioned outside the load tool)',
      async stop() { /* not ours */ },
    };
    log(`external server on port ${server.ports.c2s}, pid ${pid}; it must have ${provision.users.length} accounts (${provision.users[0]}..${provision.users.at(-1)})${provision.rosterGroups ? ` with ${provision.rosterGroups.length} roster groups` : ''}`);
  } else {
    const choice = SERVERS[String(opts.server)];
    if (!choice) throw new Error(`--server must be one of ${Object.keys(SERVERS).join(', ')} (or give --port/--domain/--ca/--pid)`);
    let start: StartServer;
    try {
      const mod = (await import(choice.module)) as Record<string, unknown>;
      start = mod[choice.export] as StartServer;
      if (typeof start !== 'function') throw new Error(`${choice.module} exports no ${choice.export}`);
    } catch (e) {
      throw new Error(`cannot load ${opts.server}'s starter (${choice.module}): ${(e as Error).message}`);
    }
    dir = await mkdtemp(path.join(os.tmpdir(), `bench-${String(opts.server)}-`));
    log(`starting ${opts.server} in ${dir} with ${provision.users.length} accounts`);
    const t0 = Date.now();
    server = await start({ dir, provision, env: Object.keys(env).length ? env : undefined });
    log(`${server.name} ${server.version} up in ${Date.now() - t0} ms (pid ${server.pid}, c2s ${server.ports.c2s}${server.ports.directTls ? `, direct TLS ${server.ports.directTls}` : ''})`);
  }

  let stopping = false;
  const cleanup = async () => {
    if (stopping) return;
    stopping = true;
    try { await server.stop(); } catch (e) { log(`stopping the server failed: ${(e as Error).message}`); }
    if (dir && !opts['keep-dir']) await rm(dir, { recursive: true, force: true }).catch(() => undefined);
  };
  for (const sig of ['SIGINT', 'SIGTERM'] as const) {
    process.once(sig, () => { log(`${sig}: stopping`); void cleanup().then(() => process.exit(130)); });
  }

  // Last-resort watchdog: scenarios are bounded, but nothing may hang the tool.
  const limitS = Number(params.timeoutS ?? 600) * 2 + 600;
  const watchdog = setTimeout(() => {
    log(`watchdog: no result after ${limitS} s; stopping`);
    void cleanup().then(() => process.exit(2));
  }, limitS * 1000);
  watchdog.unref();

  try {
    const result = await scenario.run(server, params);
    process.stdout.write(JSON.stringify({ ...result, version: server.version, notes: server.notes }) + '\n');
    log(`${result.scenario} on ${result.server}: errors ${result.errors}; ${Object.entries(result.figures).map(([k, v]) => `${k}=${v}`).join(' ')}`);
    return result.errors === 0 ? 0 : 1;
  } finally {
    clearTimeout(watchdog);
    await cleanup();
  }
}

// Exit explicitly: a socket left behind by a misbehaving server must not keep the tool alive
// (stdout to a pipe or file is written synchronously on Linux, so the result line is out).
main().then(
  (code) => process.exit(code),
  (e: unknown) => { log(`error: ${e instanceof Error ? e.message : String(e)}`); process.exit(2); },
);
