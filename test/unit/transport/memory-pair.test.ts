import { once } from 'node:events';
import type { Duplex } from 'node:stream';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import type { TransportError } from '../../../src/errors.js';
import { memoryPair } from '../../../src/transport/memory-pair.js';

const test = suite('in-memory connection pair');

async function readAll(stream: Duplex): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

test('what one end writes the other reads, in order, both ways', async () => {
  const [a, b] = memoryPair();
  a.write('abc');
  a.end('def');
  b.end('back');
  const [atB, atA] = await Promise.all([readAll(b), readAll(a)]);
  assert.is(atB.toString(), 'abcdef');
  assert.is(atA.toString(), 'back');
});

test('writes are copied: the writer may reuse its buffer once a write is done', async () => {
  const [a, b] = memoryPair();
  const buffer = Buffer.from('first');
  await new Promise((resolve) => a.write(buffer, resolve));
  buffer.write('XXXXX');
  a.end();
  assert.is((await readAll(b)).toString(), 'first');
});

test('write() returns false once the reader stops reading, and drain comes when it reads', async () => {
  const [a, b] = memoryPair({ highWaterMark: 16 * 1024 });
  let accepted = 0;
  while (a.write(Buffer.alloc(4096))) accepted += 4096;
  assert.ok(accepted >= 16 * 1024 && accepted <= 64 * 1024, `${accepted} bytes went in before backpressure`);
  const drained = once(a, 'drain');
  let read = 0;
  b.on('data', (chunk: Buffer) => (read += chunk.byteLength));
  await drained;
  assert.ok(read > 0);
});

test('end() on one end ends the other after its data, and the pair closes', async () => {
  const [a, b] = memoryPair();
  const closed = Promise.all([once(a, 'close'), once(b, 'close')]);
  a.end('bye');
  assert.is((await readAll(b)).toString(), 'bye');
  a.resume();
  await closed; // b ended its side too (allowHalfOpen: false, as sockets do)
});

test('destroy() reaches the other end: a plain one as end of stream, one with an error as a reset', async () => {
  const [a, b] = memoryPair();
  a.write('last words');
  a.destroy();
  assert.is((await readAll(b)).toString(), 'last words');

  const [c, d] = memoryPair();
  const failed = once(d, 'error');
  c.on('error', () => {});
  c.destroy(new Error('disk on fire'));
  const [error] = (await failed) as [TransportError];
  assert.is(error.code, 'ERR_CONNECTION_RESET');
  assert.is((error.cause as Error).message, 'disk on fire');
  assert.ok(d.destroyed);
});

test('writing towards a destroyed end fails with ERR_CLOSED, even a write waiting on backpressure', async () => {
  const [a, b] = memoryPair({ highWaterMark: 1024 });
  const failed = once(a, 'error');
  while (a.write(Buffer.alloc(1024)));
  b.destroy();
  const [error] = (await failed) as [TransportError];
  assert.is(error.code, 'ERR_CLOSED');
});

test.run();
