// `qatzip`: QATzip's default QZ_DEFLATE_GZIP_EXT format, byte-compatible with QEMU's qatzip
// method: gzip members of at most 64 KiB input each, every member carrying the 'QZ' extra
// field (src_sz, dest_sz), over the whole packet. A QAT device (through the native shim)
// produces the same format, and any multi-member gunzip reads it.
import { accelerate } from './accelerated.js';
import { defineWasmCodec } from './common.js';

interface QatzipExports {
  mf_qatzip_compress(inputBytes: number, level: number): number;
  mf_qatzip_decompress(inputBytes: number, expectedBytes: number): number;
  mf_qatzip_bound(inputBytes: number): number;
}

/** The `qatzip` wire format in software, levels 1 to 9, default 1 as QEMU's multifd-qatzip-level. */
export const softwareQatzip = defineWasmCodec<QatzipExports>({
  info: {
    id: 'qatzip',
    wireId: 16,
    qemuFlag: 0x20,
    unit: 'packet',
    levels: { min: 1, max: 9, default: 1 },
    summary: "gzip members with QATzip's QZ extra field, 64 KiB each (Intel QAT format)",
  },
  module: 'deflate',
  bound: (m, pageCount, pageSize) => m.exports.mf_qatzip_bound(pageCount * pageSize),
  compress: (m, pageCount, pageSize, level) => m.exports.mf_qatzip_compress(pageCount * pageSize, level),
  decompress: (m, payloadBytes, pageCount, pageSize) => m.exports.mf_qatzip_decompress(payloadBytes, pageCount * pageSize),
});

/** The `qatzip` codec: the device through the native shim when there is one, else the software path above. */
export const qatzip = accelerate(softwareQatzip, 'qatzip');
