// XEP-0115 Entity Capabilities §5.1: the verification string ('ver') of a disco#info answer.
// Pure functions, shared by the caps module (stream feature) and the disco module (which
// answers disco#info on the node '<CAPS_NODE>#<ver>', XEP-0115 §6.2).
import { createHash } from 'node:crypto';
import type { XmlElement } from '../../xml/index.ts';

/** The caps 'node' of Amsel (XEP-0115 §4: a URI that identifies the software). */
export const CAPS_NODE = 'https://amsel.example/caps';

export const NS_DATA = 'jabber:x:data';

export interface CapsIdentity { category: string; type: string; lang?: string; name?: string }

/** What a disco#info answer holds, as hashed: identities, features, XEP-0128 forms (jabber:x:data). */
export interface CapsInput {
  identities: readonly CapsIdentity[];
  features: readonly string[];
  forms?: readonly XmlElement[];
}

// §5.1: "All sorting operations MUST be performed using 'i;octet' collation" (RFC 4790 §9.3),
// i.e. by UTF-8 bytes. JavaScript's default sort compares UTF-16 code units, which orders
// astral characters differently from U+E000..U+FFFF; compare the encoded bytes instead.
function octetCompare(a: string, b: string): number {
  return a === b ? 0 : Buffer.compare(Buffer.from(a, 'utf8'), Buffer.from(b, 'utf8'));
}

function fieldValues(field: XmlElement): string[] {
  return field.getChildren('value', NS_DATA).map((v) => v.text());
}

/** The FORM_TYPE of a data form, or undefined if it has none. */
export function formType(form: XmlElement): string | undefined {
  const f = form.getChildren('field', NS_DATA).find((c) => c.attr('var') === 'FORM_TYPE');
  return f ? fieldValues(f)[0] : undefined;
}

/** The string S of §5.1, before hashing. */
export function capsString(input: CapsInput): string {
  let s = '';
  // §5.1 steps 2-3: identities sorted by category, then type, then xml:lang (name breaks ties,
  // which §5.1 says cannot matter for a well-formed answer), as 'category/type/lang/name<'.
  const ids = [...input.identities].sort((a, b) =>
    octetCompare(a.category, b.category) || octetCompare(a.type, b.type)
    || octetCompare(a.lang ?? '', b.lang ?? '') || octetCompare(a.name ?? '', b.name ?? ''));
  for (const i of ids) s += `${i.category}/${i.type}/${i.lang ?? ''}/${i.name ?? ''}<`;
  // Steps 4-5: features sorted, each followed by '<'.
  for (const f of [...input.features].sort(octetCompare)) s += `${f}<`;
  // Steps 6-7: XEP-0128 forms sorted by FORM_TYPE; for each, the FORM_TYPE, then the other
  // fields sorted by var, each var followed by its values sorted. Forms without a FORM_TYPE
  // are not part of the hash (§5.4 processing ignores them too).
  const forms = (input.forms ?? [])
    .map((form) => ({ form, type: formType(form) }))
    .filter((f): f is { form: XmlElement; type: string } => f.type !== undefined)
    .sort((a, b) => octetCompare(a.type, b.type));
  for (const { form, type } of forms) {
    s += `${type}<`;
    const fields = form.getChildren('field', NS_DATA)
      .filter((f) => f.attr('var') !== undefined && f.attr('var') !== 'FORM_TYPE')
      .sort((a, b) => octetCompare(a.attr('var')!, b.attr('var')!));
    for (const field of fields) {
      s += `${field.attr('var')!}<`;
      for (const v of fieldValues(field).sort(octetCompare)) s += `${v}<`;
    }
  }
  return s;
}

/** §5.1 steps 8-9: SHA-1 over the UTF-8 bytes of S, Base64 (RFC 4648 §4, with padding). */
export function capsVer(input: CapsInput): string {
  return createHash('sha1').update(capsString(input), 'utf8').digest('base64');
}
