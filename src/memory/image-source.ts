// A memory image on disk as a migration source: one block named after the file, read window
// by window (file-windows.ts), so a 16 GiB image costs only the ring's few windows of RAM.
import { open } from 'node:fs/promises';
import { basename } from 'node:path';
import { MultifdError } from '../errors.js';
import { DEFAULT_PAGE_SIZE, checkPageSize } from '../pages.js';
import { fileChecksum, readFileWindows, windowOptions, type WindowOptions } from './file-windows.js';

/** Options of {@link openImageSource}. */
export interface ImageSourceOptions extends WindowOptions {
  /** Page size in bytes, a power of two from 4 KiB to 64 KiB; default 4096. */
  pageSize?: number;
}

/** A block of a file image: what a GuestMemory block is, without the memory. */
export interface ImageBlockInfo {
  readonly name: string;
  readonly byteLength: number;
  readonly pageCount: number;
}

/**
 * A run of whole pages of the image, held in a shared memory of the source's ring. Page
 * `firstPage + i` of block `blockIndex` is at `byteOffset + i * pageSize` of `memory`.
 * Call `release()` once done with it (workers included): only then is the memory refilled.
 */
export interface ImageWindow {
  readonly blockIndex: number;
  readonly firstPage: number;
  readonly pageCount: number;
  readonly memory: WebAssembly.Memory;
  readonly byteOffset: number;
  release(): void;
}

/** A memory image file opened for reading; see {@link openImageSource}. */
export interface ImageSource {
  readonly path: string;
  readonly pageSize: number;
  /** One block, named after the file (its base name). */
  readonly blocks: readonly ImageBlockInfo[];
  readonly totalBytes: number;
  readonly totalPages: number;
  /** Bytes per window (the last window may be shorter). */
  readonly windowBytes: number;
  /** Windows in the ring: the most memory one iteration holds is `ringSize × windowBytes`. */
  readonly ringSize: number;
  /**
   * The image, window by window in page order, read ahead into the ring. Each iteration
   * opens the file and makes its own ring; windows start on 1 MiB checksum-chunk boundaries.
   */
  windows(): AsyncIterable<ImageWindow>;
  /** The image checksum of the file, equal to `imageChecksum` of a GuestMemory with these bytes. */
  checksum(): Promise<bigint>;
  /**
   * Closes the file. Iterations still running fail at their next step, and later calls of
   * windows() and checksum() fail, with MultifdError `ERR_IMAGE_CLOSED`. Calling it again
   * does nothing.
   */
  close(): Promise<void>;
}

/** Throws `ERR_IMAGE_SIZE` unless `byteLength` is a positive multiple of `pageSize`. */
export function checkImageSize(path: string, byteLength: number, pageSize: number): void {
  if (byteLength > 0 && byteLength % pageSize === 0) return;
  throw new MultifdError(
    'ERR_IMAGE_SIZE',
    `${path}: an image must be a positive multiple of the page size ${pageSize} bytes, got ${byteLength} bytes`,
    { context: { path, byteLength, pageSize } },
  );
}

/**
 * Opens a memory image file as a migration source. The image is one block named after the
 * file; it is never read whole: {@link ImageSource.windows} streams it through a small ring
 * of reusable shared memories (default 3 × 64 MiB), so reading the next windows overlaps the
 * processing of the current one, and a window is refilled only after its `release()`.
 * @throws MultifdError `ERR_IMAGE_SIZE` when the file size is not a positive multiple of the
 * page size; RangeError (`ERR_OUT_OF_RANGE`) for bad options; the fs error when there is no
 * such file.
 */
export async function openImageSource(path: string, options: ImageSourceOptions = {}): Promise<ImageSource> {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  checkPageSize(pageSize);
  const ring = windowOptions(options);
  // One handle for every iteration: positional reads do not disturb each other, and the size
  // checked is the size of the file read, even if the path is replaced meanwhile.
  const handle = await open(path, 'r');
  const { size: byteLength } = await handle.stat();
  try {
    checkImageSize(path, byteLength, pageSize);
  } catch (error) {
    await handle.close();
    throw error;
  }
  const pageCount = byteLength / pageSize;
  const closer = new AbortController();
  const range = { ...ring, byteLength, signal: closer.signal };
  let closing: Promise<void> | undefined;

  async function* windows(): AsyncGenerator<ImageWindow> {
    for await (const w of readFileWindows(handle, range)) {
      yield {
        blockIndex: 0,
        firstPage: w.fileOffset / pageSize,
        pageCount: w.byteLength / pageSize,
        memory: w.memory,
        byteOffset: 0,
        release: w.release,
      };
    }
  }

  return {
    path,
    pageSize,
    blocks: Object.freeze([{ name: basename(path), byteLength, pageCount }]),
    totalBytes: byteLength,
    totalPages: pageCount,
    windowBytes: ring.windowBytes,
    ringSize: ring.ringSize,
    windows,
    checksum: () => fileChecksum(handle, range),
    close() {
      closer.abort(new MultifdError('ERR_IMAGE_CLOSED', `${path}: the image source is closed`, { context: { path } }));
      // FileHandle.close() waits for the reads in flight, so no read lands on a reused fd.
      closing ??= handle.close();
      return closing;
    },
  };
}
