// Migration to a file (QEMU's migrate-to-file): the channels a migration would spread over
// sockets are multiplexed into one file as records, `u16 channelId | u32 length | bytes`
// (big-endian, like the rest of the wire). Each channel's writes become records in its own
// order; records of different channels interleave as they come. Channels see backpressure
// exactly when the file stream does, so a slow disk slows the senders instead of filling RAM.
// The file is written as PATH.partial and named PATH only once it is whole and on disk, so a
// cut or failed migration never leaves a stream file that looks complete.
import { createWriteStream, type WriteStream } from 'node:fs';
import { Duplex } from 'node:stream';
import { finished } from 'node:stream/promises';
import { TransportError, outOfRange } from '../errors.js';
import { commitPartial, partialPathOf, removePartial } from '../partial-file.js';

/** Bytes of a record header: u16 channel id, u32 payload length. */
export const RECORD_HEADER_BYTES = 6;

/**
 * Largest record payload: 16 MiB. The writer cuts larger writes into several records; the
 * reader rejects a record that claims more, so a corrupt length cannot make it buffer
 * gigabytes before failing.
 */
export const MAX_RECORD_BYTES = 16 << 20;

/** Most channels one file can hold (channel ids are u16). */
export const MAX_FILE_CHANNELS = 65536;

/** The error every channel of a file gets when the file itself fails. */
export function fileStreamError(path: string, message: string, cause?: unknown): TransportError {
  return new TransportError('ERR_FILE_STREAM', `${path}: ${message}`, { cause, context: { path } });
}

function recordHeader(channelId: number, length: number): Buffer {
  const header = Buffer.allocUnsafe(RECORD_HEADER_BYTES);
  header.writeUInt16BE(channelId, 0);
  header.writeUInt32BE(length, 2);
  return header;
}

type Callback = (error?: Error | null) => void;

/** One channel of a FileMuxWriter: writable into the file; its readable side carries nothing. */
class FileChannelWriter extends Duplex {
  constructor(private readonly writeRecords: (chunk: Buffer, done: Callback) => void) {
    super({ allowHalfOpen: true });
    // Flowing from the start, so the empty readable side ends (and the channel emits 'close')
    // after end() even when nobody reads it.
    this.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: Callback): void {
    this.writeRecords(chunk, callback);
  }

  // A file has no one to answer: the readable side only ends, once the channel is done.
  override _read(): void {}

  override _final(callback: Callback): void {
    this.push(null);
    callback();
  }
}

/**
 * Writes a migration file: {@link FileMuxWriter.openChannel} gives Duplex channels (ids 0, 1,
 * … in opening order) whose writes become records in the file. Backpressure: a channel's
 * write() returns false when the file stream is behind, and 'drain' follows when it catches up.
 * The channels' readable sides never carry data (a file cannot answer) and end with them.
 * As with a socket, the file stream holds written buffers until they are flushed: do not
 * change them after write().
 *
 * The records go to `path + '.partial'`. {@link FileMuxWriter.close} (the migration completed)
 * flushes, fsyncs and renames it to `path`; {@link FileMuxWriter.abort} (it did not) removes
 * it. Only a whole stream ever carries the name `path`.
 */
export class FileMuxWriter {
  readonly path: string;
  /** Where the records go until close() succeeded: `path + '.partial'`. */
  readonly partialPath: string;
  private readonly stream: WriteStream;
  private readonly channels: FileChannelWriter[] = [];
  private readonly waitingForDrain: Callback[] = [];
  private failure: TransportError | undefined;
  private closing: Promise<void> | undefined;
  private aborting: Promise<void> | undefined;
  /** Set once the file carries its final name. */
  private committed = false;

  /**
   * Creates (or truncates) `path + '.partial'`; errors (even opening it) reach the channels
   * and close(). A file already at `path` is left alone until close() replaces it.
   */
  constructor(path: string) {
    this.path = path;
    this.partialPath = partialPathOf(path);
    // flush: fsync before close, so a closed migration file is on disk, not just in the cache.
    this.stream = createWriteStream(this.partialPath, { flush: true });
    this.stream.on('drain', () => this.releaseWriters());
    this.stream.on('error', (error) => this.fail(fileStreamError(path, 'cannot write the migration file', error)));
  }

  /** Channels opened so far. */
  get channelCount(): number {
    return this.channels.length;
  }

  /**
   * Opens the next channel; its id is the number of channels opened before it.
   * @throws RangeError (`ERR_OUT_OF_RANGE`) past 65536 channels; TransportError `ERR_FILE_STREAM`
   * after close() or a file error.
   */
  openChannel(): Duplex {
    if (this.closing || this.aborting) throw fileStreamError(this.path, `openChannel() after ${this.aborting ? 'abort' : 'close'}()`);
    if (this.failure) throw this.failure;
    if (this.channels.length >= MAX_FILE_CHANNELS) throw outOfRange('channel count', `at most ${MAX_FILE_CHANNELS}`, this.channels.length + 1);
    const channelId = this.channels.length;
    const channel = new FileChannelWriter((chunk, done) => this.writeRecords(channelId, chunk, done));
    this.channels.push(channel);
    return channel;
  }

  /**
   * The migration completed: ends every channel still open, waits until all their records are
   * in the file, fsyncs and closes it, and renames it from `path.partial` to `path`. Rejects
   * with TransportError `ERR_FILE_STREAM` if the file failed (the .partial is removed then).
   */
  close(): Promise<void> {
    this.closing ??= this.aborting ? this.aborting.then(() => Promise.reject(this.failure)) : this.finish();
    return this.closing;
  }

  /**
   * The migration failed or was cancelled: destroys every channel (quietly: whoever failed
   * knows why), closes the file and removes `path.partial`; later writes and close() fail with
   * TransportError `ERR_FILE_STREAM`. Does nothing once close() has succeeded; after a close()
   * that is still running, waits for it and then removes what it left.
   */
  abort(): Promise<void> {
    this.aborting ??= (async () => {
      if (!this.committed && !this.failure) {
        this.failure = fileStreamError(this.path, 'the migration was aborted');
        for (const channel of this.channels) channel.destroy();
        // After the destroy, so their callbacks' error is not raised again as an 'error' event;
        // this also releases a close() that waits for channels to drain.
        this.releaseWriters(this.failure);
      }
      await this.closing?.catch(() => {});
      if (this.committed) return;
      this.stream.destroy();
      await finished(this.stream).catch(() => {});
      await removePartial(this.partialPath);
    })();
    return this.aborting;
  }

  // Appends `chunk` as records of `channelId`; `done` runs when the channel may write more.
  private writeRecords(channelId: number, chunk: Buffer, done: Callback): void {
    if (this.failure) {
      done(this.failure);
      return;
    }
    let ready = true;
    for (let at = 0; at < chunk.byteLength; at += MAX_RECORD_BYTES) {
      const payload = chunk.subarray(at, at + MAX_RECORD_BYTES);
      this.stream.write(recordHeader(channelId, payload.byteLength));
      ready = this.stream.write(payload);
    }
    if (ready) done();
    else this.waitingForDrain.push(done);
  }

  private releaseWriters(error?: Error): void {
    for (const done of this.waitingForDrain.splice(0)) done(error);
  }

  private fail(error: TransportError): void {
    if (this.failure) return;
    this.failure = error;
    this.releaseWriters(error);
    for (const channel of this.channels) channel.destroy(error);
  }

  private async finish(): Promise<void> {
    await Promise.all(this.channels.map((channel) => endChannel(channel)));
    if (!this.failure) {
      await new Promise<void>((resolve) => {
        this.stream.once('close', resolve);
        this.stream.end();
      });
    }
    try {
      if (this.failure) throw this.failure;
      await commitPartial(this.partialPath, this.path).catch((error: unknown) => {
        throw fileStreamError(this.path, `cannot rename ${this.partialPath} to it`, error);
      });
      this.committed = true;
    } catch (error) {
      this.stream.destroy();
      await removePartial(this.partialPath).catch(() => {});
      throw error;
    }
  }
}

// Resolves once every record the channel was given has reached the file stream (or the
// channel is gone: then the file's own failure, if any, is what close() reports).
function endChannel(channel: Duplex): Promise<void> {
  if (channel.writableFinished || channel.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    channel.once('finish', resolve);
    channel.once('close', resolve);
    channel.once('error', () => resolve());
    channel.end();
  });
}
