// Where a receiver puts pages: a GuestMemory it creates from the sender's block table, or an
// image file written in place under a temporary name until the checksum is confirmed.
import { createImageSink } from '../memory/image-sink.js';
import { GuestMemory } from '../memory/guest-memory.js';
import { CHECKSUM_CHUNK_BYTES, checksumChunkCount, combineChecksums, zeroChunkChecksum } from '../memory/checksum.js';
import { fileChunkChecksums } from '../memory/file-windows.js';
import type { WorkerPool } from '../pool/pool.js';
import type { BlockTarget } from '../pool/protocol.js';
import type { ControlMessage } from '../wire/index.js';

/** Checksum chunks one hashing task covers at most (64 MiB), so every worker hashes a share. */
const CHUNKS_PER_RANGE = 64;

/**
 * The chunk hashes of one block of fresh memory (or a fresh sparse file): runs of written
 * chunks are hashed by `hashRange` (byte offset and length within the block), in ranges of at
 * most 64 chunks run concurrently; a chunk never written is still all zero and gets the zero
 * chunk's hash without being read.
 */
async function blockChunkHashes(byteLength: number, written: Int32Array, hashRange: (byteOffset: number, byteLength: number) => Promise<bigint[]>): Promise<bigint[]> {
  const chunks = checksumChunkCount(byteLength);
  const hashes: bigint[] = [];
  const ranges: Array<Promise<void>> = [];
  const isWritten = (c: number) => (written[c >>> 5]! & (1 << (c & 31))) !== 0;
  for (let c = 0; c < chunks; ) {
    const length = Math.min(CHECKSUM_CHUNK_BYTES, byteLength - c * CHECKSUM_CHUNK_BYTES);
    if (!isWritten(c)) {
      hashes[c++] = zeroChunkChecksum(length);
      continue;
    }
    const first = c;
    while (c < chunks && c - first < CHUNKS_PER_RANGE && isWritten(c)) c++;
    const byteOffset = first * CHECKSUM_CHUNK_BYTES;
    const rangeBytes = Math.min(c * CHECKSUM_CHUNK_BYTES, byteLength) - byteOffset;
    ranges.push(hashRange(byteOffset, rangeBytes).then((range) => range.forEach((hash, i) => (hashes[first + i] = hash))));
  }
  await Promise.all(ranges);
  return hashes;
}

/** The sender's hello, which fixes the page size and the block table. */
export type Hello = Extract<ControlMessage, { type: 'hello' }>;

/** A receiver's destination for one migration. */
export interface Destination {
  /**
   * One write target per RAM block, in the hello's order. Targets start all zero (fresh memory,
   * a new sparse file): zero pages never written are left alone and never-written checksum
   * chunks are not read, as QEMU's receive bitmap does.
   */
  readonly targets: readonly BlockTarget[];
  /**
   * The image checksum of what was received (same definition as the sender's). `writtenChunks`
   * (one bit per checksum chunk, per block) says which chunks were ever written: the others are
   * still zero and are not read.
   */
  checksum(pool: WorkerPool, writtenChunks: readonly Int32Array[]): Promise<bigint>;
  /** Called once the checksum is confirmed: the image becomes complete. */
  complete(): Promise<void>;
  /** Called on failure: nothing may look like a complete image afterwards. */
  abort(): Promise<void>;
}

/** Builds the destination once the hello is known. */
export type DestinationFactory = (hello: Hello) => Promise<Destination>;

/** Pages go into a new GuestMemory shaped like the sender's; `onMemory` receives it. */
export function memoryDestination(onMemory?: (memory: GuestMemory) => void): DestinationFactory {
  return async (hello) => {
    const memory = GuestMemory.create({ pageSize: hello.pageSize, blocks: hello.blocks });
    onMemory?.(memory);
    return {
      targets: memory.blocks.map((b) => ({ memory: b.memory })),
      async checksum(pool, writtenChunks) {
        const blocks = await Promise.all(
          memory.blocks.map((b, i) =>
            blockChunkHashes(b.byteLength, writtenChunks[i]!, async (byteOffset, byteLength) => [...(await pool.checksumChunks({ memory: b.memory, byteOffset, byteLength }))]),
          ),
        );
        return combineChecksums(blocks.flat());
      },
      async complete() {},
      async abort() {},
    };
  };
}

/**
 * Pages go into an image file at `path`: the blocks one after another. The file is written as
 * `path.partial` and renamed to `path` only after the checksum matched, so a failed or cut
 * migration never leaves a file that looks complete.
 */
export function fileDestination(path: string): DestinationFactory {
  return async (hello) => {
    const byteLength = hello.blocks.reduce((n, b) => n + b.byteLength, 0);
    const sink = await createImageSink(path, { pageSize: hello.pageSize, byteLength });
    let offset = 0;
    const targets = hello.blocks.map((b) => {
      const target = { fd: sink.fd, byteOffset: offset };
      offset += b.byteLength;
      return target;
    });
    return {
      targets,
      async checksum(_pool, writtenChunks) {
        const all: bigint[] = [];
        for (const [i, b] of hello.blocks.entries()) {
          const blockOffset = targets[i]!.byteOffset;
          all.push(
            ...(await blockChunkHashes(b.byteLength, writtenChunks[i]!, (byteOffset, byteLength) =>
              fileChunkChecksums(sink.fd, { byteOffset: blockOffset + byteOffset, byteLength, windowBytes: 16 * CHECKSUM_CHUNK_BYTES }),
            )),
          );
        }
        return combineChecksums(all);
      },
      complete: () => sink.complete(),
      abort: () => sink.abort(),
    };
  };
}
