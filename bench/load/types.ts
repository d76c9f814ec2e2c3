// Shared contracts of the load tool (bench/load): a server under test and a scenario result.
import type { HealthStats } from '../../src/admin/health.ts';

/** One account the load tool logs in as. All bench accounts share one password. */
export interface BenchAccount {
  /** Localpart, e.g. "u00042". */
  user: string;
}

/** Provisioning request: accounts, and optionally rosters (mutual 'both' subscriptions). */
export interface Provision {
  /** Localparts to create; all get `password`. */
  users: string[];
  password: string;
  /**
   * Roster groups: every member of a group has every other member of the same group on its
   * roster with subscription 'both' (no pending state). E.g. one group of 101 users gives each a
   * 100-contact roster.
   */
  rosterGroups?: string[][];
}

/** A server process under test, running on loopback. */
export interface BenchServer {
  /** 'amsel' | 'prosody' | 'ejabberd' */
  readonly name: string;
  /** Version string as the server reports it, e.g. "0.12.3". */
  readonly version: string;
  /** XMPP domain served (the load tool uses it for SNI, JIDs and stream 'to'). */
  readonly domain: string;
  /** Loopback ports: c2s with STARTTLS required; Direct TLS (XEP-0368) where configured. */
  readonly ports: { c2s: number; directTls?: number };
  /** PEM file of the CA that signed the server certificate. */
  readonly caFile: string;
  /** PID of the process whose /proc/<pid>/stat and status are the server's CPU and memory. */
  readonly pid: number;
  /** Human-readable configuration summary for the report (storage, modules). */
  readonly notes: string;
  /** Stop the server (SIGTERM, then SIGKILL after a grace period) and remove its data. */
  stop(): Promise<void>;
  /** Amsel only: its own health figures (`amsel stats`: heap, event-loop delay, live objects). */
  stats?(opts?: { reset?: boolean; gc?: boolean }): Promise<HealthStats | undefined>;
}

export interface StartOptions {
  /** Fresh working directory owned by this server run (config, data, logs). */
  dir: string;
  /** Accounts (and rosters) that must exist before start() resolves. */
  provision: Provision;
  /** Extra environment for the server process (e.g. LD_PRELOAD for the allocator). */
  env?: NodeJS.ProcessEnv;
}

export type StartServer = (opts: StartOptions) => Promise<BenchServer>;

/** One scenario's result: printed as one JSON line by the load tool. */
export interface ScenarioResult {
  scenario: string;
  server: string;
  /** Scenario parameters (counts, concurrency, rates). */
  params: Record<string, number | string | boolean>;
  /** Figures: per-operation values and ratios, named with their unit (e.g. cpuMsPerLogin). */
  figures: Record<string, number>;
  /** Failures observed (errors, timeouts, lost or duplicated messages); 0 is required for validity. */
  errors: number;
  /** Wall-clock duration of the measured phase in ms. */
  durationMs: number;
}
