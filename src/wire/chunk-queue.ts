// Socket chunks waiting to be parsed. Readers copy bytes out of it into the buffer of the
// frame they are assembling as soon as they know that frame's size, so a packet that trickles
// in byte by byte never piles up as thousands of tiny chunk objects: the queue only holds
// what was pushed since the reader last ran. Bytes may also wait here unread for a while (a
// data channel past its round's SYNC, control frames the receiver has not asked for yet), so
// small chunks are copied together into shared tail buffers: a peer sending one byte per TCP
// segment costs about a byte of memory per byte queued, not a chunk object per byte.

const EMPTY = new Uint8Array(0);
/** Chunks shorter than this are copied into a tail buffer instead of being kept by reference. */
const SMALL_CHUNK_BYTES = 1024;
/** Largest tail buffer; a chunk that does not fit in a full one starts a new one. */
const MAX_TAIL_BYTES = 16 * 1024;

/** A FIFO of byte chunks, drained by copying into a caller's buffer. */
export class ChunkQueue {
  private chunks: Uint8Array[] = [];
  private head = 0;
  private headOffset = 0;
  private queued = 0;
  /** Where small chunks are copied; while open, the last entry of `chunks` views its filled part. */
  private tail: Uint8Array | undefined;
  private tailFilled = 0;

  /** Bytes queued and not yet copied out. */
  get length(): number {
    return this.queued;
  }

  /**
   * Queues `chunk`: by reference, so its bytes must not change until they are copied out
   * (chunks under 1 KiB are copied at once instead).
   */
  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.queued += chunk.byteLength;
    if (chunk.byteLength >= SMALL_CHUNK_BYTES) {
      this.tail = undefined;
      this.chunks.push(chunk);
      return;
    }
    const filled = this.tailFilled + chunk.byteLength;
    if (this.tail && filled > this.tail.byteLength) {
      if (filled > MAX_TAIL_BYTES) {
        this.tail = undefined;
      } else {
        // Grow by copying: the queue holds the only reference, and offsets into it stay valid.
        const grown = new Uint8Array(Math.min(MAX_TAIL_BYTES, Math.max(2 * this.tail.byteLength, filled)));
        grown.set(this.tail.subarray(0, this.tailFilled));
        this.tail = grown;
      }
    }
    if (!this.tail) {
      this.tail = new Uint8Array(Math.max(64, 2 * chunk.byteLength));
      this.tailFilled = 0;
      this.chunks.push(EMPTY);
    }
    this.tail.set(chunk, this.tailFilled);
    this.tailFilled += chunk.byteLength;
    this.chunks[this.chunks.length - 1] = this.tail.subarray(0, this.tailFilled);
  }

  /**
   * Copies queued bytes into `target[filled .. want)` and returns how far it is now filled
   * (`want` when enough bytes were queued).
   */
  fill(target: Uint8Array, filled: number, want: number): number {
    while (filled < want && this.head < this.chunks.length) {
      const chunk = this.chunks[this.head]!;
      const n = Math.min(chunk.byteLength - this.headOffset, want - filled);
      target.set(chunk.subarray(this.headOffset, this.headOffset + n), filled);
      filled += n;
      this.headOffset += n;
      this.queued -= n;
      if (this.headOffset === chunk.byteLength) {
        this.chunks[this.head++] = EMPTY; // let a consumed socket buffer go now, not at the next clear
        this.headOffset = 0;
      }
    }
    if (this.head === this.chunks.length) this.clear();
    else if (this.head >= 1024) {
      this.chunks = this.chunks.slice(this.head);
      this.head = 0;
    }
    return filled;
  }

  /** Drops everything queued. */
  clear(): void {
    this.chunks = [];
    this.head = 0;
    this.headOffset = 0;
    this.queued = 0;
    this.tail = undefined;
  }
}
