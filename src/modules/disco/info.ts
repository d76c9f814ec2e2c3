// What the server says about itself in disco#info (XEP-0030 §3.1), shared by the disco module
// (the answer) and the caps module (its XEP-0115 hash): identities and features declared by
// the loaded modules, plus the XEP-0128 extended-info form with the XEP-0157 contact addresses.
import { x, type XmlElement } from '../../xml/index.ts';
import type { Config } from '../../config/schema.ts';
import type { ModuleContext } from '../../core/modules/define.ts';
import { NS } from '../../xmpp/ns.ts';
import { NS_DATA, type CapsIdentity } from '../caps/ver.ts';

export const SERVERINFO_FORM_TYPE = 'http://jabber.org/network/serverinfo';

export interface DiscoInfo {
  identities: CapsIdentity[];
  features: string[];
  /** XEP-0128 extended information: jabber:x:data forms of type 'result'. */
  forms: XmlElement[];
}

/** config `contact` key → XEP-0157 §5 registered field var. */
const CONTACT_FIELDS = [
  ['abuse', 'abuse-addresses'],
  ['admin', 'admin-addresses'],
  ['security', 'security-addresses'],
  ['support', 'support-addresses'],
] as const satisfies readonly (readonly [keyof Config['contact'], string])[];

/**
 * XEP-0157 §3: the 'http://jabber.org/network/serverinfo' form (XEP-0128), with only the fields
 * that have addresses; undefined when no contact address is configured (an empty form says
 * nothing and would only change the caps hash).
 */
export function serverInfoForm(contact: Config['contact']): XmlElement | undefined {
  const fields = CONTACT_FIELDS
    .filter(([key]) => contact[key].length > 0)
    .map(([key, v]) => x('field', { var: v, type: 'list-multi' }, contact[key].map((uri) => x('value', null, uri))));
  if (fields.length === 0) return undefined;
  return x('x', { xmlns: NS_DATA, type: 'result' },
    x('field', { var: 'FORM_TYPE', type: 'hidden' }, x('value', null, SERVERINFO_FORM_TYPE)),
    fields);
}

/** The server's disco#info for the host of this context, as of now (modules may load later). */
export function hostInfo(ctx: Pick<ModuleContext, 'disco' | 'serverConfig'>): DiscoInfo {
  const form = serverInfoForm(ctx.serverConfig.contact);
  return { identities: ctx.disco.identities('host'), features: ctx.disco.features('host'), forms: form ? [form] : [] };
}

/** The disco#info <query/> for an answer (XEP-0030 §3.1); 'node' is mirrored when given (§3.2). */
export function infoQuery(info: DiscoInfo, node?: string): XmlElement {
  return x('query', { xmlns: NS.DISCO_INFO, node },
    info.identities.map((i) => x('identity', { category: i.category, type: i.type, 'xml:lang': i.lang, name: i.name })),
    info.features.map((f) => x('feature', { var: f })),
    info.forms);
}
