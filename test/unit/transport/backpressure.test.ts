import { rejects } from 'node:assert/strict';
import { Duplex, Writable } from 'node:stream';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { drained, ended } from '../../../src/transport/backpressure.js';

const test = suite('backpressure');

/** A writable that takes one byte at a time and holds every write until `flush()`. */
function heldWritable(): { stream: Writable; flush(): void } {
  const held: Array<() => void> = [];
  const stream = new Writable({ highWaterMark: 1, write: (_chunk, _encoding, callback) => void held.push(() => callback()) });
  return { stream, flush: () => held.splice(0).forEach((done) => done()) };
}

const listeners = (stream: Writable) => ['drain', 'error', 'close'].map((event) => stream.listenerCount(event));

test('writers waiting on one full stream share one drain wait: one listener each for drain, error and close', async () => {
  const { stream, flush } = heldWritable();
  const before = listeners(stream);
  stream.write(Buffer.alloc(16));
  const waits = Array.from({ length: 40 }, () => drained(stream));
  assert.ok(waits.every((wait) => wait === waits[0]), 'one promise for every waiter');
  assert.equal(listeners(stream), before.map((n) => n + 1));
  flush();
  await Promise.all(waits);
  assert.equal(listeners(stream), before, 'the listeners went with the wait');
  stream.write(Buffer.alloc(16));
  const next = drained(stream);
  assert.is.not(next, waits[0], 'the next wait is a new one');
  flush();
  await next;
});

test('a shared drain wait rejects every waiter with ERR_CLOSED when the stream is destroyed', async () => {
  const { stream } = heldWritable();
  stream.on('error', () => {});
  stream.write(Buffer.alloc(16));
  const waits = Array.from({ length: 12 }, () => drained(stream));
  stream.destroy(new Error('connection reset'));
  for (const wait of waits) await rejects(wait, (error: Error & { code?: string }) => error.code === 'ERR_CLOSED' && (error.cause as Error).message === 'connection reset');
  await rejects(drained(stream), (error: Error & { code?: string }) => error.code === 'ERR_CLOSED');
});

test('ended() ends the stream and resolves only once every write callback has run', async () => {
  const { stream, flush } = heldWritable();
  stream.write(Buffer.alloc(8));
  stream.write(Buffer.alloc(8));
  let done = false;
  const ending = ended(stream).then(() => (done = true));
  await new Promise(setImmediate);
  assert.ok(stream.writableEnded, 'ended() ended the stream');
  assert.not.ok(done, 'resolved while writes were still held');
  flush();
  await new Promise(setImmediate);
  flush(); // the second write, handed over once the first completed
  await ending;
  assert.ok(stream.writableFinished);
  await ended(stream); // finished already: resolves at once
});

test('ended() rejects with ERR_CLOSED when the stream fails before finishing (a Duplex whose final write fails)', async () => {
  const channel = new Duplex({
    write: (_chunk, _encoding, callback) => callback(),
    final: (callback) => callback(new Error('disk full')),
    read() {},
  });
  channel.write('record');
  await rejects(ended(channel), (error: Error & { code?: string }) => error.code === 'ERR_CLOSED' && (error.cause as Error).message === 'disk full');
  await rejects(ended(channel), (error: Error & { code?: string }) => error.code === 'ERR_CLOSED', 'a destroyed stream fails at once');
});

test.run();
