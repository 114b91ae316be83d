// Packets, the data channels' unit: a 40-byte fixed header, the page runs, then the payload.
// The sender's worker compresses straight into the packet buffer behind the space the header
// will take (packetHeaderBytes tells it where), then writePacket fills the header in front:
// the payload is never copied to be framed.
import { outOfRange, protocolError } from '../errors.js';
import { checksum64 } from '../wasm/kernels.js';
import { ByteReader, ByteWriter } from './byte-cursor.js';
import {
  CHECKSUM_BYTES,
  PACKET_CHECKSUM_OFFSET,
  PACKET_FIXED_HEADER_BYTES,
  PACKET_FLAG_SYNC,
  PACKET_MAGIC,
  PAGE_RUN_BYTES,
  PROTOCOL_VERSION,
  hex,
} from './constants.js';
import { writeRuns, type PageRun } from './page-runs.js';

/** A packet's header as the sender writes it and the reader returns it. */
export interface PacketHeader {
  /** The codec of this packet's payload (packets may change codec; see codecs/registry). */
  codecWireId: number;
  /** {@link PACKET_FLAG_SYNC} or 0. */
  flags: number;
  /** Index of the block in the hello's block table. */
  blockIndex: number;
  /** The pre-copy round this packet belongs to. */
  round: number;
  /** Sequence number across all channels (informational, as QEMU's packet_num). */
  sequence: number;
  /** Pages whose bytes are in the payload, in payload order. */
  normalRuns: PageRun[];
  /** Pages the receiver makes zero; they have no payload. */
  zeroRuns: PageRun[];
  /** Payload bytes after the runs. */
  payloadLength: number;
}

/** A packet as a reader hands it over. */
export interface ParsedPacket {
  /** The header, already validated against the session. */
  header: PacketHeader;
  /**
   * The whole packet (header, runs, payload) in its own unpooled ArrayBuffer, so it can be
   * transferred to a worker. Its checksum is not verified yet: see {@link verifyPacketChecksum}.
   */
  bytes: Uint8Array<ArrayBuffer>;
  /** Where the payload starts in `bytes`. */
  payloadOffset: number;
}

/** The fixed header's fields as they are on the wire, before any validation. */
export interface RawPacketHeader {
  magic: number;
  version: number;
  codecWireId: number;
  flags: number;
  blockIndex: number;
  round: number;
  sequence: bigint;
  normalRunCount: number;
  zeroRunCount: number;
  payloadLength: number;
  checksum: bigint;
}

/** Header bytes (fixed part plus runs) of a packet with these runs: where its payload starts. */
export function packetHeaderBytes(normalRuns: readonly PageRun[], zeroRuns: readonly PageRun[]): number {
  return PACKET_FIXED_HEADER_BYTES + PAGE_RUN_BYTES * (normalRuns.length + zeroRuns.length);
}

/**
 * Frames a packet in place. The payload must already be at
 * `out[packetHeaderBytes(...) .. + payloadBytes)`; this writes the header and runs in front of
 * it, then the checksum over the whole packet. Returns the packet's length.
 * @throws RangeError `ERR_OUT_OF_RANGE` when `out` is too short, `payloadBytes` differs from
 * `header.payloadLength`, or a field does not fit its width (`normalRuns[2].count`, ...).
 */
export function writePacket(out: Uint8Array, header: PacketHeader, payloadBytes: number): number {
  if (payloadBytes !== header.payloadLength) throw outOfRange('payloadBytes', `header.payloadLength (${header.payloadLength})`, payloadBytes);
  const headerBytes = packetHeaderBytes(header.normalRuns, header.zeroRuns);
  const total = headerBytes + payloadBytes;
  if (out.byteLength < total) throw outOfRange('out.byteLength', `at least ${total}`, out.byteLength);
  const w = new ByteWriter(out);
  w.u32(PACKET_MAGIC, 'magic');
  w.u8(PROTOCOL_VERSION, 'version');
  w.u8(header.codecWireId, 'header.codecWireId');
  w.u16(header.flags, 'header.flags');
  w.u32(header.blockIndex, 'header.blockIndex');
  w.u32(header.round, 'header.round');
  w.u64(header.sequence, 'header.sequence');
  w.u16(header.normalRuns.length, 'header.normalRuns.length');
  w.u16(header.zeroRuns.length, 'header.zeroRuns.length');
  w.u32(payloadBytes, 'header.payloadLength');
  w.u64(0n, 'checksum'); // hashed as zero, filled in below
  writeRuns(w, header.normalRuns, 'header.normalRuns');
  writeRuns(w, header.zeroRuns, 'header.zeroRuns');
  const packet = out.subarray(0, total);
  checksumView(packet).setBigUint64(0, checksum64(packet));
  return total;
}

/** The SYNC packet that ends `round` on a channel: no runs, no payload, codec 0, block 0. */
export function encodeSyncPacket(round: number, sequence: number): Uint8Array {
  const out = new Uint8Array(PACKET_FIXED_HEADER_BYTES);
  const header: PacketHeader = {
    codecWireId: 0,
    flags: PACKET_FLAG_SYNC,
    blockIndex: 0,
    round,
    sequence,
    normalRuns: [],
    zeroRuns: [],
    payloadLength: 0,
  };
  writePacket(out, header, 0);
  return out;
}

/** Reads the fixed header's fields from the first {@link PACKET_FIXED_HEADER_BYTES} of `bytes`, unvalidated. */
export function readRawPacketHeader(bytes: Uint8Array): RawPacketHeader {
  const r = new ByteReader(bytes, (field, needed, remaining) =>
    outOfRange('bytes.byteLength', `at least ${PACKET_FIXED_HEADER_BYTES}`, `${remaining} left for ${field} (${needed})`),
  );
  return {
    magic: r.u32('magic'),
    version: r.u8('version'),
    codecWireId: r.u8('codecWireId'),
    flags: r.u16('flags'),
    blockIndex: r.u32('blockIndex'),
    round: r.u32('round'),
    sequence: r.u64('sequence'),
    normalRunCount: r.u16('normalRunCount'),
    zeroRunCount: r.u16('zeroRunCount'),
    payloadLength: r.u32('payloadLength'),
    checksum: r.u64('checksum'),
  };
}

/**
 * Checks a packet's checksum: XXH64 of the whole packet with the checksum field read as zero.
 * The decoding worker calls it before any byte reaches guest memory. The field is zeroed in
 * place for the hash and restored, so `bytes` must not be read by another thread meanwhile
 * (a transferred packet is not).
 * @throws ProtocolError `ERR_PACKET_TRUNCATED` for fewer bytes than a header, or
 * `ERR_PACKET_CHECKSUM`, naming `channel` and `packet` (its ordinal on the channel).
 */
export function verifyPacketChecksum(bytes: Uint8Array, channel: number, packet: number): void {
  if (bytes.byteLength < PACKET_FIXED_HEADER_BYTES) {
    throw protocolError('ERR_PACKET_TRUNCATED', {
      channel,
      packet,
      field: 'packet',
      expected: `at least ${PACKET_FIXED_HEADER_BYTES} bytes`,
      got: `${bytes.byteLength} bytes`,
    });
  }
  const view = checksumView(bytes);
  const stored = view.getBigUint64(0);
  let actual: bigint;
  view.setBigUint64(0, 0n);
  try {
    actual = checksum64(bytes);
  } finally {
    view.setBigUint64(0, stored);
  }
  if (actual !== stored) {
    throw protocolError('ERR_PACKET_CHECKSUM', { channel, packet, field: 'checksum', expected: hex(actual, 16), got: hex(stored, 16) });
  }
}

function checksumView(packet: Uint8Array): DataView {
  return new DataView(packet.buffer, packet.byteOffset + PACKET_CHECKSUM_OFFSET, CHECKSUM_BYTES);
}
