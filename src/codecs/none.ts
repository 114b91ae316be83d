// `none`: the normal pages raw, in order (QEMU's nocomp). The payload length is exact, so a
// receiver refuses any other length before writing a page.
import { CodecError } from '../errors.js';
import { checkEmptyPayload, checkPages, checkPayloadBound, resolveOptions } from './common.js';
import type { Codec, CodecInfo } from './types.js';

const info: CodecInfo = {
  id: 'none',
  wireId: 0,
  qemuFlag: 0x00,
  unit: 'packet',
  levels: null,
  summary: 'normal pages sent raw',
  payloadIsPages: true,
};

/** The `none` codec: raw pages, no compression. */
export const none: Codec = {
  info,
  backend: () => ({ name: 'js', available: true, reason: 'raw copy, no library' }),
  payloadBound: (pageCount, pageSize) => pageCount * pageSize,
  createEncoder(options) {
    const resolved = resolveOptions(info, options);
    const { pageSize } = resolved;
    return {
      payloadBound: (pageCount) => pageCount * pageSize,
      encode(pages, out) {
        checkPages(pages, resolved);
        const bytes = pages.length * pageSize;
        if (bytes > out.byteLength) {
          throw new CodecError('ERR_CODEC_OUTPUT_TOO_SMALL', `none encode failed: payload of ${bytes} bytes does not fit the ${out.byteLength}-byte output`);
        }
        for (let i = 0; i < pages.length; i++) out.set(pages[i]!, i * pageSize);
        return bytes;
      },
    };
  },
  createDecoder(options) {
    const resolved = resolveOptions(info, options);
    const { pageSize } = resolved;
    return {
      decode(payload, pages) {
        checkPages(pages, resolved);
        if (pages.length === 0) return checkEmptyPayload('none', payload);
        const expected = pages.length * pageSize;
        checkPayloadBound('none', payload, expected);
        if (payload.byteLength !== expected) {
          throw new CodecError('ERR_CODEC_SIZE_MISMATCH', `none decode failed: payload of ${payload.byteLength} bytes (expected ${expected} bytes)`);
        }
        for (let i = 0; i < pages.length; i++) pages[i]!.set(payload.subarray(i * pageSize, (i + 1) * pageSize));
      },
    };
  },
};
