// One QEMU multifd packet as it crosses the link (a `packet` link frame's body): which QEMU
// channel it came from, its ordinal there, the QEMU header fields the destination proxy needs
// to write the same header again, and its pages as multifd's own packets (zero runs found by
// the SIMD scan, the rest through the link codec, each sealed by its checksum). The
// multifd packets name the QEMU packet's normal pages by their index in it (0 to
// normal_pages − 1) in a block of normal_pages pages, so the destination puts each page back
// where QEMU had it.
import { codecByWireId } from '../codecs/registry.js';
import type { PacketDecoder } from '../codecs/types.js';
import { unitHashesOfBytes } from '../memory/checksum.js';
import { ByteReader, ByteWriter } from '../wire/byte-cursor.js';
import { PACKET_FIXED_HEADER_BYTES, PACKET_MAGIC, PROTOCOL_VERSION, hex } from '../wire/constants.js';
import { readRawPacketHeader, verifyPacketChecksum } from '../wire/packet.js';
import { checkDisjoint, checkRuns, readRuns, runsPageCount, type PageRun } from '../wire/page-runs.js';
import { linkError } from './link-frames.js';
import { QEMU_FLAG_SYNC, qemuPageCount, type QemuPacketHeader } from './multifd-format.js';

/** A decoded packet frame, its pages rebuilt. */
export interface CarriedPacket {
  /** The QEMU multifd channel (its init's id). */
  channel: number;
  /** The packet's ordinal on that QEMU channel (0 = first after the init). */
  ordinal: number;
  header: QemuPacketHeader;
  /** The normal pages, `normalPages × pageSize` bytes, as the source QEMU sent them. */
  pages: Uint8Array;
  /** Of those, pages that came as zero runs (no payload on the link). */
  zeroPages: number;
}

/**
 * The body of a packet frame: channel u8, 3 reserved bytes, ordinal u32, flags u32,
 * pages_alloc u32, next_packet_size u32, packet_num u64, normal_pages u32, zero_pages u32,
 * name length u8 and the RAMBlock name (UTF-8), normal then zero offsets (u64 each), then a
 * u16 count of multifd packets, each a u32 length and its bytes (`parts` concatenated).
 */
export function encodePacketFrameBody(channel: number, ordinal: number, header: QemuPacketHeader, packets: readonly (readonly Uint8Array[])[]): Uint8Array {
  const w = new ByteWriter();
  w.u8(channel, 'channel');
  w.u8(0, 'reserved');
  w.u16(0, 'reserved');
  w.u32(ordinal, 'ordinal');
  w.u32(header.flags, 'flags');
  w.u32(header.pagesAlloc, 'pages_alloc');
  w.u32(header.nextPacketSize, 'next_packet_size');
  w.u64(header.packetNum, 'packet_num');
  w.u32(header.normalPages, 'normal_pages');
  w.u32(header.zeroPages, 'zero_pages');
  const name = new TextEncoder().encode(header.ramBlock);
  w.u8(name.byteLength, 'ramblock length');
  w.bytes(name);
  for (const offset of header.normalOffsets) w.u64(offset, 'normal offset');
  for (const offset of header.zeroOffsets) w.u64(offset, 'zero offset');
  w.u16(packets.length, 'packets');
  for (const parts of packets) {
    w.u32(parts.reduce((n, p) => n + p.byteLength, 0), 'packet length');
    for (const part of parts) w.bytes(part);
  }
  return w.written();
}

/** Decoders the destination keeps, one per link codec seen (packets name their codec). */
export class PacketFrameDecoder {
  private readonly decoders = new Map<number, PacketDecoder>();

  constructor(
    private readonly pageSize: number,
    private readonly connection: string,
  ) {}

  /**
   * Reads a packet frame's body and rebuilds the QEMU packet's pages: every multifd packet's
   * header and runs are validated (magic, version, a known codec, no flags, block 0, runs
   * inside the QEMU packet and covering each of its normal pages exactly once), its payload
   * decoded and its checksum verified against the decoded pages before they are used.
   * @throws ProtocolError `ERR_LINK_FIELD`, `ERR_LINK_TRUNCATED`, `ERR_PACKET_CHECKSUM`, or a
   * CodecError from the decoder.
   */
  decode(body: Uint8Array): CarriedPacket {
    const fail = (field: string, expected: string | number, got: string | number) => linkError('ERR_LINK_FIELD', this.connection, `packet frame ${field}`, expected, got);
    const r = new ByteReader(body, (field, needed, remaining) => linkError('ERR_LINK_TRUNCATED', this.connection, `packet frame ${field}`, `${needed} bytes`, `${remaining} bytes`));
    const channel = r.u8('channel');
    if (r.u8('reserved') !== 0 || r.u16('reserved') !== 0) throw fail('reserved', 0, 'non-zero');
    const ordinal = r.u32('ordinal');
    const flags = r.u32('flags');
    const pagesAlloc = r.u32('pages_alloc');
    const nextPacketSize = r.u32('next_packet_size');
    const packetNum = r.u64('packet_num');
    const normalPages = r.u32('normal_pages');
    const zeroPages = r.u32('zero_pages');
    const pageCount = qemuPageCount(this.pageSize);
    if (normalPages + zeroPages > pageCount) throw fail('normal_pages + zero_pages', `<= ${pageCount}`, normalPages + zeroPages);
    const nameBytes = r.bytesView('ramblock', r.u8('ramblock length'));
    let ramBlock: string;
    try {
      ramBlock = new TextDecoder('utf-8', { fatal: true }).decode(nameBytes);
    } catch {
      throw fail('ramblock', 'UTF-8', `${nameBytes.byteLength} other bytes`);
    }
    const offsets = (count: number, label: string) => Array.from({ length: count }, () => Number(r.u64(label)));
    const normalOffsets = offsets(normalPages, 'normal offset');
    const zeroOffsets = offsets(zeroPages, 'zero offset');
    const header: QemuPacketHeader = { flags, sync: (flags & QEMU_FLAG_SYNC) !== 0, pagesAlloc, normalPages, zeroPages, nextPacketSize, packetNum, ramBlock, normalOffsets, zeroOffsets };

    const pages = new Uint8Array(normalPages * this.pageSize);
    const covered: PageRun[] = [];
    let zeroRunPages = 0;
    const count = r.u16('packets');
    for (let p = 0; p < count; p++) {
      const packet = r.bytesView(`packets[${p}]`, r.u32(`packets[${p}] length`));
      zeroRunPages += this.applyPacket(packet, pages, normalPages, ordinal, covered, fail);
    }
    if (r.remaining !== 0) throw fail('length', `${r.offset} bytes`, `${body.byteLength} bytes`);
    covered.sort((a, b) => a.first - b.first);
    checkRuns(covered, 'runs', normalPages, (_fault, field, expected, got) => fail(field, expected, got));
    if (runsPageCount(covered) !== normalPages) throw fail('runs', `all ${normalPages} normal pages`, `${runsPageCount(covered)} pages`);
    return { channel, ordinal, header, pages, zeroPages: zeroRunPages };
  }

  /** Validates, decodes and verifies one multifd packet into `pages`; returns its zero-run pages. */
  private applyPacket(
    packet: Uint8Array,
    pages: Uint8Array,
    normalPages: number,
    ordinal: number,
    covered: PageRun[],
    fail: (field: string, expected: string | number, got: string | number) => Error,
  ): number {
    if (packet.byteLength < PACKET_FIXED_HEADER_BYTES) throw fail('multifd packet', `>= ${PACKET_FIXED_HEADER_BYTES} bytes`, packet.byteLength);
    const raw = readRawPacketHeader(packet);
    if (raw.magic !== PACKET_MAGIC) throw fail('multifd packet magic', hex(PACKET_MAGIC, 8), hex(raw.magic, 8));
    if (raw.version !== PROTOCOL_VERSION) throw fail('multifd packet version', PROTOCOL_VERSION, raw.version);
    if (raw.flags !== 0 || raw.blockIndex !== 0) throw fail('multifd packet flags/block', 0, `${raw.flags}/${raw.blockIndex}`);
    const codec = codecByWireId(raw.codecWireId);
    if (!codec) throw fail('multifd packet codec', 'a known codec', raw.codecWireId);
    const runsBytes = 8 * (raw.normalRunCount + raw.zeroRunCount);
    const headerBytes = PACKET_FIXED_HEADER_BYTES + runsBytes;
    if (packet.byteLength !== headerBytes + raw.payloadLength) throw fail('multifd packet length', headerBytes + raw.payloadLength, packet.byteLength);
    const runs = new ByteReader(packet.subarray(PACKET_FIXED_HEADER_BYTES, headerBytes));
    const normalRuns = readRuns(runs, raw.normalRunCount, 'normalRuns');
    const zeroRuns = readRuns(runs, raw.zeroRunCount, 'zeroRuns');
    const runFail = (_fault: string, field: string, expected: string | number, got: string | number) => fail(field, expected, got);
    checkRuns(normalRuns, 'normalRuns', normalPages, runFail);
    checkRuns(zeroRuns, 'zeroRuns', normalPages, runFail);
    checkDisjoint(normalRuns, 'normalRuns', zeroRuns, 'zeroRuns', runFail);
    const count = runsPageCount(normalRuns);
    if (raw.payloadLength > codec.payloadBound(count, this.pageSize)) throw fail('multifd packet payloadLength', `<= ${codec.payloadBound(count, this.pageSize)}`, raw.payloadLength);
    // Decoded into scratch, hashed and verified, and only then copied to the pages' places.
    const scratch = new Uint8Array(count * this.pageSize);
    if (count > 0) {
      const views = Array.from({ length: count }, (_, i) => scratch.subarray(i * this.pageSize, (i + 1) * this.pageSize));
      this.decoder(raw.codecWireId).decode(packet.subarray(headerBytes), views);
    } else if (raw.payloadLength !== 0) {
      throw fail('multifd packet payloadLength', 0, raw.payloadLength);
    }
    verifyPacketChecksum(packet.subarray(0, headerBytes), count > 0 ? unitHashesOfBytes(scratch) : new Uint32Array(0), 0, ordinal);
    let at = 0;
    for (const run of normalRuns) {
      pages.set(scratch.subarray(at, at + run.count * this.pageSize), run.first * this.pageSize);
      at += run.count * this.pageSize;
    }
    covered.push(...normalRuns, ...zeroRuns);
    return runsPageCount(zeroRuns);
  }

  private decoder(wireId: number): PacketDecoder {
    let decoder = this.decoders.get(wireId);
    if (!decoder) {
      decoder = codecByWireId(wireId)!.createDecoder({ pageSize: this.pageSize, maxPages: qemuPageCount(this.pageSize) });
      this.decoders.set(wireId, decoder);
    }
    return decoder;
  }
}
