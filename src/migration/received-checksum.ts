// The receiver's image checksum, kept up to date while the migration runs instead of computed
// from scratch at the end (where it would add to the downtime), and never by reading the pages
// again: workers write the 4 KiB unit hashes of every page they apply (the hashes they checked
// the packet with) into a table per block and mark the checksum chunks they changed; at every
// round barrier the changed chunks' hashes are taken from the table. A chunk never written is
// still all zero in fresh memory, and its table entries start as the zero unit's hash.
import {
  CHECKSUM_CHUNK_BYTES,
  HASH_UNIT_BYTES,
  UNITS_PER_CHUNK,
  checksumChunkCount,
  chunkHashOfUnits,
  combineChecksums,
  fillZeroUnitHashes,
  zeroChunkChecksum,
} from '../memory/checksum.js';

function newBitmap(bits: number): Int32Array {
  return new Int32Array(new SharedArrayBuffer(4 * Math.max(1, Math.ceil(bits / 32))));
}

/** Chunk hashes of what a receiver applied, block by block. */
export class ReceivedChecksum {
  /** Per block: 2 u32 (low, high) per 4 KiB unit, the hash of what is applied there (shared with workers). */
  readonly unitHashes: Uint32Array[];
  /** One bit per chunk, per block: changed since its hash was last taken (shared with workers). */
  readonly stale: Int32Array[];
  private readonly hashes: bigint[][];

  constructor(private readonly blockBytes: readonly number[]) {
    this.unitHashes = blockBytes.map((bytes) => {
      const table = new Uint32Array(new SharedArrayBuffer((8 * bytes) / HASH_UNIT_BYTES));
      fillZeroUnitHashes(table, 0, bytes / HASH_UNIT_BYTES);
      return table;
    });
    this.stale = blockBytes.map((bytes) => newBitmap(checksumChunkCount(bytes)));
    this.hashes = blockBytes.map(() => []);
  }

  /** Takes the hash of every chunk changed since it was last taken (call it at a round barrier). */
  refresh(): void {
    this.blockBytes.forEach((bytes, block) => {
      const stale = this.stale[block]!;
      const table = this.unitHashes[block]!;
      for (let word = 0; word < stale.length; word++) {
        // Take the bits word by word: a chunk changed from now on is stale again.
        let bits = Atomics.exchange(stale, word, 0);
        while (bits) {
          const bit = 31 - Math.clz32(bits);
          bits &= ~(1 << bit);
          const chunk = 32 * word + bit;
          const firstUnit = chunk * UNITS_PER_CHUNK;
          const units = Math.min(UNITS_PER_CHUNK, bytes / HASH_UNIT_BYTES - firstUnit);
          this.hashes[block]![chunk] = chunkHashOfUnits(table.subarray(2 * firstUnit, 2 * (firstUnit + units)));
        }
      }
    });
  }

  /** The image checksum: a last refresh, then every chunk's hash; chunks never written are zero. */
  checksum(): bigint {
    this.refresh();
    const all: bigint[] = [];
    this.blockBytes.forEach((bytes, block) => {
      for (let chunk = 0; chunk < checksumChunkCount(bytes); chunk++) {
        all.push(this.hashes[block]![chunk] ?? zeroChunkChecksum(Math.min(CHECKSUM_CHUNK_BYTES, bytes - chunk * CHECKSUM_CHUNK_BYTES)));
      }
    });
    return combineChecksums(all);
  }
}
