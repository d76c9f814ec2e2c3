// chat: one-to-one messages between M pairs of online accounts (sender → receiver's full JID).
// Mode 'closed': each sender keeps W messages in flight and sends the next when its peer received
// one, for a fixed total. Mode 'rate': a fixed total rate on an absolute timer schedule (no
// drift) for T seconds. Every message carries a per-pair sequence number in its id; the receiver
// checks each arrived exactly once (lost, duplicated, out of order). Latency is send→receive,
// both timestamps taken in this process.

import { connect, isNamed, rawAttr, type XmppClient } from '../client.ts';
import { CpuMeter, rssBytes } from '../proc.ts';
import { Counters, r3, Samples } from '../stats.ts';
import type { ScenarioResult } from '../types.ts';
import { BENCH_PASSWORD, checkCpuResolution, log, MiB, pollLoopDelay, pool, progress, sleep, userName, users, type Scenario } from './common.ts';

const defaults = {
  pairs: 50,
  /** 'closed' | 'rate' */
  mode: 'closed',
  /** closed: messages in flight per sender. */
  window: 1,
  /** closed: total messages. */
  messages: 20_000,
  /** rate: total messages per second. */
  rate: 300,
  /** rate: seconds. */
  seconds: 20,
  /** Unmeasured closed-loop messages first. */
  warmup: 1000,
  /** How long to wait for in-flight messages after the last send, seconds. */
  drainS: 10,
  directTls: false,
  /** Hard bound of the measured phase, seconds. */
  timeoutS: 300,
};
export type ChatParams = typeof defaults;

// 60 bytes of body text.
const BODY = 'The quick brown fox jumps over the lazy dog; pack my box wit';

/** Per-phase bookkeeping: send times and arrival marks per (pair, seq), flat arrays. */
class Phase {
  readonly sentAt: Float64Array;
  readonly got: Uint8Array;
  readonly sent: Int32Array;
  readonly maxSeq: Int32Array;
  readonly lat = new Samples();
  received = 0;
  duplicated = 0;
  outOfOrder = 0;
  errorReplies = 0;
  firstSend = 0;
  lastReceive = 0;
  onAllReceived: (() => void) | null = null;
  /** closed mode: called on each arrival (send the next). */
  onArrival: ((pair: number) => void) | null = null;

  constructor(readonly tag: string, readonly pairs: number, readonly quota: number) {
    this.sentAt = new Float64Array(pairs * quota);
    this.got = new Uint8Array(pairs * quota);
    this.sent = new Int32Array(pairs);
    this.maxSeq = new Int32Array(pairs).fill(-1);
  }

  get totalSent(): number { let s = 0; for (let i = 0; i < this.pairs; i++) s += this.sent[i]!; return s; }

  arrive(pair: number, seq: number, now: number): void {
    if (pair < 0 || pair >= this.pairs || seq < 0 || seq >= this.quota || seq >= this.sent[pair]!) { this.duplicated++; return; }
    const k = pair * this.quota + seq;
    if (this.got[k]) { this.duplicated++; return; }
    this.got[k] = 1;
    this.received++;
    this.lastReceive = now;
    this.lat.add(now - this.sentAt[k]!);
    if (seq < this.maxSeq[pair]!) this.outOfOrder++; else this.maxSeq[pair] = seq;
    this.onArrival?.(pair);
    if (this.onAllReceived && this.received === this.totalSent) this.onAllReceived();
  }
}

export const chat: Scenario<ChatParams> = {
  name: 'chat',
  defaults,
  provision: (p) => ({ users: users(2 * p.pairs), password: BENCH_PASSWORD }),
  async run(server, p): Promise<ScenarioResult> {
    if (p.mode !== 'closed' && p.mode !== 'rate') throw new Error(`chat: mode must be 'closed' or 'rate', got "${p.mode}"`);
    const errs = new Counters();
    const M = p.pairs;
    const senders: XmppClient[] = new Array(M);
    const receivers: XmppClient[] = new Array(M);
    let phase: Phase | null = null;
    let stray = 0;
    let online = true;

    // Receiver of pair i parses only the id attribute: "<tag><pair>.<seq>".
    const onMessage = (pairOfReceiver: number) => (raw: Buffer) => {
      if (!isNamed(raw, 'message')) return;
      const now = performance.now();
      const ph = phase;
      if (rawAttr(raw, 'type') === 'error') { if (ph) ph.errorReplies++; else stray++; return; }
      const id = rawAttr(raw, 'id');
      if (!ph || !id || !id.startsWith(ph.tag)) { stray++; return; }
      const dot = id.indexOf('.');
      const pair = Number(id.slice(ph.tag.length, dot));
      if (pair !== pairOfReceiver) { ph.duplicated++; return; }
      ph.arrive(pair, Number(id.slice(dot + 1)), now);
    };

    log(`chat: logging in ${2 * M} accounts`);
    await pool(2 * M, 20, performance.now() + 120_000, async (i) => {
      const pair = i >> 1;
      try {
        const c = await connect({
          server, user: userName(i), password: BENCH_PASSWORD, resource: i & 1 ? 'r' : 's', directTls: p.directTls, presence: true,
          onStanza: i & 1 ? onMessage(pair) : undefined,
        });
        c.onClosed = (cl) => { if (online) errs.error('dropped', new Error(cl.error ?? 'closed')); };
        (i & 1 ? receivers : senders)[pair] = c;
      } catch (e) { errs.error('connect', e); }
    });
    const ready = Array.from({ length: M }, (_, i) => !!senders[i] && !!receivers[i]);
    const readyPairs = ready.filter(Boolean).length;
    if (readyPairs === 0) throw new Error(`chat: no pair could log in: ${errs.errorSamples[0]}`);
    // Message prefix per pair: everything up to the id value.
    const prefix = Array.from({ length: M }, (_, i) => (ready[i] ? `<message to='${receivers[i]!.jid}' type='chat' id='` : ''));
    const send = (ph: Phase, pair: number, now: number) => {
      const seq = ph.sent[pair]!;
      ph.sentAt[pair * ph.quota + seq] = now;
      ph.sent[pair] = seq + 1;
      senders[pair]!.send(`${prefix[pair]}${ph.tag}${pair}.${seq}'><body>${BODY}</body></message>`);
    };

    // Closed loop: W in flight per ready pair; resolves when all arrived or at the deadline.
    const closedLoop = async (ph: Phase, window: number, deadline: number): Promise<void> => {
      const done = new Promise<void>((resolve) => { ph.onAllReceived = resolve; });
      ph.onArrival = (pair) => { if (ph.sent[pair]! < ph.quota) send(ph, pair, performance.now()); };
      ph.firstSend = performance.now();
      for (let i = 0; i < M; i++) if (ready[i]) for (let w = 0; w < window && ph.sent[i]! < ph.quota; w++) send(ph, i, performance.now());
      // A lost message stalls its pair for good: give up after drainS without any arrival.
      let lastCount = -1, lastChange = performance.now();
      const stalled = new Promise<void>((resolve) => {
        const t = setInterval(() => {
          const now = performance.now();
          if (ph.received !== lastCount) { lastCount = ph.received; lastChange = now; }
          if (now - lastChange > p.drainS * 1000 || now >= deadline || ph.received === ph.totalSent) { clearInterval(t); resolve(); }
        }, 250);
      });
      await Promise.race([done, stalled]);
      ph.onArrival = null;
    };

    const warmQuota = Math.max(1, Math.ceil(p.warmup / readyPairs));
    if (p.warmup > 0) {
      log(`chat: warm-up, ${warmQuota * readyPairs} messages`);
      phase = new Phase('w', M, warmQuota);
      await closedLoop(phase, 1, performance.now() + 60_000);
      if (phase.received !== phase.totalSent) log(`chat: warm-up lost ${phase.totalSent - phase.received} messages`);
    }

    let ph: Phase;
    let lag: Samples | null = null;
    const loop = await pollLoopDelay(server, 'chat');
    const meter = new CpuMeter(server.pid);
    const deadline = performance.now() + p.timeoutS * 1000;
    if (p.mode === 'closed') {
      const quota = Math.ceil(p.messages / readyPairs);
      log(`chat: closed loop, ${readyPairs} pairs × ${quota} messages, window ${p.window}`);
      ph = phase = new Phase('m', M, quota);
      const stop = progress('chat', () => `${ph.received}/${quota * readyPairs} received`);
      await closedLoop(ph, p.window, deadline);
      stop();
    } else {
      const total = Math.round(p.rate * p.seconds);
      const readyIdx = ready.flatMap((r, i) => (r ? [i] : []));
      const quota = Math.ceil(total / readyIdx.length);
      log(`chat: ${p.rate} msg/s for ${p.seconds} s over ${readyIdx.length} pairs`);
      ph = phase = new Phase('m', M, quota);
      lag = new Samples();
      const interval = 1000 / p.rate;
      const stop = progress('chat', () => `${ph.totalSent}/${total} sent, ${ph.received} received`);
      await new Promise<void>((resolve) => {
        let k = 0;
        const t0 = performance.now();
        ph.firstSend = t0;
        const tick = () => {
          const now = performance.now();
          if (now >= deadline) return resolve();
          // Everything due by now (absolute schedule: late ticks catch up, nothing drifts).
          const due = Math.min(total, Math.floor((now - t0) / interval) + 1);
          for (; k < due; k++) {
            lag!.add(now - (t0 + k * interval));
            send(ph, readyIdx[k % readyIdx.length]!, now);
          }
          if (k >= total) return resolve();
          setTimeout(tick, Math.max(0, t0 + k * interval - performance.now()));
        };
        tick();
      });
      stop();
    }
    // Drain what is still in flight (bounded).
    if (ph.received < ph.totalSent) {
      const drained = new Promise<void>((resolve) => { ph.onAllReceived = resolve; });
      await Promise.race([drained, sleep(p.drainS * 1000)]);
    }
    const m = meter.stop();
    const loopFigures = await loop.stop();
    checkCpuResolution('chat', m.serverCpuMs);
    const sent = ph.totalSent;
    // Counted once, here: a message arriving while the clients close is late, not delivered.
    const received = ph.received;
    const lost = sent - received;
    const s = ph.lat.summary();
    const activeMs = Math.max(1, ph.lastReceive - ph.firstSend);

    online = false;
    log(`chat: ${received}/${sent} received; closing`);
    await pool(2 * M, 50, performance.now() + 60_000, async (i) => {
      const c = (i & 1 ? receivers : senders)[i >> 1];
      try { await c?.close(); } catch (e) { errs.error('close', e); }
    });
    for (const e of errs.errorSamples) log(`chat error: ${e}`);
    const failures = errs.get('connect') + errs.get('dropped') + ph.errorReplies;
    const figures: Record<string, number> = {
      messages: received,
      cpuMsPerMessage: r3(m.serverCpuMs / Math.max(1, received)),
      latencyP50Ms: r3(s.p50),
      latencyP99Ms: r3(s.p99),
      latencyMaxMs: r3(s.max),
      messagesPerSec: r3((received * 1000) / activeMs),
      lost,
      duplicated: ph.duplicated,
      outOfOrder: ph.outOfOrder,
      errorReplies: ph.errorReplies,
      strayMessages: stray,
      serverCpuMs: Math.round(m.serverCpuMs),
      clientCpuMsPerMessage: r3(m.clientCpuMs / Math.max(1, received)),
      rssMiB: r3(rssBytes(server.pid) / MiB),
      ...loopFigures,
    };
    if (lag) { const l = lag.summary(); figures.sendLagP99Ms = r3(l.p99); figures.sendLagMaxMs = r3(l.max); }
    return {
      scenario: 'chat',
      server: server.name,
      params: p,
      figures,
      errors: lost + ph.duplicated + failures,
      durationMs: Math.round(m.wallMs),
    };
  },
};
