// The image checksum the whole project compares (sender, receiver report, file images, tests).
// It is a two-level XXH64: one hash per 1 MiB chunk, then one hash over the list of chunk
// hashes. The chunking is what lets the work split: worker threads hash disjoint chunk ranges
// in place, a file streams through window by window, a sender hashes chunks while they are
// hot, and all of them agree because only the chunk grid and the combining step are fixed.
import { outOfRange } from '../errors.js';
import { checksum64, hashBytes } from '../wasm/kernels.js';
import type { GuestMemory } from './guest-memory.js';

/** Bytes of one checksum chunk: each block is cut into chunks of 1 MiB (the last may be shorter). */
export const CHECKSUM_CHUNK_BYTES = 1 << 20;

/** How many checksum chunks a block (or file image) of `byteLength` bytes has. */
export function checksumChunkCount(byteLength: number): number {
  return Math.ceil(byteLength / CHECKSUM_CHUNK_BYTES);
}

/**
 * XXH64 of each consecutive 1 MiB chunk of `byteLength` bytes of a shared memory from
 * `byteOffset` (the last chunk may be shorter), hashed in place. For the image checksum
 * `byteOffset` must be a chunk boundary of the block the memory holds.
 * @throws RangeError (`ERR_OUT_OF_RANGE`) when the range leaves the memory.
 */
export function chunkChecksumsOf(memory: WebAssembly.Memory, byteOffset: number, byteLength: number): BigUint64Array<ArrayBuffer> {
  const out = new BigUint64Array(checksumChunkCount(byteLength));
  for (let i = 0; i < out.length; i++) {
    const at = i * CHECKSUM_CHUNK_BYTES;
    out[i] = hashBytes(memory, byteOffset + at, Math.min(CHECKSUM_CHUNK_BYTES, byteLength - at));
  }
  return out;
}

let zeros: WebAssembly.Memory | undefined;
const zeroHashes = new Map<number, bigint>();

/**
 * XXH64 of `byteLength` zero bytes (at most one chunk): the hash of a chunk known to be all
 * zero without reading it (a sender's zero pages, a receiver's never-written fresh memory).
 */
export function zeroChunkChecksum(byteLength: number): bigint {
  let hash = zeroHashes.get(byteLength);
  if (hash === undefined) {
    zeros ??= new WebAssembly.Memory({ initial: CHECKSUM_CHUNK_BYTES / 65536, maximum: CHECKSUM_CHUNK_BYTES / 65536, shared: true });
    hash = hashBytes(zeros, 0, byteLength);
    zeroHashes.set(byteLength, hash);
  }
  return hash;
}

/**
 * XXH64 of chunks `firstChunk .. firstChunk + count - 1` of block `blockIndex`: one slice of
 * the image checksum, so that threads can each hash a part (see {@link combineChecksums}).
 * @throws RangeError (`ERR_OUT_OF_RANGE`) for a block or chunk range that does not exist.
 */
export function chunkChecksums(memory: GuestMemory, blockIndex: number, firstChunk: number, count: number): bigint[] {
  const block = memory.blocks[blockIndex];
  if (!block) throw outOfRange('blockIndex', `an integer from 0 to ${memory.blocks.length - 1}`, blockIndex);
  const chunks = checksumChunkCount(block.byteLength);
  if (!Number.isInteger(firstChunk) || !Number.isInteger(count) || firstChunk < 0 || count < 0 || firstChunk + count > chunks) {
    throw outOfRange('firstChunk', `such that the chunk range ends within the block's ${chunks} chunks`, firstChunk);
  }
  const byteOffset = firstChunk * CHECKSUM_CHUNK_BYTES;
  const byteLength = Math.min(count * CHECKSUM_CHUNK_BYTES, block.byteLength - byteOffset);
  return Array.from(chunkChecksumsOf(block.memory, byteOffset, count === 0 ? 0 : byteLength));
}

/**
 * The image checksum from every chunk hash of the image, in block order then chunk order:
 * XXH64 of the hashes written as consecutive 8-byte little-endian values.
 */
export function combineChecksums(all: readonly bigint[] | BigUint64Array): bigint {
  const bytes = new Uint8Array(8 * all.length);
  const view = new DataView(bytes.buffer);
  all.forEach((hash: bigint, i: number) => view.setBigUint64(8 * i, hash, true));
  return checksum64(bytes);
}

/**
 * The image checksum of a whole GuestMemory, on this thread: for each block in order, the
 * XXH64 of each 1 MiB chunk, then {@link combineChecksums} over all of them. A file image of
 * the same bytes (one block) has the same checksum; see `openImageSource(...).checksum()`.
 * When every block but the last is a whole number of chunks (true of `pc.ram` splits), the
 * chunk grid runs straight across the block boundaries, so the result also equals the
 * checksum of a file holding the blocks back to back.
 */
export function imageChecksum(memory: GuestMemory): bigint {
  const all: bigint[] = [];
  for (const block of memory.blocks) {
    for (const hash of chunkChecksumsOf(block.memory, 0, block.byteLength)) all.push(hash);
  }
  return combineChecksums(all);
}
