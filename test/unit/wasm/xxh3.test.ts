import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { xxh3Bytes, xxh3Pages } from '../../../src/wasm/kernels.js';
import { wasmDistDir, wasmFileName, type WasmVariant } from '../../../src/wasm/load.js';

// Known answers computed with Debian 12's xxhsum 0.8.1: `xxhsum -H3 file` (XXH3_64bits, seed
// 0) on files holding exactly the bytes `lcg(n)` and `new Uint8Array(n)` produce.
const KNOWN: Record<'lcg' | 'zero', Record<number, bigint>> = {
  lcg: {
    241: 0x98aa8179cc71fcb5n,
    256: 0xacc6ad644701a151n,
    1000: 0x74400067ef559be0n,
    1024: 0x0bd018ef80ebcb8fn,
    1025: 0xe32bac2d01c31f3bn,
    4096: 0x8d2d725c460268bbn,
    8192: 0x02138bb92a305450n,
    65536: 0x1a02cefced77855dn,
    100000: 0xeb0013e72ce1d678n,
  },
  zero: {
    241: 0x5c5b5d5d40c59ce3n,
    256: 0xa68dfbb1d75c6e8dn,
    1000: 0x24c1ea6074dd588cn,
    1024: 0xde5f15ab6daf7941n,
    1025: 0x64ace6654784c523n,
    4096: 0x93d76fe148c689ban,
    8192: 0x620797930ab0991an,
    65536: 0x33b202d302b65caan,
    100000: 0x315c72a64b7df4d2n,
  },
};

// XOR of `xxhsum -H3` over the 2064 prefixes lcg(2304).subarray(0, n), n = 241..2304: every
// count of stripes in the last block and every offset of the last stripe, over 0..2 blocks.
const PREFIXES_XOR = 0xfb3002ad0045ba7bn;

/** The test pattern: the top byte of each step of the C library's classic LCG, from seed 1. */
function lcg(n: number): Uint8Array {
  const bytes = new Uint8Array(n);
  let s = 1;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    bytes[i] = s >>> 24;
  }
  return bytes;
}

function sharedMemory(bytes: number): { memory: WebAssembly.Memory; u8: Uint8Array } {
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
  return { memory, u8: new Uint8Array(memory.buffer) };
}

interface Xxh3Exports {
  xxh3_hash(ptr: number, byteLength: number): number;
  page_hash_high(): number;
}

/** One build of the kernels, instantiated straight from wasm/dist/ (not the loader's choice). */
function build(variant: WasmVariant, memory: WebAssembly.Memory): (ptr: number, byteLength: number) => bigint {
  const module = new WebAssembly.Module(readFileSync(join(wasmDistDir(), wasmFileName('kernels', variant))));
  const kernels = new WebAssembly.Instance(module, { env: { memory } }).exports as unknown as Xxh3Exports;
  return (ptr, byteLength) => {
    const low = kernels.xxh3_hash(ptr, byteLength) >>> 0;
    return (BigInt(kernels.page_hash_high() >>> 0) << 32n) | BigInt(low);
  };
}

const hex = (h: bigint) => '0x' + h.toString(16).padStart(16, '0');

const known = suite('XXH3-64 known answers (xxhsum -H3)');

known('xxh3Bytes matches xxhsum on LCG and all-zero inputs of 241 to 100000 bytes', () => {
  const { memory, u8 } = sharedMemory(2 * 100000);
  for (const [pattern, answers] of Object.entries(KNOWN)) {
    for (const [size, expected] of Object.entries(answers)) {
      const n = Number(size);
      u8.fill(0xee);
      u8.set(pattern === 'lcg' ? lcg(n) : new Uint8Array(n), 4096);
      assert.is(hex(xxh3Bytes(memory, 4096, n)), hex(expected), `${pattern} ${n}`);
    }
  }
});

for (const variant of ['simd', 'scalar'] as const) {
  known(`the ${variant} build matches xxhsum at every byte alignment of the input`, () => {
    const { memory, u8 } = sharedMemory(2 * 100000);
    const hash = build(variant, memory);
    for (const [pattern, answers] of Object.entries(KNOWN)) {
      for (const [size, expected] of Object.entries(answers)) {
        const n = Number(size);
        for (const offset of [0, 1, 7, 8, 61]) {
          u8.fill(0xee);
          u8.set(pattern === 'lcg' ? lcg(n) : new Uint8Array(n), offset);
          assert.is(hex(hash(offset, n)), hex(expected), `${pattern} ${n} at offset ${offset}`);
        }
      }
    }
  });

  known(`the ${variant} build matches xxhsum on every length from 241 to 2304 bytes`, () => {
    const { memory, u8 } = sharedMemory(65536);
    const hash = build(variant, memory);
    u8.set(lcg(2304), 1);
    let xor = 0n;
    for (let n = 241; n <= 2304; n++) xor ^= hash(1, n);
    assert.is(hex(xor), hex(PREFIXES_XOR));
  });
}

known.run();

const pages = suite('xxh3Pages and xxh3Bytes on a shared memory');

pages('xxh3Pages stores each page as low and high halves from outOffset, leaving the rest of out alone', () => {
  const { memory, u8 } = sharedMemory(8 * 8192);
  u8.set(lcg(u8.length));
  const out = new Uint32Array(2 + 16 + 2).fill(0xdeadbeef);
  xxh3Pages(memory, 0, 8192, 8, out, 2);
  for (let p = 0; p < 8; p++) {
    const whole = xxh3Bytes(memory, p * 8192, 8192);
    assert.is(out[2 + 2 * p], Number(whole & 0xffffffffn), `page ${p} low`);
    assert.is(out[2 + 2 * p + 1], Number(whole >> 32n), `page ${p} high`);
  }
  assert.equal([out[0], out[1], out[18], out[19]], [0xdeadbeef, 0xdeadbeef, 0xdeadbeef, 0xdeadbeef]);
});

pages('a page hash changes when any single byte of the page changes, and comes back when it is restored', () => {
  const { memory, u8 } = sharedMemory(65536);
  u8.set(lcg(4096));
  const before = xxh3Bytes(memory, 0, 4096);
  const seen = new Set<bigint>([before]);
  for (let offset = 0; offset < 4096; offset += 61) {
    u8[offset]! ^= 0x10;
    seen.add(xxh3Bytes(memory, 0, 4096));
    u8[offset]! ^= 0x10;
  }
  assert.is(seen.size, 1 + Math.ceil(4096 / 61));
  assert.is(xxh3Bytes(memory, 0, 4096), before);
});

pages('xxh3Bytes rejects inputs shorter than 241 bytes and ranges outside the memory', () => {
  const { memory } = sharedMemory(65536);
  const code = (fn: () => unknown) => {
    try {
      fn();
    } catch (error) {
      assert.instance(error, RangeError);
      return (error as { code?: string }).code;
    }
    return 'no error';
  };
  assert.is(code(() => xxh3Bytes(memory, 0, 240)), 'ERR_OUT_OF_RANGE');
  assert.is(code(() => xxh3Bytes(memory, 0, 241.5)), 'ERR_OUT_OF_RANGE');
  assert.is(code(() => xxh3Bytes(memory, 65536 - 240, 241)), 'ERR_OUT_OF_RANGE');
  assert.is(code(() => xxh3Bytes(memory, -1, 4096)), 'ERR_OUT_OF_RANGE');
  assert.ok(typeof xxh3Bytes(memory, 65536 - 241, 241) === 'bigint');
});

pages('xxh3Pages rejects bad page sizes, runs outside the memory and an out array too short from outOffset', () => {
  const { memory } = sharedMemory(65536);
  assert.throws(() => xxh3Pages(memory, 0, 2048, 1, new Uint32Array(2)), RangeError);
  assert.throws(() => xxh3Pages(memory, 4096, 4096, 16, new Uint32Array(32)), RangeError);
  assert.throws(() => xxh3Pages(memory, 0, 4096, 16, new Uint32Array(32), 1), RangeError);
  assert.throws(() => xxh3Pages(memory, 0, 4096, 1, new Uint32Array(4), -2), RangeError);
  xxh3Pages(memory, 0, 4096, 16, new Uint32Array(34), 2);
});

pages.run();
