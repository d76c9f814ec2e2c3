// LocalSessionRegistry: bare JID -> resource -> session; replacement and removal by identity.
import { fakeSession as fakeSessionOf } from '../../testing/modules.ts';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LocalSessionRegistry } from './registry.ts';
import { Jid } from '../../jid/index.ts';

/** A bound, available fake session that records what it is sent. */
const fake = (jid: string) => fakeSessionOf(jid, { available: true });

test('add, get, resources, countFor, size, all', () => {
  const r = new LocalSessionRegistry();
  const a = fake('alice@example.test/a');
  const b = fake('alice@example.test/b');
  const c = fake('bob@example.test/a');
  assert.equal(r.add(a), undefined);
  assert.equal(r.add(b), undefined);
  assert.equal(r.add(c), undefined);
  assert.equal(r.size, 3);
  assert.equal(r.get(Jid.parse('alice@example.test/a')), a);
  assert.equal(r.get(Jid.parse('ALICE@example.test/b')), b, 'lookup by prepared JID');
  assert.equal(r.get(Jid.parse('alice@example.test/c')), undefined);
  assert.equal(r.get(Jid.parse('alice@example.test')), undefined, 'a bare JID is not a resource');
  assert.deepEqual(r.resources(Jid.parse('alice@example.test')), [a, b]);
  assert.deepEqual(r.resources(Jid.parse('alice@example.test/whatever')), [a, b], 'resources() uses the bare part');
  assert.deepEqual(r.resources(Jid.parse('carol@example.test')), []);
  assert.equal(r.countFor(Jid.parse('alice@example.test')), 2);
  assert.equal(r.countFor(Jid.parse('carol@example.test')), 0);
  assert.deepEqual(new Set(r.all()), new Set([a, b, c]));
});

test('resources are case-sensitive (resourcepart is OpaqueString)', () => {
  const r = new LocalSessionRegistry();
  const a = fake('alice@example.test/Phone');
  r.add(a);
  assert.equal(r.get(Jid.parse('alice@example.test/phone')), undefined);
  assert.equal(r.get(Jid.parse('alice@example.test/Phone')), a);
});

test('adding the same full JID replaces and returns the old session', () => {
  const r = new LocalSessionRegistry();
  const old = fake('alice@example.test/a');
  const other = fake('alice@example.test/b');
  const neu = fake('alice@example.test/a');
  r.add(old);
  r.add(other);
  assert.equal(r.add(neu), old);
  assert.equal(r.get(Jid.parse('alice@example.test/a')), neu);
  assert.equal(r.size, 2);
  assert.equal(r.countFor(Jid.parse('alice@example.test')), 2);
  assert.deepEqual(new Set(r.all()), new Set([neu, other]));
  // binding order: the replacement is the most recent binding
  assert.deepEqual(r.resources(Jid.parse('alice@example.test')), [other, neu]);
});

test('remove only removes the very same session object', () => {
  const r = new LocalSessionRegistry();
  const old = fake('alice@example.test/a');
  const neu = fake('alice@example.test/a');
  r.add(old);
  r.add(neu);
  r.remove(old); // the replaced session closing late must not evict its replacement
  assert.equal(r.get(Jid.parse('alice@example.test/a')), neu);
  assert.equal(r.size, 1);
  assert.equal(r.countFor(Jid.parse('alice@example.test')), 1);
  // an impostor with the same id but a different object is ignored too
  const impostor = { ...neu };
  r.remove(impostor);
  assert.equal(r.size, 1);
  r.remove(neu);
  assert.equal(r.get(Jid.parse('alice@example.test/a')), undefined);
  assert.equal(r.size, 0);
  assert.equal(r.countFor(Jid.parse('alice@example.test')), 0);
  assert.deepEqual(r.resources(Jid.parse('alice@example.test')), []);
  r.remove(neu); // twice: harmless
  assert.equal(r.size, 0);
});

test('removing one resource leaves the others', () => {
  const r = new LocalSessionRegistry();
  const a = fake('alice@example.test/a');
  const b = fake('alice@example.test/b');
  r.add(a);
  r.add(b);
  r.remove(a);
  assert.deepEqual(r.resources(Jid.parse('alice@example.test')), [b]);
  assert.equal(r.size, 1);
});

test('a session that was never added is ignored by remove', () => {
  const r = new LocalSessionRegistry();
  const a = fake('alice@example.test/a');
  r.add(a);
  r.remove(fake('alice@example.test/a'));
  assert.equal(r.get(Jid.parse('alice@example.test/a')), a);
});
