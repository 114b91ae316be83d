// Hardware codec tests without hardware: the native shim (npm run build:native) over the fake
// vendor libraries (native/test-fakes, built here with gcc and zlib). Skipped, with the reason,
// where either is missing. Fakes read their knobs (FAKE_*) from the process environment at each
// call, so a knob set on the main thread reaches calls made on worker threads too.
import * as nodeZlib from 'node:zlib';
import { fakesUnavailable } from '../../native/test-fakes/build.js';
import type { Codec } from '../../src/codecs/types.js';
import { addonFailure, nativeAddon, type HardwareVendor } from '../../src/native/addon.js';
import { concatPages } from './pages.js';

export { fakeLibrary } from '../../native/test-fakes/build.js';

export const VENDORS: readonly HardwareVendor[] = ['qatzip', 'qpl', 'uadk'];

/** Why hardware tests cannot run here, or undefined. Printed once per file that skips. */
export function hardwareSkipReason(): string | undefined {
  return nativeAddon() ? fakesUnavailable() : addonFailure();
}

/** Runs `run` with environment knobs set, restoring what was there before. */
export async function withKnobs<T>(knobs: Record<string, string>, run: () => T | Promise<T>): Promise<T> {
  const before = Object.fromEntries(Object.keys(knobs).map((k) => [k, process.env[k]]));
  Object.assign(process.env, knobs);
  try {
    return await run();
  } finally {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  }
}

/** The knob that gives a fake its device. */
export const DEVICE_KNOB: Record<HardwareVendor, string> = { qatzip: 'FAKE_QZ_HW', qpl: 'FAKE_QPL_HW', uadk: 'FAKE_UADK_HW' };

/** `codec` with every encoder and decoder made on `library` under `policy`. */
export function onLibrary(codec: Codec, library: string, policy: 'prefer' | 'require' = 'require'): Codec {
  return {
    ...codec,
    createEncoder: (options) => codec.createEncoder({ ...options, hardware: policy, hardwareLibrary: library }),
    createDecoder: (options) => codec.createDecoder({ ...options, hardware: policy, hardwareLibrary: library }),
  };
}

/** Decodes a payload of `vendor`'s format with node:zlib alone (the reference decoder). */
export function zlibDecode(vendor: HardwareVendor, payload: Uint8Array, count: number, pageSize: number): Uint8Array {
  if (vendor === 'qatzip') return new Uint8Array(nodeZlib.gunzipSync(payload));
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 4 * count;
  const pages: Uint8Array[] = [];
  for (let i = 0; i < count; i++) {
    const length = view.getUint32(4 * i);
    const entry = payload.subarray(at, at + length);
    at += length;
    if (length === pageSize) pages.push(entry);
    else if (vendor === 'qpl') pages.push(nodeZlib.inflateRawSync(entry, { windowBits: 12 }));
    else pages.push(nodeZlib.inflateSync(entry));
  }
  return concatPages(pages);
}
