// XEP-0199: XMPP Ping. The server answers pings to itself and, on the user's behalf, to the
// bare account JID (§4.2, §4.3); pings to full JIDs are routed to the client (§4.4).
import { defineModule } from '../../core/modules/define.ts';
import { NS } from '../../xmpp/ns.ts';

export default defineModule({
  name: 'ping',
  specs: [{ xep: 199, version: '2.0.1', status: 'partial', note: 'server-initiated pings come with issue 3' }],
  defaultEnabled: true,
  setup(ctx) {
    ctx.disco.feature(NS.PING);
    ctx.iq.get(NS.PING, 'ping', () => undefined, { to: ['host', 'account'] });
  },
});
