import { rejects } from 'node:assert/strict';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { FailureLatch } from '../../../src/migration/failure-latch.js';

const test = suite('failure latch');

test('a wait ends with the first failure latched, and later failures are ignored', async () => {
  const latch = new FailureLatch();
  const waiting = latch.race(new Promise(() => {}));
  latch.fail(new Error('first'));
  latch.fail(new Error('second'));
  await rejects(waiting, /first/);
  await rejects(latch.race(Promise.resolve(1)), /first/);
  assert.throws(() => latch.check(), /first/);
});

test('a wait that ends on its own leaves nothing registered behind (thousands of waits)', async () => {
  const latch = new FailureLatch();
  for (let i = 0; i < 5000; i++) assert.is(await latch.race(Promise.resolve(i)), i);
  await rejects(latch.race(Promise.reject(new Error('own'))), /own/);
  assert.is((latch as unknown as { waiters: Set<unknown> }).waiters.size, 0);
});

test('a wait raced after the failure latched still gets a handler: its own later rejection is not unhandled', async () => {
  const unhandled: unknown[] = [];
  const onUnhandled = (reason: unknown) => unhandled.push(reason);
  process.on('unhandledRejection', onUnhandled);
  try {
    const latch = new FailureLatch();
    latch.fail(new Error('receiver gone'));
    let rejectLater!: (error: Error) => void;
    const drain = new Promise<void>((_, reject) => (rejectLater = reject));
    await rejects(latch.race(drain), /receiver gone/);
    rejectLater(new Error('socket closed while waiting for drain'));
    await new Promise((resolve) => setTimeout(resolve, 10));
    assert.equal(unhandled, []);
  } finally {
    process.off('unhandledRejection', onUnhandled);
  }
});

test('after settle() a failure is not latched', () => {
  const latch = new FailureLatch();
  latch.settle();
  latch.fail(new Error('late'));
  assert.is(latch.error, undefined);
});

test.run();
