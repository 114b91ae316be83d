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

/** XXH64 (seed 0) of `byteLength` bytes of `memory` at `byteOffset`, read in place. */
export function hashBytes(memory: WebAssembly.Memory, byteOffset: number, byteLength: number): bigint {
  if (byteOffset < 0 || byteLength < 0 || byteOffset + byteLength > memory.buffer.byteLength) {
    throw outOfRange('byteOffset', `such that the range ends within ${memory.buffer.byteLength} bytes`, byteOffset);
  }
  const kernels = kernelsFor(memory);
  const low = kernels.page_hash(byteOffset, byteLength) >>> 0;
  return (BigInt(kernels.page_hash_high() >>> 0) << 32n) | BigInt(low);
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
  checkPageRun(memory, byteOffset, pageSize, count);
  if (out.length < 2 * count) throw outOfRange('out.length', `at least ${2 * count}`, out.length);
  const kernels = kernelsFor(memory);
  for (let i = 0; i < count; i++) {
    out[2 * i] = kernels.page_hash(byteOffset + i * pageSize, pageSize);
    out[2 * i + 1] = kernels.page_hash_high();
  }
}

// A private shared memory per thread for hashing bytes that live outside any guest memory
// (packets, checksum lists): they are copied in once, then hashed by the same kernel.
let scratch: WebAssembly.Memory | undefined;

/** XXH64 (seed 0) of any bytes: packet checksums and image checksums use it. */
export function checksum64(bytes: Uint8Array): bigint {
  const needed = Math.max(1, Math.ceil(bytes.byteLength / 65536));
  if (!scratch || scratch.buffer.byteLength < bytes.byteLength) {
    scratch = new WebAssembly.Memory({ initial: needed, maximum: 65536, shared: true });
  }
  new Uint8Array(scratch.buffer, 0, bytes.byteLength).set(bytes);
  return hashBytes(scratch, 0, bytes.byteLength);
}
