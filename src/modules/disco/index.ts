// XEP-0030 Service Discovery: disco#info and disco#items on the server and, answered by the
// server on the user's behalf, on account (bare) JIDs. Built from what the loaded modules
// declare through ctx.disco, plus XEP-0128 extended info with the XEP-0157 contact addresses.
//
// Access to account JIDs (XEP-0030 §8, against directory harvesting and presence leaks): only
// the account itself, entities the account shares its presence with (a roster subscription
// of 'from' or 'both', RFC 6121 §3), and this server are answered. Everyone else gets the
// same answer whether or not the account exists: disco#info → service-unavailable (§8 rule 1),
// disco#items → an empty result (§8 rule 2), with or without a node.
import { defineModule, type ModuleContext } from '../../core/modules/define.ts';
import { x } from '../../xml/index.ts';
import type { Jid } from '../../jid/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import { RosterServiceKey } from '../roster/service.ts';
import { CAPS_NODE, capsVer } from '../caps/ver.ts';
import { hostInfo, infoQuery, type DiscoInfo } from './info.ts';

export { hostInfo, infoQuery, serverInfoForm, SERVERINFO_FORM_TYPE, type DiscoInfo } from './info.ts';

/** A node in a request, or undefined ('' counts as no node). */
function nodeOf(payload: { attr(n: string): string | undefined }): string | undefined {
  const n = payload.attr('node');
  return n === undefined || n === '' ? undefined : n;
}

/**
 * May `from` learn about the account `target` (XEP-0030 §8)? The account itself and this
 * server may; a contact may when the account has a presence subscription 'from' or 'both'
 * to it. Without the roster module only the account itself (and the server) are trusted.
 */
async function mayDiscoverAccount(ctx: ModuleContext, from: Jid, target: Jid): Promise<'self' | 'trusted' | false> {
  if (from.bare.equals(target.bare)) return 'self';
  if (from.local === '' && from.resource === '' && from.domain === ctx.host) return 'trusted';
  const roster = ctx.tryUse(RosterServiceKey);
  if (!roster) return false;
  const item = await roster.get(target.bare, from.bare);
  return item !== undefined && (item.subscription === 'from' || item.subscription === 'both') ? 'trusted' : false;
}

export default defineModule({
  name: 'disco',
  specs: [
    { xep: 30, version: '2.5.0', status: 'complete', note: 'server and account JIDs; account JIDs only to the account and its presence subscribers' },
    { xep: 128, version: '1.0.1', status: 'complete', note: 'the XEP-0157 serverinfo form' },
    { xep: 157, version: '1.1.1', status: 'complete', note: 'admin, abuse, security and support addresses from the config' },
  ],
  defaultEnabled: true,
  setup(ctx) {
    ctx.disco.identity({ category: 'server', type: 'im', name: 'Amsel' });
    ctx.disco.feature(NS.DISCO_INFO);
    ctx.disco.feature(NS.DISCO_ITEMS);
    // XEP-0030 §3.1: a registered account's primary identity is account/registered.
    ctx.disco.identity({ category: 'account', type: 'registered' }, 'account');
    ctx.disco.feature(NS.DISCO_INFO, 'account');
    ctx.disco.feature(NS.DISCO_ITEMS, 'account');

    const accountInfo = (): DiscoInfo => ({ identities: ctx.disco.identities('account'), features: ctx.disco.features('account'), forms: [] });

    // ---- the server ----
    ctx.iq.get(NS.DISCO_INFO, 'query', ({ payload }) => {
      const node = nodeOf(payload);
      const info = hostInfo(ctx);
      if (node === undefined) return infoQuery(info);
      // XEP-0115 §6.2: the caps node '<node>#<ver>' answers with what the hash covers. Only
      // while the caps module is loaded (it advertises the caps feature) and for the current ver.
      if (info.features.includes(NS.CAPS) && node === `${CAPS_NODE}#${capsVer(info)}`) return infoQuery(info, node);
      // XEP-0030 §3.2: a node we do not know.
      throw new StanzaError('item-not-found');
    });

    ctx.iq.get(NS.DISCO_ITEMS, 'query', ({ payload }) => {
      // No items yet (components such as MUC or upload will list themselves here); the caps
      // node is not an items node (XEP-0115 §6.2).
      if (nodeOf(payload) !== undefined) throw new StanzaError('item-not-found');
      return x('query', { xmlns: NS.DISCO_ITEMS });
    });

    // ---- account JIDs (also requests without 'to': RFC 6120 §10.3.3) ----
    ctx.iq.get(NS.DISCO_INFO, 'query', async ({ payload, stanza }) => {
      const target = stanza.to.bare;
      const node = nodeOf(payload);
      // §8 rule 1: unknown account or unauthorised requester → service-unavailable, alike.
      if (!(await mayDiscoverAccount(ctx, stanza.from, target)) || !(await ctx.accounts.exists(target.local))) {
        throw new StanzaError('service-unavailable');
      }
      if (node !== undefined) throw new StanzaError('item-not-found');
      return infoQuery(accountInfo());
    }, { to: ['account'] });

    ctx.iq.get(NS.DISCO_ITEMS, 'query', async ({ payload, stanza }) => {
      const target = stanza.to.bare;
      const node = nodeOf(payload);
      const who = await mayDiscoverAccount(ctx, stanza.from, target);
      // §8 rule 2: unknown account or unauthorised requester → an empty result, alike.
      if (!who || !(await ctx.accounts.exists(target.local))) return x('query', { xmlns: NS.DISCO_ITEMS, node });
      if (node !== undefined) throw new StanzaError('item-not-found');
      // §4.1: the account's resources. Its presence subscribers see the available ones (what
      // presence would tell them anyway); the account itself sees every connected resource.
      const sessions = ctx.sessions.resources(target).filter((s) => who === 'self' || s.available);
      return x('query', { xmlns: NS.DISCO_ITEMS }, sessions.map((s) => x('item', { jid: s.jid.toString() })));
    }, { to: ['account'] });
  },
});
