// XXH3-64 (xxHash 0.8, seed 0, the default 192-byte secret) for inputs longer than 240 bytes,
// written from the published specification (xxHash's doc/xxhash_spec.md, "large inputs").
// The module owns no memory, so the secret cannot be a table: the slices of it that the hash
// reads are literals (./xxh3-secret.ts), and the stripes of a block are unrolled so that every
// key is a literal. Both that file and the lines between `@generated` and `@end` below are
// written by wasm/as/generate-xxh3.mjs: edit the script, run `node wasm/as/generate-xxh3.mjs`,
// and commit its output with it.

import * as S from './xxh3-secret';

const PRIME32_1: u64 = 0x9e3779b1;
const PRIME32_2: u64 = 0x85ebca77;
const PRIME32_3: u64 = 0xc2b2ae3d;
const PRIME64_1: u64 = 0x9e3779b185ebca87;
const PRIME64_2: u64 = 0xc2b2ae3d27d4eb4f;
const PRIME64_3: u64 = 0x165667b19e3779f9;
const PRIME64_4: u64 = 0x85ebca77c2b2ae63;
const PRIME64_5: u64 = 0x27d4eb2f165667c5;
const PRIME_MX1: u64 = 0x165667919e3779f9;
const LOW32: u64 = 0xffffffff;

/**
 * XXH3-64 of `len` bytes at `ptr`. Precondition: `len` ≥ 241. Shorter inputs take other
 * paths in XXH3 that this kernel does not implement; for them the result is not XXH3.
 */
export function xxh3Long(ptr: usize, len: usize): u64 {
  return ASC_FEATURE_SIMD ? xxh3Simd(ptr, len) : xxh3Scalar(ptr, len);
}

// The accumulate step gives each 64-bit lane i of a stripe x = data ^ key and does
// acc[i] += lo32(x) * hi32(x) and acc[i ^ 1] += data. SSE2 multiplies the even 32-bit lanes
// in one instruction; wasm's nearest is extmul_{low,high}_i32x4_u, which multiplies lanes 0–1
// or 2–3, so two key-mixed vectors are unzipped by two shuffles into their low and their high
// halves, and one extmul_low plus one extmul_high yield the four products of both. Within a
// block every update is an addition (scrambling happens only between blocks), so the order of
// stripes does not matter and the data words are summed unswapped and swapped once per block.
// That also lets the last, partial block enter the same unrolled stripes through a switch
// that falls through, from stripe 15 down (Duff's device). The case labels matter for speed:
// a straight-line block measured no faster, because TurboFan then issued all 64 loads of the
// block first and spilled most of them.

// acc + lo32 · hi32 of each 64-bit lane: mulLow of x's two lanes, mulHigh of y's. Both unzip
// the same pair (x, y) with the same two shuffles, which V8 computes once.
@inline function mulLow(acc: v128, x: v128, y: v128): v128 {
  const lo = i32x4.shuffle(x, y, 0, 2, 4, 6);
  const hi = i32x4.shuffle(x, y, 1, 3, 5, 7);
  return i64x2.add(acc, i64x2.extmul_low_i32x4_u(lo, hi));
}

@inline function mulHigh(acc: v128, x: v128, y: v128): v128 {
  const lo = i32x4.shuffle(x, y, 0, 2, 4, 6);
  const hi = i32x4.shuffle(x, y, 1, 3, 5, 7);
  return i64x2.add(acc, i64x2.extmul_high_i32x4_u(lo, hi));
}

@inline function addSwapped(acc: v128, sum: v128): v128 {
  return i64x2.add(acc, i64x2.shuffle(sum, sum, 1, 0));
}

@inline function scrambleSimd(acc: v128, key: v128): v128 {
  const x = v128.xor(v128.xor(acc, i64x2.shr_u(acc, 47)), key);
  return i64x2.mul(x, i64x2.splat(PRIME32_1));
}

function xxh3Simd(ptr: usize, len: usize): u64 {
  let a0 = i64x2(PRIME32_3, PRIME64_1);
  let a1 = i64x2(PRIME64_2, PRIME64_3);
  let a2 = i64x2(PRIME64_4, PRIME32_2);
  let a3 = i64x2(PRIME64_5, PRIME32_1);
  // The last block (1..1024 bytes) ends the loop; its final stripe is the input's last 64 bytes.
  const lastBlock = ptr + (((len - 1) >> 10) << 10);
  const lastStripes = <i32>(((len - 1) & 1023) >> 6);
  let p = ptr;
  while (true) {
    let s0 = i64x2.splat(0);
    let s1 = i64x2.splat(0);
    let s2 = i64x2.splat(0);
    let s3 = i64x2.splat(0);
    let d0: v128, d1: v128, d2: v128, d3: v128;
    const last = p == lastBlock;
    switch (last ? lastStripes : 16) {
      // @generated simd-stripes
      case 16: // stripe 15
        d0 = v128.load(p, 960); d1 = v128.load(p, 976); d2 = v128.load(p, 992); d3 = v128.load(p, 1008);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K15); d1 = v128.xor(d1, S.K17); d2 = v128.xor(d2, S.K19); d3 = v128.xor(d3, S.K21);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 15: // stripe 14
        d0 = v128.load(p, 896); d1 = v128.load(p, 912); d2 = v128.load(p, 928); d3 = v128.load(p, 944);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K14); d1 = v128.xor(d1, S.K16); d2 = v128.xor(d2, S.K18); d3 = v128.xor(d3, S.K20);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 14: // stripe 13
        d0 = v128.load(p, 832); d1 = v128.load(p, 848); d2 = v128.load(p, 864); d3 = v128.load(p, 880);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K13); d1 = v128.xor(d1, S.K15); d2 = v128.xor(d2, S.K17); d3 = v128.xor(d3, S.K19);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 13: // stripe 12
        d0 = v128.load(p, 768); d1 = v128.load(p, 784); d2 = v128.load(p, 800); d3 = v128.load(p, 816);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K12); d1 = v128.xor(d1, S.K14); d2 = v128.xor(d2, S.K16); d3 = v128.xor(d3, S.K18);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 12: // stripe 11
        d0 = v128.load(p, 704); d1 = v128.load(p, 720); d2 = v128.load(p, 736); d3 = v128.load(p, 752);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K11); d1 = v128.xor(d1, S.K13); d2 = v128.xor(d2, S.K15); d3 = v128.xor(d3, S.K17);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 11: // stripe 10
        d0 = v128.load(p, 640); d1 = v128.load(p, 656); d2 = v128.load(p, 672); d3 = v128.load(p, 688);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K10); d1 = v128.xor(d1, S.K12); d2 = v128.xor(d2, S.K14); d3 = v128.xor(d3, S.K16);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 10: // stripe 9
        d0 = v128.load(p, 576); d1 = v128.load(p, 592); d2 = v128.load(p, 608); d3 = v128.load(p, 624);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K9); d1 = v128.xor(d1, S.K11); d2 = v128.xor(d2, S.K13); d3 = v128.xor(d3, S.K15);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 9: // stripe 8
        d0 = v128.load(p, 512); d1 = v128.load(p, 528); d2 = v128.load(p, 544); d3 = v128.load(p, 560);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K8); d1 = v128.xor(d1, S.K10); d2 = v128.xor(d2, S.K12); d3 = v128.xor(d3, S.K14);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 8: // stripe 7
        d0 = v128.load(p, 448); d1 = v128.load(p, 464); d2 = v128.load(p, 480); d3 = v128.load(p, 496);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K7); d1 = v128.xor(d1, S.K9); d2 = v128.xor(d2, S.K11); d3 = v128.xor(d3, S.K13);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 7: // stripe 6
        d0 = v128.load(p, 384); d1 = v128.load(p, 400); d2 = v128.load(p, 416); d3 = v128.load(p, 432);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K6); d1 = v128.xor(d1, S.K8); d2 = v128.xor(d2, S.K10); d3 = v128.xor(d3, S.K12);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 6: // stripe 5
        d0 = v128.load(p, 320); d1 = v128.load(p, 336); d2 = v128.load(p, 352); d3 = v128.load(p, 368);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K5); d1 = v128.xor(d1, S.K7); d2 = v128.xor(d2, S.K9); d3 = v128.xor(d3, S.K11);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 5: // stripe 4
        d0 = v128.load(p, 256); d1 = v128.load(p, 272); d2 = v128.load(p, 288); d3 = v128.load(p, 304);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K4); d1 = v128.xor(d1, S.K6); d2 = v128.xor(d2, S.K8); d3 = v128.xor(d3, S.K10);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 4: // stripe 3
        d0 = v128.load(p, 192); d1 = v128.load(p, 208); d2 = v128.load(p, 224); d3 = v128.load(p, 240);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K3); d1 = v128.xor(d1, S.K5); d2 = v128.xor(d2, S.K7); d3 = v128.xor(d3, S.K9);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 3: // stripe 2
        d0 = v128.load(p, 128); d1 = v128.load(p, 144); d2 = v128.load(p, 160); d3 = v128.load(p, 176);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K2); d1 = v128.xor(d1, S.K4); d2 = v128.xor(d2, S.K6); d3 = v128.xor(d3, S.K8);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 2: // stripe 1
        d0 = v128.load(p, 64); d1 = v128.load(p, 80); d2 = v128.load(p, 96); d3 = v128.load(p, 112);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K1); d1 = v128.xor(d1, S.K3); d2 = v128.xor(d2, S.K5); d3 = v128.xor(d3, S.K7);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      case 1: // stripe 0
        d0 = v128.load(p); d1 = v128.load(p, 16); d2 = v128.load(p, 32); d3 = v128.load(p, 48);
        s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
        d0 = v128.xor(d0, S.K0); d1 = v128.xor(d1, S.K2); d2 = v128.xor(d2, S.K4); d3 = v128.xor(d3, S.K6);
        a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      // @end
    }
    if (last) {
      const q = ptr + len - 64;
      // @generated simd-last
      d0 = v128.load(q); d1 = v128.load(q, 16); d2 = v128.load(q, 32); d3 = v128.load(q, 48);
      s0 = i64x2.add(s0, d0); s1 = i64x2.add(s1, d1); s2 = i64x2.add(s2, d2); s3 = i64x2.add(s3, d3);
      d0 = v128.xor(d0, S.KL0); d1 = v128.xor(d1, S.KL2); d2 = v128.xor(d2, S.KL4); d3 = v128.xor(d3, S.KL6);
      a0 = mulLow(a0, d0, d1); a1 = mulHigh(a1, d0, d1); a2 = mulLow(a2, d2, d3); a3 = mulHigh(a3, d2, d3);
      // @end
    }
    a0 = addSwapped(a0, s0);
    a1 = addSwapped(a1, s1);
    a2 = addSwapped(a2, s2);
    a3 = addSwapped(a3, s3);
    if (last) break;
    a0 = scrambleSimd(a0, S.K16);
    a1 = scrambleSimd(a1, S.K18);
    a2 = scrambleSimd(a2, S.K20);
    a3 = scrambleSimd(a3, S.K22);
    p += 1024;
  }
  return merge(
    i64x2.extract_lane(a0, 0), i64x2.extract_lane(a0, 1), i64x2.extract_lane(a1, 0), i64x2.extract_lane(a1, 1),
    i64x2.extract_lane(a2, 0), i64x2.extract_lane(a2, 1), i64x2.extract_lane(a3, 0), i64x2.extract_lane(a3, 1),
    len,
  );
}

// Scalar build: the same rounds on eight u64 accumulators. A lane's data word goes straight
// into acc[i ^ 1] (no swap needed); `mix` adds the lane's product into acc[i].
@inline function mix(acc: u64, data: u64, key: u64): u64 {
  const x = data ^ key;
  return acc + (x & LOW32) * (x >> 32);
}

@inline function scramble(acc: u64, key: u64): u64 {
  return (acc ^ (acc >> 47) ^ key) * PRIME32_1;
}

function xxh3Scalar(ptr: usize, len: usize): u64 {
  let a0: u64 = PRIME32_3, a1: u64 = PRIME64_1, a2: u64 = PRIME64_2, a3: u64 = PRIME64_3;
  let a4: u64 = PRIME64_4, a5: u64 = PRIME32_2, a6: u64 = PRIME64_5, a7: u64 = PRIME32_1;
  const lastBlock = ptr + (((len - 1) >> 10) << 10);
  const lastStripes = <i32>(((len - 1) & 1023) >> 6);
  let p = ptr;
  let d0: u64, d1: u64;
  while (true) {
    const last = p == lastBlock;
    switch (last ? lastStripes : 16) {
      // @generated scalar-stripes
      case 16: // stripe 15
        d0 = load<u64>(p, 960); d1 = load<u64>(p, 968); a0 = mix(a0, d0, S.W15); a1 = mix(a1 + d0, d1, S.W16); a0 += d1;
        d0 = load<u64>(p, 976); d1 = load<u64>(p, 984); a2 = mix(a2, d0, S.W17); a3 = mix(a3 + d0, d1, S.W18); a2 += d1;
        d0 = load<u64>(p, 992); d1 = load<u64>(p, 1000); a4 = mix(a4, d0, S.W19); a5 = mix(a5 + d0, d1, S.W20); a4 += d1;
        d0 = load<u64>(p, 1008); d1 = load<u64>(p, 1016); a6 = mix(a6, d0, S.W21); a7 = mix(a7 + d0, d1, S.W22); a6 += d1;
      case 15: // stripe 14
        d0 = load<u64>(p, 896); d1 = load<u64>(p, 904); a0 = mix(a0, d0, S.W14); a1 = mix(a1 + d0, d1, S.W15); a0 += d1;
        d0 = load<u64>(p, 912); d1 = load<u64>(p, 920); a2 = mix(a2, d0, S.W16); a3 = mix(a3 + d0, d1, S.W17); a2 += d1;
        d0 = load<u64>(p, 928); d1 = load<u64>(p, 936); a4 = mix(a4, d0, S.W18); a5 = mix(a5 + d0, d1, S.W19); a4 += d1;
        d0 = load<u64>(p, 944); d1 = load<u64>(p, 952); a6 = mix(a6, d0, S.W20); a7 = mix(a7 + d0, d1, S.W21); a6 += d1;
      case 14: // stripe 13
        d0 = load<u64>(p, 832); d1 = load<u64>(p, 840); a0 = mix(a0, d0, S.W13); a1 = mix(a1 + d0, d1, S.W14); a0 += d1;
        d0 = load<u64>(p, 848); d1 = load<u64>(p, 856); a2 = mix(a2, d0, S.W15); a3 = mix(a3 + d0, d1, S.W16); a2 += d1;
        d0 = load<u64>(p, 864); d1 = load<u64>(p, 872); a4 = mix(a4, d0, S.W17); a5 = mix(a5 + d0, d1, S.W18); a4 += d1;
        d0 = load<u64>(p, 880); d1 = load<u64>(p, 888); a6 = mix(a6, d0, S.W19); a7 = mix(a7 + d0, d1, S.W20); a6 += d1;
      case 13: // stripe 12
        d0 = load<u64>(p, 768); d1 = load<u64>(p, 776); a0 = mix(a0, d0, S.W12); a1 = mix(a1 + d0, d1, S.W13); a0 += d1;
        d0 = load<u64>(p, 784); d1 = load<u64>(p, 792); a2 = mix(a2, d0, S.W14); a3 = mix(a3 + d0, d1, S.W15); a2 += d1;
        d0 = load<u64>(p, 800); d1 = load<u64>(p, 808); a4 = mix(a4, d0, S.W16); a5 = mix(a5 + d0, d1, S.W17); a4 += d1;
        d0 = load<u64>(p, 816); d1 = load<u64>(p, 824); a6 = mix(a6, d0, S.W18); a7 = mix(a7 + d0, d1, S.W19); a6 += d1;
      case 12: // stripe 11
        d0 = load<u64>(p, 704); d1 = load<u64>(p, 712); a0 = mix(a0, d0, S.W11); a1 = mix(a1 + d0, d1, S.W12); a0 += d1;
        d0 = load<u64>(p, 720); d1 = load<u64>(p, 728); a2 = mix(a2, d0, S.W13); a3 = mix(a3 + d0, d1, S.W14); a2 += d1;
        d0 = load<u64>(p, 736); d1 = load<u64>(p, 744); a4 = mix(a4, d0, S.W15); a5 = mix(a5 + d0, d1, S.W16); a4 += d1;
        d0 = load<u64>(p, 752); d1 = load<u64>(p, 760); a6 = mix(a6, d0, S.W17); a7 = mix(a7 + d0, d1, S.W18); a6 += d1;
      case 11: // stripe 10
        d0 = load<u64>(p, 640); d1 = load<u64>(p, 648); a0 = mix(a0, d0, S.W10); a1 = mix(a1 + d0, d1, S.W11); a0 += d1;
        d0 = load<u64>(p, 656); d1 = load<u64>(p, 664); a2 = mix(a2, d0, S.W12); a3 = mix(a3 + d0, d1, S.W13); a2 += d1;
        d0 = load<u64>(p, 672); d1 = load<u64>(p, 680); a4 = mix(a4, d0, S.W14); a5 = mix(a5 + d0, d1, S.W15); a4 += d1;
        d0 = load<u64>(p, 688); d1 = load<u64>(p, 696); a6 = mix(a6, d0, S.W16); a7 = mix(a7 + d0, d1, S.W17); a6 += d1;
      case 10: // stripe 9
        d0 = load<u64>(p, 576); d1 = load<u64>(p, 584); a0 = mix(a0, d0, S.W9); a1 = mix(a1 + d0, d1, S.W10); a0 += d1;
        d0 = load<u64>(p, 592); d1 = load<u64>(p, 600); a2 = mix(a2, d0, S.W11); a3 = mix(a3 + d0, d1, S.W12); a2 += d1;
        d0 = load<u64>(p, 608); d1 = load<u64>(p, 616); a4 = mix(a4, d0, S.W13); a5 = mix(a5 + d0, d1, S.W14); a4 += d1;
        d0 = load<u64>(p, 624); d1 = load<u64>(p, 632); a6 = mix(a6, d0, S.W15); a7 = mix(a7 + d0, d1, S.W16); a6 += d1;
      case 9: // stripe 8
        d0 = load<u64>(p, 512); d1 = load<u64>(p, 520); a0 = mix(a0, d0, S.W8); a1 = mix(a1 + d0, d1, S.W9); a0 += d1;
        d0 = load<u64>(p, 528); d1 = load<u64>(p, 536); a2 = mix(a2, d0, S.W10); a3 = mix(a3 + d0, d1, S.W11); a2 += d1;
        d0 = load<u64>(p, 544); d1 = load<u64>(p, 552); a4 = mix(a4, d0, S.W12); a5 = mix(a5 + d0, d1, S.W13); a4 += d1;
        d0 = load<u64>(p, 560); d1 = load<u64>(p, 568); a6 = mix(a6, d0, S.W14); a7 = mix(a7 + d0, d1, S.W15); a6 += d1;
      case 8: // stripe 7
        d0 = load<u64>(p, 448); d1 = load<u64>(p, 456); a0 = mix(a0, d0, S.W7); a1 = mix(a1 + d0, d1, S.W8); a0 += d1;
        d0 = load<u64>(p, 464); d1 = load<u64>(p, 472); a2 = mix(a2, d0, S.W9); a3 = mix(a3 + d0, d1, S.W10); a2 += d1;
        d0 = load<u64>(p, 480); d1 = load<u64>(p, 488); a4 = mix(a4, d0, S.W11); a5 = mix(a5 + d0, d1, S.W12); a4 += d1;
        d0 = load<u64>(p, 496); d1 = load<u64>(p, 504); a6 = mix(a6, d0, S.W13); a7 = mix(a7 + d0, d1, S.W14); a6 += d1;
      case 7: // stripe 6
        d0 = load<u64>(p, 384); d1 = load<u64>(p, 392); a0 = mix(a0, d0, S.W6); a1 = mix(a1 + d0, d1, S.W7); a0 += d1;
        d0 = load<u64>(p, 400); d1 = load<u64>(p, 408); a2 = mix(a2, d0, S.W8); a3 = mix(a3 + d0, d1, S.W9); a2 += d1;
        d0 = load<u64>(p, 416); d1 = load<u64>(p, 424); a4 = mix(a4, d0, S.W10); a5 = mix(a5 + d0, d1, S.W11); a4 += d1;
        d0 = load<u64>(p, 432); d1 = load<u64>(p, 440); a6 = mix(a6, d0, S.W12); a7 = mix(a7 + d0, d1, S.W13); a6 += d1;
      case 6: // stripe 5
        d0 = load<u64>(p, 320); d1 = load<u64>(p, 328); a0 = mix(a0, d0, S.W5); a1 = mix(a1 + d0, d1, S.W6); a0 += d1;
        d0 = load<u64>(p, 336); d1 = load<u64>(p, 344); a2 = mix(a2, d0, S.W7); a3 = mix(a3 + d0, d1, S.W8); a2 += d1;
        d0 = load<u64>(p, 352); d1 = load<u64>(p, 360); a4 = mix(a4, d0, S.W9); a5 = mix(a5 + d0, d1, S.W10); a4 += d1;
        d0 = load<u64>(p, 368); d1 = load<u64>(p, 376); a6 = mix(a6, d0, S.W11); a7 = mix(a7 + d0, d1, S.W12); a6 += d1;
      case 5: // stripe 4
        d0 = load<u64>(p, 256); d1 = load<u64>(p, 264); a0 = mix(a0, d0, S.W4); a1 = mix(a1 + d0, d1, S.W5); a0 += d1;
        d0 = load<u64>(p, 272); d1 = load<u64>(p, 280); a2 = mix(a2, d0, S.W6); a3 = mix(a3 + d0, d1, S.W7); a2 += d1;
        d0 = load<u64>(p, 288); d1 = load<u64>(p, 296); a4 = mix(a4, d0, S.W8); a5 = mix(a5 + d0, d1, S.W9); a4 += d1;
        d0 = load<u64>(p, 304); d1 = load<u64>(p, 312); a6 = mix(a6, d0, S.W10); a7 = mix(a7 + d0, d1, S.W11); a6 += d1;
      case 4: // stripe 3
        d0 = load<u64>(p, 192); d1 = load<u64>(p, 200); a0 = mix(a0, d0, S.W3); a1 = mix(a1 + d0, d1, S.W4); a0 += d1;
        d0 = load<u64>(p, 208); d1 = load<u64>(p, 216); a2 = mix(a2, d0, S.W5); a3 = mix(a3 + d0, d1, S.W6); a2 += d1;
        d0 = load<u64>(p, 224); d1 = load<u64>(p, 232); a4 = mix(a4, d0, S.W7); a5 = mix(a5 + d0, d1, S.W8); a4 += d1;
        d0 = load<u64>(p, 240); d1 = load<u64>(p, 248); a6 = mix(a6, d0, S.W9); a7 = mix(a7 + d0, d1, S.W10); a6 += d1;
      case 3: // stripe 2
        d0 = load<u64>(p, 128); d1 = load<u64>(p, 136); a0 = mix(a0, d0, S.W2); a1 = mix(a1 + d0, d1, S.W3); a0 += d1;
        d0 = load<u64>(p, 144); d1 = load<u64>(p, 152); a2 = mix(a2, d0, S.W4); a3 = mix(a3 + d0, d1, S.W5); a2 += d1;
        d0 = load<u64>(p, 160); d1 = load<u64>(p, 168); a4 = mix(a4, d0, S.W6); a5 = mix(a5 + d0, d1, S.W7); a4 += d1;
        d0 = load<u64>(p, 176); d1 = load<u64>(p, 184); a6 = mix(a6, d0, S.W8); a7 = mix(a7 + d0, d1, S.W9); a6 += d1;
      case 2: // stripe 1
        d0 = load<u64>(p, 64); d1 = load<u64>(p, 72); a0 = mix(a0, d0, S.W1); a1 = mix(a1 + d0, d1, S.W2); a0 += d1;
        d0 = load<u64>(p, 80); d1 = load<u64>(p, 88); a2 = mix(a2, d0, S.W3); a3 = mix(a3 + d0, d1, S.W4); a2 += d1;
        d0 = load<u64>(p, 96); d1 = load<u64>(p, 104); a4 = mix(a4, d0, S.W5); a5 = mix(a5 + d0, d1, S.W6); a4 += d1;
        d0 = load<u64>(p, 112); d1 = load<u64>(p, 120); a6 = mix(a6, d0, S.W7); a7 = mix(a7 + d0, d1, S.W8); a6 += d1;
      case 1: // stripe 0
        d0 = load<u64>(p); d1 = load<u64>(p, 8); a0 = mix(a0, d0, S.W0); a1 = mix(a1 + d0, d1, S.W1); a0 += d1;
        d0 = load<u64>(p, 16); d1 = load<u64>(p, 24); a2 = mix(a2, d0, S.W2); a3 = mix(a3 + d0, d1, S.W3); a2 += d1;
        d0 = load<u64>(p, 32); d1 = load<u64>(p, 40); a4 = mix(a4, d0, S.W4); a5 = mix(a5 + d0, d1, S.W5); a4 += d1;
        d0 = load<u64>(p, 48); d1 = load<u64>(p, 56); a6 = mix(a6, d0, S.W6); a7 = mix(a7 + d0, d1, S.W7); a6 += d1;
      // @end
    }
    if (last) break;
    a0 = scramble(a0, S.W16); a1 = scramble(a1, S.W17); a2 = scramble(a2, S.W18); a3 = scramble(a3, S.W19);
    a4 = scramble(a4, S.W20); a5 = scramble(a5, S.W21); a6 = scramble(a6, S.W22); a7 = scramble(a7, S.W23);
    p += 1024;
  }
  const q = ptr + len - 64;
  // @generated scalar-last
  d0 = load<u64>(q); d1 = load<u64>(q, 8); a0 = mix(a0, d0, S.WL0); a1 = mix(a1 + d0, d1, S.WL1); a0 += d1;
  d0 = load<u64>(q, 16); d1 = load<u64>(q, 24); a2 = mix(a2, d0, S.WL2); a3 = mix(a3 + d0, d1, S.WL3); a2 += d1;
  d0 = load<u64>(q, 32); d1 = load<u64>(q, 40); a4 = mix(a4, d0, S.WL4); a5 = mix(a5 + d0, d1, S.WL5); a4 += d1;
  d0 = load<u64>(q, 48); d1 = load<u64>(q, 56); a6 = mix(a6, d0, S.WL6); a7 = mix(a7 + d0, d1, S.WL7); a6 += d1;
  // @end
  return merge(a0, a1, a2, a3, a4, a5, a6, a7, len);
}

/** The 128-bit product of `a` and `b`, its two halves XORed (XXH3's mul128_fold64). */
@inline function mulFold(a: u64, b: u64): u64 {
  const aLo = a & LOW32, aHi = a >> 32, bLo = b & LOW32, bHi = b >> 32;
  const ll = aLo * bLo, hl = aHi * bLo, lh = aLo * bHi, hh = aHi * bHi;
  const cross = (ll >> 32) + (hl & LOW32) + lh;
  const high = (hl >> 32) + (cross >> 32) + hh;
  return (a * b) ^ high;
}

/** XXH3's final merge (merge key, start len · PRIME64_1) and its avalanche. */
function merge(a0: u64, a1: u64, a2: u64, a3: u64, a4: u64, a5: u64, a6: u64, a7: u64, len: usize): u64 {
  let h = <u64>len * PRIME64_1;
  h += mulFold(a0 ^ S.WM0, a1 ^ S.WM1);
  h += mulFold(a2 ^ S.WM2, a3 ^ S.WM3);
  h += mulFold(a4 ^ S.WM4, a5 ^ S.WM5);
  h += mulFold(a6 ^ S.WM6, a7 ^ S.WM7);
  h ^= h >> 37;
  h *= PRIME_MX1;
  return h ^ (h >> 32);
}
