// XEP-0049 Private XML Storage: jabber:iq:private get/set on the user's own account.
//
// Stored: one keyval('private') document per account, mapping each namespace to the serialized
// elements last set in it (XEP-0049 §2.3: a set may hold several elements of one namespace).
// Kept until replaced or the account is deleted (keyval kind); bounded by `maxBytes` per account.
//
// Decisions:
// - Not the user's own account → forbidden (§3: "Forbidden" is preferable to service-unavailable).
// - No child element → not-acceptable (§2.3 MUST; §3's "Bad Format" is not an RFC 6120 condition).
// - A get naming more than one namespace → bad-request (§2.3: a client MUST NOT).
// - Reserved namespaces ('jabber:*', 'http://jabber.org/*', 'vcard-temp', and no namespace,
//   i.e. jabber:iq:private itself) → not-acceptable (§3, optional behaviour we adopt).
// - Over the size limit → not-acceptable with a text (RFC 6120 §8.3.3.12: the request does not
//   meet the server's criteria; retrying the same set will not help, so not 'wait').
// - A set whose elements of a namespace are all empty (no attributes, no children) removes
//   that namespace; a get then echoes the requested element, as for never-stored data.
import { z } from 'zod';
import { defineModule } from '../../core/modules/define.ts';
import type { RoutedStanza } from '../../core/router/router.ts';
import { serialize, x, type XmlElement } from '../../xml/index.ts';
import { parseElement } from '../../xml/index.ts';
import { StanzaError } from '../../xmpp/errors.ts';
import { KeyedLock } from '../../core/util/keyed-lock.ts';


export const NS_PRIVATE = 'jabber:iq:private';

/** namespace → serialized elements, in the order they were set. */
export type PrivateDoc = Record<string, string[]>;

const ConfigSchema = z.strictObject({
  maxBytes: z.number().int().min(1024).default(65_536)
    .describe('Private XML (XEP-0049) stored per account, in bytes of serialized XML; larger sets are refused with not-acceptable.'),
});

/** §3: namespaces reserved by Jabber that clients must not store privately. */
export function reservedNamespace(ns: string): boolean {
  return ns === '' || ns.startsWith('jabber:') || ns.startsWith('http://jabber.org/') || ns === 'vcard-temp';
}

function docBytes(doc: PrivateDoc): number {
  return Buffer.byteLength(JSON.stringify(doc));
}

const isEmpty = (el: XmlElement) => el.children.length === 0 && Object.keys(el.attrs).length === 0;

export default defineModule({
  name: 'private',
  specs: [{ xep: 49, version: '1.2', status: 'complete' }],
  defaultEnabled: true,
  config: ConfigSchema,
  setup(ctx) {
    const store = ctx.storage.keyval<PrivateDoc>('private');
    const queue = new KeyedLock();
    const { maxBytes } = ctx.config;

    /** §3 and §4: only an authorized resource of the user, on the user's own account. */
    const ownAccount = (s: RoutedStanza): string => {
      if (!s.from.bare.equals(s.to.bare)) throw new StanzaError('forbidden');
      return s.to.local;
    };

    const checkNamespace = (ns: string) => {
      if (reservedNamespace(ns)) throw new StanzaError('not-acceptable', `namespace '${ns}' is reserved`);
    };

    ctx.iq.get(NS_PRIVATE, 'query', async ({ stanza, payload }) => {
      const user = ownAccount(stanza);
      const wanted = payload.elements();
      if (wanted.length === 0) throw new StanzaError('not-acceptable', 'name the namespace to retrieve with a child element');
      const ns = wanted[0]!.ns;
      if (wanted.some((el) => el.ns !== ns)) throw new StanzaError('bad-request', 'one namespace per request');
      checkNamespace(ns);
      const stored = (await store.get(ctx.host, user))?.[ns];
      // Nothing stored: the requested element comes back as sent (§2.2 example 2 shape).
      return x('query', { xmlns: NS_PRIVATE }, stored ? stored.map(parseElement) : wanted[0]!);
    }, { to: ['account'] });

    ctx.iq.set(NS_PRIVATE, 'query', async ({ stanza, payload }) => {
      const user = ownAccount(stanza);
      const elements = payload.elements();
      if (elements.length === 0) throw new StanzaError('not-acceptable', 'nothing to store');
      const byNs = new Map<string, XmlElement[]>();
      for (const el of elements) {
        checkNamespace(el.ns);
        byNs.set(el.ns, [...(byNs.get(el.ns) ?? []), el]);
      }
      await queue.run(user, async () => {
        const doc = (await store.get(ctx.host, user)) ?? {};
        for (const [ns, els] of byNs) {
          if (els.every(isEmpty)) delete doc[ns];
          else doc[ns] = els.map((el) => serialize(el));
        }
        if (docBytes(doc) > maxBytes) throw new StanzaError('not-acceptable', `private storage is limited to ${maxBytes} bytes per account`);
        if (Object.keys(doc).length === 0) await store.delete(ctx.host, user);
        else await store.set(ctx.host, user, doc);
      });
      return undefined;
    }, { to: ['account'] });
  },
});
