// Applying a migration stream file (`send --to file:PATH`, FileMuxWriter). A file is everything
// the receiver will ever get: where a socket receiver waits for a sender, or for a channel to
// come back, a file receiver knows nothing more is coming and fails at once, naming the file.
// And a file can be damaged after the last frame the receiver needs, so the image is named
// only once the whole file was read and ends the way a finished migration ends.
import type { Duplex } from 'node:stream';
import { MultifdError, TransportError } from '../errors.js';
import { FileMuxReader } from '../transport/index.js';
import { CONTROL_MAGIC, ControlReader, DATA_MAGIC, encodeControl, MAX_CHANNELS, PACKET_FIXED_HEADER_BYTES, PACKET_FLAG_SYNC, PACKET_MAGIC } from '../wire/index.js';
import { readRawPacketHeader } from '../wire/packet.js';
import { trackDestination } from './destination.js';
import { MigrationReceiver, type ReceiveOptions, type ReceiveResult } from './receiver.js';

/** A migration stream file being applied; see {@link receiveFile}. */
export interface ReceivingFile {
  /**
   * Settles when the migration completed or failed; after a failure the destination is
   * aborted (no `.partial` image is left). Rejects with the file's own fault when it has one.
   */
  result: Promise<ReceiveResult>;
  /** The receiver, e.g. for its refusals. */
  receiver: MigrationReceiver;
}

/**
 * Applies the migration stream file at `path` with a {@link MigrationReceiver}. Where a socket
 * receiver would wait, this fails at once with TransportError `ERR_FILE_STREAM` naming the file:
 * - missing or unreadable, a record cut short or with an impossible length (from the reader:
 *   "PATH: no such file", "PATH: record at byte N is truncated: …");
 * - empty ("PATH is empty");
 * - whole records, but the migration ends before it completed ("PATH ends at byte N before
 *   the migration completed"), or a channel does not end the way a finished migration's does
 *   (cut at a record boundary, or data after the end);
 * - a record a socket receiver would refuse as a stray connection (a stream file holds one
 *   migration and nothing else).
 * Other failures (a corrupt packet, a checksum mismatch) are the receiver's typed errors. The
 * destination is completed only after the receiver confirmed the checksum, the reader reached
 * the end of the file without a fault, and every channel ended as it should.
 */
export function receiveFile(path: string, options: ReceiveOptions): ReceivingFile {
  const reader = new FileMuxReader(path);
  // The receiver is stopped through its AbortSignal; the reason replaces its ERR_CANCELLED.
  const stop = new AbortController();
  const signal = options.signal ? AbortSignal.any([options.signal, stop.signal]) : stop.signal;
  const destination = trackDestination(options.destination, { holdCompletion: true });
  const receiver = new MigrationReceiver({
    // Every channel of a file arrives at once, before the receiver has read the hello, and
    // waits for it as a pending connection: the limit must let a whole session's in.
    maxPendingConnections: MAX_CHANNELS + 1,
    ...options,
    destination: destination.factory,
    signal,
    onRefused: (error) => {
      options.onRefused?.(error);
      stop.abort(fileError(path, `damaged stream: ${error.message}`, error));
    },
  });
  const tails = new ChannelTails();
  reader.on('channel', (channel, id) => {
    tails.watch(channel, id);
    receiver.accept(channel);
  });
  let readToEnd = false;
  reader.done.then(
    () => {
      readToEnd = true;
      if (reader.channelCount === 0) stop.abort(new TransportError('ERR_FILE_STREAM', `${path} is empty: not a migration stream`, { context: { path } }));
    },
    (error: Error) => stop.abort(error),
  );

  /** The failure to report: the file's own fault when it has one, else the receiver's. */
  const explain = async (error: unknown): Promise<unknown> => {
    if (stop.signal.aborted) return stop.signal.reason;
    const readError = await reader.done.then(() => undefined, (e: unknown) => e);
    if (readError) return readError;
    // Bytes on the control channel that are no control frame make the receiver fail on
    // whatever it did next (its reply cannot be written); the frame error says what happened.
    if (tails.controlError) return fileError(path, `damaged stream: ${tails.controlError.message}`, tails.controlError);
    const code = (error as MultifdError).code;
    // Every channel ended together at the end of the file, before the migration did.
    if (readToEnd && (code === 'ERR_CONTROL_CLOSED' || code === 'ERR_ROUND_PACKETS')) {
      return fileError(path, `ends at byte ${reader.bytesRead} before the migration completed: the stream is truncated`, error);
    }
    return error;
  };
  const result = (async () => {
    try {
      const value = await receiver.result;
      await reader.done;
      const problem = tails.problem(value);
      if (problem) throw fileError(path, problem);
      await destination.complete();
      return value;
    } catch (error) {
      await destination.abort().catch(() => {});
      await reader.close();
      throw await explain(error);
    }
  })();
  result.catch(() => {});
  return { result, receiver };
}

function fileError(path: string, message: string, cause?: unknown): TransportError {
  return new TransportError('ERR_FILE_STREAM', `${path}: ${message}`, { cause, context: { path } });
}

/** Bytes kept from the end of each channel: more than a 'complete' frame or a SYNC packet. */
const TAIL_BYTES = 64;

/**
 * The first and last bytes of every channel of a stream file. A finished migration's control
 * channel ends with its 'complete' frame and each data channel with the SYNC packet of the last
 * round, and nothing follows: a channel that ends otherwise was cut at a record boundary or
 * has bytes appended, even when what the receiver read before was whole.
 */
class ChannelTails {
  /** The first framing error of the control channel, read alongside the receiver. */
  controlError: Error | undefined;
  private readonly channels = new Map<number, { head: Buffer; tail: Buffer }>();
  private controlSeen = false;

  watch(channel: Duplex, id: number): void {
    const state = { head: Buffer.alloc(0), tail: Buffer.alloc(0) };
    this.channels.set(id, state);
    let control: ControlReader | undefined;
    const early: Buffer[] = [];
    // Another 'data' listener beside the receiver's sees the same chunks; it pauses and
    // resumes with the receiver's, since a paused stream emits to nobody.
    channel.on('data', (chunk: Buffer) => {
      // A copy of the last bytes only: a view would keep the reader's whole buffer alive.
      state.tail = Buffer.from(chunk.length >= TAIL_BYTES ? chunk.subarray(-TAIL_BYTES) : Buffer.concat([state.tail, chunk]).subarray(-TAIL_BYTES));
      if (control) return this.readControl(control, chunk);
      if (state.head.length >= 4) return;
      early.push(chunk);
      state.head = Buffer.concat([state.head, chunk]).subarray(0, 4);
      if (state.head.length < 4) return;
      // The receiver takes the first connection that starts with MFDC as its control channel.
      if (state.head.readUInt32BE(0) === CONTROL_MAGIC && !this.controlSeen) {
        this.controlSeen = true;
        control = new ControlReader();
        for (const bytes of early) this.readControl(control, bytes);
      }
      early.length = 0;
    });
  }

  private readControl(control: ControlReader, bytes: Uint8Array): void {
    if (this.controlError) return;
    try {
      control.push(bytes);
      while (control.next());
    } catch (error) {
      this.controlError = error as Error;
    }
  }

  /** What is wrong with the ends of the channels, for the migration `result` describes. */
  problem(result: ReceiveResult): string | undefined {
    const complete = Buffer.from(encodeControl({ type: 'complete', rounds: result.rounds, checksum: result.checksum }));
    for (const [id, { head, tail }] of this.channels) {
      if (head.length < 4) continue;
      const magic = head.readUInt32BE(0);
      if (magic === CONTROL_MAGIC && !tail.subarray(-complete.length).equals(complete)) {
        return `the control channel (channel ${id}) does not end with the migration's 'complete' frame: the stream is damaged or has data after the end of the migration`;
      }
      if (magic === DATA_MAGIC && !isFinalSync(tail.subarray(-PACKET_FIXED_HEADER_BYTES), result.rounds)) {
        return `channel ${id} does not end with the SYNC packet of round ${result.rounds}: the stream is truncated or has data after the end of the migration`;
      }
    }
    return undefined;
  }
}

function isFinalSync(bytes: Buffer, round: number): boolean {
  if (bytes.length < PACKET_FIXED_HEADER_BYTES) return false;
  const header = readRawPacketHeader(bytes);
  return header.magic === PACKET_MAGIC && (header.flags & PACKET_FLAG_SYNC) !== 0 && header.round === round && header.payloadLength === 0 && header.normalRunCount === 0 && header.zeroRunCount === 0;
}
