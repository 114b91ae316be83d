import { existsSync, readFileSync, statSync } from 'node:fs';
import { writeFile } from 'node:fs/promises';
import { Worker } from 'node:worker_threads';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { createImageSink } from '../../../src/memory/image-sink.js';
import { failure, useTempDir } from '../../helpers/support.js';

const KiB = 1024;
const test = suite('file image sink');
const temp = useTempDir(test, 'sink');

test('writes pages into a sparse .partial file and takes the final name only on complete()', async () => {
  const path = temp.path('done.img');
  const sink = await createImageSink(path, { byteLength: 64 * KiB });
  assert.is(sink.partialPath, path + '.partial');
  assert.is(statSync(sink.partialPath).size, 64 * KiB, 'created at full size');
  assert.not.ok(existsSync(path), 'no file carries the final name yet');
  sink.writePages(3, Buffer.alloc(8 * KiB, 0xab));
  sink.writePages(15, Buffer.alloc(4 * KiB, 0xcd));
  await sink.complete();
  assert.not.ok(existsSync(sink.partialPath));
  const image = readFileSync(path);
  assert.is(image.length, 64 * KiB);
  assert.ok(image.subarray(0, 12 * KiB).every((b) => b === 0), 'untouched pages read as zero');
  assert.ok(image.subarray(12 * KiB, 20 * KiB).every((b) => b === 0xab));
  assert.ok(image.subarray(60 * KiB).every((b) => b === 0xcd));
});

test('abort() removes the .partial file and never creates the final name', async () => {
  const path = temp.path('aborted.img');
  const sink = await createImageSink(path, { byteLength: 16 * KiB });
  sink.writePages(0, Buffer.alloc(4 * KiB, 1));
  await sink.abort();
  await sink.abort(); // twice is harmless
  assert.not.ok(existsSync(sink.partialPath));
  assert.not.ok(existsSync(path));
  await failure(() => sink.writePages(0, Buffer.alloc(4 * KiB)), 'ERR_IMAGE_CLOSED');
  await failure(() => sink.checksum(), 'ERR_IMAGE_CLOSED');
});

test('complete() replaces an older image; abort() after complete() keeps the new one', async () => {
  const path = temp.path('replaced.img');
  await writeFile(path, 'old');
  const sink = await createImageSink(path, { byteLength: 4 * KiB });
  assert.equal(readFileSync(path, 'utf8'), 'old', 'creating a sink leaves the old image alone');
  sink.writePages(0, Buffer.alloc(4 * KiB, 2));
  await sink.complete();
  await sink.abort();
  assert.is(readFileSync(path).length, 4 * KiB);
  await failure(() => sink.complete(), 'ERR_IMAGE_CLOSED');
});

test('worker threads of the same process write pages through its fd', async () => {
  const path = temp.path('from-worker.img');
  const sink = await createImageSink(path, { byteLength: 16 * KiB });
  const worker = new Worker(
    `const { writeSync } = require('node:fs');
const { parentPort, workerData } = require('node:worker_threads');
writeSync(workerData.fd, Buffer.alloc(4096, 0x77), 0, 4096, 2 * 4096);
parentPort.postMessage('done');`,
    { eval: true, workerData: { fd: sink.fd } },
  );
  await new Promise((resolve, reject) => worker.once('message', resolve).once('error', reject));
  await worker.terminate();
  await sink.complete();
  const image = readFileSync(path);
  assert.ok(image.subarray(8 * KiB, 12 * KiB).every((b) => b === 0x77));
  assert.ok(image.subarray(0, 8 * KiB).every((b) => b === 0));
});

test('rejects writes outside the image or of partial pages, and sizes that are not whole pages', async () => {
  const sink = await createImageSink(temp.path('bounds.img'), { byteLength: 16 * KiB });
  assert.throws(() => sink.writePages(4, Buffer.alloc(4 * KiB)), RangeError);
  assert.throws(() => sink.writePages(3, Buffer.alloc(8 * KiB)), RangeError);
  assert.throws(() => sink.writePages(-1, Buffer.alloc(4 * KiB)), RangeError);
  assert.throws(() => sink.writePages(0, Buffer.alloc(100)), RangeError);
  await sink.abort();
  for (const byteLength of [0, 5000]) {
    await failure(() => createImageSink(temp.path(`bad-${byteLength}.img`), { byteLength }), 'ERR_IMAGE_SIZE');
    assert.not.ok(existsSync(temp.path(`bad-${byteLength}.img.partial`)));
  }
});

test('refuses a path that exists and is not a regular file, so /dev/null or a folder is never replaced', async () => {
  for (const path of ['/dev/null', temp.path('')]) {
    await failure(() => createImageSink(path, { pageSize: 4096, byteLength: 4096 }), 'ERR_IMAGE_PATH');
    assert.not.ok(existsSync(`${path}.partial`));
  }
});

test.run();
