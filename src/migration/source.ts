// Where a sender's pages come from: a GuestMemory (windows are views of its blocks, read in
// place) or an image file (windows are filled from the file into a small ring of shared
// memories, so a 16 GiB image never needs 16 GiB of RAM). Windows start on 1 MiB boundaries
// of their block, so send tasks can hash whole checksum chunks.
import { CHECKSUM_CHUNK_BYTES } from '../memory/checksum.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { FailureLatch } from './failure-latch.js';

/** A run of pages of one block, readable in place in a shared memory. */
export interface SourceWindow {
  blockIndex: number;
  /** The window's first page, as a page index within its block. */
  firstPage: number;
  pageCount: number;
  /** The shared memory holding the window; page i is at `byteOffset + i × pageSize`. */
  memory: WebAssembly.Memory;
  byteOffset: number;
  /** Hands the window's memory back for reuse (file windows); a no-op for guest memory. */
  release(): void;
}

/** Pages to migrate: the RAM block table and the pages, window by window, in block order. */
export interface PageSource {
  pageSize: number;
  blocks: readonly { name: string; byteLength: number }[];
  windows(): AsyncIterable<SourceWindow>;
  /** The live memory behind the source, when there is one (live migration reads dirty pages from it). */
  guest?: GuestMemory;
}

/** Default window: 64 MiB, a whole number of checksum chunks. */
export const WINDOW_BYTES = 64 * CHECKSUM_CHUNK_BYTES;

/** A GuestMemory as a page source: windows are views of its blocks, nothing is copied. */
export function guestMemorySource(memory: GuestMemory, windowBytes = WINDOW_BYTES): PageSource {
  const pagesPerWindow = windowBytes / memory.pageSize;
  return {
    pageSize: memory.pageSize,
    guest: memory,
    blocks: memory.blocks.map((b) => ({ name: b.name, byteLength: b.byteLength })),
    async *windows() {
      for (const [blockIndex, block] of memory.blocks.entries()) {
        for (let firstPage = 0; firstPage < block.pageCount; firstPage += pagesPerWindow) {
          yield {
            blockIndex,
            firstPage,
            pageCount: Math.min(pagesPerWindow, block.pageCount - firstPage),
            memory: block.memory,
            byteOffset: firstPage * memory.pageSize,
            release() {},
          };
        }
      }
    },
  };
}

/**
 * Calls `use` on each window of `source` in order, every next() raced against `failure`: a
 * failure stops the walk even while the next window waits for ring memory that failed tasks
 * hold. However the walk ends, the iteration is closed (return()), which for a file source
 * closes its ring and frees the file handle; an error of the walk is latched first, so the
 * tasks still holding windows stop and hand them back, and the close is not left waiting.
 */
export async function forEachWindow(source: PageSource, failure: FailureLatch, use: (window: SourceWindow) => Promise<void>): Promise<void> {
  const windows = source.windows()[Symbol.asyncIterator]();
  try {
    for (let next = await failure.race(windows.next()); !next.done; next = await failure.race(windows.next())) await use(next.value);
  } catch (error) {
    failure.fail(error as Error);
    // An async generator runs return() after the next() in progress settles: that read waits
    // for a window the failed tasks release as they settle, which the latch makes prompt.
    await windows.return?.()?.catch(() => {});
    throw error;
  }
}
