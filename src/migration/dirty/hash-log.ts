// Dirty tracking for memory nobody instruments: remember each page's XXH64 and, at every
// sync, hash every page again and report those whose hash moved. It costs a full read of
// guest memory per sync and 8 bytes per page, but needs no help from the writer, which is
// all that memory written by code we do not control can offer.
import type { GuestMemory } from '../../memory/guest-memory.js';
import { outOfRange } from '../../errors.js';
import { hashPages } from '../../wasm/kernels.js';
import { bitmapWords, notTracking, type DirtyBitmaps, type DirtyLog } from './dirty-log.js';

/** Pages hashed per kernel call: new hashes go through a small scratch, not a second table. */
const HASH_CHUNK_PAGES = 1024;

/**
 * Bytes of a block hashed per {@link HashRangeRunner} call: 32 MiB, small enough to spread a
 * 1 GiB block over a pool, large enough that a call is worth a hand-off to a worker.
 */
export const HASH_RANGE_BYTES = 32 << 20;

/**
 * Hashes pages `firstPage .. firstPage + pageCount - 1` of a block (page `firstPage` is at
 * `byteOffset` in `memory`), compares each with its hash in `hashes` (XXH64 as (low, high)
 * u32 pairs, indexed by page within the block) and, where it differs, stores the new hash and
 * sets the page's bit in `dirty` (the block's bitmap). Returns how many pages changed.
 *
 * A pure function of its arguments, so disjoint ranges of one block may run on different
 * threads at once when `hashes` and `dirty` live on SharedArrayBuffers: each range writes
 * only its own hashes, and bits are set with Atomics.or, so ranges may even share a word.
 * @throws RangeError (`ERR_OUT_OF_RANGE`) when the range lies outside `memory`, `hashes` or `dirty`.
 */
export function diffPageHashes(
  memory: WebAssembly.Memory,
  byteOffset: number,
  pageSize: number,
  pageCount: number,
  hashes: Uint32Array,
  dirty: Uint32Array,
  firstPage: number,
): number {
  const endPage = firstPage + pageCount;
  if (!Number.isInteger(firstPage) || firstPage < 0 || hashes.length < 2 * endPage || dirty.length < bitmapWords(endPage)) {
    throw outOfRange('firstPage', `such that the range ends within ${hashes.length / 2} hashes and ${dirty.length * 32} bits`, firstPage);
  }
  const scratch = new Uint32Array(2 * Math.min(HASH_CHUNK_PAGES, pageCount));
  let changed = 0;
  for (let done = 0; done < pageCount; done += HASH_CHUNK_PAGES) {
    const count = Math.min(HASH_CHUNK_PAGES, pageCount - done);
    hashPages(memory, byteOffset + done * pageSize, pageSize, count, scratch);
    for (let i = 0; i < count; i++) {
      const page = firstPage + done + i;
      const low = scratch[2 * i]!;
      const high = scratch[2 * i + 1]!;
      if (hashes[2 * page] === low && hashes[2 * page + 1] === high) continue;
      hashes[2 * page] = low;
      hashes[2 * page + 1] = high;
      Atomics.or(dirty, page >>> 5, 1 << (page & 31));
      changed++;
    }
  }
  return changed;
}

/**
 * Runs {@link diffPageHashes} on pages `firstPage .. firstPage + pageCount - 1` of block
 * `blockIndex`, against that block's {@link HashDirtyLog.hashes} and {@link HashDirtyLog.dirty}
 * — on this thread or on a worker that was handed the block's memory and those arrays.
 */
export type HashRangeRunner = (blockIndex: number, firstPage: number, pageCount: number) => Promise<void>;

/** Options of {@link HashDirtyLog}. */
export interface HashDirtyLogOptions {
  /**
   * Where the hashing runs. The log cuts each block into ranges of {@link HASH_RANGE_BYTES}
   * and calls this for all of them at once; default: inline on the
   * calling thread, one range after another.
   */
  runRange?: HashRangeRunner;
}

/**
 * A dirty log that finds changed pages by their XXH64: `start()` hashes every page and keeps
 * the hashes, 8 bytes per page (2 MiB per GiB of 4 KiB pages); each `sync()` hashes every
 * page again and reports those whose hash changed, keeping the new hashes.
 *
 * It is conservative while the guest keeps writing: a page hashed before a write is reported
 * by this sync or, if the write came after its hash was read (or tore it), the stored hash is
 * of the older bytes and the next sync reports it. So a write is never missed; at worst its
 * page is sent twice. What it cannot see is a write that leaves the bytes as they were —
 * which needs no sending — or a 64-bit hash collision (about 2^-64 per changed page).
 */
export class HashDirtyLog implements DirtyLog {
  private readonly runRange: HashRangeRunner;
  private state: 'not started' | 'tracking' | 'stopped' = 'not started';
  private blockHashes: Uint32Array[] = [];
  private blockDirty: Uint32Array[] = [];

  constructor(
    private readonly memory: GuestMemory,
    options: HashDirtyLogOptions = {},
  ) {
    this.runRange = options.runRange ?? (async (blockIndex, firstPage, pageCount) => this.diffInline(blockIndex, firstPage, pageCount));
  }

  /** Per block, the page hashes as (low, high) u32 pairs on a SharedArrayBuffer; empty until start(). */
  get hashes(): readonly Uint32Array[] {
    return this.blockHashes;
  }

  /** Per block, the bitmap a sync is filling, on a SharedArrayBuffer; empty until start(). */
  get dirty(): readonly Uint32Array[] {
    return this.blockDirty;
  }

  /**
   * Hashes every page. It is the same pass as a sync, against hashes that start at zero, with
   * its report thrown away: round 1 sends every page regardless.
   */
  async start(): Promise<void> {
    const shared = (words: number) => new Uint32Array(new SharedArrayBuffer(4 * words));
    this.blockHashes = this.memory.blocks.map((block) => shared(2 * block.pageCount));
    this.blockDirty = this.memory.blocks.map((block) => shared(bitmapWords(block.pageCount)));
    this.state = 'tracking';
    await this.diffAll();
    for (const bitmap of this.blockDirty) bitmap.fill(0);
  }

  /**
   * Re-hashes every page and reports those whose hash changed since the previous pass.
   * @throws MultifdError (`ERR_DIRTY_LOG_STATE`) before start() or after stop().
   */
  async sync(): Promise<DirtyBitmaps> {
    if (this.state !== 'tracking') throw notTracking('HashDirtyLog', this.state);
    await this.diffAll();
    return this.blockDirty.map((bitmap) => {
      const taken = bitmap.slice();
      bitmap.fill(0);
      return taken;
    });
  }

  /** Stops tracking and drops the hashes. */
  stop(): void {
    this.state = 'stopped';
    this.blockHashes = [];
    this.blockDirty = [];
  }

  private async diffAll(): Promise<void> {
    const rangePages = HASH_RANGE_BYTES / this.memory.pageSize;
    const ranges: Promise<void>[] = [];
    this.memory.blocks.forEach((block, blockIndex) => {
      for (let first = 0; first < block.pageCount; first += rangePages) {
        ranges.push(this.runRange(blockIndex, first, Math.min(rangePages, block.pageCount - first)));
      }
    });
    await Promise.all(ranges);
  }

  private diffInline(blockIndex: number, firstPage: number, pageCount: number): void {
    const { pageSize } = this.memory;
    const memory = this.memory.blocks[blockIndex]!.memory;
    diffPageHashes(memory, firstPage * pageSize, pageSize, pageCount, this.blockHashes[blockIndex]!, this.blockDirty[blockIndex]!, firstPage);
  }
}
