// Worker entry for the scalar zero-scan measurement: started by zero-scan.ts with
// MULTIFD_NO_WASM_SIMD=1, so this thread loads the scalar kernels on first use.
import { parentPort, workerData } from 'node:worker_threads';
import { wasmVariant } from '../src/wasm/load.js';
import { measureWasmScan } from './zero-scan.js';

const { bytes, repetitions } = workerData as { bytes: number; repetitions: number };
parentPort!.postMessage({ variant: wasmVariant(), GBps: measureWasmScan(bytes, repetitions) });
