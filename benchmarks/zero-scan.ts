// Zero-page scan throughput over an all-zero shared memory, the worst case (every byte of every
// page is read). Three implementations of the same algorithm are held against a native C scan:
// the SIMD kernel on this thread, the scalar kernel in a worker (the WASM variant is fixed per
// thread at first use, so only a fresh thread started with MULTIFD_NO_WASM_SIMD=1 runs it), and
// a plain JS loop showing what the kernels buy.
import { once } from 'node:events';
import { startWorker } from '../src/pool/start-worker.js';
import { scanZeroPages } from '../src/wasm/zero-scan.js';
import { wasmVariant } from '../src/wasm/load.js';
import { nativeZeroScan } from './native-baselines.js';
import type { ZeroScanRow } from './results.js';
import { bestSeconds, gigabytesPerSecond, round } from './timing.js';

const PAGE_BYTES = 4096;
const WASM_PAGE_BYTES = 65536;

/**
 * The scan's rounds run every implementation in turn, each keeping its best figure: at about
 * 20 GB/s a whole measurement takes a tenth of a second, so one burst from a neighbour could
 * otherwise sink whichever implementation happened to run during it.
 */
const ROUNDS = 2;

type Impl = ZeroScanRow['impl'];

/** Scan results as rows (best of `repetitions` × ROUNDS each); notes say what was not measured. */
export async function runZeroScanBench(bytes: number, repetitions: number, notes: string[]): Promise<ZeroScanRow[]> {
  const simd = wasmVariant() === 'simd';
  if (!simd) notes.push('zero-scan wasm-simd: not measured, this thread runs the scalar build (MULTIFD_NO_WASM_SIMD=1 or no SIMD)');
  let native: number | null = null;
  const best = new Map<Impl, number>();
  const keep = (impl: Impl, GBps: number) => best.set(impl, Math.max(best.get(impl) ?? 0, GBps));
  for (let i = 0; i < ROUNDS; i++) {
    const result = nativeZeroScan(bytes, repetitions);
    if (result.reason && i === 0) notes.push(`zero-scan native C baseline: ${result.reason}`);
    if (result.GBps !== null) native = Math.max(native ?? 0, result.GBps);
    if (simd) keep('wasm-simd', measureWasmScan(bytes, repetitions));
    keep('wasm-scalar', await measureScalarInWorker(bytes, repetitions));
    keep('js', measureJsScan(bytes, repetitions));
  }
  return [...best].map(([impl, GBps]) => ({ suite: 'zero-scan', impl, GBps: round(GBps, 2), baselineGBps: round(native, 2) }));
}

/**
 * A shared memory of `bytes`, every byte written. Fresh pages all map the kernel's shared zero
 * page, which sits in cache and flatters any scan; writing them gives each its own frame.
 */
function zeroedSharedMemory(bytes: number): WebAssembly.Memory {
  const pages = Math.ceil(bytes / WASM_PAGE_BYTES);
  const memory = new WebAssembly.Memory({ initial: pages, maximum: pages, shared: true });
  new Uint8Array(memory.buffer).fill(0);
  return memory;
}

/** GB/s of `scanZeroPages` with this thread's WASM variant, best of `repetitions`. */
export function measureWasmScan(bytes: number, repetitions: number): number {
  const memory = zeroedSharedMemory(bytes);
  const count = bytes / PAGE_BYTES;
  const isZero = new Uint8Array(count);
  const seconds = bestSeconds(repetitions, () => {
    if (scanZeroPages(memory, 0, PAGE_BYTES, count, isZero) !== count) throw new Error('zero scan missed zero pages');
  });
  return gigabytesPerSecond(bytes, seconds);
}

/** The scalar kernel, in a worker whose environment forces the scalar build. */
async function measureScalarInWorker(bytes: number, repetitions: number): Promise<number> {
  const worker = startWorker(workerEntry(import.meta.url.endsWith('.ts') ? 'ts' : 'js'), {
    workerData: { bytes, repetitions },
    env: { ...process.env, MULTIFD_NO_WASM_SIMD: '1' },
  });
  // events.once rejects if the worker emits 'error' first.
  const [result] = (await once(worker, 'message')) as [{ variant: string; GBps: number }];
  await worker.terminate();
  if (result.variant !== 'scalar') throw new Error(`scalar zero-scan worker ran the ${result.variant} build`);
  return result.GBps;
}

function workerEntry(extension: 'ts' | 'js'): string {
  return new URL(`./zero-scan-worker.${extension}`, import.meta.url).href;
}

/**
 * The same algorithm in plain JS over a BigUint64Array: three sampled bytes, then OR 32
 * words (256 bytes) at a time with an early exit, as the kernels do.
 */
function measureJsScan(bytes: number, repetitions: number): number {
  const memory = zeroedSharedMemory(bytes);
  const bytesView = new Uint8Array(memory.buffer);
  const words = new BigUint64Array(memory.buffer);
  const count = bytes / PAGE_BYTES;
  const wordsPerPage = PAGE_BYTES / 8;
  const seconds = bestSeconds(repetitions, () => {
    let zeroPages = 0;
    for (let page = 0; page < count; page++) {
      const start = page * PAGE_BYTES;
      if (bytesView[start]! | bytesView[start + PAGE_BYTES / 2]! | bytesView[start + PAGE_BYTES - 1]!) continue;
      const end = (page + 1) * wordsPerPage;
      let w = page * wordsPerPage;
      for (; w < end; w += 32) {
        let acc = 0n;
        for (let k = 0; k < 32; k++) acc |= words[w + k]!;
        if (acc !== 0n) break;
      }
      if (w === end) zeroPages++;
    }
    if (zeroPages !== count) throw new Error('JS zero scan missed zero pages');
  });
  return gigabytesPerSecond(bytes, seconds);
}
