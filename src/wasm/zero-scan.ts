// Zero-page detection over runs of pages, in place on a shared memory. The kernel answers 32
// pages per call as a bit mask, so a 128-page packet costs four calls across the JS/WASM
// boundary rather than 128.
import { checkPageRun, kernelsFor } from './kernels.js';

const PAGES_PER_CALL = 32;

/**
 * Scans `count` pages of `pageSize` bytes starting at `byteOffset` in `memory` and sets
 * `isZero[i]` to 1 when page i is all zero, else 0. Returns how many pages are zero.
 * @throws RangeError (`ERR_OUT_OF_RANGE`) when the run leaves the memory or the page size is not
 * a power of two from 4 KiB to 64 KiB.
 */
export function scanZeroPages(
  memory: WebAssembly.Memory,
  byteOffset: number,
  pageSize: number,
  count: number,
  isZero: Uint8Array,
): number {
  checkPageRun(memory, byteOffset, pageSize, count);
  const kernels = kernelsFor(memory);
  let zeroPages = 0;
  for (let first = 0; first < count; first += PAGES_PER_CALL) {
    const n = Math.min(PAGES_PER_CALL, count - first);
    const mask = kernels.zero_mask(byteOffset + first * pageSize, pageSize, n);
    for (let i = 0; i < n; i++) {
      const bit = (mask >>> i) & 1;
      isZero[first + i] = bit;
      zeroPages += bit;
    }
  }
  return zeroPages;
}

/**
 * Counts the all-zero pages at the start of a run of `count` pages (stopping at the first
 * non-zero page): how long a zero run is, without a per-page result.
 */
export function countLeadingZeroPages(
  memory: WebAssembly.Memory,
  byteOffset: number,
  pageSize: number,
  count: number,
): number {
  checkPageRun(memory, byteOffset, pageSize, count);
  return kernelsFor(memory).zero_prefix(byteOffset, pageSize, count);
}
