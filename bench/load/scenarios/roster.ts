// roster: logins of accounts with 100-contact rosters (groups of 101 users, mutual 'both'
// subscriptions). Half of each group is online and stays; in the measured phase the other half
// log in (roster get, initial presence: the server probes 100 contacts and fans the new
// presence out to ~50 online ones), ping, wait for their contacts' presence, and log out
// (another ~50 unavailable presences fanned out).

import { connect, isNamed, rawAttr, type XmppClient } from '../client.ts';
import { CpuMeter, rssBytes } from '../proc.ts';
import { Counters, r3, Samples } from '../stats.ts';
import type { BenchServer, Provision, ScenarioResult } from '../types.ts';
import { BENCH_PASSWORD, checkCpuResolution, log, MiB, pool, progress, sleep, userName, type Scenario } from './common.ts';

const defaults = {
  groups: 2,
  /** Members per group (roster size + 1). */
  groupSize: 101,
  /** Measured logins. */
  logins: 500,
  concurrency: 5,
  warmup: 20,
  /** How long a login waits for all online contacts' presence after the ping reply, ms. */
  presenceWaitMs: 3000,
  directTls: false,
  timeoutS: 600,
};
export type RosterParams = typeof defaults;

/** Accounts u00000.. in `groups` groups of `size`, each member with all others of its group as 'both' contacts. */
export function rosterProvision(groups: number, size: number): Provision {
  const rosterGroups = Array.from({ length: groups }, (_, g) => Array.from({ length: size }, (_, m) => userName(g * size + m)));
  return { users: rosterGroups.flat(), password: BENCH_PASSWORD, rosterGroups };
}

/** Members [0, half) of each group stay online; [half, size) log in and out. */
const onlineHalf = (size: number) => Math.floor(size / 2);

const bareOf = (jid: string) => { const k = jid.indexOf('/'); return k < 0 ? jid : jid.slice(0, k); };

export const roster: Scenario<RosterParams> = {
  name: 'roster',
  defaults,
  provision: (p) => rosterProvision(p.groups, p.groupSize),
  async run(server: BenchServer, p): Promise<ScenarioResult> {
    const errs = new Counters();
    const half = onlineHalf(p.groupSize);
    const loggers = p.groupSize - half;
    let fanout = 0;
    let holding = true;
    const online: XmppClient[] = [];
    const onlinePerGroup = new Array<number>(p.groups).fill(0);
    const countFanout = (raw: Buffer) => { if (isNamed(raw, 'presence')) fanout++; };

    log(`roster: ${p.groups} groups of ${p.groupSize}; ${half * p.groups} accounts going online`);
    await pool(half * p.groups, 10, performance.now() + 300_000, async (i) => {
      const g = Math.floor(i / half), m = i % half;
      try {
        const c = await connect({ server, user: userName(g * p.groupSize + m), password: BENCH_PASSWORD, resource: 'stay', directTls: p.directTls, roster: true, presence: true, onStanza: countFanout });
        if (c.rosterSize !== p.groupSize - 1) errs.error('roster', new Error(`${c.jid}: roster has ${c.rosterSize} items, expected ${p.groupSize - 1}`));
        c.onClosed = (cl) => { if (holding) errs.error('dropped', new Error(cl.error ?? 'closed')); };
        online.push(c);
        onlinePerGroup[g]!++;
      } catch (e) { errs.error('online', e); }
    });
    await sleep(1000); // let the presence exchange among the online half settle

    const lat = new Samples();
    const latFull = new Samples();
    let presences = 0;
    let missingPresence = 0;
    let ok = 0;
    const loginAt = async (i: number, measured: boolean) => {
      const g = i % p.groups;
      const m = half + (Math.floor(i / p.groups) % loggers);
      const user = userName(g * p.groupSize + m);
      const t0 = performance.now();
      let own = 0, fromContacts = 0;
      const bare = `${user}@${server.domain}`;
      const waker: { wake?: () => void } = {};
      // Online members of this group whose presence the login should receive (via probes).
      const expected = onlinePerGroup[g]!;
      let c: XmppClient | undefined;
      try {
        c = await connect({
          server, user, password: BENCH_PASSWORD, resource: `r${i}`, directTls: p.directTls, roster: true, presence: true,
          onStanza: (raw) => {
            if (!isNamed(raw, 'presence')) return;
            own++;
            if (bareOf(rawAttr(raw, 'from') ?? '') !== bare) { fromContacts++; if (fromContacts >= expected) waker.wake?.(); }
          },
        });
        await c.ping();
        const ms = performance.now() - t0;
        if (c.rosterSize !== p.groupSize - 1) throw new Error(`${c.jid}: roster has ${c.rosterSize} items, expected ${p.groupSize - 1}`);
        if (fromContacts < expected) {
          await new Promise<void>((resolve) => {
            const t = setTimeout(resolve, p.presenceWaitMs);
            waker.wake = () => { clearTimeout(t); resolve(); };
          });
        }
        const full = performance.now() - t0;
        await c.close();
        if (c.error) throw new Error(`${user}: ${c.error}`);
        if (measured) {
          ok++;
          lat.add(ms);
          latFull.add(full);
          presences += own;
          if (fromContacts < expected) missingPresence += expected - fromContacts;
        }
      } catch (e) {
        c?.destroy();
        errs.error(measured ? 'login' : 'warmup', e);
      }
    };

    log(`roster: warm-up, ${p.warmup} logins`);
    await pool(p.warmup, p.concurrency, performance.now() + 120_000, (i) => loginAt(i, false));
    await sleep(500);

    log(`roster: measured, ${p.logins} logins, concurrency ${p.concurrency}`);
    const fan0 = fanout;
    const meter = new CpuMeter(server.pid);
    const stop = progress('roster', () => `${ok}/${p.logins} ok, ${errs.get('login')} errors`);
    const r = await pool(p.logins, p.concurrency, performance.now() + p.timeoutS * 1000, (i) => loginAt(p.warmup + i, true));
    stop();
    const m = meter.stop();
    checkCpuResolution('roster', m.serverCpuMs);
    await sleep(500); // unavailable presences of the last logouts still on their way
    const fan = fanout - fan0;

    holding = false;
    log('roster: closing the online half');
    await pool(online.length, 50, performance.now() + 60_000, async (i) => {
      try { await online[i]!.close(); } catch (e) { errs.error('close', e); }
    });
    for (const e of errs.errorSamples) log(`roster error: ${e}`);
    const s = lat.summary();
    const sf = latFull.summary();
    const notDone = p.logins - ok - errs.get('login');
    if (r.timedOut) log(`roster: hit the ${p.timeoutS} s bound`);
    return {
      scenario: 'roster',
      server: server.name,
      params: p,
      figures: {
        logins: ok,
        cpuMsPerLogin: r3(m.serverCpuMs / Math.max(1, ok)),
        latencyP50Ms: r3(s.p50),
        latencyP99Ms: r3(s.p99),
        fullPresenceP50Ms: r3(sf.p50),
        fullPresenceP99Ms: r3(sf.p99),
        presenceStanzasPerLogin: r3(presences / Math.max(1, ok)),
        fanoutPresencesPerLogin: r3(fan / Math.max(1, ok)),
        missingContactPresences: missingPresence,
        onlineSessions: online.length,
        serverCpuMs: Math.round(m.serverCpuMs),
        clientCpuMsPerLogin: r3(m.clientCpuMs / Math.max(1, ok)),
        rssMiB: r3(rssBytes(server.pid) / MiB),
      },
      errors: errs.get('login') + errs.get('online') + errs.get('roster') + errs.get('dropped') + missingPresence + Math.max(0, notDone),
      durationMs: Math.round(m.wallMs),
    };
  },
};
