// The receiver's image checksum, kept up to date while the migration runs instead of computed
// from scratch at the end (where it would add to the downtime). Workers mark the checksum
// chunks they write; at every round barrier the chunks written since they were last hashed are
// hashed again in the background, so at completion only the last round's chunks remain. A
// chunk never written is still all zero in fresh memory and is never read.
import { CHECKSUM_CHUNK_BYTES, checksumChunkCount, combineChecksums, zeroChunkChecksum } from '../memory/checksum.js';

/** Chunk hashes of a chunk-aligned byte range of one block. */
export type HashRange = (blockIndex: number, byteOffset: number, byteLength: number) => Promise<bigint[]>;

/** Checksum chunks one hashing task covers at most (64 MiB), so every worker hashes a share. */
const CHUNKS_PER_RANGE = 64;

function newBitmap(bits: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * Math.max(1, Math.ceil(bits / 32))));
}

/** Chunk hashes of what a receiver wrote, block by block. */
export class ReceivedChecksum {
  /** One bit per chunk, per block: written at least once in this migration (shared with workers). */
  readonly written: Int32Array[];
  /** One bit per chunk, per block: written since its hash was last taken (shared with workers). */
  readonly stale: Int32Array[];
  private readonly hashes: bigint[][];
  private refreshing: Promise<void> = Promise.resolve();

  constructor(
    private readonly blockBytes: readonly number[],
    private readonly hashRange: HashRange,
  ) {
    this.written = blockBytes.map((bytes) => newBitmap(checksumChunkCount(bytes)));
    this.stale = blockBytes.map((bytes) => newBitmap(checksumChunkCount(bytes)));
    this.hashes = blockBytes.map(() => []);
  }

  /**
   * Hashes, in the background, every chunk written since it was last hashed (call it at a
   * round barrier: the round's pages are in place). Refreshes run one after another.
   */
  refresh(): Promise<void> {
    this.refreshing = this.refreshing.then(() => this.hashStale());
    return this.refreshing;
  }

  /** The image checksum: the last refresh, then every chunk still stale; unwritten chunks are zero. */
  async checksum(): Promise<bigint> {
    await this.refresh();
    const all: bigint[] = [];
    this.blockBytes.forEach((bytes, block) => {
      for (let chunk = 0; chunk < checksumChunkCount(bytes); chunk++) {
        all.push(this.hashes[block]![chunk] ?? zeroChunkChecksum(Math.min(CHECKSUM_CHUNK_BYTES, bytes - chunk * CHECKSUM_CHUNK_BYTES)));
      }
    });
    return combineChecksums(all);
  }

  private async hashStale(): Promise<void> {
    const ranges: Promise<void>[] = [];
    this.blockBytes.forEach((bytes, block) => {
      const chunks = checksumChunkCount(bytes);
      // Take the stale bits word by word: a chunk written again from now on is stale again.
      const stale = this.stale[block]!.map((_, i) => Atomics.exchange(this.stale[block]!, i, 0));
      const isStale = (c: number) => (stale[c >>> 5]! & (1 << (c & 31))) !== 0;
      for (let c = 0; c < chunks; ) {
        if (!isStale(c)) {
          c++;
          continue;
        }
        const first = c;
        while (c < chunks && c - first < CHUNKS_PER_RANGE && isStale(c)) c++;
        const byteOffset = first * CHECKSUM_CHUNK_BYTES;
        const byteLength = Math.min(c * CHECKSUM_CHUNK_BYTES, bytes) - byteOffset;
        ranges.push(this.hashRange(block, byteOffset, byteLength).then((hashes) => hashes.forEach((hash, i) => (this.hashes[block]![first + i] = hash))));
      }
    });
    await Promise.all(ranges);
  }
}
