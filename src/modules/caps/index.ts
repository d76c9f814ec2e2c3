// XEP-0115 Entity Capabilities for the server itself: the verification string of the server's
// disco#info (§5.1) is offered in the stream features after authentication (§6.3), so a client
// that has seen this 'ver' before can skip the disco#info round trip. The disco module answers
// disco#info on the node '<CAPS_NODE>#<ver>' (§6.2) from the same data (disco/info.ts).
//
// The hash is computed when the features are sent, not at load time: modules that load after
// this one still declare features, and the answer must match what disco#info says now. It is
// kept until the disco registry's revision changes.
import { defineModule } from '../../core/modules/define.ts';
import { x, type XmlElement } from '../../xml/index.ts';
import { NS } from '../../xmpp/ns.ts';
import { hostInfo } from '../disco/info.ts';
import { CAPS_NODE, capsVer } from './ver.ts';

export { CAPS_NODE, capsVer, capsString, type CapsInput, type CapsIdentity } from './ver.ts';

export default defineModule({
  name: 'caps',
  specs: [{ xep: 115, version: '1.6.0', status: 'partial', note: "the server's own caps in stream features (§6.3); clients' caps are not cached" }],
  defaultEnabled: true,
  setup(ctx) {
    // §7 (Determining Support): an entity that supports caps advertises the namespace.
    ctx.disco.feature(NS.CAPS);
    // Offered at every login: computed again only when a module changed what disco#info says.
    let cached: { revision: number; el: XmlElement | undefined } | undefined;
    ctx.streamFeature(() => {
      const revision = ctx.disco.revision();
      if (cached?.revision === revision) return cached.el;
      const info = hostInfo(ctx);
      // Without the disco module nobody could verify the hash (§5.4): offer nothing.
      const el = info.features.includes(NS.DISCO_INFO) ? x('c', { xmlns: NS.CAPS, hash: 'sha-1', node: CAPS_NODE, ver: capsVer(info) }) : undefined;
      cached = { revision, el };
      return el;
    });
  },
});
