// Hardware codec tests without hardware: the native shim (npm run build:native) over the fake
// vendor libraries (native/test-fakes, built here with gcc and zlib). Skipped, with the reason,
// where either is missing.
import * as nodeZlib from 'node:zlib';
import type { Codec } from '../../src/codecs/types.js';
import { HARDWARE_VENDORS, type HardwareVendor } from '../../src/native/addon.js';
import { concatPages } from './pages.js';

/** Why hardware tests cannot run here (printed by each file that skips them), or undefined. */
export { fakesUnavailable as hardwareSkipReason, fakeLibrary, fakeProgram, withKnobs } from '../../native/test-fakes/build.js';

/** Every hardware vendor, as the shim knows them. */
export const VENDORS = HARDWARE_VENDORS;

/** The knob that gives a fake its device. */
export const DEVICE_KNOB: Record<HardwareVendor, string> = { qatzip: 'FAKE_QZ_HW', qpl: 'FAKE_QPL_HW', uadk: 'FAKE_UADK_HW' };

/** `codec` with every encoder and decoder made on `library` under `policy`. */
export function onLibrary(codec: Codec, library: string, policy: 'prefer' | 'require' = 'require'): Codec {
  return {
    ...codec,
    createEncoder: (options) => codec.createEncoder({ ...options, accelerator: { policy, library } }),
    createDecoder: (options) => codec.createDecoder({ ...options, accelerator: { policy, library } }),
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
