// Computes a fingerprint of everything the WASM builds produce (every codec's payloads, zero
// masks, page hashes) in whichever variant this thread loads. Run in the main thread and in
// a worker with MULTIFD_NO_WASM_SIMD=1 to compare the SIMD and scalar builds.
import { createHash } from 'node:crypto';
import { isMainThread, parentPort } from 'node:worker_threads';
import { getCodec, listCodecs } from '../../src/codecs/registry.js';
import { hashPages } from '../../src/wasm/kernels.js';
import { wasmVariant } from '../../src/wasm/load.js';
import { scanZeroPages } from '../../src/wasm/zero-scan.js';
import { concatPages, makePages } from './pages.js';

export interface Fingerprint {
  variant: string;
  payloads: Record<string, string>;
  zeroMask: number[];
  pageHashes: number[];
}

export function fingerprint(): Fingerprint {
  const pages = makePages('mixed', 64, 4096, 77);
  const payloads: Record<string, string> = {};
  for (const { id } of listCodecs()) {
    const encoder = getCodec(id).createEncoder({ pageSize: 4096, maxPages: 64 });
    const out = new Uint8Array(encoder.payloadBound(64));
    const length = encoder.encode(pages, out);
    payloads[id] = createHash('sha256').update(out.subarray(0, length)).digest('hex');
  }
  const memory = new WebAssembly.Memory({ initial: 4, maximum: 65536, shared: true });
  new Uint8Array(memory.buffer).set(concatPages(pages));
  const zeroMask = new Uint8Array(64);
  scanZeroPages(memory, 0, 4096, 64, zeroMask);
  const pageHashes = new Uint32Array(128);
  hashPages(memory, 0, 4096, 64, pageHashes);
  return { variant: wasmVariant(), payloads, zeroMask: [...zeroMask], pageHashes: [...pageHashes] };
}

if (!isMainThread) parentPort!.postMessage(fingerprint());
