import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { truncate, writeFile } from 'node:fs/promises';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { openImageSource, type ImageWindow } from '../../../src/memory/image-source.js';
import { failure, useTempDir } from '../../helpers/support.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;
const test = suite('file image source');
const temp = useTempDir(test, 'source');

function tick(ms: number): Promise<'timeout'> {
  return new Promise((resolve) => setTimeout(() => resolve('timeout'), ms));
}

test('describes a file as one block named after it', async () => {
  const path = temp.path('guest.raw');
  await writeFile(path, Buffer.alloc(64 * KiB, 1));
  const source = await openImageSource(path, { pageSize: 16 * KiB });
  assert.equal(source.blocks, [{ name: 'guest.raw', byteLength: 64 * KiB, pageCount: 4 }]);
  assert.is(source.totalBytes, 64 * KiB);
  assert.is(source.totalPages, 4);
  assert.is(source.windowBytes, 64 * MiB);
  assert.is(source.ringSize, 3);
  await source.close();
});

test('streams a 40 MiB file through tiny windows, never holding more than its ring', async () => {
  const bytes = randomBytes(40 * MiB);
  const path = temp.path('forty.img');
  await writeFile(path, bytes);
  const source = await openImageSource(path, { windowBytes: 1 * MiB, ringSize: 2 });
  const seen = createHash('sha256');
  const memories = new Set<WebAssembly.Memory>();
  let nextPage = 0;
  for await (const window of source.windows()) {
    memories.add(window.memory);
    assert.is(window.blockIndex, 0);
    assert.is(window.firstPage, nextPage, 'windows come in page order');
    assert.ok(window.memory.buffer.byteLength <= 1 * MiB, 'a window memory is one window long');
    seen.update(new Uint8Array(window.memory.buffer, window.byteOffset, window.pageCount * 4096));
    nextPage += window.pageCount;
    window.release();
  }
  assert.is(nextPage, 40 * MiB / 4096);
  assert.ok(memories.size <= 2, `${memories.size} memories for a ring of 2`);
  assert.is(seen.digest('hex'), createHash('sha256').update(bytes).digest('hex'));
  await source.close();
});

test('a window is refilled only after release: holding the whole ring stalls the stream', async () => {
  const path = temp.path('held.img');
  await writeFile(path, randomBytes(4 * MiB));
  const source = await openImageSource(path, { windowBytes: 1 * MiB, ringSize: 2 });
  const windows = source.windows()[Symbol.asyncIterator]();
  const first = (await windows.next()).value as ImageWindow;
  const second = (await windows.next()).value as ImageWindow;
  const snapshot = Buffer.from(new Uint8Array(first.memory.buffer, 0, 1 * MiB));
  const third = windows.next();
  assert.is(await Promise.race([third, tick(30)]), 'timeout', 'no third window while both are held');
  assert.equal(Buffer.from(new Uint8Array(first.memory.buffer, 0, 1 * MiB)), snapshot, 'a held window is not overwritten');
  first.release();
  first.release(); // a second release is harmless
  const got = (await third).value as ImageWindow;
  assert.is(got.firstPage, 512);
  assert.is(got.memory, first.memory, 'the released memory is reused');
  second.release();
  got.release();
  await windows.return?.();
  await source.close();
});

test('a 16 GiB image streams with only the ring in memory, and stopping early is clean', async () => {
  const path = temp.path('sparse-16g.img');
  await writeFile(path, '');
  await truncate(path, 16 * GiB);
  const openFiles = (): number => (existsSync('/proc/self/fd') ? readdirSync('/proc/self/fd').length : 0);
  const filesBefore = openFiles();
  const source = await openImageSource(path, { windowBytes: 4 * MiB, ringSize: 3 });
  assert.is(source.totalPages, 4 * 1024 * 1024);
  const before = process.memoryUsage().rss;
  let windows = 0;
  for await (const window of source.windows()) {
    window.release();
    if (++windows === 8) break;
  }
  assert.ok(process.memoryUsage().rss - before < 64 * MiB, 'no more than the ring was touched');
  await source.close();
  assert.is(openFiles(), filesBefore, 'close() closed the file');
});

test('refuses a file whose size is not a positive multiple of the page size', async () => {
  for (const size of [5000, 0]) {
    const path = temp.path(`odd-${size}.img`);
    await writeFile(path, Buffer.alloc(size));
    const error = await failure(() => openImageSource(path), 'ERR_IMAGE_SIZE');
    assert.match(error.message, `got ${size} bytes`);
  }
});

test('rejects windows that are not whole 1 MiB checksum chunks, and bad ring sizes', async () => {
  const path = temp.path('opts.img');
  await writeFile(path, Buffer.alloc(4096));
  for (const options of [{ windowBytes: 64 * KiB }, { windowBytes: 0 }, { ringSize: 0 }, { ringSize: 17 }]) {
    assert.instance(await failure(() => openImageSource(path, options), 'ERR_OUT_OF_RANGE'), RangeError);
  }
});

test('close() stops an iteration in progress and refuses new ones with ERR_IMAGE_CLOSED', async () => {
  const path = temp.path('closed.img');
  await writeFile(path, randomBytes(4 * MiB));
  const source = await openImageSource(path, { windowBytes: 1 * MiB, ringSize: 2 });
  const windows = source.windows()[Symbol.asyncIterator]();
  const first = (await windows.next()).value as ImageWindow;
  first.release();
  await source.close();
  await source.close(); // twice is harmless
  for (const step of [() => windows.next(), () => source.windows()[Symbol.asyncIterator]().next(), () => source.checksum()]) {
    await failure(step, 'ERR_IMAGE_CLOSED');
  }
});

test('a file that shrinks while streaming fails with ERR_IMAGE_SIZE', async () => {
  const path = temp.path('shrinks.img');
  await writeFile(path, Buffer.alloc(3 * MiB, 7));
  const source = await openImageSource(path, { windowBytes: 1 * MiB, ringSize: 1 });
  await truncate(path, 1 * MiB);
  await failure(async () => {
    for await (const window of source.windows()) window.release();
  }, 'ERR_IMAGE_SIZE');
  await source.close();
});

test.run();
