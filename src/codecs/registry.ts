// The codec registry: ids to codecs, like QEMU's multifd_ops[] table. The engine looks codecs
// up here by id or wire number and never names one itself. The table is fixed: every pool
// worker builds the same one when it imports this module, so a codec added at run time on one
// thread would be unknown to the workers that encode and decode.
import { CodecError } from '../errors.js';
import { lz4 } from './lz4.js';
import { none } from './none.js';
import { qatzip } from './qatzip.js';
import { qpl } from './qpl.js';
import type { BackendStatus, Codec, CodecInfo } from './types.js';
import { uadk } from './uadk.js';
import { zlib } from './zlib.js';
import { zstd } from './zstd.js';

const codecs = new Map<string, Codec>([none, zlib, zstd, lz4, qatzip, qpl, uadk].map((c) => [c.info.id, c]));

/**
 * The codec with this id.
 * @throws CodecError `ERR_CODEC_UNKNOWN` listing the known ids.
 */
export function getCodec(id: string): Codec {
  const codec = codecs.get(id);
  if (!codec) throw new CodecError('ERR_CODEC_UNKNOWN', `unknown codec "${id}" (known: ${[...codecs.keys()].join(', ')})`);
  return codec;
}

/** The codec with this wire number, or undefined (the wire parser turns that into its own error). */
export function codecByWireId(wireId: number): Codec | undefined {
  for (const codec of codecs.values()) if (codec.info.wireId === wireId) return codec;
  return undefined;
}

/**
 * The hello's codec number for `auto`: every packet names its own codec, chosen by the sender
 * packet by packet, and the receiver decodes each with the codec it names.
 */
export const AUTO_WIRE_ID = 0xff;

/** Whether a hello may name this codec number: a registered codec, or `auto`. */
export function sessionCodecKnown(wireId: number): boolean {
  return wireId === AUTO_WIRE_ID || codecByWireId(wireId) !== undefined;
}

/** Every registered codec's description, without asking any backend (no accelerator library is loaded). */
export function codecInfos(): CodecInfo[] {
  return [...codecs.values()].map((codec) => codec.info);
}

/** Every registered codec with its backend in this thread, for `multifd codecs` (probes the accelerators). */
export function listCodecs(): Array<CodecInfo & { backend: BackendStatus }> {
  return [...codecs.values()].map((codec) => ({ ...codec.info, backend: codec.backend() }));
}

