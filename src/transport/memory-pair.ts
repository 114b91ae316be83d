// Two connected in-memory Duplexes, a socketpair without the kernel: what tests and
// single-process demos use in place of a connection. They behave like sockets where channel
// code can tell: bytes are copied (a writer may reuse its buffer once the write is done),
// backpressure builds up when the reader stops, and end() and destroy() reach the other end.
import { Duplex } from 'node:stream';
import { TransportError } from '../errors.js';

/** Options of {@link memoryPair}. */
export interface MemoryPairOptions {
  /** Bytes buffered on each side of each direction before write() returns false; default 64 KiB. */
  highWaterMark?: number;
  /** Keep writing after the other end has ended (as net.Socket's option); default false. */
  allowHalfOpen?: boolean;
}

type WriteCallback = (error?: Error | null) => void;

function closedError(): TransportError {
  return new TransportError('ERR_CLOSED', 'the other end of the memory pair is closed');
}

class MemoryEnd extends Duplex {
  peer!: MemoryEnd;
  // The callback of the peer's write this end could not take yet: calling it lets the next one in.
  private blockedWrite: WriteCallback | undefined;
  private ended = false;

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    if (this.peer.destroyed) callback(closedError());
    else if (this.peer.push(Buffer.from(chunk))) callback();
    else this.peer.blockedWrite = callback;
  }

  override _read(): void {
    const callback = this.blockedWrite;
    this.blockedWrite = undefined;
    callback?.();
  }

  override _final(callback: WriteCallback): void {
    this.endPeer();
    callback();
  }

  // As closing a socket does: a plain destroy() is a FIN (the peer reads what it has, then
  // 'end'); destroy(error) is a reset (the peer fails too, with its own error naming ours).
  // A write the peer still had waiting on this end fails like a write to a closed socket.
  override _destroy(error: Error | null, callback: WriteCallback): void {
    this.blockedWrite?.(closedError());
    this.blockedWrite = undefined;
    if (error && !this.peer.destroyed) {
      this.peer.destroy(new TransportError('ERR_CONNECTION_RESET', 'the other end of the memory pair failed', { cause: error }));
    } else {
      this.endPeer();
    }
    callback(error);
  }

  private endPeer(): void {
    if (this.ended || this.peer.destroyed) return;
    this.ended = true;
    this.peer.push(null);
  }
}

/**
 * Two connected Duplex streams: what is written on one is read on the other, in order.
 * `end()` or `destroy()` on one ends the other's readable side once it has read what was
 * sent; `destroy(error)` destroys the other with TransportError `ERR_CONNECTION_RESET`, and
 * writes towards a destroyed end fail with `ERR_CLOSED`. Writes are copied, and write()
 * returns false once `highWaterMark` bytes wait on both sides.
 */
export function memoryPair(options: MemoryPairOptions = {}): [Duplex, Duplex] {
  const highWaterMark = options.highWaterMark ?? 64 * 1024;
  const streamOptions = { highWaterMark, allowHalfOpen: options.allowHalfOpen ?? false };
  const a = new MemoryEnd(streamOptions);
  const b = new MemoryEnd(streamOptions);
  a.peer = b;
  b.peer = a;
  return [a, b];
}
