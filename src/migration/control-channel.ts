// The control connection on either side: control frames out with backpressure, control frames
// in through `next()`. A peer that closes (or breaks the framing) rejects the waiter with a
// typed error instead of leaving it hanging.
//
// Frames are parsed when they are asked for (or at once, when someone is waiting): while its
// owner is busy (a receiver waiting at a round's barrier, building its destination) what the
// peer sends waits as raw bytes, which cost what they weigh, rather than as decoded messages
// (a zero-page frame's runs take several times their wire size as objects). Those unread bytes
// are capped: a peer that sends more than MAX_CONTROL_BACKLOG_BYTES ahead of its reader is
// flooding, and fails the channel at once.
import type { Duplex } from 'node:stream';
import { TransportError, protocolError, type ProtocolError } from '../errors.js';
import { writeWithBackpressure } from '../transport/index.js';
import { ControlReader, encodeControl, type ControlMessage } from '../wire/index.js';

/**
 * Most control bytes a peer may send that its reader has not yet asked for: 16 MiB, sixteen
 * frames of the largest body. A conforming sender stays far below it: after a round-end it
 * can only be one round ahead (that round's zero-page frames, for `legacy` zero-page
 * detection), and the data channels' backpressure holds it back there; a whole stream file of
 * an all-zero 1 TiB image holds about 10 MiB of control frames.
 */
export const MAX_CONTROL_BACKLOG_BYTES = 16 * 1024 * 1024;

/** Options of a {@link ControlChannel}. */
export interface ControlChannelOptions {
  /** Bytes already read from the connection (a receiver peeks the first ones to tell connections apart). */
  initial?: Uint8Array;
  /**
   * Told at once when the peer sends more than `maxBacklogBytes` unread (ProtocolError
   * `ERR_CONTROL_FLOOD`), since nobody may be waiting in `next()` to hear it.
   */
  onFlood?: (error: ProtocolError) => void;
  /** The most unread bytes the peer may send ahead (default {@link MAX_CONTROL_BACKLOG_BYTES}). */
  maxBacklogBytes?: number;
}

/** One side of the control connection. */
export class ControlChannel {
  /** Bytes written so far (frames, headers included). */
  bytesWritten = 0;
  private reader = new ControlReader();
  private waiter: { resolve: (m: ControlMessage) => void; reject: (e: Error) => void } | undefined;
  /** Why the channel cannot go on; reported once the frames that came before it are read. */
  private failure: Error | undefined;
  /** Set when the peer closed: once the frames read before it are taken, `next()` fails. */
  private ended = false;
  /** A flood fails the channel at once: the frames it sent are dropped unread. */
  private flood: ProtocolError | undefined;

  constructor(
    readonly socket: Duplex,
    private options: ControlChannelOptions = {},
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.closed());
    socket.on('close', () => this.closed());
    socket.on('error', (error) => this.fail(new TransportError('ERR_CONTROL_CLOSED', `control channel: ${error.message}`, { cause: error })));
    if (options.initial?.byteLength) this.receive(options.initial);
  }

  /**
   * Sends one message; resolves once the socket accepted it (waits for 'drain' when full).
   * @throws TransportError `ERR_CLOSED` when the connection is closed or closes while waiting.
   */
  async send(message: ControlMessage): Promise<void> {
    const frame = encodeControl(message);
    this.bytesWritten += frame.byteLength;
    await writeWithBackpressure(this.socket, frame);
  }

  /**
   * The next message from the peer.
   * @throws ProtocolError on a malformed frame or `ERR_CONTROL_FLOOD`, TransportError
   * `ERR_CONTROL_CLOSED` when the peer closed, `ERR_CONTROL_TIMEOUT` after `timeoutMs`.
   */
  next(timeoutMs = 0): Promise<ControlMessage> {
    try {
      const message = this.take();
      if (message) return Promise.resolve(message);
    } catch (error) {
      return Promise.reject(error);
    }
    return new Promise((resolve, reject) => {
      const timer = timeoutMs
        ? setTimeout(() => {
            this.waiter = undefined;
            reject(new TransportError('ERR_CONTROL_TIMEOUT', `control channel: no message within ${timeoutMs} ms`));
          }, timeoutMs)
        : undefined;
      this.waiter = {
        resolve: (m) => (clearTimeout(timer), resolve(m)),
        reject: (e) => (clearTimeout(timer), reject(e)),
      };
    });
  }

  /**
   * The peer has proved who it is: from now on it may send up to the default backlog, and a
   * flood goes to `onFlood`.
   */
  trust(onFlood: (error: ProtocolError) => void): void {
    this.options = { onFlood };
  }

  /** Ends the connection (after pending writes). */
  close(): void {
    this.socket.end();
  }

  /**
   * The next whole frame received, parsed now; undefined while it has not all arrived.
   * @throws the flood, a framing error (the connection is then destroyed), or, once every
   * frame that came before it is taken, why the connection ended.
   */
  private take(): ControlMessage | undefined {
    if (this.flood) throw this.flood;
    let message: ControlMessage | undefined;
    try {
      message = this.reader.next();
    } catch (error) {
      throw this.broken(error as Error);
    }
    if (message) return message;
    // A connection that failed (reset) is reported as such, not as the frame it cut short.
    if (this.failure) throw this.failure;
    if (!this.ended) return undefined;
    try {
      this.reader.end();
    } catch (error) {
      throw this.broken(error as Error);
    }
    throw (this.failure = new TransportError('ERR_CONTROL_CLOSED', 'control channel: the peer closed the connection'));
  }

  /** The framing is lost: nothing after `error` can be trusted, so the connection goes too. */
  private broken(error: Error): Error {
    this.failure = error;
    this.socket.destroy();
    return error;
  }

  private receive(chunk: Uint8Array): void {
    if (this.flood || chunk.byteLength === 0) return;
    try {
      this.reader.push(chunk);
    } catch {
      return; // the reader has failed already: the waiter heard, or the next next() will
    }
    this.wake();
    const unread = this.reader.bufferedBytes;
    const max = this.options.maxBacklogBytes ?? MAX_CONTROL_BACKLOG_BYTES;
    if (unread > max) {
      this.flood = protocolError('ERR_CONTROL_FLOOD', { channel: 'control', field: 'bytes sent ahead of the reader', expected: `<= ${max}`, got: unread });
      this.reader = new ControlReader(); // drops the flood's bytes
      this.socket.destroy();
      this.wake();
      this.options.onFlood?.(this.flood);
    }
  }

  /** Hands the waiter its message, or its error, if there is one now. */
  private wake(): void {
    const waiter = this.waiter;
    if (!waiter) return;
    let message: ControlMessage | undefined;
    try {
      message = this.take();
    } catch (error) {
      this.waiter = undefined;
      return waiter.reject(error as Error);
    }
    if (!message) return;
    this.waiter = undefined;
    waiter.resolve(message);
  }

  private closed(): void {
    this.ended = true;
    this.wake();
  }

  private fail(error: Error): void {
    this.failure ??= error;
    this.wake();
  }
}
