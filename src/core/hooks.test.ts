// HookBus: priority order, ties by registration order, failure isolation, disposers.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HookBus, Priority } from './hooks.ts';
import { collectingLogger } from '../testing/modules.ts';

const captureLogger = () => collectingLogger('trace');

const payload = { host: 'example.test', username: 'alice' };

test('handlers run by priority, highest first; ties keep registration order', async () => {
  const bus = new HookBus(captureLogger().log);
  const order: string[] = [];
  bus.on('user:created', () => { order.push('late'); }, Priority.Late);
  bus.on('user:created', () => { order.push('default-1'); });
  bus.on('user:created', () => { order.push('early'); }, Priority.Early);
  bus.on('user:created', () => { order.push('default-2'); }, Priority.Default);
  bus.on('user:created', () => { order.push('p50'); }, 50);
  await bus.emit('user:created', payload);
  assert.deepEqual(order, ['early', 'p50', 'default-1', 'default-2', 'late']);
});

test('handlers receive the payload and async handlers are awaited in order', async () => {
  const bus = new HookBus(captureLogger().log);
  const seen: string[] = [];
  bus.on('user:created', async (p) => {
    await new Promise((r) => setTimeout(r, 5));
    seen.push(`a:${p.username}`);
  }, 10);
  bus.on('user:created', (p) => { seen.push(`b:${p.username}`); });
  await bus.emit('user:created', payload);
  assert.deepEqual(seen, ['a:alice', 'b:alice']);
});

test('a throwing or rejecting handler is logged and the next handlers still run', async () => {
  const { log, lines } = captureLogger();
  const bus = new HookBus(log);
  const ran: string[] = [];
  bus.on('user:deleted', () => { throw new Error('sync boom'); }, 10);
  bus.on('user:deleted', async () => { ran.push('second'); throw new Error('async boom'); }, 5);
  bus.on('user:deleted', () => { ran.push('third'); });
  await assert.doesNotReject(bus.emit('user:deleted', payload));
  assert.deepEqual(ran, ['second', 'third']);
  const errors = lines.filter((l) => l.msg === 'hook handler failed');
  assert.equal(errors.length, 2);
  assert.equal(errors[0]!.event, 'user:deleted');
  assert.equal(errors[0]!.level, 'error');
  assert.match(JSON.stringify(errors[0]!.err), /sync boom/);
  assert.match(JSON.stringify(errors[1]!.err), /async boom/);
});

test('emit with no handlers resolves; has() reflects registrations', async () => {
  const bus = new HookBus(captureLogger().log);
  assert.equal(bus.has('server:stopping'), false);
  await bus.emit('server:stopping', {});
  const off = bus.on('server:stopping', () => {});
  assert.equal(bus.has('server:stopping'), true);
  off();
  assert.equal(bus.has('server:stopping'), false);
});

test('a disposer removes only its own handler and is idempotent', async () => {
  const bus = new HookBus(captureLogger().log);
  const ran: string[] = [];
  const offA = bus.on('user:created', () => { ran.push('a'); });
  bus.on('user:created', () => { ran.push('b'); });
  offA();
  offA();
  await bus.emit('user:created', payload);
  assert.deepEqual(ran, ['b']);
});

test('the same function registered twice runs twice and is disposed per registration', async () => {
  const bus = new HookBus(captureLogger().log);
  let n = 0;
  const fn = () => { n++; };
  const off1 = bus.on('user:created', fn);
  bus.on('user:created', fn);
  await bus.emit('user:created', payload);
  assert.equal(n, 2);
  off1();
  await bus.emit('user:created', payload);
  assert.equal(n, 3);
});

test('disposing or adding handlers during an emit does not disturb that emit', async () => {
  const bus = new HookBus(captureLogger().log);
  const ran: string[] = [];
  let offB: () => void = () => {};
  bus.on('user:created', () => {
    ran.push('a');
    offB();
    bus.on('user:created', () => { ran.push('late-added'); }, Priority.Late);
  }, 10);
  offB = bus.on('user:created', () => { ran.push('b'); });
  await bus.emit('user:created', payload);
  assert.deepEqual(ran, ['a', 'b']);
  ran.length = 0;
  await bus.emit('user:created', payload);
  assert.deepEqual(ran, ['a', 'late-added']);
});

test('events are independent', async () => {
  const bus = new HookBus(captureLogger().log);
  const ran: string[] = [];
  bus.on('user:created', () => { ran.push('created'); });
  bus.on('user:deleted', () => { ran.push('deleted'); });
  await bus.emit('user:deleted', payload);
  assert.deepEqual(ran, ['deleted']);
});
