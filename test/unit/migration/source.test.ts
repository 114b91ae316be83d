import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { openImageSource, type ImageSource } from '../../../src/memory/image-source.js';
import { FailureLatch } from '../../../src/migration/failure-latch.js';
import { forEachWindow, type SourceWindow } from '../../../src/migration/source.js';
import { countingSource } from '../../helpers/sources.js';
import { until, useTempDir } from '../../helpers/support.js';

const MiB = 1 << 20;
const test = suite('window walk');
const temp = useTempDir(test, 'walk');

/** A 4 MiB image source of 1 MiB windows with a ring of one: a held window stalls the next read. */
async function tinyRing(): Promise<ImageSource> {
  const path = temp.path('walk.img');
  await writeFile(path, randomBytes(4 * MiB));
  return openImageSource(path, { windowBytes: MiB, ringSize: 1 });
}

test('visits every window in order and closes nothing early', async () => {
  const source = await tinyRing();
  const pages: number[] = [];
  await forEachWindow(source, new FailureLatch(), async (window) => {
    pages.push(window.firstPage);
    window.release();
  });
  assert.equal(pages, [0, 256, 512, 768]);
  await source.close();
});

test('a failure latched while the next window waits for ring memory ends the walk; the iteration closes once the held window is released', async () => {
  const source = await tinyRing();
  const counted = countingSource(source);
  const latch = new FailureLatch();
  let held: SourceWindow | undefined;
  const walk = forEachWindow(counted, latch, async (window) => {
    held = window; // a send task still reading it
    setImmediate(() => latch.fail(new Error('receiver gone')));
  });
  const outcome = walk.then(
    () => 'resolved',
    (error: Error) => error.message,
  );
  await until(() => latch.error !== undefined);
  assert.ok(latch.error, 'the failure is latched');
  assert.is(counted.closed, 0, 'the read waiting for ring memory cannot end before the window comes back');
  held!.release(); // the task settled, failed
  assert.is(await outcome, 'receiver gone');
  assert.is(counted.closed, counted.opened, 'the iteration was closed');
  await source.close();
});

test('an error thrown by the visitor is latched and the iteration closed', async () => {
  const source = await tinyRing();
  const counted = countingSource(source);
  const latch = new FailureLatch();
  const outcome = await forEachWindow(counted, latch, async (window) => {
    window.release();
    throw new Error('encode failed');
  }).catch((error: Error) => error.message);
  assert.is(outcome, 'encode failed');
  assert.is(latch.error?.message, 'encode failed');
  assert.is(counted.closed, counted.opened);
  await source.close();
});

test.run();
