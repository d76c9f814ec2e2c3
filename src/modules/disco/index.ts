// XEP-0030 Service Discovery: disco#info and disco#items on the server, built from what the
// loaded modules declared through ctx.disco. (Account JIDs and XEP-0115 caps: issue 3.)
import { defineModule } from '../../core/modules/define.ts';
import { x } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { StanzaError } from '../../xmpp/errors.ts';

export default defineModule({
  name: 'disco',
  specs: [{ xep: 30, version: '2.5rc3', status: 'partial', note: 'server info and items; account JIDs come with issue 3' }],
  defaultEnabled: true,
  setup(ctx) {
    ctx.disco.identity({ category: 'server', type: 'im', name: 'Amsel' });
    ctx.disco.feature(NS.DISCO_INFO);
    ctx.disco.feature(NS.DISCO_ITEMS);

    ctx.iq.get(NS.DISCO_INFO, 'query', ({ payload }) => {
      // XEP-0030 §3.2: nodes we do not know → item-not-found
      if (payload.attr('node')) throw new StanzaError('item-not-found');
      return x('query', { xmlns: NS.DISCO_INFO },
        ctx.disco.identities().map((i) => x('identity', { category: i.category, type: i.type, name: i.name })),
        ctx.disco.features().map((f) => x('feature', { var: f })));
    });

    ctx.iq.get(NS.DISCO_ITEMS, 'query', ({ payload }) => {
      if (payload.attr('node')) throw new StanzaError('item-not-found');
      return x('query', { xmlns: NS.DISCO_ITEMS });
    });
  },
});
