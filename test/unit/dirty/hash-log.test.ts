import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { GuestMemory } from '../../../src/memory/guest-memory.js';
import { bitmapRuns, bitmapWords, type DirtyBitmaps } from '../../../src/migration/dirty/dirty-log.js';
import { HASH_RANGE_BYTES, HashDirtyLog, diffPageHashes } from '../../../src/migration/dirty/hash-log.js';
import { hashPages } from '../../../src/wasm/kernels.js';
import type { PageRun } from '../../../src/wire/page-runs.js';
import { concatPages, makePages } from '../../helpers/pages.js';
import { failure } from '../../helpers/support.js';

const test = suite('hash dirty log');
const BIG_PAGE = 65536;

/** Three blocks of 64 KiB pages (none a whole number of bitmap words), full of mixed pages. */
function filledMemory(): GuestMemory {
  const memory = GuestMemory.create({
    pageSize: BIG_PAGE,
    blocks: [
      { name: 'pc.ram', byteLength: 45 * BIG_PAGE },
      { name: 'vga.vram', byteLength: 33 * BIG_PAGE },
      { name: 'rom', byteLength: BIG_PAGE },
    ],
  });
  memory.blocks.forEach((block, i) => block.bytes().set(concatPages(makePages('random', block.pageCount, BIG_PAGE, 30 + i))));
  return memory;
}

function runsOf(memory: GuestMemory, bitmaps: DirtyBitmaps): PageRun[][] {
  return bitmaps.map((bitmap, i) => bitmapRuns(bitmap, memory.blocks[i]!.pageCount));
}

test('a sync reports exactly the pages whose bytes changed, a page zeroed and restored included', async () => {
  const memory = filledMemory();
  const [ram, vram, rom] = memory.blocks;
  const log = new HashDirtyLog(memory);
  await log.start();
  assert.equal(runsOf(memory, await log.sync()), [[], [], []]);

  for (const page of [0, 31, 32, 44]) ram!.page(page)[page * 7]! ^= 1;
  const saved = vram!.page(7).slice();
  vram!.page(7).fill(0);
  rom!.page(0)[BIG_PAGE - 1]! ^= 0x80;
  assert.equal(runsOf(memory, await log.sync()), [
    [{ first: 0, count: 1 }, { first: 31, count: 2 }, { first: 44, count: 1 }],
    [{ first: 7, count: 1 }],
    [{ first: 0, count: 1 }],
  ]);

  vram!.page(7).set(saved);
  ram!.page(3).set(ram!.page(3).slice()); // rewritten with the bytes it had: nothing to send
  assert.equal(runsOf(memory, await log.sync()), [[], [{ first: 7, count: 1 }], []]);
  assert.equal(runsOf(memory, await log.sync()), [[], [], []]);
});

test('the hashes it keeps are the XXH64 of each page, 8 bytes per page', async () => {
  const memory = filledMemory();
  const log = new HashDirtyLog(memory);
  await log.start();
  memory.blocks.forEach((block, i) => {
    const expected = new Uint32Array(2 * block.pageCount);
    hashPages(block.memory, 0, BIG_PAGE, block.pageCount, expected);
    assert.equal(log.hashes[i], expected);
    assert.is(log.hashes[i]!.byteLength, 8 * block.pageCount);
  });
  log.stop();
  assert.equal(log.hashes, []);
  await failure(() => log.sync(), 'ERR_DIRTY_LOG_STATE');
});

test('diffPageHashes gives the same hashes and bits whether a block is diffed whole or in ranges', () => {
  const memory = filledMemory();
  const block = memory.blocks[0]!;
  const whole = { hashes: new Uint32Array(2 * 45), dirty: new Uint32Array(bitmapWords(45)) };
  const split = { hashes: new Uint32Array(2 * 45), dirty: new Uint32Array(bitmapWords(45)) };
  const diffAll = () => diffPageHashes(block.memory, 0, BIG_PAGE, 45, whole.hashes, whole.dirty, 0);
  const diffSplit = () =>
    [[0, 13], [13, 20], [33, 12]].reduce(
      (sum, [first, count]) => sum + diffPageHashes(block.memory, first! * BIG_PAGE, BIG_PAGE, count!, split.hashes, split.dirty, first!),
      0,
    );
  assert.is(diffAll(), 45);
  assert.is(diffSplit(), 45);
  for (const page of [12, 13, 40]) block.page(page)[0]! ^= 0xff;
  whole.dirty.fill(0);
  split.dirty.fill(0);
  assert.is(diffAll(), 3);
  assert.is(diffSplit(), 3);
  assert.equal(split, whole);
  assert.equal(bitmapRuns(whole.dirty, 45), [{ first: 12, count: 2 }, { first: 40, count: 1 }]);
});

test('a runRange hook is handed every page once, in ranges of HASH_RANGE_BYTES, at start and at each sync', async () => {
  const pageSize = 4096;
  const rangePages = HASH_RANGE_BYTES / pageSize;
  const memory = GuestMemory.create({ pageSize, blocks: [{ name: 'pc.ram', byteLength: (rangePages + 100) * pageSize }, { name: 'rom', byteLength: 8 * pageSize }] });
  const calls: number[][] = [];
  const log = new HashDirtyLog(memory, {
    runRange: async (blockIndex, firstPage, pageCount) => {
      calls.push([blockIndex, firstPage, pageCount]);
      const { memory: shared } = memory.blocks[blockIndex]!;
      diffPageHashes(shared, firstPage * pageSize, pageSize, pageCount, log.hashes[blockIndex]!, log.dirty[blockIndex]!, firstPage);
    },
  });
  await log.start();
  const ranges = [[0, 0, rangePages], [0, rangePages, 100], [1, 0, 8]];
  assert.equal(calls, ranges);
  memory.blocks[0]!.page(rangePages + 99)[5] = 1;
  assert.equal(runsOf(memory, await log.sync()), [[{ first: rangePages + 99, count: 1 }], []]);
  assert.equal(calls, [...ranges, ...ranges]);
  assert.ok(log.hashes[0]!.buffer instanceof SharedArrayBuffer && log.dirty[0]!.buffer instanceof SharedArrayBuffer);
});

test.run();
