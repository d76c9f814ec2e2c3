import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { JidError, nicknameKey, prepDomain, prepLocalpart, prepNickname, prepResource, saslprepPassword } from './index.ts';
import { derivedProperty, opaqueString, usernameCaseMapped, widthMap } from './precis.ts';

function throwsJid(f: () => unknown, reason?: RegExp): void {
  assert.throws(f, (e: unknown) => {
    assert.ok(e instanceof JidError, `expected JidError, got ${String(e)}`);
    if (reason) assert.match(e.reason, reason);
    return true;
  });
}

describe('derived property (RFC 8264 §8)', () => {
  const cases: Array<[number, string]> = [
    [0x61, 'PVALID'], [0x41, 'PVALID'], [0x21, 'PVALID'], [0x20, 'ID_DIS/FREE_PVAL'],
    [0xdf, 'PVALID'], [0x3c2, 'PVALID'], [0x3007, 'PVALID'],                  // exceptions: PVALID
    [0xb7, 'CONTEXTO'], [0x375, 'CONTEXTO'], [0x5f3, 'CONTEXTO'], [0x30fb, 'CONTEXTO'], [0x663, 'CONTEXTO'], [0x6f3, 'CONTEXTO'],
    [0x640, 'DISALLOWED'], [0x7fa, 'DISALLOWED'], [0x302e, 'DISALLOWED'], [0x303b, 'DISALLOWED'], // exceptions: DISALLOWED
    [0x200c, 'CONTEXTJ'], [0x200d, 'CONTEXTJ'],
    [0x378, 'UNASSIGNED'], [0xfdd0, 'DISALLOWED'], [0xffff, 'DISALLOWED'],   // noncharacters are not "unassigned"
    [0x1100, 'DISALLOWED'], [0x11a8, 'DISALLOWED'], [0xa960, 'DISALLOWED'], // old Hangul jamo
    [0xad, 'DISALLOWED'], [0x200b, 'DISALLOWED'], [0xfe0f, 'DISALLOWED'],   // default ignorable
    [0x0, 'DISALLOWED'], [0x9, 'DISALLOWED'], [0x7f, 'DISALLOWED'], [0x85, 'DISALLOWED'], // controls
    [0x2163, 'ID_DIS/FREE_PVAL'], [0xa0, 'ID_DIS/FREE_PVAL'], [0xfb00, 'ID_DIS/FREE_PVAL'], [0xff21, 'ID_DIS/FREE_PVAL'], // HasCompat
    [0xe9, 'PVALID'], [0x3c0, 'PVALID'], [0x4e2d, 'PVALID'], [0x5d0, 'PVALID'], [0x301, 'PVALID'], [0x94d, 'PVALID'], [0x663 + 0x10, 'PVALID'],
    [0x1c5, 'ID_DIS/FREE_PVAL'], [0x2460, 'ID_DIS/FREE_PVAL'], [0x20dd, 'ID_DIS/FREE_PVAL'], // Lt, No, Me (0x1c5 also HasCompat)
    [0x265a, 'ID_DIS/FREE_PVAL'], [0x20ac, 'ID_DIS/FREE_PVAL'], [0x2014, 'ID_DIS/FREE_PVAL'], [0x1f600, 'ID_DIS/FREE_PVAL'],
    [0x3000, 'ID_DIS/FREE_PVAL'],
    [0x2028, 'DISALLOWED'], [0x2029, 'DISALLOWED'], [0xd800, 'DISALLOWED'], [0xe000, 'DISALLOWED'], [0x10ffff, 'DISALLOWED'],
    [0x600, 'DISALLOWED'], // Cf, not ignorable
  ];
  for (const [cp, p] of cases) {
    it(`U+${cp.toString(16).toUpperCase().padStart(4, '0')} is ${p}`, () => assert.equal(derivedProperty(cp), p));
  }
});

describe('width mapping (RFC 8264 §9.4.1)', () => {
  it('maps to the decomposition mapping, not to NFKC', () => {
    assert.equal(widthMap('\uff21\uff41\uff10'), 'Aa0');
    assert.equal(widthMap('\uff76'), '\u30ab');
    assert.equal(widthMap('\uffa1'), '\u3131'); // not U+1100 as NFKC would give
    assert.equal(widthMap('\uffe3'), '\u00af'); // not U+0020 U+0304
    assert.equal(widthMap('\u3000'), ' ');
    assert.equal(widthMap('abc\u00e9'), 'abc\u00e9');
  });
  it('composes halfwidth voiced marks after NFC in UsernameCaseMapped', () => {
    assert.equal(usernameCaseMapped('\uff76\uff9e'), '\u30ac');
  });
});

describe('prepLocalpart (UsernameCaseMapped + RFC 7622 §3.3.1)', () => {
  it('maps', () => {
    assert.equal(prepLocalpart('Juliet'), 'juliet');
    assert.equal(prepLocalpart('ＪＵＬＩＥＴ'), 'juliet');
    assert.equal(prepLocalpart('ΣΑΣ'), 'σας');
    assert.equal(prepLocalpart('\u0130'), 'i\u0307');
    assert.equal(prepLocalpart('A\u030a'), '\u00e5');
    assert.equal(prepLocalpart('\u212b'), '\u00e5'); // ANGSTROM SIGN, via toLowerCase + NFC
    assert.equal(prepLocalpart('foo\\20bar'), 'foo\\20bar');
  });
  it('rejects', () => {
    throwsJid(() => prepLocalpart(''), /empty localpart/);
    throwsJid(() => prepLocalpart('a b'), /disallowed/);
    throwsJid(() => prepLocalpart('a\u3000b'), /disallowed/); // maps to U+0020
    throwsJid(() => prepLocalpart('\u01c5'), /disallowed/);   // Lt -> U+01C6, which has a compatibility mapping
    throwsJid(() => prepLocalpart('a＠b'), /disallowed/);
    throwsJid(() => prepLocalpart('ａ：b'), /disallowed/);
    throwsJid(() => prepLocalpart('a'.repeat(1024)), /localpart too long/);
  });
});

describe('prepResource (OpaqueString)', () => {
  it('maps only spaces and NFC', () => {
    assert.equal(prepResource('Balcony'), 'Balcony');
    assert.equal(prepResource('ＡＢ'), 'ＡＢ');
    assert.equal(prepResource('a\u2003b'), 'a b');
    assert.equal(prepResource('Re\u0301s'), 'Rés');
    assert.equal(prepResource('a/b@c'), 'a/b@c');
    assert.equal(prepResource('♚ ⅳ ①'), '♚ ⅳ ①');
  });
  it('rejects', () => {
    throwsJid(() => prepResource(''), /empty resourcepart/);
    throwsJid(() => prepResource('a\rb'), /disallowed/);
    throwsJid(() => prepResource('a\u200bb'), /disallowed/);
    throwsJid(() => prepResource('a\u2029'), /disallowed/);
    throwsJid(() => prepResource('x'.repeat(1024)), /resourcepart too long/);
  });
});

describe('prepDomain', () => {
  it('normalises', () => {
    assert.equal(prepDomain('Example.COM'), 'example.com');
    assert.equal(prepDomain('example.com.'), 'example.com');
    assert.equal(prepDomain('XN--MNCHEN-3YA.de'), 'münchen.de');
    assert.equal(prepDomain('Ｍünchen。de'), 'münchen.de');
    assert.equal(prepDomain('127.0.0.1'), '127.0.0.1');
    assert.equal(prepDomain('[::1]'), '[::1]');
    assert.equal(prepDomain('localhost'), 'localhost');
  });
  it('rejects', () => {
    throwsJid(() => prepDomain(''), /empty domainpart/);
    throwsJid(() => prepDomain('.'), /empty domainpart/);
    throwsJid(() => prepDomain('a..b'), /invalid domainpart/);
    throwsJid(() => prepDomain('a b'), /invalid domainpart/);
    throwsJid(() => prepDomain('a@b'), /invalid domainpart/);
    throwsJid(() => prepDomain('a/b'), /invalid domainpart/);
    throwsJid(() => prepDomain('[::1'), /invalid domainpart/);
    throwsJid(() => prepDomain('1.2.3.4.5'), /invalid domainpart/);
  });
});

describe('saslprepPassword (OpaqueString)', () => {
  it('prepares passwords', () => {
    assert.equal(saslprepPassword('correct horse battery staple'), 'correct horse battery staple');
    assert.equal(saslprepPassword('Pa\u00a0ss'), 'Pa ss');
    assert.equal(saslprepPassword('\u00c5'), '\u00c5');
    assert.equal(saslprepPassword('A\u030a'), '\u00c5');
    assert.equal(saslprepPassword('ＡＢ'), 'ＡＢ');
    assert.equal(saslprepPassword('I\u00adX'.replace('\u00ad', '')), 'IX');
    assert.equal(saslprepPassword('ππππ'), 'ππππ');
  });
  it('rejects', () => {
    throwsJid(() => saslprepPassword(''), /empty password/);
    throwsJid(() => saslprepPassword('a\u0007'), /disallowed/);
    throwsJid(() => saslprepPassword('a\u00adb'), /disallowed/);
    throwsJid(() => saslprepPassword('\ud800'), /disallowed/);
  });
});

describe('Nickname profile (RFC 8266)', () => {
  it('enforces', () => {
    assert.equal(prepNickname('  Foo\u00a0\u3000 Bar  '), 'Foo Bar');
    assert.equal(prepNickname('Richard \u2163'), 'Richard IV');
    assert.equal(prepNickname('♚'), '♚');
    assert.equal(prepNickname('ＡＢ'), 'AB');
    throwsJid(() => prepNickname('   '), /empty nickname/);
    throwsJid(() => prepNickname('a\u0000'), /disallowed/);
  });
  it('compares case-insensitively', () => {
    assert.equal(nicknameKey('Foo  Bar'), nicknameKey('foo bar'));
    assert.equal(nicknameKey('Richard \u2163'), nicknameKey('richard iv'));
    assert.equal(nicknameKey('Σ'), nicknameKey('σ'));
    assert.notEqual(nicknameKey('ς'), nicknameKey('σ'));
  });
});

describe('opaqueString / usernameCaseMapped properties', () => {
  const pieces = ['a', 'Z', ' ', '\u00a0', '\u3000', 'Ａ', 'ｶ', 'ﾞ', 'e\u0301', '\u0301', '\u212b', 'İ', 'Σ', 'ς', 'ß',
    'א', '\u05b0', 'ع', '\u0661', '\u06f1', '\u200c', '\u200d', '\u094d', 'क', '\u00b7', 'l', '♚', '😀', '\t', '\ud800',
    '\u0378', '\u1100', '\uffa1', '\u01c5', '\u1e9e', '\u2126', '\u0345', '\u0399'];
  const str = fc.oneof(
    fc.array(fc.constantFrom(...pieces), { maxLength: 10 }).map((a) => a.join('')),
    fc.string({ unit: 'binary', maxLength: 20 }),
  );
  const idempotent = (f: (s: string) => string) => (s: string) => {
    let out: string;
    try {
      out = f(s);
    } catch (e) {
      if (e instanceof JidError) return;
      throw e;
    }
    assert.equal(f(out), out, `${JSON.stringify(s)} -> ${JSON.stringify(out)}`);
  };
  it('are idempotent and throw only JidError', () => {
    fc.assert(fc.property(str, idempotent(prepLocalpart)), { seed: 7, numRuns: 2000 });
    fc.assert(fc.property(str, idempotent(prepResource)), { seed: 8, numRuns: 2000 });
    fc.assert(fc.property(str, idempotent(prepDomain)), { seed: 9, numRuns: 2000 });
    fc.assert(fc.property(str, idempotent(saslprepPassword)), { seed: 10, numRuns: 2000 });
    fc.assert(fc.property(str, idempotent((s) => opaqueString(s))), { seed: 11, numRuns: 1000 });
    fc.assert(fc.property(str, idempotent((s) => usernameCaseMapped(s))), { seed: 12, numRuns: 1000 });
    fc.assert(fc.property(str, idempotent(prepNickname)), { seed: 13, numRuns: 1000 });
    fc.assert(fc.property(str, idempotent(nicknameKey)), { seed: 14, numRuns: 1000 });
  });
});
