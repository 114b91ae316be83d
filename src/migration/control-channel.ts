// The control connection on either side: control frames out with backpressure, control frames
// in as a queue that `next()` waits on. A peer that closes (or breaks the framing) rejects the
// waiter with a typed error instead of leaving it hanging.
import type { Duplex } from 'node:stream';
import { MultifdError, TransportError } from '../errors.js';
import { writeWithBackpressure } from '../transport/index.js';
import { ControlReader, encodeControl, type ControlMessage } from '../wire/index.js';

/** One side of the control connection. */
export class ControlChannel {
  /** Bytes written so far (frames, headers included). */
  bytesWritten = 0;
  private readonly reader = new ControlReader();
  private readonly queue: ControlMessage[] = [];
  private waiter: { resolve: (m: ControlMessage) => void; reject: (e: Error) => void } | undefined;
  private failure: Error | undefined;

  constructor(
    readonly socket: Duplex,
    initial?: Uint8Array,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('end', () => this.closed());
    socket.on('close', () => this.closed());
    socket.on('error', (error) => this.fail(new TransportError('ERR_CONTROL_CLOSED', `control channel: ${error.message}`, { cause: error })));
    if (initial?.byteLength) this.receive(initial);
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
   * @throws ProtocolError on a malformed frame, TransportError `ERR_CONTROL_CLOSED` when the
   * peer closed, `ERR_CONTROL_TIMEOUT` after `timeoutMs`.
   */
  next(timeoutMs = 0): Promise<ControlMessage> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.failure) return Promise.reject(this.failure);
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

  /** Ends the connection (after pending writes). */
  close(): void {
    this.socket.end();
  }

  private receive(chunk: Uint8Array): void {
    try {
      this.reader.push(chunk);
      for (let message = this.reader.next(); message; message = this.reader.next()) this.deliver(message);
    } catch (error) {
      this.fail(error as Error);
      this.socket.destroy();
    }
  }

  private deliver(message: ControlMessage): void {
    const waiter = this.waiter;
    if (waiter) {
      this.waiter = undefined;
      waiter.resolve(message);
    } else {
      this.queue.push(message);
    }
  }

  private closed(): void {
    try {
      this.reader.end();
      this.fail(new TransportError('ERR_CONTROL_CLOSED', 'control channel: the peer closed the connection'));
    } catch (error) {
      this.fail(error as MultifdError);
    }
  }

  private fail(error: Error): void {
    this.failure ??= error;
    const waiter = this.waiter;
    this.waiter = undefined;
    waiter?.reject(this.failure);
  }
}
