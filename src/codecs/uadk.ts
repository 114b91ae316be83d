// `uadk`: the HiSilicon format of QEMU's uadk method: a be32 length per page, then per page one
// zlib stream (header 78 9c, Adler-32 trailer), or the raw page when its length equals the
// page size. A UADK device (through the native shim) produces the same bytes.
import { accelerate } from './accelerated.js';
import { defineWasmCodec } from './common.js';

interface PageCodecExports {
  mf_uadk_compress(pageCount: number, pageSize: number): number;
  mf_uadk_decompress(inputBytes: number, pageCount: number, pageSize: number): number;
  mf_page_codec_bound(pageCount: number, pageSize: number): number;
}

/** The `uadk` wire format in software (fixed level, as QEMU's). */
export const softwareUadk = defineWasmCodec<PageCodecExports>({
  info: {
    id: 'uadk',
    wireId: 8,
    qemuFlag: 0x10,
    unit: 'page',
    levels: null,
    summary: 'zlib stream per page, raw fallback (HiSilicon UADK format)',
  },
  module: 'deflate',
  bound: (m, pageCount, pageSize) => m.exports.mf_page_codec_bound(pageCount, pageSize),
  compress: (m, pageCount, pageSize) => m.exports.mf_uadk_compress(pageCount, pageSize),
  decompress: (m, payloadBytes, pageCount, pageSize) => m.exports.mf_uadk_decompress(payloadBytes, pageCount, pageSize),
});

/** The `uadk` codec: the device through the native shim when there is one, else the software path above. */
export const uadk = accelerate(softwareUadk, 'uadk');
