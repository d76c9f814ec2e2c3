// aging: does a server get slower or fatter once many sessions came and went? On one fresh
// server: warm-up logins; CPU per login measured over several rounds (the "fresh" figure);
// churn: `churn` sessions come and go in waves of `wave` (all opened with initial presence,
// held a moment, all closed); CPU per login measured again over as many rounds (the "aged"
// figure). The login is the login scenario's (loginOnce, CpuMeter). Each side is the median of
// its rounds because one round varies by about ±10 % on a 2-core box shared with the client;
// the spread is reported so that a ratio inside the noise is recognisable as such.
// On Amsel also its own figures (`amsel stats`): heap after a full GC before and after the churn,
// session objects still alive after it (must be 0: a closed session something still holds is a
// leak), and the event-loop delay during the churn.

import { connect, type XmppClient } from '../client.ts';
import { CpuMeter, rssBytes, waitQuiet } from '../proc.ts';
import { Counters, r3 } from '../stats.ts';
import type { BenchServer, ScenarioResult } from '../types.ts';
import { BENCH_PASSWORD, checkCpuResolution, log, MiB, pollLoopDelay, pool, progress, sleep, userName, users, type Scenario } from './common.ts';
import { loginOnce } from './login.ts';

const defaults = {
  /** Measured logins per round. */
  logins: 1000,
  /** Rounds per side (fresh, aged); each side's figure is the median. */
  rounds: 5,
  concurrency: 20,
  /** Accounts u00000.. that the measured logins rotate through (as in the login scenario). */
  users: 500,
  /** 200 is not enough: V8 is still optimising the login path and the fresh side looks ~20 % dearer. */
  warmup: 1000,
  /** Sessions that come and go between the two measurements. */
  churn: 10_000,
  /** Sessions open at once during the churn. */
  wave: 1000,
  /** How long each wave is held open, ms. */
  holdMs: 2000,
  /** Connectors while opening a wave. */
  churnConcurrency: 50,
  /** Minimum quiet wait before each measurement and memory reading, ms. */
  quietMs: 3000,
  directTls: false,
  /** Bound of the whole scenario, seconds. */
  timeoutS: 1500,
};
export type AgingParams = typeof defaults;

/** Median of a non-empty list. */
function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/** (max - min) / median in %: how far apart the rounds of one side are. */
function spreadPct(xs: number[]): number {
  const md = median(xs);
  return md > 0 ? ((Math.max(...xs) - Math.min(...xs)) / md) * 100 : NaN;
}

export const aging: Scenario<AgingParams> = {
  name: 'aging',
  defaults,
  // Measured logins use u00000..; the churn uses the accounts after them, so the aged
  // measurement logs into the same accounts as the fresh one.
  provision: (p) => ({ users: users(p.users + p.churn), password: BENCH_PASSWORD }),
  async run(server: BenchServer, p): Promise<ScenarioResult> {
    const errs = new Counters();
    const pid = server.pid;
    const t0 = performance.now();
    const deadline = t0 + p.timeoutS * 1000;
    let loginSeq = 0;

    /** One round of p.logins logins; server CPU ms per successful login. */
    const round = async (label: string): Promise<number> => {
      let ok = 0;
      const meter = new CpuMeter(pid);
      const r = await pool(p.logins, p.concurrency, deadline, async () => {
        const k = loginSeq++;
        try {
          await loginOnce(server, userName(k % p.users), `a${k}`, p.directTls);
          ok++;
        } catch (e) { errs.error('login', e); }
      });
      const m = meter.stop();
      checkCpuResolution(`aging ${label}`, m.serverCpuMs);
      const v = m.serverCpuMs / Math.max(1, ok);
      log(`aging: ${label}: ${ok}/${p.logins} logins, ${r3(v)} ms CPU per login`);
      if (r.timedOut) throw new Error(`aging: hit the ${p.timeoutS} s bound during ${label}`);
      return v;
    };
    const measure = async (side: string): Promise<number[]> => {
      await waitQuiet(pid, { minMs: p.quietMs });
      const out: number[] = [];
      for (let i = 0; i < p.rounds; i++) out.push(await round(`${side} round ${i + 1}/${p.rounds}`));
      return out;
    };

    log(`aging: warm-up, ${p.warmup} logins`);
    const warm = new Counters();
    await pool(p.warmup, p.concurrency, performance.now() + 120_000, async (i) => {
      try { await loginOnce(server, userName(i % p.users), `w${i}`, p.directTls); } catch (e) { warm.error('login', e); }
    });
    if (warm.get('login')) log(`aging: ${warm.get('login')} warm-up errors, e.g. ${warm.errorSamples[0]}`);

    const fresh = await measure('fresh');
    await waitQuiet(pid, { minMs: p.quietMs });
    const rssFresh = rssBytes(pid);
    const healthFresh = await server.stats?.({ gc: true });

    // Churn in waves: every session of a wave is open (with presence) at the same time.
    const waves = Math.ceil(p.churn / p.wave);
    log(`aging: churn, ${p.churn} sessions in ${waves} waves of ${p.wave}`);
    let opened = 0;
    let dropped = 0;
    const churnLoop = await pollLoopDelay(server, 'aging churn');
    const churnMeter = new CpuMeter(pid);
    const stop = progress('aging churn', () => `${opened}/${p.churn} opened, ${errs.get('connect')} errors, server RSS ${Math.round(rssBytes(pid) / MiB)} MiB`);
    try {
      for (let w = 0; w < waves; w++) {
        const base = w * p.wave;
        const size = Math.min(p.wave, p.churn - base);
        const clients: XmppClient[] = [];
        let holding = true;
        const onClosed = (c: XmppClient) => { if (holding) { dropped++; errs.error('dropped', new Error(c.error ?? 'closed')); } };
        const r = await pool(size, p.churnConcurrency, deadline, async (i) => {
          try {
            const c = await connect({ server, user: userName(p.users + base + i), password: BENCH_PASSWORD, resource: 'churn', directTls: p.directTls, presence: true });
            c.onClosed = onClosed;
            clients.push(c);
            opened++;
          } catch (e) { errs.error('connect', e); }
        });
        await sleep(p.holdMs);
        holding = false;
        await pool(clients.length, 200, performance.now() + 120_000, async (i) => {
          try { await clients[i]!.close(); } catch (e) { errs.error('close', e); }
        });
        if (r.timedOut) throw new Error(`aging: hit the ${p.timeoutS} s bound during churn wave ${w + 1}`);
      }
    } finally {
      stop();
    }
    const churn = churnMeter.stop();
    const churnLoopFigures = Object.fromEntries(Object.entries(await churnLoop.stop()).map(([k, v]) => [`churn${k[0]!.toUpperCase()}${k.slice(1)}`, v]));
    log(`aging: churn done, ${opened} sessions in ${Math.round(churn.wallMs / 1000)} s`);

    await waitQuiet(pid, { minMs: p.quietMs });
    const rssAged = rssBytes(pid);
    const healthAged = await server.stats?.({ gc: true });
    if (healthAged) log(`aging: after the churn: ${JSON.stringify(healthAged.counts)}, session objects alive ${healthAged.tracked.sessions?.alive ?? 0} of ${healthAged.tracked.sessions?.total ?? 0}, heap ${r3(healthAged.memory.heapUsed / MiB)} MiB`);
    const aged = await measure('aged');
    for (const e of errs.errorSamples) log(`aging error: ${e}`);

    const f = median(fresh), a = median(aged);
    return {
      scenario: 'aging',
      server: server.name,
      params: p,
      figures: {
        freshCpuMsPerLogin: r3(f),
        agedCpuMsPerLogin: r3(a),
        agedOverFresh: r3(a / f),
        freshSpreadPct: r3(spreadPct(fresh)),
        agedSpreadPct: r3(spreadPct(aged)),
        freshMinCpuMsPerLogin: r3(Math.min(...fresh)),
        freshMaxCpuMsPerLogin: r3(Math.max(...fresh)),
        agedMinCpuMsPerLogin: r3(Math.min(...aged)),
        agedMaxCpuMsPerLogin: r3(Math.max(...aged)),
        rssFreshMiB: r3(rssFresh / MiB),
        rssAgedMiB: r3(rssAged / MiB),
        rssGrowthMiB: r3((rssAged - rssFresh) / MiB),
        rssEndMiB: r3(rssBytes(pid) / MiB),
        churnSessions: opened,
        churnCpuMsPerSession: r3(churn.serverCpuMs / Math.max(1, opened)),
        churnSeconds: r3(churn.wallMs / 1000),
        droppedSessions: dropped,
        ...(healthFresh && healthAged ? {
          heapFreshMiB: r3(healthFresh.memory.heapUsed / MiB),
          heapAgedMiB: r3(healthAged.memory.heapUsed / MiB),
          heapGrowthMiB: r3((healthAged.memory.heapUsed - healthFresh.memory.heapUsed) / MiB),
          sessionObjectsAliveAfterChurn: healthAged.tracked.sessions?.alive ?? 0,
          sessionsAfterChurn: healthAged.counts.sessions ?? 0,
          connectionsAfterChurn: healthAged.counts.connections ?? 0,
        } : {}),
        ...churnLoopFigures,
      },
      // Every measured login and every churn session must succeed, and every close.
      errors: errs.get('login') + (p.churn - opened) + dropped + errs.get('close'),
      // The whole scenario (warm-up, both measurements, churn).
      durationMs: Math.round(performance.now() - t0),
    };
  },
};
