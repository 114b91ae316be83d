// The queue every stream reader parses from: bytes come out in order whatever the chunking,
// and small chunks left waiting are packed together rather than kept one object each.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { ChunkQueue } from '../../../src/wire/chunk-queue.js';

const test = suite('chunk queue');

/** A deterministic generator (xorshift32), so a failure replays. */
function random(seed: number): (below: number) => number {
  let x = seed >>> 0 || 1;
  return (below) => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) % below;
  };
}

test('bytes come out in the order they went in, for any mix of chunk and read sizes', () => {
  for (let seed = 1; seed <= 40; seed++) {
    const next = random(seed);
    const queue = new ChunkQueue();
    const sent: Uint8Array[] = [];
    const read: Uint8Array[] = [];
    let sentBytes = 0;
    let readBytes = 0;
    let value = 0;
    for (let step = 0; step < 400; step++) {
      if (next(3) > 0) {
        // Mostly small chunks (packed into tails), some large ones (kept by reference).
        const size = next(4) === 0 ? 1024 + next(5000) : next(300);
        const chunk = Uint8Array.from({ length: size }, () => value++ & 0xff);
        sent.push(chunk);
        sentBytes += size;
        queue.push(chunk);
      } else {
        const target = new Uint8Array(next(3000));
        const filled = queue.fill(target, 0, target.byteLength);
        read.push(target.subarray(0, filled));
        readBytes += filled;
      }
      assert.is(queue.length, sentBytes - readBytes, `seed ${seed}, step ${step}`);
    }
    const rest = new Uint8Array(queue.length);
    assert.is(queue.fill(rest, 0, rest.byteLength), rest.byteLength);
    read.push(rest);
    assert.ok(Buffer.concat(read).equals(Buffer.concat(sent)), `seed ${seed}`);
  }
});

test('a partly read tail keeps its unread bytes in place while more small chunks join it', () => {
  const queue = new ChunkQueue();
  queue.push(Uint8Array.of(1, 2, 3));
  const first = new Uint8Array(2);
  queue.fill(first, 0, 2);
  for (let i = 4; i < 200; i++) queue.push(Uint8Array.of(i));
  const rest = new Uint8Array(queue.length);
  queue.fill(rest, 0, rest.byteLength);
  assert.equal([...first, ...rest], Array.from({ length: 199 }, (_, i) => i + 1));
});

test('a hundred thousand one-byte chunks left waiting are held in a few buffers, not one object each', () => {
  const queue = new ChunkQueue();
  for (let i = 0; i < 100_000; i++) queue.push(Uint8Array.of(i & 0xff));
  assert.is(queue.length, 100_000);
  // Internal, on purpose: the number of entries is the memory cost this test is about.
  const entries = (queue as unknown as { chunks: Uint8Array[] }).chunks.length;
  assert.ok(entries <= Math.ceil(100_000 / (16 * 1024)) + 1, `${entries} entries`);
});

test.run();
