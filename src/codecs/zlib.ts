// `zlib`: one complete zlib stream (RFC 1950, Adler-32 checked) over a packet's normal pages.
// Unlike QEMU's per-channel Z_SYNC_FLUSH stream, every packet decodes on its own (DESIGN §3).
import { defineWasmCodec } from './common.js';

interface ZlibExports {
  mf_zlib_compress(inputBytes: number, level: number): number;
  mf_zlib_decompress(inputBytes: number, expectedBytes: number): number;
  mf_zlib_bound(inputBytes: number): number;
}

/** The `zlib` codec, levels 1 to 9, default 1 as QEMU's multifd-zlib-level. */
export const zlib = defineWasmCodec<ZlibExports>({
  info: {
    id: 'zlib',
    wireId: 1,
    qemuFlag: 0x02,
    unit: 'packet',
    levels: { min: 1, max: 9, default: 1 },
    summary: 'one zlib stream per packet',
  },
  module: 'deflate',
  bound: (m, pageCount, pageSize) => m.exports.mf_zlib_bound(pageCount * pageSize),
  compress: (m, pageCount, pageSize, level) => m.exports.mf_zlib_compress(pageCount * pageSize, level),
  decompress: (m, payloadBytes, pageCount, pageSize) => m.exports.mf_zlib_decompress(payloadBytes, pageCount * pageSize),
});
