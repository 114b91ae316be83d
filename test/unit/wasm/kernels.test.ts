import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { hashBytes, hashPages, kernelsFor } from '../../../src/wasm/kernels.js';
import { countLeadingZeroPages, scanZeroPages } from '../../../src/wasm/zero-scan.js';

function sharedMemory(bytes: number): { memory: WebAssembly.Memory; u8: Uint8Array } {
  const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
  return { memory, u8: new Uint8Array(memory.buffer) };
}

const zero = suite('zero-page scan');

zero('finds a single non-zero byte at every offset of a 4 KiB page', () => {
  const { memory, u8 } = sharedMemory(3 * 4096);
  const isZero = new Uint8Array(3);
  for (let offset = 0; offset < 4096; offset++) {
    u8[4096 + offset] = 1 + (offset % 255);
    assert.is(scanZeroPages(memory, 0, 4096, 3, isZero), 2, `offset ${offset}`);
    assert.equal([...isZero], [1, 0, 1], `offset ${offset}`);
    u8[4096 + offset] = 0;
  }
});

zero('finds a single non-zero byte at sampled and block-boundary offsets of a 64 KiB page', () => {
  const { memory, u8 } = sharedMemory(65536);
  const isZero = new Uint8Array(1);
  for (const offset of [0, 1, 255, 256, 32767, 32768, 65279, 65280, 65534, 65535]) {
    u8[offset] = 0x80;
    assert.is(scanZeroPages(memory, 0, 65536, 1, isZero), 0, `offset ${offset}`);
    u8[offset] = 0;
  }
  assert.is(scanZeroPages(memory, 0, 65536, 1, isZero), 1);
});

zero('reports which pages of a 128-page run are zero, across the 32-page call boundary', () => {
  const { memory, u8 } = sharedMemory(130 * 4096);
  const expected = Array.from({ length: 128 }, (_, i) => (i % 3 === 0 || i === 31 || i === 32 ? 0 : 1));
  expected.forEach((z, i) => {
    if (!z) u8[4096 + i * 4096 + ((i * 977) % 4096)] = 7;
  });
  const isZero = new Uint8Array(128);
  const zeros = scanZeroPages(memory, 4096, 4096, 128, isZero);
  assert.equal([...isZero], expected);
  assert.is(zeros, expected.filter((z) => z).length);
});

zero('counts the leading zero pages of a run', () => {
  const { memory, u8 } = sharedMemory(64 * 4096);
  assert.is(countLeadingZeroPages(memory, 0, 4096, 64), 64);
  u8[40 * 4096 + 100] = 1;
  assert.is(countLeadingZeroPages(memory, 0, 4096, 64), 40);
  assert.is(countLeadingZeroPages(memory, 41 * 4096, 4096, 23), 23);
});

zero('rejects runs outside the memory and page sizes that are not powers of two', () => {
  const { memory } = sharedMemory(65536);
  const isZero = new Uint8Array(32);
  assert.throws(() => scanZeroPages(memory, 4096, 4096, 16, isZero), RangeError);
  assert.throws(() => scanZeroPages(memory, -4096, 4096, 1, isZero), RangeError);
  assert.throws(() => scanZeroPages(memory, 0, 3000, 1, isZero), RangeError);
});

zero.run();

const kernels = suite('page kernels on a shared memory');

kernels('instantiating the kernels writes nothing into the caller memory', () => {
  const { memory, u8 } = sharedMemory(2 * 65536);
  u8.fill(0xaa);
  kernelsFor(memory);
  assert.ok(u8.every((b) => b === 0xaa));
});

kernels('refuses a memory that is not shared (the kernels import a shared one)', () => {
  assert.throws(() => kernelsFor(new WebAssembly.Memory({ initial: 1 })));
});

kernels('scans the caller memory in place: a write after instantiation is seen', () => {
  const { memory, u8 } = sharedMemory(65536);
  const isZero = new Uint8Array(1);
  assert.is(scanZeroPages(memory, 0, 4096, 1, isZero), 1);
  u8[2000] = 9;
  assert.is(scanZeroPages(memory, 0, 4096, 1, isZero), 0);
});

kernels.run();

const hash = suite('page hash (XXH64)');

// Known answers computed with Debian's `xxhsum -H1` (xxHash 0.8.1) on the same bytes.
hash('matches xxhsum -H1 on known inputs', () => {
  const { memory, u8 } = sharedMemory(4 * 65536);
  for (let i = 0; i < 4096; i++) u8[i] = (i * 31 + 7) & 255;
  assert.is(hashBytes(memory, 0, 4096), 0xe21174be82dc78d9n);
  let s = 1;
  for (let i = 0; i < 65536; i++) {
    s = (Math.imul(s, 1103515245) + 12345) >>> 0;
    u8[65536 + i] = s >>> 24;
  }
  assert.is(hashBytes(memory, 65536, 65536), 0xe5553793b947a604n);
  assert.is(hashBytes(memory, 3 * 65536, 4096), 0xac869b6f32d8bbdbn);
  u8.set(new TextEncoder().encode('multifd'), 2 * 65536);
  assert.is(hashBytes(memory, 2 * 65536, 7), 0xebd1e291713deb6bn);
});

hash('hashPages gives each page its XXH64 as low and high halves', () => {
  const { memory, u8 } = sharedMemory(8 * 4096);
  for (let i = 0; i < u8.length; i++) u8[i] = (i * 7) ^ (i >> 12);
  const out = new Uint32Array(16);
  hashPages(memory, 0, 4096, 8, out);
  for (let p = 0; p < 8; p++) {
    const whole = hashBytes(memory, p * 4096, 4096);
    assert.is(out[2 * p], Number(whole & 0xffffffffn));
    assert.is(out[2 * p + 1], Number(whole >> 32n));
  }
});

hash('changes when any single byte of a page changes', () => {
  const { memory, u8 } = sharedMemory(65536);
  const before = hashBytes(memory, 0, 4096);
  const seen = new Set<bigint>([before]);
  for (let offset = 0; offset < 4096; offset += 61) {
    u8[offset] = 1;
    seen.add(hashBytes(memory, 0, 4096));
    u8[offset] = 0;
  }
  assert.is(seen.size, 1 + Math.ceil(4096 / 61));
  assert.is(hashBytes(memory, 0, 4096), before);
});

hash.run();
