// login: K concurrent connectors doing L full logins (TCP, STARTTLS or Direct TLS, SCRAM-SHA-1,
// bind, initial presence, ping round trip, stream close awaited). Headline: server CPU per login
// and connect→ping-reply latency; logins/s is client-observed and only informative (the client
// shares the two cores).

import { connect, type XmppClient } from '../client.ts';
import { CpuMeter, rssBytes } from '../proc.ts';
import { Counters, r3, Samples } from '../stats.ts';
import type { BenchServer, ScenarioResult } from '../types.ts';
import { BENCH_PASSWORD, checkCpuResolution, log, MiB, pollLoopDelay, pool, progress, userName, users, type Scenario } from './common.ts';

const defaults = {
  logins: 2000,
  concurrency: 20,
  /** Provisioned accounts u00000.. that logins rotate through. */
  users: 500,
  warmup: 100,
  directTls: false,
  /** Hard bound of the measured phase, seconds. */
  timeoutS: 600,
};
export type LoginParams = typeof defaults;

/** Mean time per login step (ms), to show where the latency goes. */
export class StepTimes {
  readonly names: string[];
  private readonly sums: Float64Array;
  private n = 0;
  constructor(directTls: boolean) {
    this.names = directTls ? ['connectTls', 'auth', 'bind', 'presence', 'ping', 'close'] : ['connectTcp', 'starttls', 'auth', 'bind', 'presence', 'ping', 'close'];
    this.sums = new Float64Array(this.names.length);
  }
  add(marks: number[]): void {
    if (marks.length !== this.names.length + 1) return;
    for (let k = 1; k < marks.length; k++) this.sums[k - 1] += marks[k]! - marks[k - 1]!;
    this.n++;
  }
  figures(): Record<string, number> {
    const out: Record<string, number> = {};
    this.names.forEach((name, k) => { out[`step_${name}Ms`] = r3(this.sums[k]! / Math.max(1, this.n)); });
    return out;
  }
}

/** One full login and logout; resolves with connect→ping-reply latency in ms. */
export async function loginOnce(server: BenchServer, user: string, resource: string, directTls: boolean, steps?: StepTimes): Promise<number> {
  const marks: number[] | undefined = steps ? [] : undefined;
  const t0 = performance.now();
  let c: XmppClient | undefined;
  try {
    c = await connect({ server, user, password: BENCH_PASSWORD, resource, directTls, presence: true, marks });
    await c.ping();
    const ms = performance.now() - t0;
    marks?.push(performance.now());
    await c.close();
    marks?.push(performance.now());
    if (c.error) throw new Error(`${user}: ${c.error}`);
    if (marks) steps!.add(marks);
    return ms;
  } catch (e) {
    c?.destroy();
    throw e;
  }
}

async function runLogins(server: BenchServer, p: LoginParams, count: number, offset: number, lat: Samples | null, errs: Counters, deadline: number, steps?: StepTimes): Promise<{ ok: number; timedOut: boolean }> {
  let ok = 0;
  const stop = lat ? progress('login', () => `${ok}/${count} ok, ${errs.get('login')} errors`) : () => undefined;
  const r = await pool(count, p.concurrency, deadline, async (i) => {
    const k = offset + i;
    try {
      const ms = await loginOnce(server, userName(k % p.users), `r${k}`, p.directTls, steps);
      ok++;
      lat?.add(ms);
    } catch (e) { errs.error('login', e); }
  });
  stop();
  return { ok, timedOut: r.timedOut };
}

export const login: Scenario<LoginParams> = {
  name: 'login',
  defaults,
  provision: (p) => ({ users: users(p.users), password: BENCH_PASSWORD }),
  async run(server, p): Promise<ScenarioResult> {
    const errs = new Counters();
    log(`login: warm-up, ${p.warmup} logins`);
    const warm = new Counters();
    await runLogins(server, p, p.warmup, 0, null, warm, performance.now() + 120_000);
    if (warm.get('login')) log(`login: ${warm.get('login')} warm-up errors, e.g. ${warm.errorSamples[0]}`);

    log(`login: measured, ${p.logins} logins, concurrency ${p.concurrency}${p.directTls ? ', Direct TLS' : ''}`);
    const lat = new Samples();
    const steps = new StepTimes(p.directTls);
    const loop = await pollLoopDelay(server, 'login');
    const meter = new CpuMeter(server.pid);
    const r = await runLogins(server, p, p.logins, p.warmup, lat, errs, performance.now() + p.timeoutS * 1000, steps);
    const m = meter.stop();
    const loopFigures = await loop.stop();
    checkCpuResolution('login', m.serverCpuMs);
    const s = lat.summary();
    const missing = p.logins - r.ok - errs.get('login');
    for (const e of errs.errorSamples) log(`login error: ${e}`);
    if (r.timedOut) log(`login: hit the ${p.timeoutS} s bound; ${missing} logins not done`);
    return {
      scenario: 'login',
      server: server.name,
      params: p,
      figures: {
        logins: r.ok,
        cpuMsPerLogin: r3(m.serverCpuMs / r.ok),
        latencyP50Ms: r3(s.p50),
        latencyP99Ms: r3(s.p99),
        latencyMaxMs: r3(s.max),
        loginsPerSec: r3((r.ok * 1000) / m.wallMs),
        serverCpuMs: Math.round(m.serverCpuMs),
        clientCpuMsPerLogin: r3(m.clientCpuMs / r.ok),
        rssMiB: r3(rssBytes(server.pid) / MiB),
        ...steps.figures(),
        ...loopFigures,
      },
      errors: errs.get('login') + Math.max(0, missing),
      durationMs: Math.round(m.wallMs),
    };
  },
};
