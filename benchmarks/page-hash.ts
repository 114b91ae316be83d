// Page-hash throughput on one thread: XXH64 (`hashPages`) against XXH3-64 (`xxh3Pages`) over
// a shared memory of non-zero pages, the way dirty tracking hashes guest RAM. A standalone
// script, not part of `multifd bench`:
//
//   node --import tsx benchmarks/page-hash.ts [pageSize=4096] [MiB=256]
//   MULTIFD_NO_WASM_SIMD=1 node --import tsx benchmarks/page-hash.ts     (the scalar build)
//
// At 256 MiB the pages come from DRAM, not cache; pass a size that fits the L2 (e.g. 0.25) to
// see the kernels' own speed.
import { checkPageSize } from '../src/pages.js';
import { hashPages, xxh3Pages } from '../src/wasm/kernels.js';
import { wasmVariant } from '../src/wasm/load.js';
import { bestSeconds, megabytesPerSecond } from './timing.js';

const TOTAL_BYTES = 256 << 20;
const ROUNDS = 3;
const REPETITIONS = 3;

const pageSize = Number(process.argv[2] ?? 4096);
checkPageSize(pageSize);
const bytes = Math.max(pageSize, Math.round((Number(process.argv[3] ?? 256) * (1 << 20)) / pageSize) * pageSize);
const count = bytes / pageSize;
// Small memories are hashed several times per timing, so every timing covers TOTAL_BYTES.
const passes = Math.max(1, Math.round(TOTAL_BYTES / bytes));

const memory = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
const words = new Uint32Array(memory.buffer, 0, bytes / 4);
let state = 1;
for (let i = 0; i < words.length; i++) {
  state = (Math.imul(state, 1103515245) + 12345) >>> 0;
  words[i] = state | 1;
}
const out = new Uint32Array(2 * count);
const hashes = { 'XXH64 hashPages': hashPages, 'XXH3 xxh3Pages': xxh3Pages };

// Rounds alternate the two hashes so that a burst from a neighbour cannot sink only one of them.
const best = new Map<string, number>();
for (let round = 0; round < ROUNDS; round++) {
  for (const [name, hash] of Object.entries(hashes)) {
    const seconds = bestSeconds(REPETITIONS, () => {
      for (let pass = 0; pass < passes; pass++) hash(memory, 0, pageSize, count, out);
    });
    best.set(name, Math.min(best.get(name) ?? Infinity, seconds));
  }
}
for (const [name, seconds] of best) {
  const rate = megabytesPerSecond(passes * bytes, seconds).toFixed(0);
  console.log(`${wasmVariant()} build, ${name}, ${pageSize}-byte pages, ${(bytes / (1 << 20)).toString()} MiB: ${rate} MB/s`);
}
