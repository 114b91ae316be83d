// `lz4`: one LZ4 frame (content size set, independent blocks) over a packet's normal pages.
// Not a QEMU method; its level is LZ4's acceleration (1 = default fast, higher = faster).
import { defineWasmCodec } from './common.js';

interface Lz4Exports {
  mf_lz4_compress(inputBytes: number, acceleration: number): number;
  mf_lz4_decompress(inputBytes: number, expectedBytes: number): number;
  mf_lz4_bound(inputBytes: number): number;
}

/** The `lz4` codec; `level` is the acceleration, 1 to 65537, default 1. */
export const lz4 = defineWasmCodec<Lz4Exports>({
  info: {
    id: 'lz4',
    wireId: 3,
    qemuFlag: null,
    unit: 'packet',
    levels: { min: 1, max: 65537, default: 1 },
    summary: 'one LZ4 frame per packet (not a QEMU method)',
  },
  module: 'lz4',
  bound: (m, pageCount, pageSize) => m.exports.mf_lz4_bound(pageCount * pageSize),
  compress: (m, pageCount, pageSize, acceleration) => m.exports.mf_lz4_compress(pageCount * pageSize, acceleration),
  decompress: (m, payloadBytes, pageCount, pageSize) => m.exports.mf_lz4_decompress(payloadBytes, pageCount * pageSize),
});
