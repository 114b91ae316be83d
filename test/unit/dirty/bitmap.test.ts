import * as fc from 'fast-check';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { bitmapRuns, countDirty } from '../../../src/migration/dirty/dirty-log.js';
import type { PageRun } from '../../../src/wire/page-runs.js';

const test = suite('dirty bitmaps');

/** The obvious bit-by-bit scan bitmapRuns must agree with. */
function naiveRuns(bitmap: Uint32Array, pageCount: number): PageRun[] {
  const runs: PageRun[] = [];
  for (let page = 0; page < Math.min(pageCount, bitmap.length * 32); page++) {
    if (((bitmap[page >>> 5]! >>> (page & 31)) & 1) === 0) continue;
    const last = runs[runs.length - 1];
    if (last && last.first + last.count === page) last.count++;
    else runs.push({ first: page, count: 1 });
  }
  return runs;
}

// Empty and full words are where the fast paths are, so they come up far more often than
// uniformly random words would make them.
const word = fc.oneof(
  fc.constant(0),
  fc.constant(0xffffffff),
  fc.integer({ min: 0, max: 0xffffffff }),
  fc.integer({ min: 0, max: 31 }).map((bit) => (1 << bit) >>> 0),
  fc.integer({ min: 1, max: 31 }).map((bits) => (0xffffffff << bits) >>> 0),
  fc.integer({ min: 1, max: 31 }).map((bits) => 0xffffffff >>> bits),
);
const bitmapWithCount = fc
  .array(word, { maxLength: 40 })
  .chain((words) => fc.tuple(fc.constant(Uint32Array.from(words)), fc.integer({ min: 0, max: words.length * 32 + 40 })));

test('bitmapRuns finds the same runs as a bit-by-bit scan, whatever the words and page count', () => {
  fc.assert(
    fc.property(bitmapWithCount, ([bitmap, pageCount]) => {
      assert.equal(bitmapRuns(bitmap, pageCount), naiveRuns(bitmap, pageCount));
    }),
    { numRuns: 2000 },
  );
});

test('bitmapRuns joins a run across full words and ignores bits past the last page', () => {
  const bitmap = Uint32Array.of(0x80000000, 0xffffffff, 0x00000003, 0xffffffff);
  assert.equal(bitmapRuns(bitmap, 100), [{ first: 31, count: 35 }, { first: 96, count: 4 }]);
  assert.equal(bitmapRuns(bitmap, 0), []);
});

test('countDirty counts every set bit of every block', () => {
  fc.assert(
    fc.property(fc.array(fc.array(word, { maxLength: 20 }), { maxLength: 4 }), (blocks) => {
      const bitmaps = blocks.map((words) => Uint32Array.from(words));
      const naive = bitmaps.reduce((sum, bitmap) => sum + naiveRuns(bitmap, bitmap.length * 32).reduce((n, run) => n + run.count, 0), 0);
      assert.is(countDirty(bitmaps), naive);
    }),
  );
});

test.run();
