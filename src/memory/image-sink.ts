// A memory image on disk as a migration destination. Pages land in `<path>.partial` and the
// file takes its final name only in complete(), after an fsync: a crash, an abort or a failed
// migration can leave a .partial behind, never a truncated file that looks like an image.
import { writeSync } from 'node:fs';
import { open, stat, type FileHandle } from 'node:fs/promises';
import { MultifdError, outOfRange } from '../errors.js';
import { DEFAULT_PAGE_SIZE, checkPageSize } from '../pages.js';
import { commitPartial, partialPathOf, removePartial } from '../partial-file.js';
import { fileChecksum, windowOptions, type WindowOptions } from './file-windows.js';
import { checkImageSize } from './image-source.js';

/** Options of {@link createImageSink}. */
export interface ImageSinkOptions extends WindowOptions {
  /** Page size in bytes, a power of two from 4 KiB to 64 KiB; default 4096. */
  pageSize?: number;
  /** Size of the image, a positive multiple of the page size. */
  byteLength: number;
}

/**
 * A memory image being written; see {@link createImageSink}. Worker threads of the same
 * process may write pages with `fs.writeSync(sink.fd, …)` (or {@link writeAllAt}) while it is
 * open; complete() or abort() only after they are done.
 */
export interface ImageSink {
  /** The final name; no file carries it before complete() has succeeded. */
  readonly path: string;
  /** Where the pages go until complete(): `path + '.partial'`. */
  readonly partialPath: string;
  /** The open file descriptor of the .partial file (valid until complete() or abort()). */
  readonly fd: number;
  readonly pageSize: number;
  readonly byteLength: number;
  readonly pageCount: number;
  /** Writes whole pages from `pageIndex` (pwrite, synchronous, any order). */
  writePages(pageIndex: number, bytes: Uint8Array): void;
  /** Flushes the file to disk (fsync), closes it and renames it to `path`, replacing any file there. */
  complete(): Promise<void>;
  /** Closes and removes the .partial file; `path` is never created. Does nothing after complete(). */
  abort(): Promise<void>;
  /** The image checksum of what has been written so far (the final file after complete()). */
  checksum(): Promise<bigint>;
}

/**
 * Writes all of `bytes` at `position` of `fd`, looping over short writes. Synchronous, so it
 * suits worker threads that apply pages and then report them done.
 */
export function writeAllAt(fd: number, bytes: Uint8Array, position: number): void {
  for (let done = 0; done < bytes.byteLength; ) {
    done += writeSync(fd, bytes, done, bytes.byteLength - done, position + done);
  }
}

/**
 * How often an open image starts writing back the pages written so far. Linux would otherwise
 * keep them dirty in its cache (up to dirty_background_ratio of RAM: gigabytes here) and write
 * them all in complete()'s fsync, after the transfer: 0.7 s per GiB on this machine's
 * disk. Written back as they come, the disk works while the pages are still arriving.
 */
const WRITE_BACK_INTERVAL_MS = 200;

class FileImageSink implements ImageSink {
  readonly partialPath: string;
  readonly pageCount: number;
  // 'failed': complete() threw part-way; only abort() (cleanup) is left to do.
  private state: 'open' | 'completed' | 'failed' | 'aborted' = 'open';
  /** The write-back under way (an fdatasync on libuv's threads), if any. */
  private writingBack: Promise<void> | undefined;
  private readonly writeBackTimer = setInterval(() => this.startWriteBack(), WRITE_BACK_INTERVAL_MS).unref();

  constructor(
    readonly path: string,
    private readonly handle: FileHandle,
    readonly pageSize: number,
    readonly byteLength: number,
    private readonly windows: Required<WindowOptions>,
  ) {
    this.partialPath = partialPathOf(path);
    this.pageCount = byteLength / pageSize;
  }

  get fd(): number {
    return this.handle.fd;
  }

  writePages(pageIndex: number, bytes: Uint8Array): void {
    this.expectOpen('writePages');
    const pages = bytes.byteLength / this.pageSize;
    if (!Number.isInteger(pages)) throw outOfRange('bytes.byteLength', `a multiple of the page size ${this.pageSize}`, bytes.byteLength);
    if (!Number.isInteger(pageIndex) || pageIndex < 0 || pageIndex + pages > this.pageCount) {
      throw outOfRange('pageIndex', `such that the pages end within the image's ${this.pageCount} pages`, pageIndex);
    }
    writeAllAt(this.handle.fd, bytes, pageIndex * this.pageSize);
  }

  async complete(): Promise<void> {
    this.expectOpen('complete');
    this.state = 'completed';
    try {
      await this.stopWriteBack();
      await this.handle.sync();
      await this.handle.close();
      await commitPartial(this.partialPath, this.path);
    } catch (error) {
      this.state = 'failed';
      throw error;
    }
  }

  async abort(): Promise<void> {
    if (this.state === 'completed' || this.state === 'aborted') return;
    this.state = 'aborted';
    await this.stopWriteBack();
    await this.handle.close().catch(() => {});
    await removePartial(this.partialPath);
  }

  checksum(): Promise<bigint> {
    if (this.state === 'aborted' || this.state === 'failed') return Promise.reject(this.closedError('checksum'));
    const range = { ...this.windows, byteLength: this.byteLength };
    return fileChecksum(this.state === 'completed' ? this.path : this.handle, range);
  }

  /** Starts writing back what was written so far, unless a write-back is under way (see WRITE_BACK_INTERVAL_MS). */
  private startWriteBack(): void {
    if (this.writingBack || this.state !== 'open') return;
    // A failure here is complete()'s fsync's to report.
    this.writingBack = this.handle
      .datasync()
      .catch(() => {})
      .finally(() => (this.writingBack = undefined));
  }

  /** No write-back from now on; resolves once the one under way is done (the file may then close). */
  private async stopWriteBack(): Promise<void> {
    clearInterval(this.writeBackTimer);
    await this.writingBack;
  }

  private expectOpen(what: string): void {
    if (this.state !== 'open') throw this.closedError(what);
  }

  private closedError(what: string): MultifdError {
    return new MultifdError('ERR_IMAGE_CLOSED', `${this.path}: ${what}() after the image was ${this.state}`, {
      context: { path: this.path, state: this.state },
    });
  }
}

/**
 * Creates a memory image file to receive pages. The pages go to `path + '.partial'`, created
 * (or truncated) at `byteLength` bytes and sparse, so untouched pages read as zero and cost no
 * disk. complete() fsyncs and renames it to `path`; abort() removes it. A partial image never
 * carries the final name, so a file at `path` is always a finished image.
 * @throws RangeError (`ERR_OUT_OF_RANGE`) for bad options; MultifdError `ERR_IMAGE_SIZE` when
 * `byteLength` is not a positive multiple of the page size, `ERR_IMAGE_PATH` when `path` exists
 * and is not a regular file (the final rename would replace it: /dev/null, a directory);
 * the fs error if the file cannot be created.
 */
export async function createImageSink(path: string, options: ImageSinkOptions): Promise<ImageSink> {
  const pageSize = options.pageSize ?? DEFAULT_PAGE_SIZE;
  checkPageSize(pageSize);
  const windows = windowOptions(options);
  const { byteLength } = options;
  if (!Number.isSafeInteger(byteLength)) throw outOfRange('byteLength', 'a safe integer', byteLength);
  checkImageSize(path, byteLength, pageSize);
  const existing = await stat(path).catch(() => undefined);
  if (existing && !existing.isFile()) {
    throw new MultifdError('ERR_IMAGE_PATH', `${path} exists and is not a regular file: an image would replace it`, { context: { path } });
  }
  const handle = await open(partialPathOf(path), 'w+');
  try {
    await handle.truncate(byteLength);
  } catch (error) {
    await handle.close();
    await removePartial(partialPathOf(path)).catch(() => {});
    throw error;
  }
  return new FileImageSink(path, handle, pageSize, byteLength, windows);
}
