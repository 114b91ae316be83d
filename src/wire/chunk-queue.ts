// Socket chunks waiting to be parsed. Readers copy bytes out of it into the buffer of the
// frame they are assembling as soon as they know that frame's size, so a packet that trickles
// in byte by byte never piles up as thousands of tiny chunk objects: the queue only holds
// what was pushed since the reader last ran.

const EMPTY = new Uint8Array(0);

/** A FIFO of byte chunks, drained by copying into a caller's buffer. */
export class ChunkQueue {
  private chunks: Uint8Array[] = [];
  private head = 0;
  private headOffset = 0;
  private queued = 0;

  /** Bytes queued and not yet copied out. */
  get length(): number {
    return this.queued;
  }

  /** Queues `chunk` by reference: its bytes must not change until they are copied out. */
  push(chunk: Uint8Array): void {
    if (chunk.byteLength === 0) return;
    this.chunks.push(chunk);
    this.queued += chunk.byteLength;
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
  }
}
