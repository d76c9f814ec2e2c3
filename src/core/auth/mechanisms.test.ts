import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableMechanisms, createMechanism } from './mechanisms.ts';
import { testSaslContext } from './scram-client.ts';

test('availableMechanisms order and conditions', () => {
  assert.deepEqual(availableMechanisms({ tls: true, channelBindingAvailable: true, allowPlain: true }), [
    'SCRAM-SHA-256-PLUS',
    'SCRAM-SHA-1-PLUS',
    'SCRAM-SHA-256',
    'SCRAM-SHA-1',
    'PLAIN',
  ]);
  assert.deepEqual(availableMechanisms({ tls: true, channelBindingAvailable: false, allowPlain: false }), ['SCRAM-SHA-256', 'SCRAM-SHA-1']);
  assert.deepEqual(availableMechanisms({ tls: false, channelBindingAvailable: true, allowPlain: true }), ['SCRAM-SHA-256', 'SCRAM-SHA-1']);
  assert.deepEqual(
    availableMechanisms({ tls: true, channelBindingAvailable: true, allowPlain: true, enabled: ['PLAIN', 'SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'X'] }),
    ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-256', 'PLAIN'],
  );
});

test('createMechanism', async () => {
  const ctx = testSaslContext({}, { bindings: { 'tls-exporter': Buffer.alloc(32) } });
  for (const n of ['SCRAM-SHA-256-PLUS', 'SCRAM-SHA-1-PLUS', 'SCRAM-SHA-256', 'SCRAM-SHA-1', 'PLAIN']) {
    assert.equal(createMechanism(n, ctx)?.name, n);
  }
  assert.equal(createMechanism('DIGEST-MD5', ctx), null);
  assert.equal(createMechanism('scram-sha-1', ctx), null);
  assert.equal(createMechanism('ANONYMOUS', ctx), null);
  const noTls = testSaslContext({}, { tls: false, bindings: { 'tls-exporter': Buffer.alloc(32) } });
  const plus = await createMechanism('SCRAM-SHA-256-PLUS', noTls)!.step(null);
  assert.equal(plus.kind === 'failure' && plus.condition, 'not-authorized');
  const plain = await createMechanism('PLAIN', noTls)!.step(null);
  assert.equal(plain.kind === 'failure' && plain.condition, 'encryption-required');
});
