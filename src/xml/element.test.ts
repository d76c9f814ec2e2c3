import { test } from 'node:test';
import assert from 'node:assert/strict';
import { XmlElement, x, serialize, escapeText, escapeAttr, XmlStreamParser } from './index.ts';

function parseOne(xml: string): XmlElement {
  const out: XmlElement[] = [];
  const p = new XmlStreamParser({
    streamStart() {}, stanza(el) { out.push(el); }, streamEnd() {},
    error(e) { throw e; },
  });
  p.write(Buffer.from(`<stream:stream xmlns='jabber:client' xmlns:stream='http://etherx.jabber.org/streams'>${xml}`));
  assert.equal(out.length, 1);
  return out[0]!;
}

test('x() builds attributes, drops undefined, stringifies numbers, sets ns from xmlns', () => {
  const el = x('iq', { type: 'get', id: 7, to: undefined, xmlns: 'jabber:client' });
  assert.equal(el.name, 'iq');
  assert.equal(el.ns, 'jabber:client');
  assert.deepEqual(el.attrs, { type: 'get', id: '7' });
  assert.equal(el.attr('xmlns'), undefined);
  assert.equal(el.attr('to'), undefined);
  assert.equal(el.attr('toString'), undefined, 'prototype members are not attributes');
  assert.equal(el.attr('constructor'), undefined);
});

test('x() skips null/undefined/false children, flattens arrays, merges text', () => {
  const el = x('a', null, null, undefined, false, 'x', ['y', x('b')], 'z', [], '');
  assert.equal(el.children.length, 3);
  assert.equal(el.children[0], 'xy');
  assert.equal(el.text(), 'xyz');
  assert.equal(el.elements().length, 1);
});

test('x() adopts un-namespaced children recursively; namespaced subtrees keep theirs', () => {
  const el = x('message', { xmlns: 'jabber:client' },
    x('body', null, 'hi'),
    x('x', { xmlns: 'jabber:x:oob' }, x('url', null, 'https://e')),
    x('wrapper', null, x('inner')));
  assert.equal(el.getChild('body', 'jabber:client')?.text(), 'hi');
  assert.equal(el.getChild('x', 'jabber:x:oob')?.getChild('url', 'jabber:x:oob')?.text(), 'https://e');
  assert.equal(el.getChild('wrapper')?.getChild('inner', 'jabber:client')?.name, 'inner');
  assert.equal(serialize(el), '<message xmlns="jabber:client"><body>hi</body><x xmlns="jabber:x:oob"><url>https://e</url></x><wrapper><inner/></wrapper></message>');
  // A top-level element without xmlns inherits: no xmlns emitted.
  assert.equal(x('presence', { type: 'unavailable' }).toString(), '<presence type="unavailable"/>');
});

test('query helpers', () => {
  const el = x('iq', { xmlns: 'jabber:client' },
    x('a', null, 'one'), 'text', x('b', { xmlns: 'urn:b' }), x('a', { xmlns: 'urn:other' }, 'two'));
  assert.equal(el.getChild('a')?.text(), 'one');
  assert.equal(el.getChild('a', 'urn:other')?.text(), 'two');
  assert.equal(el.getChild('a', 'urn:none'), undefined);
  assert.equal(el.getChildren('a').length, 2);
  assert.equal(el.getChildren('a', 'jabber:client').length, 1);
  assert.equal(el.elements().length, 3);
  assert.equal(el.firstElement()?.name, 'a');
  assert.equal(el.text(), 'text');
  assert.equal(el.getChildText('a', 'urn:other'), 'two');
  assert.equal(el.getChildText('missing'), undefined);
  assert.equal(x('empty').getChildText('x'), undefined);
  assert.equal(x('e', null, x('c')).getChildText('c'), '');
  assert.equal(x('e').firstElement(), undefined);
  assert.equal(x('e').text(), '');
});

test('withAttrs and withChildren return new elements and leave the original alone', () => {
  const el = x('message', { xmlns: 'jabber:client', to: 'a@b', id: '1' }, x('body', null, 'hi'));
  const el2 = el.withAttrs({ to: undefined, from: 'c@d', id: '2' });
  assert.deepEqual(el.attrs, { to: 'a@b', id: '1' });
  assert.deepEqual(el2.attrs, { id: '2', from: 'c@d' });
  assert.equal(el2.ns, 'jabber:client');
  assert.equal(el2.children, el.children);
  assert.equal(el.withAttrs({ xmlns: 'jabber:server' }).ns, 'jabber:server');
  assert.deepEqual(x('a', { toString: 'x' }).withAttrs({ b: '1' }).attrs, { toString: 'x', b: '1' });
  const el3 = el.withChildren([]);
  assert.equal(el3.children.length, 0);
  assert.equal(el.children.length, 1);
  assert.ok(el3 instanceof XmlElement);
});

test('escaping in text and attributes', () => {
  assert.equal(escapeText('a & b < c > d "\' \n'), 'a &amp; b &lt; c &gt; d "\' \n');
  assert.equal(escapeAttr('a & b < c > d "\'\n\r\t'), 'a &amp; b &lt; c > d &quot;\'&#10;&#13;&#9;');
  assert.equal(escapeText('plain'), 'plain');
  // Characters XML 1.0 cannot carry become U+FFFD rather than breaking the peer's stream.
  assert.equal(escapeText('a\u0000b\u001bc\uFFFE'), 'a\uFFFDb\uFFFDc\uFFFD');
  assert.equal(escapeAttr('\u0001'), '\uFFFD');
  const el = x('m', { a: '"<&>\n' }, '<&>]]>');
  assert.equal(el.toString(), '<m a="&quot;&lt;&amp;>&#10;">&lt;&amp;&gt;]]&gt;</m>');
});

test('serialize omits xmlns where the namespace equals the parent', () => {
  const el = x('message', { xmlns: 'jabber:client', to: 'a@b' }, x('body', null, 'hi'));
  assert.equal(serialize(el, 'jabber:client'), '<message to="a@b"><body>hi</body></message>');
  assert.equal(serialize(el, 'jabber:server'), '<message xmlns="jabber:client" to="a@b"><body>hi</body></message>');
  assert.equal(serialize(el), '<message xmlns="jabber:client" to="a@b"><body>hi</body></message>');
});

test('round trip: parse → serialize → parse gives the same tree', () => {
  const src = `<message to='juliet@example.com' type='chat' xml:lang='de'>` +
    `<body>Grüße &amp; &lt;3 &quot;q&quot; 🐦 東京</body>` +
    `<html xmlns='http://jabber.org/protocol/xhtml-im'><body xmlns='http://www.w3.org/1999/xhtml'><p style='a&#10;b'>x<br/>y</p></body></html>` +
    `<foo:bar xmlns:foo='urn:foo' foo:attr='1'><baz/></foo:bar>` +
    `</message>`;
  const a = parseOne(src);
  const text = serialize(a, 'jabber:client');
  const b = parseOne(text);
  assert.deepEqual(b, a);
  assert.equal(serialize(b, 'jabber:client'), text);
  assert.equal(a.getChild('body', 'jabber:client')?.text(), 'Grüße & <3 "q" 🐦 東京');
  const p = a.getChild('html', 'http://jabber.org/protocol/xhtml-im')!.getChild('body', 'http://www.w3.org/1999/xhtml')!.getChild('p')!;
  assert.equal(p.attr('style'), 'a\nb');
  assert.deepEqual(p.children.map((c) => typeof c === 'string' ? c : c.name), ['x', 'br', 'y']);
  const bar = a.getChild('bar', 'urn:foo')!;
  assert.equal(bar.attr('foo:attr'), '1');
  assert.equal(bar.getChild('baz', 'jabber:client')?.name, 'baz', 'unprefixed child of a prefixed element keeps the default ns');
});

test('parsed and built trees compare equal', () => {
  const parsed = parseOne(`<iq type='get' id='1'><query xmlns='jabber:iq:roster'/></iq>`);
  const built = x('iq', { xmlns: 'jabber:client', type: 'get', id: '1' }, x('query', { xmlns: 'jabber:iq:roster' }));
  assert.deepEqual(parsed, built);
});
