// Reading a migration file back (see file-mux-writer.ts for the record format): records are
// dealt out to one Duplex per channel id. A record is pushed only once it is whole, so a
// truncated file never hands a channel half a record; instead every channel fails.
import { EventEmitter } from 'node:events';
import { open, type FileHandle } from 'node:fs/promises';
import { Duplex } from 'node:stream';
import { TransportError } from '../errors.js';
import { MAX_RECORD_BYTES, RECORD_HEADER_BYTES, fileStreamError } from './file-mux-writer.js';

// Bytes per read from the file. Each read gets a fresh buffer because records are pushed to
// the channels as views into it (no copy); a record that straddles two reads is copied once.
const READ_BYTES = 1 << 20;

type Callback = (error?: Error | null) => void;

/** Options of {@link FileMuxReader}. */
export interface FileMuxReaderOptions {
  /** Bytes a channel may buffer unread before the reader pauses; default 4 MiB. */
  highWaterMark?: number;
}

/** One channel read back from the file: readable; writing to it fails (a file cannot answer). */
class FileChannelReader extends Duplex {
  private wanted: (() => void) | undefined;

  override _read(): void {
    this.wake();
  }

  // A stream file has no live sender at the other end: what a receiver says back (hello-ack,
  // its report) has nowhere to go and is dropped, so the same receiver code serves both.
  override _write(_chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    callback();
  }

  override _destroy(error: Error | null, callback: Callback): void {
    this.wake();
    callback(error);
  }

  /** Pushes a record; resolves when the channel wants more (or at once if it still does). */
  deliver(payload: Buffer): Promise<void> | undefined {
    if (this.destroyed || this.push(payload)) return undefined;
    return new Promise((resolve) => (this.wanted = resolve));
  }

  private wake(): void {
    const wanted = this.wanted;
    this.wanted = undefined;
    wanted?.();
  }
}

// Reads a file sequentially, handing out exact byte counts: views into the current read when
// they fit (the common case), else a fresh buffer filled across reads.
class FileCursor {
  private chunk = Buffer.alloc(0);
  private at = 0;
  private filePosition = 0;
  /** Bytes handed out so far: the file offset of the next take(). */
  offset = 0;

  constructor(private readonly handle: FileHandle) {}

  /** The next `n` bytes; fewer only at the end of the file. */
  async take(n: number): Promise<Buffer> {
    if (this.chunk.length - this.at >= n) return this.view(n);
    const out = Buffer.allocUnsafe(n);
    let filled = this.chunk.copy(out, 0, this.at);
    this.at = this.chunk.length;
    while (filled < n) {
      if (n - filled >= READ_BYTES) {
        // A large remainder goes straight into `out`: no point staging it in a chunk.
        const { bytesRead } = await this.handle.read(out, filled, n - filled, this.filePosition);
        if (bytesRead === 0) break;
        this.filePosition += bytesRead;
        filled += bytesRead;
      } else {
        if (!(await this.refill())) break;
        const part = Math.min(n - filled, this.chunk.length);
        this.chunk.copy(out, filled, 0, part);
        this.at = part;
        filled += part;
      }
    }
    this.offset += filled;
    return out.subarray(0, filled);
  }

  private view(n: number): Buffer {
    const out = this.chunk.subarray(this.at, this.at + n);
    this.at += n;
    this.offset += n;
    return out;
  }

  private async refill(): Promise<boolean> {
    const chunk = Buffer.allocUnsafe(READ_BYTES);
    const { bytesRead } = await this.handle.read(chunk, 0, READ_BYTES, this.filePosition);
    this.filePosition += bytesRead;
    this.chunk = chunk.subarray(0, bytesRead);
    this.at = 0;
    return bytesRead > 0;
  }
}

/** Events of a {@link FileMuxReader}. */
export interface FileMuxReader {
  /** A channel id seen for the first time (ids in the order they first appear in the file). */
  on(event: 'channel', listener: (channel: Duplex, channelId: number) => void): this;
  /** The file could not be read or is malformed (emitted only when someone listens). */
  on(event: 'error', listener: (error: TransportError) => void): this;
  once(event: 'channel', listener: (channel: Duplex, channelId: number) => void): this;
  once(event: 'error', listener: (error: TransportError) => void): this;
}

/**
 * Reads a migration file written by FileMuxWriter and emits `'channel'` with a Duplex for
 * each channel id as it first appears; the records' bytes are pushed into that channel's
 * readable side, in order, and every channel ends at the end of the file. A truncated record
 * or a record length outside 1 to 16 MiB fails every channel with TransportError
 * `ERR_FILE_STREAM` (as does a read error), and {@link FileMuxReader.done} rejects with it.
 *
 * Reading starts at once (after the constructor returns) and pauses whenever a channel has
 * `highWaterMark` bytes unread: one file means one queue, so a consumer must keep reading
 * every channel it was given, or the others stall too.
 */
export class FileMuxReader extends EventEmitter {
  readonly path: string;
  /** Resolves when the whole file has been dealt out; rejects with the error the channels got. */
  readonly done: Promise<void>;
  private readonly channels = new Map<number, FileChannelReader>();
  private readonly highWaterMark: number;
  private stopped = false;
  private recordsEnd = 0;

  constructor(path: string, options: FileMuxReaderOptions = {}) {
    super();
    this.path = path;
    this.highWaterMark = options.highWaterMark ?? 4 << 20;
    this.done = this.run();
    // Failures reach the channels and 'error'; `done` rejects only for whoever awaits it.
    this.done.catch(() => {});
  }

  /** Bytes of whole records dealt out so far: the file's size once `done` resolved. */
  get bytesRead(): number {
    return this.recordsEnd;
  }

  /** Channel ids seen so far. */
  get channelCount(): number {
    return this.channels.size;
  }

  /** Stops reading and destroys every channel; resolves once the file is closed. */
  async close(): Promise<void> {
    this.stopped = true;
    for (const channel of this.channels.values()) channel.destroy();
    await this.done.catch(() => {});
  }

  private async run(): Promise<void> {
    let handle: FileHandle | undefined;
    try {
      handle = await open(this.path, 'r');
      await this.readRecords(new FileCursor(handle));
      for (const channel of this.channels.values()) if (!channel.destroyed) channel.push(null);
    } catch (caught) {
      const error = caught instanceof TransportError ? caught : fileStreamError(this.path, readFailure(caught), caught);
      for (const channel of this.channels.values()) channel.destroy(error);
      if (this.listenerCount('error') > 0) this.emit('error', error);
      throw error;
    } finally {
      await handle?.close();
    }
  }

  private async readRecords(cursor: FileCursor): Promise<void> {
    while (!this.stopped) {
      const at = cursor.offset;
      const header = await cursor.take(RECORD_HEADER_BYTES);
      if (header.length === 0) return;
      if (header.length < RECORD_HEADER_BYTES) throw this.truncated(at, RECORD_HEADER_BYTES, header.length, 'header');
      const channelId = header.readUInt16BE(0);
      const length = header.readUInt32BE(2);
      if (length === 0 || length > MAX_RECORD_BYTES) {
        throw fileStreamError(this.path, `record at byte ${at} (channel ${channelId}): length: expected 1 to ${MAX_RECORD_BYTES}, got ${length}`);
      }
      const payload = await cursor.take(length);
      if (payload.length < length) throw this.truncated(at, length, payload.length, 'payload');
      this.recordsEnd = cursor.offset;
      await this.channel(channelId).deliver(payload);
    }
  }

  private channel(channelId: number): FileChannelReader {
    let channel = this.channels.get(channelId);
    if (!channel) {
      channel = new FileChannelReader({ readableHighWaterMark: this.highWaterMark });
      this.channels.set(channelId, channel);
      this.emit('channel', channel, channelId);
    }
    return channel;
  }

  private truncated(at: number, expected: number, got: number, part: string): TransportError {
    return fileStreamError(this.path, `record at byte ${at} is truncated: ${part}: expected ${expected} bytes, got ${got}`);
  }
}

/** Why a stream file could not be read, in words (the system error stays the cause). */
function readFailure(error: unknown): string {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENOENT') return 'no such file';
  if (code === 'EISDIR') return 'is a folder, not a migration stream file';
  if (code === 'EACCES' || code === 'EPERM') return `cannot read the migration file: permission denied (${code})`;
  return `cannot read the migration file (${code ?? String(error)})`;
}
