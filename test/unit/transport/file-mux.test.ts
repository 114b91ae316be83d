import { createHash, randomBytes } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import type { Duplex } from 'node:stream';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { seededRandom } from '../../helpers/pages.js';
import type { TransportError } from '../../../src/errors.js';
import { writeWithBackpressure } from '../../../src/transport/backpressure.js';
import { FileMuxReader } from '../../../src/transport/file-mux-reader.js';
import { FileMuxWriter, MAX_RECORD_BYTES, RECORD_HEADER_BYTES } from '../../../src/transport/file-mux-writer.js';
import { failure, useTempDir } from '../../helpers/support.js';

const KiB = 1024;
const test = suite('file transport (channels multiplexed into one file)');
const temp = useTempDir(test, 'filemux');

interface ChannelResult {
  id: number;
  digest: string;
  bytes: number;
}

/** Reads a migration file back: each channel's sha256, in the order the channels appeared. */
function readBack(path: string, onChunk?: (id: number) => Promise<void>): Promise<ChannelResult[]> {
  const reader = new FileMuxReader(path, { highWaterMark: 64 * KiB });
  const results: Promise<ChannelResult>[] = [];
  reader.on('channel', (channel, id) => {
    results.push(
      (async () => {
        const hash = createHash('sha256');
        let bytes = 0;
        for await (const chunk of channel) {
          hash.update(chunk as Buffer);
          bytes += (chunk as Buffer).byteLength;
          await onChunk?.(id);
        }
        return { id, digest: hash.digest('hex'), bytes };
      })(),
    );
  });
  return reader.done.then(() => Promise.all(results));
}

/** Expects every channel of a broken file, and `done`, to fail with ERR_FILE_STREAM. */
async function expectBroken(path: string, message: string): Promise<void> {
  const reader = new FileMuxReader(path);
  const channelErrors: Promise<unknown>[] = [];
  reader.on('channel', (channel: Duplex) => {
    channelErrors.push(new Promise((resolve) => channel.on('error', resolve)));
    channel.resume();
  });
  assert.match((await failure(() => reader.done, 'ERR_FILE_STREAM')).message, message);
  assert.ok(channelErrors.length > 0);
  for (const error of await Promise.all(channelErrors)) assert.is((error as TransportError).code, 'ERR_FILE_STREAM');
}

test('three interleaved channels round-trip byte for byte, with backpressure from the file', async () => {
  const path = temp.path('three.mig');
  const writer = new FileMuxWriter(path);
  const channels = [writer.openChannel(), writer.openChannel(), writer.openChannel()];
  const hashes = channels.map(() => createHash('sha256'));
  const totals = [0, 0, 0];
  const next = seededRandom(7);
  let waits = 0;
  // Three writers at once, each with its own rhythm of chunk sizes; one chunk is larger than
  // a record may be, so the writer has to cut it.
  await Promise.all(
    channels.map(async (channel, id) => {
      for (let i = 0; i < 40; i++) {
        const size = id === 1 && i === 20 ? MAX_RECORD_BYTES + 5 : 1 + Math.floor(next() * 96 * KiB);
        const bytes = randomBytes(size);
        hashes[id]!.update(bytes);
        totals[id]! += size;
        const wait = writeWithBackpressure(channel, bytes);
        if (wait) {
          waits++;
          await wait;
        }
        if (i % 8 === 0) await new Promise(setImmediate);
      }
    }),
  );
  await writer.close();
  assert.ok(waits > 0, 'the channels had to wait for the file');

  const back = await readBack(path);
  assert.equal(back.map((r) => r.id), [0, 1, 2]);
  back.forEach((r) => {
    assert.is(r.bytes, totals[r.id], `channel ${r.id} length`);
    assert.is(r.digest, hashes[r.id]!.digest('hex'), `channel ${r.id} sha256`);
  });
});

test('a slow channel pauses the reader without losing or reordering bytes', async () => {
  const path = temp.path('slow.mig');
  const writer = new FileMuxWriter(path);
  const [fast, slow] = [writer.openChannel(), writer.openChannel()];
  const expected = [createHash('sha256'), createHash('sha256')];
  for (let i = 0; i < 64; i++) {
    const a = randomBytes(32 * KiB);
    const b = randomBytes(16 * KiB);
    expected[0]!.update(a);
    expected[1]!.update(b);
    await writeWithBackpressure(fast, a);
    await writeWithBackpressure(slow, b);
  }
  await writer.close();
  const back = await readBack(path, async (id) => {
    if (id === 1) await new Promise((resolve) => setTimeout(resolve, 1));
  });
  assert.equal(back.map((r) => r.digest), expected.map((h) => h.digest('hex')));
});

test('channels appear in the order their first record does, and the file holds exact records', async () => {
  const path = temp.path('order.mig');
  const writer = new FileMuxWriter(path);
  const [zero, one, two] = [writer.openChannel(), writer.openChannel(), writer.openChannel()];
  await new Promise<void>((resolve) => two!.write('second', () => resolve()));
  await new Promise<void>((resolve) => zero!.write('first!', () => resolve()));
  one!.end('third');
  await writer.close();
  const file = readFileSync(path);
  assert.is(file.length, 3 * RECORD_HEADER_BYTES + 6 + 6 + 5);
  assert.equal([...file.subarray(0, RECORD_HEADER_BYTES)], [0, 2, 0, 0, 0, 6], 'u16 channel id, u32 length, big-endian');
  assert.equal((await readBack(path)).map((r) => [r.id, r.bytes]), [
    [2, 6],
    [0, 6],
    [1, 5],
  ]);
});

test('a truncated record fails every channel with ERR_FILE_STREAM', async () => {
  const path = temp.path('truncated.mig');
  const writer = new FileMuxWriter(path);
  const [a, b] = [writer.openChannel(), writer.openChannel()];
  a!.write(Buffer.alloc(1000, 1));
  b!.write(Buffer.alloc(3000, 2));
  await writer.close();
  await truncate(path, statSync(path).size - 10);
  await expectBroken(path, 'truncated: payload: expected 3000 bytes, got 2990');
  await truncate(path, RECORD_HEADER_BYTES + 1000 + 4);
  await expectBroken(path, 'truncated: header: expected 6 bytes, got 4');
});

test('a record length of 0 or past 16 MiB fails every channel with ERR_FILE_STREAM', async () => {
  const path = temp.path('bad-length.mig');
  const good = Buffer.from([0, 0, 0, 0, 0, 2, 0xaa, 0xbb]);
  for (const length of [0, MAX_RECORD_BYTES + 1, 0xffffffff]) {
    const bad = Buffer.from([0, 1, 0, 0, 0, 0]);
    bad.writeUInt32BE(length, 2);
    await writeFile(path, Buffer.concat([good, bad, Buffer.alloc(64)]));
    await expectBroken(path, `length: expected 1 to ${MAX_RECORD_BYTES}, got ${length}`);
  }
});

test('an empty file has no channels and a missing one fails done with ERR_FILE_STREAM', async () => {
  const path = temp.path('empty.mig');
  await writeFile(path, '');
  assert.equal(await readBack(path), []);
  const missing = new FileMuxReader(temp.path('missing.mig'));
  const emitted: TransportError[] = [];
  missing.on('error', (error) => emitted.push(error));
  const error = await failure(() => missing.done, 'ERR_FILE_STREAM');
  assert.is((error.cause as NodeJS.ErrnoException).code, 'ENOENT');
  assert.is(emitted[0], error, "the reader's 'error' event carries the same error");
});

test('a channel read back from a file drops what is written to it (there is no sender to answer)', async () => {
  const path = temp.path('replies.mig');
  const writer = new FileMuxWriter(path);
  writer.openChannel().end('x');
  await writer.close();
  const reader = new FileMuxReader(path);
  const channel = await new Promise<Duplex>((resolve) => reader.once('channel', resolve));
  let failed = false;
  channel.on('error', () => (failed = true));
  await new Promise<void>((resolve, reject) => channel.write('reply', (error) => (error ? reject(error) : resolve())));
  const read: Buffer[] = [];
  for await (const chunk of channel) read.push(chunk as Buffer);
  assert.is(Buffer.concat(read).toString(), 'x');
  assert.not.ok(failed);
  await reader.close();
});

test('a file that cannot be written fails its channels and close() with ERR_FILE_STREAM', async () => {
  const writer = new FileMuxWriter(temp.path('no-such-dir/x.mig'));
  const channel = writer.openChannel();
  const channelError = new Promise<TransportError>((resolve) => channel.on('error', resolve));
  channel.write('lost');
  assert.is((await channelError).code, 'ERR_FILE_STREAM');
  const error = await failure(() => writer.close(), 'ERR_FILE_STREAM');
  assert.is((error.cause as NodeJS.ErrnoException).code, 'ENOENT');
});

test('close() ends open channels; writing or opening afterwards fails', async () => {
  const path = temp.path('closed.mig');
  const writer = new FileMuxWriter(path);
  const channel = writer.openChannel();
  const closed = new Promise((resolve) => channel.on('close', resolve));
  channel.write(Buffer.alloc(10, 3));
  await writer.close();
  await closed;
  assert.is(statSync(path).size, RECORD_HEADER_BYTES + 10);
  assert.throws(() => writer.openChannel(), /after close/);
  assert.is(writer.channelCount, 1);
});

test.run();
