// Property and fuzz tests of JID parsing and PRECIS preparation (issue 5 item 3): valid addresses
// mutated (inserted pieces that hit the PRECIS rules, deletions, case and width changes), random
// strings, and long inputs around the 1023-octet part limit. Properties:
//  - parse, tryParse, of and the prep functions throw nothing but JidError (tryParse: nothing);
//  - parse(toString(j)) round-trips, prepared parts stay within 1023 octets, and parse agrees
//    with preparing the parts split by RFC 7622 §3.1 (a differential oracle);
//  - preparation is idempotent;
//  - equals is consistent: reflexive, symmetric, and the same as comparing the strings.
// Run longer: FUZZ_RUNS=100000 or FUZZ_SECONDS=600 (see test/security/fuzz.ts).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Jid, JidError } from './jid.ts';
import { MAX_PART_OCTETS, prepDomain, prepLocalpart, prepResource, saslprepPassword } from './precis.ts';
import { fuzzParams } from '../../test/security/fuzz.ts';

// Pieces that hit the interesting paths: separators, RFC 7622 §3.3.1 exclusions, width and case
// mapping, NFC, bidi, contextual rules, IDNA, controls, lone surrogates, unassigned code points.
const PIECES = [
  'a', 'Z', 'juliet', '.', '@', '/', ' ', '-', '_', '0', '"', "'", '&', '<', '>', ':', '\\', '%', '[', ']',
  'ß', 'Σ', 'ς', 'İ', 'ǅ', 'Ⅳ', '♚', '😀', 'Ａ', 'ｱ', 'ﾞ', '＠', '／', '．', '。', '\u3000', '\u00a0', '\u00ad', '\u200b',
  '\u200c', '\u200d', '\u094d', 'क', 'e\u0301', '\u0301', '\u212b', 'א', '\u05b0', 'ع', '\u0661', '\u06f1', '\u00b7', 'l',
  '\u0375', 'α', '\u05f3', '\u30fb', 'ア', '中', 'xn--', 'xn--mnchen-3ya', '\t', '\u0000', '\u007f', '\u2028', '\ud800',
  '\udc00', '\ue000', '\uffff', '\u0378', '\u1100', 'ﬀ', '㍿', '\u3164', '127.0.0.1', '[::1]', '::', '%25eth0',
];
const LOCALS = ['juliet', 'Romeo', 'ñandú', 'ß', 'σ', 'x.y', 'a_b', '東京', 'ǅemal', 'Ⅳ', 'o\u0301'];
const DOMAINS = ['example.com', 'EXAMPLE.org', 'münchen.de', 'xn--mnchen-3ya.de', '127.0.0.1', '[::1]', '[2001:DB8::1]', 'example.com.',
  'ｅｘａｍｐｌｅ.com', 'ä.example', 'a_b.example', 'localhost', 'موقع.وزارة-الاتصالات.مصر'];
const RESOURCES = ['balcony', 'a/b', 'x@y', ' spaced ', 'Ünïcödé', '😀', 'a\u00a0b', 'Ⅳ', '\u212b', 'with/slash@and.dot'];

const piece = fc.constantFrom(...PIECES);
const validJid = fc.tuple(fc.option(fc.constantFrom(...LOCALS)), fc.constantFrom(...DOMAINS), fc.option(fc.constantFrom(...RESOURCES)))
  .map(([l, d, r]) => `${l === null ? '' : `${l}@`}${d}${r === null ? '' : `/${r}`}`);

const edit = fc.record({ op: fc.integer({ min: 0, max: 4 }), at: fc.nat(), len: fc.integer({ min: 1, max: 4 }), p: piece });
function mutate(s: string, edits: readonly { op: number; at: number; len: number; p: string }[]): string {
  for (const e of edits) {
    const at = e.at % (s.length + 1);
    switch (e.op) {
      case 0: s = s.slice(0, at) + e.p + s.slice(at); break;
      case 1: s = s.slice(0, at) + s.slice(at + e.len); break;
      case 2: s = s.slice(0, at) + e.p + s.slice(at + e.len); break;
      case 3: s = s.slice(0, at) + s.slice(at, at + e.len).toUpperCase() + s.slice(at + e.len); break;
      default: s = s.slice(0, at) + s.slice(at, at + e.len).normalize('NFD') + s.slice(at + e.len);
    }
  }
  return s;
}
const mutated = fc.tuple(validJid, fc.array(edit, { maxLength: 4 })).map(([s, e]) => mutate(s, e));
const pieces = fc.array(piece, { maxLength: 12 }).map((a) => a.join(''));
/** Parts around the length limits: 1023 octets per part, 4092 UTF-16 units of input. */
const long = fc.tuple(fc.constantFrom('a', 'é', '東', '😀', 'Ａ', 'e\u0301', 'ab.'), fc.integer({ min: 330, max: 4200 }), fc.constantFrom('l', 'd', 'r'))
  .map(([unit, n, where]) => {
    const big = unit.repeat(Math.ceil(n / unit.length)).slice(0, n);
    return where === 'l' ? `${big}@example.com` : where === 'd' ? `juliet@${big.replace(/^\.|\.$/g, 'x')}` : `juliet@example.com/${big}`;
  });
const anyInput = fc.oneof(
  { weight: 4, arbitrary: mutated },
  { weight: 2, arbitrary: pieces },
  { weight: 1, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }) },
  { weight: 1, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 1, arbitrary: long },
);

/** Runs f; a JidError becomes null, anything else is rethrown (and fails the property). */
function attempt<T>(f: () => T): T | null {
  try {
    return f();
  } catch (e) {
    if (e instanceof JidError) return null;
    throw e;
  }
}

const octets = (s: string) => Buffer.byteLength(s, 'utf8');

describe('JID fuzz', () => {
  it('parse throws only JidError, round-trips, keeps parts within 1023 octets, and agrees with preparing the split parts', () => {
    let parsed = 0;
    fc.assert(fc.property(anyInput, (s) => {
      const j = attempt(() => Jid.parse(s));
      const t = Jid.tryParse(s);
      assert.equal(t === null, j === null, 'tryParse agrees with parse');
      // RFC 7622 §3.1 split: resource after the first '/', localpart before the first '@' before it.
      const slash = s.indexOf('/');
      const head = slash < 0 ? s : s.slice(0, slash);
      const at = head.indexOf('@');
      const parts = { local: at < 0 ? '' : head.slice(0, at), domain: at < 0 ? head : head.slice(at + 1), resource: slash < 0 ? '' : s.slice(slash + 1) };
      const presentButEmpty = (at === 0) || (slash >= 0 && parts.resource === '');
      const viaOf = presentButEmpty ? null : attempt(() => Jid.of(parts.local, parts.domain, parts.resource));
      if (j === null) {
        assert.equal(viaOf, null, `parse refused ${JSON.stringify(s)}, Jid.of(parts) accepted ${viaOf?.toString()}`);
        return;
      }
      parsed++;
      assert.ok(t!.equals(j));
      assert.ok(viaOf?.equals(j), `parse ${JSON.stringify(j.toString())} vs Jid.of(parts) ${viaOf?.toString()}`);
      const again = Jid.parse(j.toString());
      assert.ok(again.equals(j), `${JSON.stringify(s)} -> ${JSON.stringify(j.toString())} -> ${JSON.stringify(again.toString())}`);
      assert.equal(again.toString(), j.toString());
      assert.ok(j.domain.length > 0);
      for (const [name, p] of [['local', j.local], ['domain', j.domain], ['resource', j.resource]] as const) {
        assert.ok(octets(p) <= MAX_PART_OCTETS, `${name} of ${octets(p)} octets`);
      }
      assert.doesNotMatch(j.local, /["&'/:<>@]/, 'RFC 7622 §3.3.1 characters in the localpart');
      assert.doesNotMatch(j.domain, /[/@]/);
      assert.ok(j.bare.isBare && j.bare.equals(Jid.parse(j.bare.toString())));
      assert.equal(j.bare.equals(j), j.isBare);
      if (j.resource) assert.ok(j.bare.withResource(j.resource).equals(j));
    }), fuzzParams(7001, 3000));
    assert.ok(parsed > 300, `only ${parsed} inputs parsed: the generator is off`);
  });

  it('preparation is idempotent and throws only JidError', () => {
    const part = fc.oneof(mutated, pieces, fc.string({ unit: 'binary', maxLength: 30 }), long);
    fc.assert(fc.property(part, (s) => {
      for (const [name, f] of [['localpart', prepLocalpart], ['domainpart', prepDomain], ['resourcepart', prepResource], ['password', saslprepPassword]] as const) {
        const once = attempt(() => f(s));
        if (once === null) continue;
        assert.equal(f(once), once, `${name}: ${JSON.stringify(s)} -> ${JSON.stringify(once)} is not stable`);
      }
    }), fuzzParams(7002, 2000));
  });

  it('equals is reflexive, symmetric and the same as equal strings, across case, width and normalization variants', () => {
    const variant = fc.constantFrom<(s: string) => string>(
      (s) => s, (s) => s.toUpperCase(), (s) => s.normalize('NFD'), (s) => s.normalize('NFKC'),
      (s) => s.replace(/[!-~]/g, (c) => String.fromCharCode(c.charCodeAt(0) + 0xfee0)), // fullwidth
      (s) => s.replaceAll('.', '。'), (s) => s.replaceAll(' ', '\u00a0'), (s) => `${s}.`,
    );
    const triple = fc.tuple(fc.constantFrom(...LOCALS), fc.constantFrom(...DOMAINS), fc.constantFrom(...RESOURCES));
    fc.assert(fc.property(triple, variant, variant, variant, variant, fc.boolean(), ([l, d, r], vl, vd, vr, vl2, withRes) => {
      const a = attempt(() => Jid.of(l, d, withRes ? r : undefined));
      const b = attempt(() => Jid.of(vl(l), vd(d), withRes ? vr(r) : undefined));
      const c = attempt(() => Jid.of(vl2(l), d, withRes ? r : undefined));
      const js = [a, b, c].filter((x): x is Jid => x !== null);
      for (const x of js) {
        assert.ok(x.equals(x));
        assert.equal(x.equals(null), false);
        for (const y of js) {
          assert.equal(x.equals(y), y.equals(x), 'symmetric');
          assert.equal(x.equals(y), x.toString() === y.toString(), `${x} vs ${y}`);
          if (x.equals(y)) assert.ok(x.bare.equals(y.bare));
          const px = Jid.tryParse(x.toString());
          assert.ok(px?.equals(x), `${x} does not parse back to itself`);
        }
      }
    }), fuzzParams(7003, 2000));
  });
});
