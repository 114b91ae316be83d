// The image checksum the whole project compares (sender, receiver report, file images, tests).
// It has three levels: a hash per 4 KiB unit of memory (the only level that reads page bytes),
// a hash per 1 MiB chunk over its units' hashes, and a hash over the list of chunk hashes.
// The unit hashes are the ones packets carry in their checksum (wire format v2), so a sender
// and a receiver each read a page's bytes once for packet integrity and the image checksum
// together: a receiver keeps the unit hashes of what it applied in a table and builds the
// image checksum from the table, never from the pages again. The chunking is what lets the
// work split: threads hash disjoint chunk ranges in place, a file streams through window by
// window, and all of them agree because only the grids and the combining steps are fixed.
import { outOfRange } from '../errors.js';
import { checksum64, inScratch, xxh3Pages } from '../wasm/kernels.js';
import type { GuestMemory } from './guest-memory.js';

/** Bytes of one checksum chunk: each block is cut into chunks of 1 MiB (the last may be shorter). */
export const CHECKSUM_CHUNK_BYTES = 1 << 20;

/** Bytes of one hash unit: every page size (4 to 64 KiB) is a whole number of units. */
export const HASH_UNIT_BYTES = 4096;

/** Hash units per checksum chunk. */
export const UNITS_PER_CHUNK = CHECKSUM_CHUNK_BYTES / HASH_UNIT_BYTES;

/**
 * The unit hash (XXH3-64, seed 0) of each 4 KiB unit of `byteLength` bytes (a multiple of
 * 4 KiB) of a shared memory from `byteOffset`, read in place, into `out` from index `at` as
 * (low, high) u32 halves: the bytes of `out` then hold the hashes as consecutive little-endian
 * u64 values.
 */
export function unitHashes(memory: WebAssembly.Memory, byteOffset: number, byteLength: number, out: Uint32Array, at = 0): void {
  if (byteLength % HASH_UNIT_BYTES !== 0) throw outOfRange('byteLength', `a multiple of ${HASH_UNIT_BYTES}`, byteLength);
  xxh3Pages(memory, byteOffset, HASH_UNIT_BYTES, byteLength / HASH_UNIT_BYTES, out, at);
}

let zeroUnit: [number, number] | undefined;

/** The hash of an all-zero unit, as (low, high) u32 halves. */
export function zeroUnitHash(): readonly [number, number] {
  if (!zeroUnit) {
    const zeros = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
    const out = new Uint32Array(2);
    unitHashes(zeros, 0, HASH_UNIT_BYTES, out);
    zeroUnit = [out[0]!, out[1]!];
  }
  return zeroUnit;
}

/** Writes the zero unit's hash into `count` units of `out` from unit `firstUnit`. */
export function fillZeroUnitHashes(out: Uint32Array, firstUnit: number, count: number): void {
  const [low, high] = zeroUnitHash();
  for (let i = 2 * firstUnit, end = 2 * (firstUnit + count); i < end; i += 2) {
    out[i] = low;
    out[i + 1] = high;
  }
}

/** The checksum of one chunk from its units' hashes (`units` holds 2 u32 per unit, low first). */
export function chunkHashOfUnits(units: Uint32Array): bigint {
  return checksum64(new Uint8Array(units.buffer, units.byteOffset, units.byteLength));
}

/** How many checksum chunks a block (or file image) of `byteLength` bytes has. */
export function checksumChunkCount(byteLength: number): number {
  return Math.ceil(byteLength / CHECKSUM_CHUNK_BYTES);
}

const chunkUnits = new Uint32Array(2 * UNITS_PER_CHUNK);

/**
 * The checksum of each consecutive 1 MiB chunk of `byteLength` bytes (a multiple of 4 KiB) of
 * a shared memory from `byteOffset` (the last chunk may be shorter), hashed in place. For the
 * image checksum `byteOffset` must be a chunk boundary of the block the memory holds.
 * @throws RangeError (`ERR_OUT_OF_RANGE`) when the range leaves the memory.
 */
export function chunkChecksumsOf(memory: WebAssembly.Memory, byteOffset: number, byteLength: number): BigUint64Array<ArrayBuffer> {
  const out = new BigUint64Array(checksumChunkCount(byteLength));
  for (let i = 0; i < out.length; i++) {
    const at = i * CHECKSUM_CHUNK_BYTES;
    const length = Math.min(CHECKSUM_CHUNK_BYTES, byteLength - at);
    unitHashes(memory, byteOffset + at, length, chunkUnits);
    out[i] = chunkHashOfUnits(chunkUnits.subarray(0, (2 * length) / HASH_UNIT_BYTES));
  }
  return out;
}

const zeroHashes = new Map<number, bigint>();

/**
 * The checksum of a chunk of `byteLength` zero bytes (at most one chunk): the hash of a chunk
 * known to be all zero without reading it (a sender's zero pages, a receiver's never-written
 * fresh memory).
 */
export function zeroChunkChecksum(byteLength: number): bigint {
  let hash = zeroHashes.get(byteLength);
  if (hash === undefined) {
    const units = new Uint32Array((2 * byteLength) / HASH_UNIT_BYTES);
    fillZeroUnitHashes(units, 0, units.length / 2);
    hash = chunkHashOfUnits(units);
    zeroHashes.set(byteLength, hash);
  }
  return hash;
}

/**
 * The checksums of chunks `firstChunk .. firstChunk + count - 1` of block `blockIndex`: one slice of
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
 * checksum of each 1 MiB chunk, then {@link combineChecksums} over all of them. A file image of
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

/**
 * The unit hashes of bytes outside any shared memory (a multiple of 4 KiB), copied into a
 * scratch memory first: for tools and tests that build packets from plain buffers.
 */
export function unitHashesOfBytes(bytes: Uint8Array): Uint32Array {
  const out = new Uint32Array((2 * bytes.byteLength) / HASH_UNIT_BYTES);
  unitHashes(inScratch(bytes), 0, bytes.byteLength, out);
  return out;
}
