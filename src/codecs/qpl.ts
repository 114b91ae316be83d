// `qpl`: the Intel IAA format of QEMU's qpl method: a be32 length per page, then per page one
// raw DEFLATE stream with at most a 4 KiB window, or the raw page when its length equals the
// page size. This is the software path; an IAA device (native shim) produces the same bytes.
import { defineWasmCodec } from './common.js';

interface PageCodecExports {
  mf_qpl_compress(pageCount: number, pageSize: number): number;
  mf_qpl_decompress(inputBytes: number, pageCount: number, pageSize: number): number;
  mf_page_codec_bound(pageCount: number, pageSize: number): number;
}

/** The `qpl` codec (fixed level, as QEMU's: IAA level 1). */
export const qpl = defineWasmCodec<PageCodecExports>({
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
