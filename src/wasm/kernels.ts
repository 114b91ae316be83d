// Instances of the AssemblyScript page kernels (wasm/as/kernels.ts), one per shared memory
// and thread. The kernel module imports the caller's memory, so an instance is bound to one
// WebAssembly.Memory: a RAM block's memory gets its own instance, cached weakly so a block
// that is dropped takes its instance with it.
import { outOfRange } from '../errors.js';
import { checkPageSize } from '../pages.js';
import { compiledModule } from './load.js';

interface KernelExports {
  zero_mask(ptr: number, pageSize: number, count: number): number;
  zero_prefix(ptr: number, pageSize: number, count: number): number;
  page_hash(ptr: number, byteLength: number): number;
  page_hash_high(): number;
  xxh3_hash(ptr: number, byteLength: number): number;
}

const instances = new WeakMap<WebAssembly.Memory, KernelExports>();

/**
 * The kernels bound to `memory`, which must be a shared WebAssembly.Memory (its declared
 * maximum at most 65536 pages, i.e. 4 GiB).
 */
export function kernelsFor(memory: WebAssembly.Memory): KernelExports {
  let kernels = instances.get(memory);
  if (!kernels) {
    const instance = new WebAssembly.Instance(compiledModule('kernels'), { env: { memory } });
    kernels = instance.exports as unknown as KernelExports;
    instances.set(memory, kernels);
  }
  return kernels;
}

/** Checks that `count` pages of `pageSize` bytes from `byteOffset` lie inside `memory`. */
export function checkPageRun(memory: WebAssembly.Memory, byteOffset: number, pageSize: number, count: number): void {
  checkPageSize(pageSize);
  if (!Number.isInteger(count) || count < 0) throw outOfRange('count', 'a non-negative integer', count);
  const end = byteOffset + count * pageSize;
  if (!Number.isInteger(byteOffset) || byteOffset < 0 || end > memory.buffer.byteLength) {
    throw outOfRange('byteOffset', `such that the run ends within ${memory.buffer.byteLength} bytes`, byteOffset);
  }
}

function checkByteRange(memory: WebAssembly.Memory, byteOffset: number, byteLength: number): void {
  if (byteOffset < 0 || byteLength < 0 || byteOffset + byteLength > memory.buffer.byteLength) {
    throw outOfRange('byteOffset', `such that the range ends within ${memory.buffer.byteLength} bytes`, byteOffset);
  }
}

/** The 64-bit hash whose low half a kernel call just returned (the kernel keeps the high half). */
function withHighHalf(kernels: KernelExports, low: number): bigint {
  return (BigInt(kernels.page_hash_high() >>> 0) << 32n) | BigInt(low >>> 0);
}

/** Checks a page run and its output, then stores each page's hash as (low, high) halves. */
function hashEachPage(
  memory: WebAssembly.Memory,
  byteOffset: number,
  pageSize: number,
  count: number,
  out: Uint32Array,
  outOffset: number,
  kernel: 'page_hash' | 'xxh3_hash',
): void {
  checkPageRun(memory, byteOffset, pageSize, count);
  if (!Number.isInteger(outOffset) || outOffset < 0) throw outOfRange('outOffset', 'a non-negative integer', outOffset);
  if (out.length < outOffset + 2 * count) throw outOfRange('out.length', `at least ${outOffset + 2 * count}`, out.length);
  const kernels = kernelsFor(memory);
  const hash = kernels[kernel];
  for (let i = 0; i < count; i++) {
    out[outOffset + 2 * i] = hash(byteOffset + i * pageSize, pageSize);
    out[outOffset + 2 * i + 1] = kernels.page_hash_high();
  }
}

/** XXH64 (seed 0) of `byteLength` bytes of `memory` at `byteOffset`, read in place. */
export function hashBytes(memory: WebAssembly.Memory, byteOffset: number, byteLength: number): bigint {
  checkByteRange(memory, byteOffset, byteLength);
  const kernels = kernelsFor(memory);
  return withHighHalf(kernels, kernels.page_hash(byteOffset, byteLength));
}

/**
 * Hashes `count` consecutive pages in place into `out` as (low, high) 32-bit halves of each
 * page's XXH64: `out[2i]` and `out[2i + 1]`. Split halves avoid a BigInt per page in the
 * dirty-tracking loop.
 */
export function hashPages(
  memory: WebAssembly.Memory,
  byteOffset: number,
  pageSize: number,
  count: number,
  out: Uint32Array,
): void {
  hashEachPage(memory, byteOffset, pageSize, count, out, 0, 'page_hash');
}

// The XXH3 kernel implements only XXH3's path for inputs longer than 240 bytes; every page
// size (4 KiB to 64 KiB) is far above it.
const XXH3_MIN_BYTES = 241;

/**
 * XXH3-64 (seed 0, default secret; what `xxhsum -H3` prints) of `byteLength` bytes of `memory`
 * at `byteOffset`, read in place. `byteLength` must be at least 241.
 */
export function xxh3Bytes(memory: WebAssembly.Memory, byteOffset: number, byteLength: number): bigint {
  if (!Number.isInteger(byteLength) || byteLength < XXH3_MIN_BYTES) {
    throw outOfRange('byteLength', `an integer of at least ${XXH3_MIN_BYTES}`, byteLength);
  }
  checkByteRange(memory, byteOffset, byteLength);
  const kernels = kernelsFor(memory);
  return withHighHalf(kernels, kernels.xxh3_hash(byteOffset, byteLength));
}

/**
 * Hashes `count` consecutive pages in place into `out` as (low, high) 32-bit halves of each
 * page's XXH3-64: `out[outOffset + 2i]` and `out[outOffset + 2i + 1]` (the layout of
 * `hashPages`). Pages are 4 KiB to 64 KiB, so XXH3's 241-byte minimum always holds.
 */
export function xxh3Pages(
  memory: WebAssembly.Memory,
  byteOffset: number,
  pageSize: number,
  count: number,
  out: Uint32Array,
  outOffset = 0,
): void {
  hashEachPage(memory, byteOffset, pageSize, count, out, outOffset, 'xxh3_hash');
}

// A private shared memory per thread for hashing bytes that live outside any guest memory
// (packets, checksum lists): they are copied in once, then hashed by the same kernel.
let scratch: WebAssembly.Memory | undefined;

/**
 * `bytes` copied to the start of this thread's scratch memory (valid until the next call):
 * how bytes outside any shared memory reach the kernels.
 */
export function inScratch(bytes: Uint8Array): WebAssembly.Memory {
  const needed = Math.max(1, Math.ceil(bytes.byteLength / 65536));
  if (!scratch || scratch.buffer.byteLength < bytes.byteLength) {
    scratch = new WebAssembly.Memory({ initial: needed, maximum: 65536, shared: true });
  }
  new Uint8Array(scratch.buffer, 0, bytes.byteLength).set(bytes);
  return scratch;
}

/** XXH64 (seed 0) of any bytes: packet checksums and image checksums use it. */
export function checksum64(bytes: Uint8Array): bigint {
  return hashBytes(inScratch(bytes), 0, bytes.byteLength);
}
