// Explicit dirty marking: the writer says which pages it wrote, as KVM's dirty log does for
// a real guest. The bitmaps live on SharedArrayBuffers so a writer on any thread marks with
// one Atomics.or, and the sync takes each word with Atomics.exchange: a mark lands either
// in the word the sync takes or in the zero it leaves behind, never in between.
import type { GuestMemory } from '../../memory/guest-memory.js';
import { outOfRange } from '../../errors.js';
import { bitmapWords, notTracking, type DirtyBitmaps, type DirtyLog } from './dirty-log.js';

/**
 * An {@link ExplicitDirtyLog}'s bitmaps as plain data, for `workerData` or `postMessage`:
 * the buffers are shared, not copied, so marks made through {@link attachExplicitDirtyLog}
 * land in the original log.
 */
export interface SharedDirtyBitmaps {
  /** Pages per block, in block order. */
  pageCounts: number[];
  /** One bitmap per block, `ceil(pageCount / 32)` int32 words. */
  buffers: SharedArrayBuffer[];
}

/**
 * A dirty log the writer fills itself: {@link markDirty} or {@link markRange} for every page
 * it writes, from any thread (see {@link shared}).
 *
 * The writer's rule: mark a page **after** writing it. A mark made before the write could be
 * taken by a sync whose round then reads the page's old bytes; the write would then be
 * reported by no later sync and the destination would keep the old page. Marked after, the
 * write is either seen by the round that takes the mark or reported again by the next sync.
 */
export class ExplicitDirtyLog implements DirtyLog {
  private readonly pageCounts: number[];
  private readonly words: Int32Array[];
  private state: 'not started' | 'tracking' | 'stopped' = 'not started';

  /**
   * A log with an empty bitmap per block of `memory`, or, given {@link SharedDirtyBitmaps},
   * a view of another log's bitmaps (prefer {@link attachExplicitDirtyLog} for that).
   * @throws RangeError (`ERR_OUT_OF_RANGE`) when a shared bitmap is too short for its block.
   */
  constructor(source: GuestMemory | SharedDirtyBitmaps) {
    if ('buffers' in source) {
      source.pageCounts.forEach((pages, i) => {
        const bytes = source.buffers[i]?.byteLength ?? 0;
        if (bytes < 4 * bitmapWords(pages)) throw outOfRange(`buffers[${i}].byteLength`, `at least ${4 * bitmapWords(pages)} for ${pages} pages`, bytes);
      });
      this.pageCounts = [...source.pageCounts];
      this.words = source.pageCounts.map((_, i) => new Int32Array(source.buffers[i]!));
    } else {
      this.pageCounts = source.blocks.map((block) => block.pageCount);
      this.words = this.pageCounts.map((pages) => new Int32Array(new SharedArrayBuffer(4 * bitmapWords(pages))));
    }
  }

  /** The bitmaps as plain data for another thread; see {@link SharedDirtyBitmaps}. */
  shared(): SharedDirtyBitmaps {
    return { pageCounts: [...this.pageCounts], buffers: this.words.map((words) => words.buffer as SharedArrayBuffer) };
  }

  /**
   * Marks page `page` of block `blockIndex` dirty; call it after the write.
   * @throws RangeError (`ERR_OUT_OF_RANGE`) for a block or page that does not exist.
   */
  markDirty(blockIndex: number, page: number): void {
    const words = this.blockWords(blockIndex, page, 1);
    Atomics.or(words, page >>> 5, 1 << (page & 31));
  }

  /**
   * Marks pages `first` to `first + count - 1` of block `blockIndex` dirty, a word at a time;
   * call it after the writes.
   * @throws RangeError (`ERR_OUT_OF_RANGE`) for a range outside the block.
   */
  markRange(blockIndex: number, first: number, count: number): void {
    const words = this.blockWords(blockIndex, first, count);
    for (let page = first, end = first + count; page < end; ) {
      const bit = page & 31;
      const bits = Math.min(32 - bit, end - page);
      Atomics.or(words, page >>> 5, bits === 32 ? -1 : ((1 << bits) - 1) << bit);
      page += bits;
    }
  }

  /** Starts tracking: marks made so far describe writes round 1 will read anyway, so they are dropped. */
  async start(): Promise<void> {
    this.takeAll();
    this.state = 'tracking';
  }

  /**
   * The pages marked since start() or the previous sync, taken word by word with
   * Atomics.exchange while writers may keep marking: no mark is lost or reported twice.
   * @throws MultifdError (`ERR_DIRTY_LOG_STATE`) before start() or after stop().
   */
  async sync(): Promise<DirtyBitmaps> {
    if (this.state !== 'tracking') throw notTracking('ExplicitDirtyLog', this.state);
    return this.takeAll();
  }

  /**
   * Stops tracking. The bitmaps are shared with the writers, so they stay allocated until
   * every thread holding them lets go; marks made after this are simply never read.
   */
  stop(): void {
    this.state = 'stopped';
  }

  private takeAll(): DirtyBitmaps {
    return this.words.map((words) => {
      const taken = new Uint32Array(words.length);
      for (let i = 0; i < words.length; i++) {
        // Load before exchanging: most words are clean, and a read does not pull the cache
        // line away from a writer the way a write would. A mark that lands just after
        // the load stays in the word for the next sync.
        if (Atomics.load(words, i) !== 0) taken[i] = Atomics.exchange(words, i, 0);
      }
      return taken;
    });
  }

  private blockWords(blockIndex: number, first: number, count: number): Int32Array {
    const words = this.words[blockIndex];
    if (!words) throw outOfRange('blockIndex', `an integer from 0 to ${this.words.length - 1}`, blockIndex);
    const pageCount = this.pageCounts[blockIndex]!;
    if (!Number.isInteger(first) || !Number.isInteger(count) || first < 0 || count < 0 || first + count > pageCount) {
      throw outOfRange('page', `a page range within the block's ${pageCount} pages`, count === 1 ? first : `${first}+${count}`);
    }
    return words;
  }
}

/**
 * In another thread: the log whose {@link ExplicitDirtyLog.shared} gave `shared`, to mark
 * pages from here. Marks land in the original log's bitmaps.
 */
export function attachExplicitDirtyLog(shared: SharedDirtyBitmaps): ExplicitDirtyLog {
  return new ExplicitDirtyLog(shared);
}
