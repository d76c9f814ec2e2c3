// idle: memory per authenticated session and idle CPU. N sessions (TLS, SCRAM, bound, initial
// presence, no roster contacts) held open while the clients do nothing; they only answer the
// server's own pings (a server that pings its clients pays for that in idle CPU, as in production).

import { connect, type XmppClient } from '../client.ts';
import { idleCpu, rssBytes, waitQuiet } from '../proc.ts';
import { Counters, r3 } from '../stats.ts';
import type { ScenarioResult } from '../types.ts';
import { BENCH_PASSWORD, log, MiB, pool, progress, userName, users, type Scenario } from './common.ts';
import { loginOnce } from './login.ts';

const defaults = {
  n: 1000,
  concurrency: 50,
  warmup: 50,
  /** Minimum quiet wait before each memory reading, ms. */
  quietMs: 3000,
  /** Idle CPU window, ms. */
  windowMs: 10_000,
  directTls: false,
  /** Bound of the connecting phase, seconds. */
  timeoutS: 600,
};
export type IdleParams = typeof defaults;

const KiB = 1024;

export const idle: Scenario<IdleParams> = {
  name: 'idle',
  defaults,
  // The warm-up uses the accounts after the N held ones, so no session is replaced.
  provision: (p) => ({ users: users(p.n + p.warmup), password: BENCH_PASSWORD }),
  async run(server, p): Promise<ScenarioResult> {
    const errs = new Counters();
    const pid = server.pid;

    log(`idle: warm-up, ${p.warmup} logins`);
    await pool(p.warmup, Math.min(p.concurrency, 20), performance.now() + 120_000, async (i) => {
      try { await loginOnce(server, userName(p.n + i), 'warm', p.directTls); } catch (e) { errs.error('warmup', e); }
    });
    await waitQuiet(pid, { minMs: p.quietMs });
    const rssBaseline = rssBytes(pid);

    log(`idle: opening ${p.n} sessions, concurrency ${p.concurrency}`);
    const clients: XmppClient[] = [];
    let dropped = 0;
    let holding = true;
    const onClosed = (c: XmppClient) => { if (holding) { dropped++; errs.error('dropped', new Error(c.error ?? 'closed')); } };
    const t0 = performance.now();
    const stop = progress('idle', () => `${clients.length}/${p.n} open, ${errs.get('connect')} errors, server RSS ${Math.round(rssBytes(pid) / MiB)} MiB`);
    const r = await pool(p.n, p.concurrency, t0 + p.timeoutS * 1000, async (i) => {
      try {
        const c = await connect({ server, user: userName(i), password: BENCH_PASSWORD, resource: 'idle', directTls: p.directTls, presence: true });
        c.onClosed = onClosed;
        clients.push(c);
      } catch (e) { errs.error('connect', e); }
    });
    stop();
    const connectMs = performance.now() - t0;
    log(`idle: ${clients.length} sessions open in ${Math.round(connectMs)} ms${r.timedOut ? ' (hit the time bound)' : ''}; waiting for quiet`);
    const q = await waitQuiet(pid, { minMs: p.quietMs });
    const rssWith = rssBytes(pid);
    const iqs0 = clients.reduce((a, c) => a + c.serverIqs, 0);
    log(`idle: measuring idle CPU over ${p.windowMs} ms`);
    const w = await idleCpu(pid, p.windowMs);
    const serverIqs = clients.reduce((a, c) => a + c.serverIqs, 0) - iqs0;
    const open = clients.filter((c) => !c.closed).length;
    const clientRss = process.memoryUsage().rss;

    log(`idle: closing ${clients.length} sessions`);
    holding = false;
    await pool(clients.length, 200, performance.now() + 120_000, async (i) => {
      try { await clients[i]!.close(); } catch (e) { errs.error('close', e); }
    });
    clients.length = 0;
    await waitQuiet(pid, { minMs: p.quietMs });
    const rssAfter = rssBytes(pid);
    for (const e of errs.errorSamples) log(`idle error: ${e}`);

    const n = open;
    return {
      scenario: 'idle',
      server: server.name,
      params: p,
      figures: {
        sessions: n,
        rssBaselineKiB: Math.round(rssBaseline / KiB),
        rssKiB: Math.round(rssWith / KiB),
        rssPerSessionKiB: r3((rssWith - rssBaseline) / KiB / Math.max(1, n)),
        idleCpuMsPerSec: r3(w.cpuMsPerSec),
        idleCpuMs: Math.round(w.cpuMs),
        serverIqsDuringWindow: serverIqs,
        rssAfterCloseKiB: Math.round(rssAfter / KiB),
        connectMsPerSession: r3(connectMs / Math.max(1, n)),
        quietBeforeMeasure: q.quiet ? 1 : 0,
        clientRssMiB: r3(clientRss / MiB),
        droppedSessions: dropped,
      },
      // Sessions not held through the window (connect failures, drops, time bound) and failed closes.
      errors: p.n - n + errs.get('close'),
      durationMs: Math.round(w.windowMs),
    };
  },
};
