// The dirty log: which pages changed since the last look. Pre-copy asks it once per round
// (QEMU's bitmap sync) and sends only what it reports; whatever the source of the log
// (explicit marks, page hashes, a recorded trace), the answer has one shape: a bitmap per
// RAM block, so the sender never needs to know which kind it is talking to.
import { MultifdError } from '../../errors.js';
import type { PageRun } from '../../wire/page-runs.js';

/** Pages dirtied since the last sync, one bitmap per RAM block (bit i of word i>>>5 = page i). */
export type DirtyBitmaps = Uint32Array[];

/**
 * A source of dirty pages. The contract every implementation keeps: a page written after
 * `start()` is reported by some later `sync()` (perhaps more than once, never by none), so a
 * round that sends each reported page's *current* content leaves the destination exact once
 * the writer stops and a last sync comes back empty.
 */
export interface DirtyLog {
  /** Starts tracking (called before round 1 reads any page). */
  start(): Promise<void>;
  /** QEMU's bitmap sync: the pages dirtied since start() or the previous sync; clears the log. */
  sync(): Promise<DirtyBitmaps>;
  /** Stops tracking and frees what it holds. */
  stop(): void;
}

/** 32-bit words in the bitmap of a block of `pageCount` pages. */
export function bitmapWords(pageCount: number): number {
  return Math.ceil(pageCount / 32);
}

/** Index of the lowest set bit of a non-zero 32-bit word. */
function lowestSetBit(word: number): number {
  return 31 - Math.clz32(word & -word);
}

/**
 * The runs of set bits among the first `pageCount` bits of `bitmap`, ascending. Zero words
 * are skipped whole and a run that spans full words costs one comparison per word, so a
 * sparse or a dense bitmap of a 16 GiB guest (4 Mi pages, 128 Ki words) is cheap either way.
 */
export function bitmapRuns(bitmap: Uint32Array, pageCount: number): PageRun[] {
  const runs: PageRun[] = [];
  // A bitmap shorter than its block reports nothing past its end.
  const pages = Math.min(pageCount, bitmap.length * 32);
  const words = bitmapWords(pages);
  let start = -1;
  for (let i = 0; i < words; i++) {
    // As int32: -1 is a full word. Bits past the last page are not pages.
    let word = bitmap[i]! | 0;
    const tail = pages - i * 32;
    if (tail < 32) word &= (1 << tail) - 1;
    if (start < 0 && word === 0) continue;
    if (start >= 0 && word === -1) continue;
    const base = i * 32;
    for (;;) {
      if (start < 0) {
        if (word === 0) break;
        const bit = lowestSetBit(word);
        start = base + bit;
        // Pretend the bits below the run are set too, so the first zero bit is its end.
        word |= (1 << bit) - 1;
      }
      if (word === -1) break;
      const end = lowestSetBit(~word);
      runs.push({ first: start, count: base + end - start });
      start = -1;
      word &= ~((1 << end) - 1);
    }
  }
  if (start >= 0) runs.push({ first: start, count: pages - start });
  return runs;
}

/** Set bits in one 32-bit word. */
function popcount(word: number): number {
  let v = word - ((word >>> 1) & 0x55555555);
  v = (v & 0x33333333) + ((v >>> 2) & 0x33333333);
  return Math.imul((v + (v >>> 4)) & 0x0f0f0f0f, 0x01010101) >>> 24;
}

/** Dirty pages in all the bitmaps. */
export function countDirty(bitmaps: readonly Uint32Array[]): number {
  let pages = 0;
  for (const bitmap of bitmaps) for (const word of bitmap) if (word !== 0) pages += popcount(word);
  return pages;
}

/**
 * The error for syncing a log that is not tracking (before `start()` or after `stop()`):
 * `ERR_DIRTY_LOG_STATE`, naming the kind of log.
 */
export function notTracking(kind: string, state: 'not started' | 'stopped'): MultifdError {
  return new MultifdError('ERR_DIRTY_LOG_STATE', `${kind}: sync() while the log is ${state}`, { context: { kind, state } });
}
