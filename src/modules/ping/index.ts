// XEP-0199: XMPP Ping. The server answers pings to itself and, on the user's behalf, to the
// bare account JID (§4.2); pings to full JIDs are routed to the client (§4.4). It also pings
// its clients (§4.1) every `sessions.pingIntervalMs` and closes those that do not answer
// within `modules.ping.timeoutMs` (see pinger.ts).
import { z } from 'zod';
import { defineModule } from '../../core/modules/define.ts';
import { NS } from '../../xmpp/ns.ts';
import { ServerPinger } from './pinger.ts';

export { ServerPinger, type PingerDeps } from './pinger.ts';

const PingConfig = z.strictObject({
  timeoutMs: z.number().int().min(1000).max(600_000).default(60_000)
    .describe('How long a client has to answer a server ping before its session is closed, in milliseconds.'),
});

export default defineModule({
  name: 'ping',
  specs: [{ xep: 199, version: '2.0.1', status: 'complete', note: 'server-initiated pings every sessions.pingIntervalMs' }],
  defaultEnabled: true,
  config: PingConfig,
  setup(ctx) {
    ctx.disco.feature(NS.PING);
    ctx.disco.feature(NS.PING, 'account');
    ctx.iq.get(NS.PING, 'ping', () => undefined, { to: ['host', 'account'] });

    const intervalMs = ctx.serverConfig.sessions.pingIntervalMs;
    if (intervalMs === 0) return; // server pings disabled
    const tickMs = Math.min(1000, intervalMs);
    const pinger = new ServerPinger({
      host: ctx.host,
      intervalMs,
      timeoutMs: ctx.config.timeoutMs,
      tickMs,
      now: () => Date.now(),
      isCurrent: (s) => ctx.sessions.get(s.jid) === s,
      request: (iq, timeoutMs) => ctx.request(iq, timeoutMs),
      background: (name, task) => ctx.background(name, task),
      log: ctx.log,
    });
    for (const s of ctx.sessions.all()) if (s.host === ctx.host) pinger.track(s);
    ctx.on('session:bound', ({ session }) => { if (session.host === ctx.host) pinger.track(session); });
    ctx.on('session:closed', ({ session }) => { if (session.host === ctx.host) pinger.forget(session); });
    // Pings in flight must not hold up the stop (the loader awaits background tasks).
    ctx.on('server:stopping', () => pinger.stop());
    ctx.timers.every(tickMs, () => pinger.tick());
  },
});
