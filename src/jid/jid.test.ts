import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { Jid, JidError } from './index.ts';

function rejects(s: string, reason?: RegExp): void {
  assert.throws(() => Jid.parse(s), (e: unknown) => {
    assert.ok(e instanceof JidError, `expected JidError for ${JSON.stringify(s)}, got ${String(e)}`);
    if (reason) assert.match(e.message, reason);
    return true;
  }, `expected ${JSON.stringify(s)} to be rejected`);
  assert.equal(Jid.tryParse(s), null);
}

function parses(s: string, expected: string = s): Jid {
  const j = Jid.parse(s);
  assert.equal(j.toString(), expected, `parse(${JSON.stringify(s)})`);
  return j;
}

describe('RFC 7622 §3.5 examples', () => {
  const valid: Array<[string, string?]> = [
    ['juliet@example.com'],
    ['juliet@example.com/foo'],
    ['juliet@example.com/foo bar'],
    ['juliet@example.com/foo@bar'],
    ['foo\\20bar@example.com'],
    ['fussball@example.com'],
    ['fußball@example.com'],
    ['π@example.com'],
    ['Σ@example.com/foo', 'σ@example.com/foo'],
    ['σ@example.com/foo'],
    ['ς@example.com/foo'],
    ['king@example.com/♚'],
    ['example.com'],
    ['example.com/foobar'],
    ['a.example.com/b@example.net'],
  ];
  for (const [s, expected] of valid) it(`accepts ${s}`, () => { parses(s, expected); });

  const invalid = ['"juliet"@example.com', 'foo bar@example.com', '@example.com/', 'henryⅣ@example.com',
    '♚@example.com', 'juliet@', '/foobar'];
  for (const s of invalid) it(`rejects ${s}`, () => { rejects(s); });

  it('keeps fußball and fussball, ς and σ distinct', () => {
    assert.ok(!Jid.parse('fußball@example.com').equals(Jid.parse('fussball@example.com')));
    assert.ok(!Jid.parse('ς@example.com').equals(Jid.parse('σ@example.com')));
    assert.ok(Jid.parse('Σ@example.com').equals(Jid.parse('σ@example.com')));
  });
});

describe('splitting (RFC 7622 §3.1)', () => {
  it('splits at the first / and the first @ before it', () => {
    const j = Jid.parse('a@b.example/c@d/e@f');
    assert.equal(j.local, 'a');
    assert.equal(j.domain, 'b.example');
    assert.equal(j.resource, 'c@d/e@f');
    const k = Jid.parse('example.com/a@b');
    assert.equal(k.local, '');
    assert.equal(k.resource, 'a@b');
  });
  it('rejects a second @ before the /', () => { rejects('a@b@example.com'); });
  it('rejects empty parts whose separator is present', () => {
    rejects('', /empty domainpart/);
    rejects('@example.com', /empty localpart/);
    rejects('example.com/', /empty resourcepart/);
    rejects('a@example.com/', /empty resourcepart/);
    rejects('a@/r', /empty domainpart/);
    rejects('@', /empty/);
    rejects('/', /empty/);
    rejects('@/', /empty/);
  });
});

describe('normalisation', () => {
  it('case-folds local and domain, keeps resource case', () => {
    const j = parses('Juliet@Example.COM/Balcony', 'juliet@example.com/Balcony');
    assert.equal(j.local, 'juliet');
    assert.equal(j.domain, 'example.com');
    assert.equal(j.resource, 'Balcony');
    assert.ok(!Jid.parse('a@example.com/R').equals(Jid.parse('a@example.com/r')));
  });
  it('maps fullwidth characters in the localpart but not in the resourcepart', () => {
    parses('ＪＵＬＩＥＴ@example.com', 'juliet@example.com');
    parses('juliet@ｅｘａｍｐｌｅ．ｃｏｍ', 'juliet@example.com');
    parses('a@example.com/ＲＥＳ', 'a@example.com/ＲＥＳ');
    rejects('ａ＠b@example.com', /disallowed/); // fullwidth @ maps to @ in the localpart
  });
  it('applies NFC', () => {
    parses('E\u0301@example.com/Re\u0301s', 'é@example.com/Rés');
    assert.ok(Jid.parse('e\u0301@example.com').equals(Jid.parse('é@example.com')));
  });
  it('maps non-ASCII spaces in the resourcepart to U+0020', () => {
    parses('a@example.com/x\u00a0y\u3000z', 'a@example.com/x y z');
    parses('a@example.com/ foo ');
    parses('a@example.com/ ');
  });
});

describe('lengths', () => {
  it('accepts 1023-octet parts and rejects 1024-octet parts (multibyte)', () => {
    parses('a'.repeat(1023) + '@example.com');
    rejects('a'.repeat(1024) + '@example.com', /localpart too long/);
    parses('ä'.repeat(511) + 'a@example.com');           // 1023 octets
    rejects('ä'.repeat(512) + '@example.com', /localpart too long/);
    parses('中'.repeat(341) + '@example.com');           // 1023 octets
    rejects('中'.repeat(342) + '@example.com', /localpart too long/);
    parses('a@example.com/' + '😀'.repeat(255) + 'abc'); // 1023 octets
    rejects('a@example.com/' + '😀'.repeat(256), /resourcepart too long/);
    rejects('a@example.com/' + 'r'.repeat(1024), /resourcepart too long/);
    const dom = ('a'.repeat(62) + '.').repeat(16) + 'abcdefghijklmno'; // 63*16 + 15 = 1023
    parses('x@' + dom);
    rejects('x@' + dom + 'p', /domainpart too long/);
    rejects('x@' + 'ü'.repeat(600) + '.de', /domainpart too long|invalid domainpart/);
  });
  it('rejects huge input quickly', () => {
    const t = process.hrtime.bigint();
    rejects('é'.repeat(200_000) + '@example.com', /too long/);
    rejects('a@example.com/' + '\u3000'.repeat(200_000), /too long/);
    rejects('a'.repeat(200_000) + '@example.com', /too long/);
    rejects('a@' + 'a'.repeat(200_000), /too long/);
    assert.ok(process.hrtime.bigint() - t < 2_000_000_000n);
  });
});

describe('disallowed characters', () => {
  it('rejects whitespace and controls', () => {
    rejects('a b@example.com');
    rejects('a\tb@example.com');
    rejects('a\u00a0b@example.com');
    rejects('a\u2028b@example.com');
    rejects('a@example.com/a\nb');
    rejects('a@example.com/\u0000');
    rejects('a@example.com/\u007f');
    rejects('a@exa mple.com');
    rejects('a@example.com\u0000');
    rejects('a\u00adb@example.com');        // default ignorable
    rejects('a@example.com/a\u00adb');
    rejects('a@example.com/\ufeff');
  });
  it('rejects RFC 7622 §3.3.1 characters in the localpart', () => {
    for (const c of ['"', '&', "'", '/', ':', '<', '>', '@']) {
      assert.throws(() => Jid.of(`a${c}b`, 'example.com'), JidError, c);
    }
    parses('a;b@example.com');
    parses('a+b.c_d-e!#$%*=?^`{|}~@example.com');
  });
  it('rejects unassigned, surrogates, private use and old Hangul jamo', () => {
    rejects('a\u0378@example.com');
    rejects('a\ud800@example.com');
    rejects('a@example.com/\udc00');
    rejects('a\ue000@example.com');
    rejects('a@example.com/\ue000');
    rejects('\u1100\u1161@example.com'.normalize('NFD').replace('\u1100\u1161', '\u1100\u11a8'));
  });
  it('rejects identifier-disallowed but allows freeform characters in resources', () => {
    rejects('①@example.com');
    parses('a@example.com/①');
    rejects('a☺@example.com');
    parses('a@example.com/☺');
  });
});

describe('bidi rule', () => {
  it('accepts right-to-left localparts', () => {
    parses('אב@example.com');
    parses('العربية@example.com');
    parses('אב1@example.com');
    parses('\u05d0\u05d1\u05b0@example.com'); // trailing NSM
  });
  it('rejects violations', () => {
    rejects('aא@example.com', /bidi/);       // LTR start with RTL char
    rejects('אa@example.com', /bidi/);       // L inside RTL
    rejects('1א@example.com', /bidi/);       // must start with R/AL
    rejects('\u05d0\u0031\u0661@example.com', /bidi/); // EN and AN mixed
    rejects('\u05d0-@example.com', /bidi/);  // ends with ON
  });
  it('does not apply to resourceparts', () => {
    parses('a@example.com/aא');
  });
  it('applies to domain names', () => {
    parses('a@אב.example.com');
    rejects('a@aא.com', /bidi/);
  });
});

describe('contextual rules', () => {
  it('ZWJ only after a virama', () => {
    parses('\u0915\u094d\u200d\u0937@example.com');
    rejects('a\u200db@example.com', /contextual/);
    rejects('a@example.com/\u200d', /contextual/);
  });
  it('ZWNJ after a virama or between joining letters', () => {
    parses('\u0915\u094d\u200c\u0937@example.com');
    parses('\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645@example.com'); // Persian mi-khaham
    rejects('a\u200cb@example.com', /contextual/);
    rejects('\u200c\u062e@example.com', /contextual/);
  });
  it('CONTEXTO rules', () => {
    parses('l\u00b7l@example.com');
    rejects('a\u00b7l@example.com', /contextual/);
    parses('\u0375\u03b1@example.com');
    rejects('\u0375a@example.com', /contextual/);
    parses('\u05d0\u05f3\u05d1@example.com');
    rejects('a\u05f4@example.com', /contextual/);
    parses('\u30a2\u30fb\u30a4@example.com');
    rejects('a\u30fbb@example.com', /contextual/);
    parses('\u0628\u0661\u0662@example.com');
    parses('\u0628\u06f1\u06f2@example.com');
    rejects('\u0628\u0661\u06f2@example.com', /contextual/);
  });
});

describe('domainpart', () => {
  it('handles IDNs in U-label and A-label form', () => {
    const u = parses('juliet@münchen.de');
    const a = parses('juliet@xn--mnchen-3ya.de', 'juliet@münchen.de');
    const up = parses('juliet@MÜNCHEN.DE', 'juliet@münchen.de');
    assert.ok(u.equals(a) && a.equals(up));
    parses('a@例子.测试');
    parses('fußball.de');
    rejects('a@xn--zz.com');
    rejects('a@a\u200cb.com');
  });
  it('strips one trailing dot', () => {
    parses('juliet@example.com.', 'juliet@example.com');
    parses('example.com./r', 'example.com/r');
    parses('a@例子。测试。', 'a@例子.测试');
    rejects('juliet@example.com..');
    rejects('.');
    rejects('a@.');
  });
  it('rejects malformed host names', () => {
    rejects('a@exa..mple.com');
    rejects('a@.example.com');
    rejects('a@-example.com');
    rejects('a@example-.com');
    rejects('a@exa!mple.com');
    rejects('a@exa?mple.com');
    rejects('a@exa#mple.com');
    rejects('a@exa\\mple.com');
    rejects('a@exa＃mple.com');
    rejects('a@exa／mple.com');
    rejects('a@example.123');
    rejects('a@0x7f.1');
    rejects('a@1.2.3');
    parses('a@foo_bar.example');
  });
  it('accepts IP literals', () => {
    parses('a@127.0.0.1/r');
    parses('[::1]');
    parses('a@[::1]/r');
    parses('a@[0:0::1]', 'a@[::1]');
    parses('a@[2001:DB8::1]', 'a@[2001:db8::1]');
    rejects('a@[127.0.0.1]');
    rejects('a@[::1');
    rejects('a@::1]');
    rejects('a@::1');
    rejects('a@[fe80::1%eth0]');
    rejects('a@256.1.1.1');
  });
});

describe('Jid API', () => {
  it('bare, isBare, withResource, equals', () => {
    const full = Jid.parse('Romeo@Example.net/Orchard');
    assert.equal(full.isBare, false);
    const bare = full.bare;
    assert.equal(bare.toString(), 'romeo@example.net');
    assert.equal(full.bare, bare, 'bare is cached');
    assert.ok(bare.isBare);
    assert.equal(bare.bare, bare);
    const again = bare.withResource('Orchard');
    assert.ok(again.equals(full));
    assert.notEqual(again, full);
    assert.equal(full.withResource('Orchard'), full);
    assert.equal(full.withResource(''), bare);
    assert.equal(bare.withResource('\u3000x').resource, ' x');
    assert.throws(() => bare.withResource('a\u0000'), JidError);
    assert.ok(!full.equals(null));
    assert.ok(!full.equals(undefined));
    assert.ok(!full.equals(bare));
    assert.ok(full.equals(full));
    assert.equal(full.toString(), full.toString());
    assert.equal(JSON.stringify({ j: full }), '{"j":"romeo@example.net/Orchard"}');
    assert.equal(`${full}`, 'romeo@example.net/Orchard');
  });
  it('of() prepares each part and treats "" as absent', () => {
    const j = Jid.of('Juliet', 'EXAMPLE.com', 'Balcony');
    assert.equal(j.toString(), 'juliet@example.com/Balcony');
    assert.equal(Jid.of('', 'example.com').toString(), 'example.com');
    assert.equal(Jid.of('a', 'example.com', '').toString(), 'a@example.com');
    assert.equal(Jid.of('a', 'example.com', 'x/y@z').resource, 'x/y@z');
    assert.throws(() => Jid.of('a', ''), (e: unknown) => e instanceof JidError && e.reason === 'empty domainpart');
    assert.throws(() => Jid.of('a@b', 'example.com'), JidError);
    assert.throws(() => Jid.of('a', 'example.com/x'), JidError);
    assert.throws(() => Jid.of('a', 'b@example.com'), JidError);
    assert.throws(() => Jid.of('a'.repeat(1024), 'example.com'), (e: unknown) => e instanceof JidError && e.reason === 'localpart too long');
  });
  it('JidError carries a reason', () => {
    try {
      Jid.parse('a@example.com/');
      assert.fail('should throw');
    } catch (e) {
      assert.ok(e instanceof JidError);
      assert.ok(e instanceof Error);
      assert.equal(e.name, 'JidError');
      assert.equal(e.reason, 'empty resourcepart');
    }
    assert.throws(() => Jid.parse(42 as unknown as string), JidError);
  });
  it('parse() caches recent results: one shared instance, errors never cached, bounded', () => {
    const a = Jid.parse('Cache.Test@Example.ORG/r');
    assert.equal(Jid.parse('Cache.Test@Example.ORG/r'), a, 'immutable, so shared');
    assert.equal(a.toString(), 'cache.test@example.org/r');
    for (let i = 0; i < 3; i++) rejects('cache.test@Example.ORG/');
    for (let i = 0; i < 3; i++) rejects('cache.test@-example.org');
    // More distinct addresses than the cache holds: each still prepared on its own.
    for (let i = 0; i < 3000; i++) assert.equal(Jid.parse(`U${i}@H${i % 7}.Example/R`).toString(), `u${i}@h${i % 7}.example/R`);
    assert.ok(Jid.parse('Cache.Test@Example.ORG/r').equals(a));
    const long = `${'L'.repeat(300)}@Example.ORG`; // longer than cached inputs
    assert.equal(Jid.parse(long).toString(), `${'l'.repeat(300)}@example.org`);
    assert.ok(Jid.parse(long).equals(Jid.parse(long)));
  });
  it('tryParse returns null only for JidError', () => {
    assert.equal(Jid.tryParse('@'), null);
    assert.ok(Jid.tryParse('a@b')?.equals(Jid.parse('A@B')));
  });
});

// Pieces that make the generated strings hit interesting paths often.
const PIECES = [
  'a', 'b', 'Z', 'juliet', 'EXAMPLE', 'com', '.', '.', '@', '@', '/', '/', ' ', '-', '_', '1', '0x7f', '127.0.0.1',
  '[::1]', '[', ']', ':', '"', "'", '&', '<', '>', '\\', '?', '#', '%', 'ß', 'Σ', 'ς', 'π', 'İ', 'ǅ', 'Ⅳ', '♚', '😀',
  'Ａ', 'ｱ', 'ﾞ', '＠', '／', '．', '。', '\u3000', '\u00a0', '\u00ad', '\u200b', '\u200c', '\u200d', '\u094d', 'क',
  'e\u0301', '\u0301', 'Å', '\u212b', 'א', 'ב', '\u05b0', 'ع', 'ي', '\u0661', '\u06f1', '\u00b7', 'l', '\u0375', 'α',
  '\u05f3', '\u30fb', 'ア', '中', 'münchen', 'xn--mnchen-3ya', 'xn--', '\t', '\n', '\u0000', '\u007f', '\u2028',
  '\ud800', '\udc00', '\ue000', '\uffff', '\u0378', '\u1100', 'ﬀ', '㍿', '\u3164',
];
const jidLike = fc.array(fc.constantFrom(...PIECES), { maxLength: 12 }).map((a) => a.join(''));
const anyString = fc.oneof(jidLike, fc.string({ unit: 'binary', maxLength: 40 }), fc.string({ maxLength: 40 }));

describe('properties', () => {
  it('parse(toString(parse(s))) equals parse(s); only JidError is thrown', () => {
    let ok = 0;
    fc.assert(fc.property(anyString, (s) => {
      let j: Jid;
      try {
        j = Jid.parse(s);
      } catch (e) {
        if (!(e instanceof JidError)) throw e;
        return;
      }
      ok++;
      const k = Jid.parse(j.toString());
      assert.ok(k.equals(j), `${JSON.stringify(s)} -> ${JSON.stringify(j.toString())} -> ${JSON.stringify(k.toString())}`);
      assert.equal(k.toString(), j.toString());
      assert.ok(Jid.of(j.local, j.domain, j.resource).equals(j));
      assert.ok(j.bare.equals(Jid.parse(j.bare.toString())));
    }), { seed: 42, numRuns: 3000 });
    assert.ok(ok > 100, `only ${ok} generated strings parsed`);
  });
});
