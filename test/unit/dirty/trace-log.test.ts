import { writeFile } from 'node:fs/promises';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { GuestMemory } from '../../../src/memory/guest-memory.js';
import { bitmapRuns } from '../../../src/migration/dirty/dirty-log.js';
import { TraceDirtyLog, traceFromSnapshots, type Trace } from '../../../src/migration/dirty/trace-log.js';
import { concatPages, makePages } from '../../helpers/pages.js';
import { failure, useTempDir } from '../../helpers/support.js';

const test = suite('trace dirty log');
const temp = useTempDir(test, 'trace');
const PAGE = 4096;
// 3 MiB and two pages: three 1 MiB windows and a short last one.
const PAGES = 3 * 256 + 2;
const LAST = PAGES - 1;

/** Snapshot 0 plus two successors, each rewriting some pages (one of them to all zeros). */
function snapshots(): Uint8Array[] {
  const s0 = concatPages(makePages('mixed', PAGES, PAGE, 5));
  const s1 = s0.slice();
  const fresh = concatPages(makePages('random', PAGES, PAGE, 6));
  const rewrite = (into: Uint8Array, page: number) => into.set(fresh.subarray(page * PAGE, (page + 1) * PAGE), page * PAGE);
  // Pages on both sides of the first window boundary (255 | 256), and the last page.
  for (const page of [0, 255, 256, 257, 600, LAST]) rewrite(s1, page);
  s1.fill(0, 601 * PAGE, 602 * PAGE);
  const s2 = s1.slice();
  for (const page of [1, 256, LAST - 1, LAST]) s2[page * PAGE + 17]! ^= 0x5a;
  return [s0, s1, s2];
}

async function snapshotFiles(images: Uint8Array[]): Promise<string[]> {
  const paths = images.map((_, i) => temp.path(`snapshot-${i}.raw`));
  await Promise.all(images.map((image, i) => writeFile(paths[i]!, image)));
  return paths;
}

function pagesOf(image: Uint8Array, pages: number[]): Uint8Array {
  return concatPages(pages.map((page) => image.subarray(page * PAGE, (page + 1) * PAGE)));
}

test('snapshots become steps of the pages that differ, with the later bytes, across window boundaries', async () => {
  const images = snapshots();
  const trace = await traceFromSnapshots(await snapshotFiles(images), PAGE, { windowBytes: 1 << 20 });
  assert.is(trace.pageSize, PAGE);
  assert.is(trace.steps.length, 2);
  const [first, second] = trace.steps;
  assert.equal(first!.runs, [{ first: 0, count: 1 }, { first: 255, count: 3 }, { first: 600, count: 2 }, { first: LAST, count: 1 }]);
  assert.equal(first!.bytes, pagesOf(images[1]!, [0, 255, 256, 257, 600, 601, LAST]));
  assert.equal(second!.runs, [{ first: 1, count: 1 }, { first: 256, count: 1 }, { first: LAST - 1, count: 2 }]);
  assert.equal(second!.bytes, pagesOf(images[2]!, [1, 256, LAST - 1, LAST]));
});

test('replaying the trace onto the first snapshot reports each step at its sync and leaves the last snapshot', async () => {
  const images = snapshots();
  const trace = await traceFromSnapshots(await snapshotFiles(images), PAGE);
  const memory = GuestMemory.create({ pageSize: PAGE, byteLength: PAGES * PAGE });
  memory.blocks[0]!.bytes().set(images[0]!);
  const log = new TraceDirtyLog(memory, trace);
  await log.start();
  assert.is(log.remainingSteps, 2);
  for (const step of trace.steps) {
    assert.ok(log.applyNext());
    const [bitmap] = await log.sync();
    assert.equal(bitmapRuns(bitmap!, PAGES), step.runs);
  }
  assert.not.ok(log.applyNext());
  assert.is(log.remainingSteps, 0);
  assert.equal(bitmapRuns((await log.sync())[0]!, PAGES), []);
  assert.equal(memory.blocks[0]!.bytes(), images[2]);
  log.stop();
  await failure(() => log.sync(), 'ERR_DIRTY_LOG_STATE');
});

test('snapshots of different sizes, and steps that do not fit the memory, are refused', async () => {
  const paths = await snapshotFiles([new Uint8Array(8 * PAGE), new Uint8Array(9 * PAGE)]);
  await failure(() => traceFromSnapshots(paths, PAGE), 'ERR_TRACE_SNAPSHOT');
  const memory = GuestMemory.create({ pageSize: PAGE, byteLength: 8 * PAGE });
  const step = (blockIndex: number, first: number, count: number, pages = count) => ({ blockIndex, runs: [{ first, count }], bytes: new Uint8Array(pages * PAGE) });
  const bad: Trace[] = [
    { pageSize: 2 * PAGE, steps: [] },
    { pageSize: PAGE, steps: [step(1, 0, 1)] },
    { pageSize: PAGE, steps: [step(0, 7, 2)] },
    { pageSize: PAGE, steps: [step(0, 0, 2, 1)] },
  ];
  for (const trace of bad) await failure(() => new TraceDirtyLog(memory, trace), 'ERR_OUT_OF_RANGE');
});

test.run();
