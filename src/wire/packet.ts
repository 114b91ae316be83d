// Packets, the data channels' unit: a 40-byte fixed header, the page runs, then the payload.
// The sender's worker compresses straight into the packet buffer behind the space the header
// will take (packetHeaderBytes tells it where), then writePacket fills the header in front:
// the payload is never copied to be framed. A `none` packet's header may also be written on
// its own (writePacketHeader) and sent followed by views of the pages themselves.
//
// The checksum (wire format v2) covers the header, the runs and the 4 KiB unit hashes of the
// packet's normal pages, not the payload bytes: the hashes are the ones the image checksum
// is built from, so each side reads a page once for both. A receiver decodes the payload
// into scratch, hashes the pages it got, and applies them only if the checksum matches, so a
// corrupt payload (or one that decodes to other pages) is refused before any write.
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
import { readRuns, writeRuns, type PageRun } from './page-runs.js';

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
   * The whole packet (header, runs, payload), in the buffer the reader's `allocate` gave (a
   * receiver's staging memory, which its workers hash in place). Its checksum is not verified
   * yet: see {@link verifyPacketChecksum}.
   */
  bytes: Uint8Array;
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
 * it with the checksum over them and `unitHashes`, the 4 KiB unit hashes of the normal pages
 * in payload order (2 u32 per unit, low first; see memory/checksum). Returns the packet's length.
 * @throws RangeError `ERR_OUT_OF_RANGE` when `out` is too short, `payloadBytes` differs from
 * `header.payloadLength`, or a field does not fit its width (`normalRuns[2].count`, ...).
 */
export function writePacket(out: Uint8Array, header: PacketHeader, payloadBytes: number, unitHashes: Uint32Array): number {
  if (payloadBytes !== header.payloadLength) throw outOfRange('payloadBytes', `header.payloadLength (${header.payloadLength})`, payloadBytes);
  const total = packetHeaderBytes(header.normalRuns, header.zeroRuns) + payloadBytes;
  if (out.byteLength < total) throw outOfRange('out.byteLength', `at least ${total}`, out.byteLength);
  writePacketHeader(out, header, unitHashes);
  return total;
}

/**
 * Writes a packet's header and runs (with its checksum, see {@link writePacket}) at the start
 * of `out`, without a payload behind it: the payload goes out separately. Returns the
 * header's length.
 */
export function writePacketHeader(out: Uint8Array, header: PacketHeader, unitHashes: Uint32Array): number {
  const headerBytes = packetHeaderBytes(header.normalRuns, header.zeroRuns);
  const w = new ByteWriter(out.subarray(0, headerBytes));
  w.u32(PACKET_MAGIC, 'magic');
  w.u8(PROTOCOL_VERSION, 'version');
  w.u8(header.codecWireId, 'header.codecWireId');
  w.u16(header.flags, 'header.flags');
  w.u32(header.blockIndex, 'header.blockIndex');
  w.u32(header.round, 'header.round');
  w.u64(header.sequence, 'header.sequence');
  w.u16(header.normalRuns.length, 'header.normalRuns.length');
  w.u16(header.zeroRuns.length, 'header.zeroRuns.length');
  w.u32(header.payloadLength, 'header.payloadLength');
  w.u64(0n, 'checksum'); // hashed as zero, filled in below
  writeRuns(w, header.normalRuns, 'header.normalRuns');
  writeRuns(w, header.zeroRuns, 'header.zeroRuns');
  const head = out.subarray(0, headerBytes);
  checksumView(head).setBigUint64(0, packetChecksum(head, unitHashes));
  return headerBytes;
}

let checked = new Uint8Array(0);

/**
 * A packet's checksum: XXH64 of its header and runs with the checksum field read as zero,
 * followed by the unit hashes of its normal pages as little-endian u64 values.
 */
export function packetChecksum(headerAndRuns: Uint8Array, unitHashes: Uint32Array): bigint {
  const length = headerAndRuns.byteLength + unitHashes.byteLength;
  if (checked.byteLength < length) checked = new Uint8Array(Math.max(length, 2 * checked.byteLength));
  checked.set(headerAndRuns);
  checked.fill(0, PACKET_CHECKSUM_OFFSET, PACKET_CHECKSUM_OFFSET + CHECKSUM_BYTES);
  checked.set(new Uint8Array(unitHashes.buffer, unitHashes.byteOffset, unitHashes.byteLength), headerAndRuns.byteLength);
  return checksum64(checked.subarray(0, length));
}

const NO_UNITS = new Uint32Array(0);

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
  writePacket(out, header, 0, NO_UNITS);
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
 * The header and runs at the start of `bytes`, read as they are: for a packet whose header a
 * PacketReader has already validated (a worker reading it again from the staging memory).
 */
export function readValidatedHeader(bytes: Uint8Array): PacketHeader {
  const raw = readRawPacketHeader(bytes);
  const r = new ByteReader(bytes.subarray(PACKET_FIXED_HEADER_BYTES));
  return packetHeaderOf(raw, readRuns(r, raw.normalRunCount, 'normalRuns'), readRuns(r, raw.zeroRunCount, 'zeroRuns'));
}

/** The header a raw fixed header and its runs make (the sequence, checked below 2^53, as a number). */
export function packetHeaderOf(raw: RawPacketHeader, normalRuns: PageRun[], zeroRuns: PageRun[]): PacketHeader {
  const { codecWireId, flags, blockIndex, round, payloadLength } = raw;
  return { codecWireId, flags, blockIndex, round, sequence: Number(raw.sequence), normalRuns, zeroRuns, payloadLength };
}

/**
 * Checks a packet's checksum against the unit hashes of the pages its payload decoded to (in
 * payload order). The applying worker calls it before any byte reaches guest memory.
 * @throws ProtocolError `ERR_PACKET_TRUNCATED` for fewer bytes than a header, or
 * `ERR_PACKET_CHECKSUM`, naming `channel` and `packet` (its ordinal on the channel).
 */
export function verifyPacketChecksum(headerAndRuns: Uint8Array, unitHashes: Uint32Array, channel: number, packet: number): void {
  if (headerAndRuns.byteLength < PACKET_FIXED_HEADER_BYTES) {
    throw protocolError('ERR_PACKET_TRUNCATED', {
      channel,
      packet,
      field: 'packet',
      expected: `at least ${PACKET_FIXED_HEADER_BYTES} bytes`,
      got: `${headerAndRuns.byteLength} bytes`,
    });
  }
  const stored = checksumView(headerAndRuns).getBigUint64(0);
  const actual = packetChecksum(headerAndRuns, unitHashes);
  if (actual !== stored) {
    throw protocolError('ERR_PACKET_CHECKSUM', { channel, packet, field: 'checksum', expected: hex(actual, 16), got: hex(stored, 16) });
  }
}

function checksumView(packet: Uint8Array): DataView {
  return new DataView(packet.buffer, packet.byteOffset + PACKET_CHECKSUM_OFFSET, CHECKSUM_BYTES);
}
