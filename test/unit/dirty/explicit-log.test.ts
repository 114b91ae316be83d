import type { Worker } from 'node:worker_threads';
import { startWorker } from '../../../src/pool/start-worker.js';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { GuestMemory } from '../../../src/memory/guest-memory.js';
import { bitmapRuns, bitmapWords, countDirty } from '../../../src/migration/dirty/dirty-log.js';
import { ExplicitDirtyLog } from '../../../src/migration/dirty/explicit-log.js';
import { failure } from '../../helpers/support.js';

const test = suite('explicit dirty log');
const PAGE = 4096;

function memoryOf(...pageCounts: number[]): GuestMemory {
  return GuestMemory.create({ pageSize: PAGE, blocks: pageCounts.map((pages, i) => ({ name: `ram${i}`, byteLength: pages * PAGE })) });
}

/** Starts a worker entry of this folder. */
function tsWorker(entry: string, workerData: unknown): Worker {
  return startWorker(new URL(entry, import.meta.url), { workerData });
}

test('a sync reports the pages and ranges marked since the previous one, then forgets them', async () => {
  const log = new ExplicitDirtyLog(memoryOf(100, 40));
  log.markDirty(0, 5); // before start: round 1 reads it anyway
  await log.start();
  log.markDirty(0, 99);
  log.markRange(0, 30, 35);
  log.markRange(1, 0, 40);
  log.markDirty(1, 3);
  const [first, second] = await log.sync();
  assert.equal(bitmapRuns(first!, 100), [{ first: 30, count: 35 }, { first: 99, count: 1 }]);
  assert.equal(bitmapRuns(second!, 40), [{ first: 0, count: 40 }]);
  assert.equal((await log.sync()).map((bitmap) => bitmapRuns(bitmap, 100)), [[], []]);
});

test('marks outside a block are refused, and syncing an unstarted or stopped log fails', async () => {
  const log = new ExplicitDirtyLog(memoryOf(40));
  await failure(() => log.markDirty(0, 40), 'ERR_OUT_OF_RANGE');
  await failure(() => log.markDirty(1, 0), 'ERR_OUT_OF_RANGE');
  await failure(() => log.markRange(0, 30, 11), 'ERR_OUT_OF_RANGE');
  await failure(() => log.sync(), 'ERR_DIRTY_LOG_STATE');
  await log.start();
  log.stop();
  await failure(() => log.sync(), 'ERR_DIRTY_LOG_STATE');
});

test('marks made on another thread while this one syncs in a loop are each reported exactly once', async () => {
  // Bitmaps without memory behind them: the log only needs the page counts.
  const pageCounts = [1_000_000, 200_000];
  const log = new ExplicitDirtyLog({ pageCounts, buffers: pageCounts.map((pages) => new SharedArrayBuffer(4 * bitmapWords(pages))) });
  await log.start();
  const progress = new Int32Array(new SharedArrayBuffer(8)); // [phase, syncs] (see the worker)
  const worker = tsWorker('./explicit-marker-worker.ts', { shared: log.shared(), progressBuffer: progress.buffer, seed: 7 });
  try {
    const finished = new Promise<number>((resolve, reject) => {
      worker.once('message', resolve);
      worker.once('error', reject);
    });
    const union = pageCounts.map((pages) => new Uint32Array(bitmapWords(pages)));
    let reported = 0;
    let syncs = 0;
    const collect = async () => {
      const bitmaps = await log.sync();
      reported += countDirty(bitmaps);
      bitmaps.forEach((bitmap, block) => {
        const into = union[block]!;
        for (let i = 0; i < bitmap.length; i++) into[i]! |= bitmap[i]!;
      });
      syncs++;
      Atomics.store(progress, 1, syncs);
      Atomics.notify(progress, 1);
    };
    const started = Atomics.waitAsync(progress, 0, 0);
    if (started.async) await Promise.race([started.value, finished]);
    // Both threads flat out: the worker marking, this one syncing (an await of an already
    // settled sync only yields to microtasks); the worker waits at its checkpoints for our
    // syncs, so at least 8 of them fall inside the marking. Every page is marked once, so a
    // lost mark leaves a hole in the union and a mark reported twice shows in the count.
    while (Atomics.load(progress, 0) === 1) await collect();
    const marks = await finished;
    const syncsWhileMarking = syncs;
    await collect();
    assert.ok(syncsWhileMarking >= 8, `only ${syncsWhileMarking} syncs during ${marks} marks`);
    assert.is(reported, 1_200_000);
    assert.equal(union.map((bitmap, block) => bitmapRuns(bitmap, pageCounts[block]!)), [[{ first: 0, count: 1_000_000 }], [{ first: 0, count: 200_000 }]]);
  } finally {
    await worker.terminate();
  }
});

test.run();
