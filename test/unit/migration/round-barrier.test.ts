import { rejects } from 'node:assert/strict';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { FailureLatch } from '../../../src/migration/failure-latch.js';
import { RoundBarrier } from '../../../src/migration/round-barrier.js';
import type { CodedError } from '../../helpers/support.js';

const test = suite('round barrier');

/** A barrier whose channels have synced once `synced.value` is true. */
function barrier() {
  const synced = { value: false };
  const failure = new FailureLatch();
  return { synced, failure, barrier: new RoundBarrier<string>(() => synced.value, failure) };
}

test('a packet resent on another channel is one entry: it owes both channels an ack until applied, then neither more', () => {
  const { barrier: round } = barrier();
  const first = round.admit(7, 'channel 0');
  assert.is(first.duplicate, false);
  const again = round.admit(7, 'channel 1');
  assert.is(again.duplicate, true);
  assert.is(again.entry, first.entry);
  assert.equal(first.entry.ackTo, ['channel 0', 'channel 1']);
  round.applied(first.entry);
  const late = round.admit(7, 'channel 2');
  assert.is(late.duplicate, true);
  assert.ok(late.entry.applied);
  assert.equal(late.entry.ackTo, ['channel 0', 'channel 1'], 'an applied packet is acknowledged at once, not remembered');
});

test('a round ends only once the channels synced, and then moves on with its packets forgotten', async () => {
  const { synced, barrier: round } = barrier();
  round.applied(round.admit(0, 'channel 0').entry);
  let ended = false;
  const end = round.end(1, 1, () => 0).then(() => (ended = true));
  await new Promise((resolve) => setImmediate(resolve));
  assert.is(ended, false, 'still waiting for the SYNCs');
  synced.value = true;
  round.check();
  await end;
  assert.is(round.round, 2);
  assert.is(round.admit(0, 'channel 0').duplicate, false, 'sequence numbers of the last round are forgotten');
});

test('a round-end whose count differs from the packets applied fails with ERR_ROUND_PACKETS naming the lost channels', async () => {
  const { synced, barrier: round } = barrier();
  synced.value = true;
  round.applied(round.admit(0, 'channel 0').entry);
  const error = await round.end(1, 2, () => 1).then(() => undefined, (e: CodedError) => e);
  assert.is(error?.code, 'ERR_ROUND_PACKETS');
  assert.match(error!.message, '1 data channel(s) lost');
});

test("another round's end fails with ERR_CONTROL_FIELD, and a failure ends the wait", async () => {
  const { failure, barrier: round } = barrier();
  await rejects(round.end(2, 0, () => 0), (e: CodedError) => e.code === 'ERR_CONTROL_FIELD');
  const waiting = round.end(1, 0, () => 0);
  failure.fail(new Error('control connection closed'));
  await rejects(waiting, /control connection closed/);
});

test.run();
