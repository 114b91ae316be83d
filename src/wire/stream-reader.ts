// What the control and packet readers share: chunks in, items out, and a latch for the first
// protocol error. Once a stream has broken its framing nothing after it can be trusted, so the
// reader drops what it holds and answers every later call with that same error.
import type { ProtocolError } from '../errors.js';
import { ChunkQueue } from './chunk-queue.js';

/** A streaming parser fed socket chunks split at any byte. */
export abstract class StreamReader<T> {
  /** Pushed bytes not yet copied into the item being assembled. */
  protected readonly queue = new ChunkQueue();
  private failure: ProtocolError | undefined;

  /** Whether the reader has thrown: it holds nothing any more and takes nothing. */
  protected get broken(): boolean {
    return this.failure !== undefined;
  }

  /**
   * Queues bytes from the connection: a chunk may end mid-field or hold many items. The
   * chunk is kept by reference until its bytes are read, so it must not be reused before.
   */
  push(chunk: Uint8Array): void {
    if (this.failure) throw this.failure;
    this.queue.push(chunk);
  }

  /**
   * Bytes pushed and not yet returned as items: those still queued plus those already copied
   * into the unfinished item. What a caller that stops calling `next()` holds in memory.
   */
  get bufferedBytes(): number {
    return this.queue.length + this.partialBytes();
  }

  /** The next complete item, or undefined until more bytes arrive. */
  next(): T | undefined {
    if (this.failure) throw this.failure;
    try {
      return this.step();
    } catch (error) {
      this.failure = error as ProtocolError;
      this.queue.clear();
      throw error;
    }
  }

  /**
   * Declares the stream over. Call it once `next()` has returned undefined: any byte still
   * buffered then belongs to an item that never finished, and is reported as truncated.
   */
  end(): void {
    if (this.failure) throw this.failure;
    const buffered = this.bufferedBytes;
    if (buffered === 0) return;
    this.failure = this.truncated(buffered);
    throw this.failure;
  }

  /** Assembles and validates the next item from the queue, or returns undefined for more bytes. */
  protected abstract step(): T | undefined;

  /** Bytes already copied out of the queue into the unfinished item. */
  protected abstract partialBytes(): number;

  /** The error for a stream that ends with `bufferedBytes` of an unfinished item. */
  protected abstract truncated(bufferedBytes: number): ProtocolError;
}

/**
 * A reader of length-prefixed frames: a fixed-size head, validated as soon as its bytes are
 * in (before room for the frame is allocated, so a corrupt or hostile length costs nothing),
 * then the whole frame, head included, handed to `finish` once its last byte is in.
 */
export abstract class FrameReader<T> extends StreamReader<T> {
  private readonly head: Uint8Array;
  private headFilled = 0;
  private frame: Uint8Array | undefined;
  private frameFilled = 0;

  constructor(headBytes: number) {
    super();
    this.head = new Uint8Array(headBytes);
  }

  protected step(): T | undefined {
    if (!this.frame) {
      this.headFilled = this.queue.fill(this.head, this.headFilled, this.head.byteLength);
      if (this.headFilled < this.head.byteLength) return undefined;
      this.frame = new Uint8Array(this.checkHead(this.head));
      this.frame.set(this.head);
      this.frameFilled = this.head.byteLength;
      this.headFilled = 0;
    }
    this.frameFilled = this.queue.fill(this.frame, this.frameFilled, this.frame.byteLength);
    if (this.frameFilled < this.frame.byteLength) return undefined;
    const frame = this.frame;
    this.frame = undefined;
    return this.finish(frame);
  }

  protected partialBytes(): number {
    return this.frame ? this.frameFilled : this.headFilled;
  }

  /** The bytes the unfinished frame needs in all: its length once its head is in, else the head's. */
  protected get neededBytes(): number {
    return this.frame ? this.frame.byteLength : this.head.byteLength;
  }

  /** Validates a frame's head; returns the frame's whole length, head included. */
  protected abstract checkHead(head: Uint8Array): number;

  /** Checks and reads a complete frame (a buffer of its own). */
  protected abstract finish(frame: Uint8Array): T;
}
