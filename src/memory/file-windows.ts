// Streaming a large file through a small ring of shared memories. An image on disk can be far
// larger than what we may hold (16 GiB and up), yet workers and kernels want shared
// WebAssembly.Memory to work in place. So the file is read window by window into a ring of
// 2–3 reusable memories: while the consumer works on one window, the next reads are already
// in flight into the free ones, and a window's memory is refilled only after its `release()`.
import { read } from 'node:fs';
import { open, type FileHandle } from 'node:fs/promises';
import { promisify } from 'node:util';
import { MultifdError, outOfRange } from '../errors.js';
import { adviseHugePages } from '../native/addon.js';
import { CHECKSUM_CHUNK_BYTES, chunkChecksumsOf, combineChecksums } from './checksum.js';
import { MAX_BLOCK_BYTES, WASM_PAGE_BYTES } from './guest-memory.js';

/** Default bytes per window of a streamed image: 64 MiB. */
export const DEFAULT_WINDOW_BYTES = 64 << 20;

/** Default number of windows in the ring: one being worked on, two being read ahead. */
export const DEFAULT_RING_SIZE = 3;

/** Most windows a ring may have. */
export const MAX_RING_SIZE = 16;

// fs reads are capped just below 2 GiB per call; windows may be larger.
const MAX_READ_BYTES = 1 << 30;

/** How a file is cut into windows and how many may be held at once. */
export interface WindowOptions {
  /** Bytes per window: a positive multiple of 1 MiB (whole checksum chunks), at most 4 GiB − 64 KiB. */
  windowBytes?: number;
  /** Windows in the ring, 1 to {@link MAX_RING_SIZE}; 1 means no read-ahead. */
  ringSize?: number;
}

/** One window of a file, read into (the start of) a shared memory of the ring. */
export interface FileWindow {
  memory: WebAssembly.Memory;
  /** Where the window starts in the file (not in the range). */
  fileOffset: number;
  byteLength: number;
  /** Hands the memory back to the ring for the next read; calls after the first do nothing. */
  release(): void;
}

/**
 * Checks and defaults window options. Windows are whole checksum chunks so that every window
 * starts on a chunk boundary: a consumer can hash chunks in place as windows go by.
 * @throws RangeError (`ERR_OUT_OF_RANGE`).
 */
export function windowOptions(options: WindowOptions): Required<WindowOptions> {
  const { windowBytes = DEFAULT_WINDOW_BYTES, ringSize = DEFAULT_RING_SIZE } = options;
  if (!Number.isInteger(windowBytes) || windowBytes <= 0 || windowBytes % CHECKSUM_CHUNK_BYTES !== 0 || windowBytes > MAX_BLOCK_BYTES) {
    throw outOfRange('windowBytes', `a positive multiple of ${CHECKSUM_CHUNK_BYTES} (1 MiB) up to ${MAX_BLOCK_BYTES}`, windowBytes);
  }
  if (!Number.isInteger(ringSize) || ringSize < 1 || ringSize > MAX_RING_SIZE) {
    throw outOfRange('ringSize', `an integer from 1 to ${MAX_RING_SIZE}`, ringSize);
  }
  return { windowBytes, ringSize };
}

/** A fixed set of window memories, made on first need and handed out first come, first served. */
class MemoryRing {
  private readonly free: WebAssembly.Memory[] = [];
  private readonly waiting: { resolve(memory: WebAssembly.Memory): void; reject(error: Error): void }[] = [];
  private created = 0;
  private closed = false;

  constructor(
    private readonly size: number,
    private readonly windowBytes: number,
  ) {}

  acquire(): Promise<WebAssembly.Memory> {
    if (this.closed) return Promise.reject(new Error('the window ring is closed'));
    const memory = this.free.pop();
    if (memory) return Promise.resolve(memory);
    if (this.created < this.size) {
      this.created++;
      const pages = Math.ceil(this.windowBytes / WASM_PAGE_BYTES);
      const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
      // Each window is filled once and then reused: huge pages make its first fill fault
      // 512 times less often, as for guest memory.
      adviseHugePages(new Uint8Array(memory.buffer));
      return Promise.resolve(memory);
    }
    return new Promise((resolve, reject) => this.waiting.push({ resolve, reject }));
  }

  release(memory: WebAssembly.Memory): void {
    if (this.closed) return;
    const waiter = this.waiting.shift();
    if (waiter) waiter.resolve(memory);
    else this.free.push(memory);
  }

  close(): void {
    this.closed = true;
    for (const waiter of this.waiting.splice(0)) waiter.reject(new Error('the window ring is closed'));
  }
}

/** A file to read: a path (opened and closed here), an open FileHandle or a descriptor (left open). */
export type FileInput = string | FileHandle | number;

/** Which bytes of a file to stream, and how. */
export interface FileRange extends WindowOptions {
  /** Where the range starts in the file; default 0. */
  byteOffset?: number;
  /** Bytes in the range; the file must hold them all. */
  byteLength: number;
  /** Stops the stream: the next step fails with the signal's reason. */
  signal?: AbortSignal;
}

type ReadAt = (view: Uint8Array, offset: number, length: number, position: number) => Promise<number>;

const readFd = promisify(read);

function readerOf(file: FileHandle | number): ReadAt {
  if (typeof file === 'number') return async (view, offset, length, position) => (await readFd(file, view, offset, length, position)).bytesRead;
  return async (view, offset, length, position) => (await file.read(view, offset, length, position)).bytesRead;
}

async function readFully(readAt: ReadAt, name: string, memory: WebAssembly.Memory, fileOffset: number, byteLength: number): Promise<void> {
  const view = new Uint8Array(memory.buffer, 0, byteLength);
  for (let done = 0; done < byteLength; ) {
    const bytesRead = await readAt(view, done, Math.min(byteLength - done, MAX_READ_BYTES), fileOffset + done);
    if (bytesRead === 0) {
      throw new MultifdError('ERR_IMAGE_SIZE', `${name}: image ended at byte ${fileOffset + done} while reading; did it shrink?`, {
        context: { file: name, expected: fileOffset + byteLength, got: fileOffset + done },
      });
    }
    done += bytesRead;
  }
}

/**
 * Reads a byte range of a file (by default all of its first `byteLength` bytes), window by
 * window, into a ring of at most `ringSize` shared memories of `windowBytes` (rounded up to
 * 64 KiB). Up to `ringSize` reads run ahead of the consumer; a window's memory is reused only
 * after `release()`, so a consumer that holds every window stalls the reads, never the memory
 * bound. Ending the iteration early (break, throw) waits for the reads in flight and closes
 * the file if it was given as a path.
 */
export async function* readFileWindows(file: FileInput, range: FileRange): AsyncGenerator<FileWindow> {
  const { windowBytes, ringSize } = windowOptions(range);
  const { byteOffset = 0, byteLength, signal } = range;
  signal?.throwIfAborted();
  const handle = typeof file === 'string' ? await open(file, 'r') : undefined;
  const readAt = readerOf(handle ?? (file as FileHandle | number));
  const name = typeof file === 'string' ? file : typeof file === 'number' ? `fd ${file}` : `fd ${file.fd}`;
  const ring = new MemoryRing(ringSize, windowBytes);
  const stop = (): void => ring.close();
  signal?.addEventListener('abort', stop, { once: true });
  const ahead: Promise<FileWindow>[] = [];
  let nextOffset = 0;
  // Reads are queued in file order and the ring serves acquirers in order, so windows come
  // back in file order however the reads finish.
  const readAhead = (): void => {
    const rangeOffset = nextOffset;
    const length = Math.min(windowBytes, byteLength - rangeOffset);
    nextOffset += length;
    const filled = ring.acquire().then(async (memory) => {
      await readFully(readAt, name, memory, byteOffset + rangeOffset, length);
      let released = false;
      const release = (): void => {
        if (!released) ring.release(memory);
        released = true;
      };
      return { memory, fileOffset: byteOffset + rangeOffset, byteLength: length, release };
    });
    // A failed read is reported when the consumer reaches it; until then, not "unhandled".
    filled.catch(() => {});
    ahead.push(filled);
  };
  try {
    while (nextOffset < byteLength && ahead.length < ringSize) readAhead();
    for (let next = ahead.shift(); next; next = ahead.shift()) {
      const window = await next.catch((error: unknown) => {
        signal?.throwIfAborted();
        throw error;
      });
      signal?.throwIfAborted();
      if (nextOffset < byteLength) readAhead();
      yield window;
      signal?.throwIfAborted();
    }
  } finally {
    signal?.removeEventListener('abort', stop);
    ring.close();
    await Promise.allSettled(ahead);
    await handle?.close();
  }
}

/**
 * XXH64 of each 1 MiB chunk of a byte range of a file (the last may be shorter), streamed
 * through a window ring and hashed in place while the next windows are read. The range
 * should start on a chunk boundary of the block it holds.
 */
export async function fileChunkChecksums(file: FileInput, range: FileRange): Promise<bigint[]> {
  const hashes: bigint[] = [];
  for await (const window of readFileWindows(file, range)) {
    for (const hash of chunkChecksumsOf(window.memory, 0, window.byteLength)) hashes.push(hash);
    window.release();
  }
  return hashes;
}

/**
 * The image checksum (see `imageChecksum`) of a byte range of a file taken as one block,
 * streamed through a window ring.
 */
export async function fileChecksum(file: FileInput, range: FileRange): Promise<bigint> {
  return combineChecksums(await fileChunkChecksums(file, range));
}
