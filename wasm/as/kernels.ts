// Page kernels that run directly on the caller's shared WebAssembly.Memory (imported), so
// scanning or hashing guest RAM copies nothing. The module owns no memory and no data
// segments: instantiating it must never write a byte of guest memory. Built twice from the
// same sources (asconfig.json targets "simd" and "scalar"); ASC_FEATURE_SIMD picks the loop.
// XXH3 lives in ./xxh3.ts (partly generated, see there); this file exports it.
import { xxh3Long } from './xxh3';

// Bytes OR-reduced between two early-exit checks. QEMU's buffer_is_zero checks its
// accumulator once per block of 8 vectors; 256 bytes (16 vectors) measured slightly faster
// here because V8 keeps two independent OR trees in flight.
const BLOCK: usize = 256;

/**
 * Whether `len` bytes at `ptr` are all zero. `len` must be a multiple of 256 (every page
 * size from 4 KiB to 64 KiB is). Like QEMU's buffer_is_zero, three sampled bytes (first,
 * middle, last) answer most non-zero pages before any vector load touches later lines.
 */
@inline
function isZero(ptr: usize, len: usize): bool {
  if (load<u8>(ptr) | load<u8>(ptr + (len >> 1)) | load<u8>(ptr + len - 1)) return false;
  const end = ptr + len;
  if (ASC_FEATURE_SIMD) {
    for (let p = ptr; p < end; p += BLOCK) {
      const a = v128.or(
        v128.or(v128.or(v128.load(p), v128.load(p, 16)), v128.or(v128.load(p, 32), v128.load(p, 48))),
        v128.or(v128.or(v128.load(p, 64), v128.load(p, 80)), v128.or(v128.load(p, 96), v128.load(p, 112))),
      );
      const b = v128.or(
        v128.or(v128.or(v128.load(p, 128), v128.load(p, 144)), v128.or(v128.load(p, 160), v128.load(p, 176))),
        v128.or(v128.or(v128.load(p, 192), v128.load(p, 208)), v128.or(v128.load(p, 224), v128.load(p, 240))),
      );
      if (v128.any_true(v128.or(a, b))) return false;
    }
  } else {
    for (let p = ptr; p < end; p += BLOCK) {
      let a: u64 = 0;
      let b: u64 = 0;
      for (let q = p; q < p + BLOCK; q += 64) {
        a |= load<u64>(q) | load<u64>(q, 8) | load<u64>(q, 16) | load<u64>(q, 24);
        b |= load<u64>(q, 32) | load<u64>(q, 40) | load<u64>(q, 48) | load<u64>(q, 56);
      }
      if (a | b) return false;
    }
  }
  return true;
}

/**
 * Scans `count` (1..32) consecutive pages of `pageSize` bytes starting at `ptr` and returns a
 * mask with bit i set when page i is entirely zero.
 */
export function zero_mask(ptr: usize, pageSize: u32, count: u32): u32 {
  let mask: u32 = 0;
  for (let i: u32 = 0; i < count; i++) {
    if (isZero(ptr + <usize>i * pageSize, pageSize)) mask |= 1 << i;
  }
  return mask;
}

/** Counts the zero pages at the start of a run of `count` pages (stops at the first non-zero page). */
export function zero_prefix(ptr: usize, pageSize: u32, count: u32): u32 {
  let i: u32 = 0;
  while (i < count && isZero(ptr + <usize>i * pageSize, pageSize)) i++;
  return i;
}

// XXH64 (Yann Collet's xxHash, 64-bit variant), written from the published specification.
// Four independent 64-bit multiply chains per 32-byte stripe keep the multiplier busy; wasm
// SIMD has no fast 64×64 multiply, so the SIMD build runs this same scalar loop.
const P1: u64 = 0x9e3779b185ebca87;
const P2: u64 = 0xc2b2ae3d27d4eb4f;
const P3: u64 = 0x165667b19e3779f9;
const P4: u64 = 0x85ebca77c2b2ae63;
const P5: u64 = 0x27d4eb2f165667c5;

@inline function round(acc: u64, input: u64): u64 {
  return rotl<u64>(acc + input * P2, 31) * P1;
}

@inline function mergeRound(acc: u64, v: u64): u64 {
  return (acc ^ round(0, v)) * P1 + P4;
}

let hashHigh: u32 = 0;

/**
 * XXH64 of `len` bytes at `ptr` with `seed` 0. Returns the low 32 bits; the high 32 bits are
 * read with `page_hash_high()` (two i32 results avoid a BigInt allocation per page).
 */
export function page_hash(ptr: usize, len: usize): u32 {
  const end = ptr + len;
  let p = ptr;
  let h: u64;
  if (len >= 32) {
    let v1: u64 = P1 + P2;
    let v2: u64 = P2;
    let v3: u64 = 0;
    let v4: u64 = 0 - P1;
    const limit = end - 32;
    do {
      v1 = round(v1, load<u64>(p));
      v2 = round(v2, load<u64>(p, 8));
      v3 = round(v3, load<u64>(p, 16));
      v4 = round(v4, load<u64>(p, 24));
      p += 32;
    } while (p <= limit);
    h = rotl<u64>(v1, 1) + rotl<u64>(v2, 7) + rotl<u64>(v3, 12) + rotl<u64>(v4, 18);
    h = mergeRound(h, v1);
    h = mergeRound(h, v2);
    h = mergeRound(h, v3);
    h = mergeRound(h, v4);
  } else {
    h = P5;
  }
  h += <u64>len;
  while (p + 8 <= end) {
    h = rotl<u64>(h ^ round(0, load<u64>(p)), 27) * P1 + P4;
    p += 8;
  }
  if (p + 4 <= end) {
    h = rotl<u64>(h ^ (<u64>load<u32>(p) * P1), 23) * P2 + P3;
    p += 4;
  }
  while (p < end) {
    h = rotl<u64>(h ^ (<u64>load<u8>(p) * P5), 11) * P1;
    p++;
  }
  h ^= h >> 33;
  h *= P2;
  h ^= h >> 29;
  h *= P3;
  h ^= h >> 32;
  hashHigh = <u32>(h >> 32);
  return <u32>h;
}

/**
 * XXH3-64 (seed 0, default secret) of `len` bytes at `ptr`, for `len` ≥ 241 only (XXH3's
 * long-input path; shorter inputs give a value that is not XXH3). Returns the low 32 bits;
 * the high 32 bits are read with `page_hash_high()`.
 */
export function xxh3_hash(ptr: usize, len: usize): u32 {
  const h = xxh3Long(ptr, len);
  hashHigh = <u32>(h >> 32);
  return <u32>h;
}

/** The high 32 bits of the last `page_hash` or `xxh3_hash` result. */
export function page_hash_high(): u32 {
  return hashHigh;
}
