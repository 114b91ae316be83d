// `zstd`: one complete zstd frame (content size in the header) over a packet's normal pages.
// Unlike QEMU's per-channel stream, every packet decodes on its own (DESIGN §3).
import { defineWasmCodec } from './common.js';

interface ZstdExports {
  mf_zstd_compress(inputBytes: number, level: number): number;
  mf_zstd_decompress(inputBytes: number, expectedBytes: number): number;
  mf_zstd_bound(inputBytes: number): number;
}

/** The `zstd` codec, levels -7 (fastest) to 19, default 1 as QEMU's multifd-zstd-level. */
export const zstd = defineWasmCodec<ZstdExports>({
  info: {
    id: 'zstd',
    wireId: 2,
    qemuFlag: 0x04,
    unit: 'packet',
    levels: { min: -7, max: 19, default: 1 },
    summary: 'one zstd frame per packet',
  },
  module: 'zstd',
  bound: (m, pageCount, pageSize) => m.exports.mf_zstd_bound(pageCount * pageSize),
  compress: (m, pageCount, pageSize, level) => m.exports.mf_zstd_compress(pageCount * pageSize, level),
  decompress: (m, payloadBytes, pageCount, pageSize) => m.exports.mf_zstd_decompress(payloadBytes, pageCount * pageSize),
});
