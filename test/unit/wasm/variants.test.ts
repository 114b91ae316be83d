import { startWorker } from '../../../src/pool/start-worker.js';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { wasmVariant } from '../../../src/wasm/load.js';
import { fingerprint, type Fingerprint } from '../../helpers/variant-fingerprint.js';

const test = suite('SIMD and scalar WASM builds');

function scalarFingerprint(): Promise<Fingerprint> {
  const worker = startWorker(new URL('../../helpers/variant-fingerprint.ts', import.meta.url), {
    env: { ...process.env, MULTIFD_NO_WASM_SIMD: '1' },
  });
  return new Promise((resolve, reject) => {
    worker.once('message', (message: Fingerprint) => {
      void worker.terminate();
      resolve(message);
    });
    worker.once('error', reject);
  });
}

test('MULTIFD_NO_WASM_SIMD=1 selects the scalar builds; this runtime defaults to SIMD', async () => {
  assert.is(wasmVariant(), 'simd');
  assert.is((await scalarFingerprint()).variant, 'scalar');
});

test('give identical payloads for every codec, identical zero masks and identical page hashes', async () => {
  const simd = fingerprint();
  const scalar = await scalarFingerprint();
  assert.equal(scalar.payloads, simd.payloads);
  assert.equal(scalar.zeroMask, simd.zeroMask);
  assert.equal(scalar.pageHashes, simd.pageHashes);
  assert.ok(simd.zeroMask.includes(1) && simd.zeroMask.includes(0));
});

test.run();
