// Worker entry for explicit-log.test.ts: marks every page of every block exactly once, as
// single pages and ranges in a shuffled order, while the main thread syncs in a loop.
// `progress[0]` goes 0 → 1 when marking starts and → 2 when it is done; `progress[1]` counts
// the main thread's syncs. At each of CHECKPOINTS points the worker waits until the main thread
// has synced that many times, so syncs surely land while marks are being made, however the
// two threads are scheduled; between checkpoints both run flat out.
import { parentPort, workerData } from 'node:worker_threads';
import { attachExplicitDirtyLog, type SharedDirtyBitmaps } from '../../../src/migration/dirty/explicit-log.js';
import { seededRandom } from '../../helpers/pages.js';

const { shared, progressBuffer, seed } = workerData as { shared: SharedDirtyBitmaps; progressBuffer: SharedArrayBuffer; seed: number };
const log = attachExplicitDirtyLog(shared);
const progress = new Int32Array(progressBuffer);
const random = seededRandom(seed);

// Cut every block into ranges of 1 to 40 pages, then shuffle them (Fisher–Yates).
const ranges: { block: number; first: number; count: number }[] = [];
shared.pageCounts.forEach((pageCount, block) => {
  for (let first = 0; first < pageCount; ) {
    const count = Math.min(pageCount - first, random() < 0.5 ? 1 : 1 + Math.floor(random() * 40));
    ranges.push({ block, first, count });
    first += count;
  }
});
for (let i = ranges.length - 1; i > 0; i--) {
  const j = Math.floor(random() * (i + 1));
  [ranges[i], ranges[j]] = [ranges[j]!, ranges[i]!];
}

const CHECKPOINTS = 8;
const step = Math.ceil(ranges.length / (CHECKPOINTS + 1));
Atomics.store(progress, 0, 1);
Atomics.notify(progress, 0);
ranges.forEach(({ block, first, count }, i) => {
  if (i > 0 && i % step === 0 && i / step <= CHECKPOINTS) {
    for (let syncs = Atomics.load(progress, 1); syncs < i / step; syncs = Atomics.load(progress, 1)) Atomics.wait(progress, 1, syncs);
  }
  if (count === 1) log.markDirty(block, first);
  else log.markRange(block, first, count);
});
Atomics.store(progress, 0, 2);
parentPort!.postMessage(ranges.length);
