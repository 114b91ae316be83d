// `qpl`: the Intel IAA format of QEMU's qpl method: a be32 length per page, then per page one
// raw DEFLATE stream with at most a 4 KiB window, or the raw page when its length equals the
// page size. An IAA device (through the native shim) produces the same bytes.
import { accelerate } from './accelerated.js';
import { defineWasmCodec } from './common.js';

interface PageCodecExports {
  mf_qpl_compress(pageCount: number, pageSize: number): number;
  mf_qpl_decompress(inputBytes: number, pageCount: number, pageSize: number): number;
  mf_page_codec_bound(pageCount: number, pageSize: number): number;
}

/** The `qpl` wire format in software (fixed level, as QEMU's: IAA level 1). */
export const softwareQpl = defineWasmCodec<PageCodecExports>({
  info: {
    id: 'qpl',
    wireId: 4,
    qemuFlag: 0x08,
    unit: 'page',
    levels: null,
    summary: 'raw DEFLATE per page, 4 KiB window, raw fallback (Intel IAA format)',
  },
  module: 'deflate',
  bound: (m, pageCount, pageSize) => m.exports.mf_page_codec_bound(pageCount, pageSize),
  compress: (m, pageCount, pageSize) => m.exports.mf_qpl_compress(pageCount, pageSize),
  decompress: (m, payloadBytes, pageCount, pageSize) => m.exports.mf_qpl_decompress(payloadBytes, pageCount, pageSize),
});

/** The `qpl` codec: the device through the native shim when there is one, else the software path above. */
export const qpl = accelerate(softwareQpl, 'qpl');
