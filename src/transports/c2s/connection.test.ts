import { test } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { recordPieces, RECORD_BYTES } from './connection.ts';

/** No lone surrogate (String.prototype.isWellFormed is ES2024, beyond our lib setting). */
const wellFormed = (s: string) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

test('recordPieces: pieces rejoin to the input, stay within the bound and never split a surrogate pair', () => {
  fc.assert(fc.property(fc.string({ unit: 'binary', maxLength: 3000 }), fc.integer({ min: 2, max: 500 }), (s, max) => {
    const ps = recordPieces(s, max);
    assert.equal(ps.join(''), s);
    for (const p of ps) assert.ok(p.length > 0 && p.length <= max);
    if (wellFormed(s)) assert.ok(ps.every((p) => wellFormed(p)), 'a well-formed string stays well-formed piece by piece');
  }), { seed: 4242, numRuns: 300 });
  const emoji = '🐦'.repeat(RECORD_BYTES); // 2 units each: a boundary falls inside a pair unless handled
  const ps = recordPieces('x' + emoji, RECORD_BYTES);
  assert.ok(ps.every((p) => wellFormed(p)));
  assert.equal(ps.join(''), 'x' + emoji);
});
