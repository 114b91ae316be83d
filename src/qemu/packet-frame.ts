// One QEMU multifd packet as it crosses the link (a `packet` link frame): its sealed fields say
// which QEMU channel it came from, its ordinal there, the QEMU header fields the destination
// proxy needs to write the same header again, and the length of each multifd packet that
// follows; the multifd packets carry its pages (zero runs found by the SIMD scan, the rest
// through the link codec), each sealed by its own checksum. They name the QEMU packet's
// normal pages by their index in it (0 to normal_pages − 1) in a block of normal_pages pages,
// so the destination puts each page back where QEMU had it.
import { codecByWireId } from '../codecs/registry.js';
import type { PacketDecoder } from '../codecs/types.js';
import { HASH_UNIT_BYTES, unitHashes } from '../memory/checksum.js';
import { ByteReader, ByteWriter } from '../wire/byte-cursor.js';
import { PACKET_FIXED_HEADER_BYTES, PACKET_MAGIC, PROTOCOL_VERSION, hex } from '../wire/constants.js';
import { readRawPacketHeader, verifyPacketChecksum } from '../wire/packet.js';
import { readRuns, runsPageCount, type PageRun } from '../wire/page-runs.js';
import { linkError, type LinkFrameItem } from './link-frames.js';
import { QEMU_FLAG_SYNC, qemuPageCount, type QemuPacketHeader } from './multifd-format.js';

/** A packet frame's sealed fields, read and checked, before any of its pages is decoded. */
export interface PacketFrameFields {
  /** The QEMU multifd channel (its init's id). */
  channel: number;
  /** The packet's ordinal on that QEMU channel (0 = first after the init). */
  ordinal: number;
  header: QemuPacketHeader;
  /** Each multifd packet's bytes, in order after the fields. */
  packetLengths: number[];
}

type Fail = (field: string, expected: string | number, got: string | number) => Error;

/**
 * The sealed fields of a packet frame: channel u8, 3 reserved bytes, ordinal u32, flags u32,
 * pages_alloc u32, next_packet_size u32, packet_num u64, normal_pages u32, zero_pages u32,
 * name length u8 and the RAMBlock name (UTF-8), normal then zero offsets (u64 each), then a
 * u16 count of multifd packets and each one's length (u32). The packets follow the fields.
 */
export function encodePacketFrameFields(channel: number, ordinal: number, header: QemuPacketHeader, packetLengths: readonly number[]): Uint8Array {
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
  w.u16(packetLengths.length, 'packets');
  for (const length of packetLengths) w.u32(length, 'packet length');
  return w.written();
}

/** Reads and checks packet frames on the destination proxy; keeps one decoder per link codec seen (packets name their codec). */
export class PacketFrameDecoder {
  private readonly decoders = new Map<number, PacketDecoder>();
  private readonly pageCount: number;
  /** Which normal pages of the packet being decoded are covered so far. */
  private readonly covered: Uint8Array;
  private hashes: Uint32Array;

  constructor(
    private readonly pageSize: number,
    private readonly connection: string,
  ) {
    this.pageCount = qemuPageCount(pageSize);
    this.covered = new Uint8Array(this.pageCount);
    this.hashes = new Uint32Array((2 * this.pageCount * pageSize) / HASH_UNIT_BYTES);
  }

  /**
   * A packet frame's sealed fields (the link frame checked their checksum): the QEMU header
   * fields within QEMU's page count, the multifd packets' lengths adding up to the rest.
   * @throws ProtocolError `ERR_LINK_FIELD`, `ERR_LINK_TRUNCATED`.
   */
  readFields(item: LinkFrameItem): PacketFrameFields {
    const fail = this.failure();
    const r = new ByteReader(item.body.subarray(0, item.sealed), (field, needed, remaining) => linkError('ERR_LINK_TRUNCATED', this.connection, `packet frame ${field}`, `${needed} bytes`, `${remaining} bytes`));
    const channel = r.u8('channel');
    if (r.u8('reserved') !== 0 || r.u16('reserved') !== 0) throw fail('reserved', 0, 'non-zero');
    const ordinal = r.u32('ordinal');
    const header = this.readHeader(r, fail);
    const packetLengths = Array.from({ length: r.u16('packets') }, (_, p) => r.u32(`packets[${p}] length`));
    if (r.remaining !== 0) throw fail('sealed length', `${r.offset} bytes`, `${item.sealed} bytes`);
    const tail = packetLengths.reduce((a, b) => a + b, 0);
    if (item.sealed + tail !== item.body.byteLength) throw fail('length', `${item.sealed + tail} bytes`, `${item.body.byteLength} bytes`);
    return { channel, ordinal, header, packetLengths };
  }

  /**
   * Decodes a packet frame's multifd packets into `pages` (normal_pages × pageSize bytes of a
   * shared memory at `byteOffset`): every packet's header and runs are validated (magic,
   * version, a known codec, no flags, block 0, runs inside the QEMU packet, no page covered
   * twice) before its payload is decoded, its checksum verified against the decoded pages,
   * and over all of them each normal page must be covered exactly once. The pages are the
   * proxy's own until it writes them: a frame that fails leaves nothing anywhere else.
   * Returns how many pages came as zero runs.
   * @throws ProtocolError `ERR_LINK_FIELD`, `ERR_PACKET_CHECKSUM`, or a CodecError.
   */
  decodePages(fields: PacketFrameFields, item: LinkFrameItem, memory: WebAssembly.Memory, byteOffset: number): number {
    const fail = this.failure();
    const { normalPages } = fields.header;
    this.covered.fill(0, 0, normalPages);
    let at = item.sealed;
    let zeroPages = 0;
    for (let p = 0; p < fields.packetLengths.length; p++) {
      const packet = item.body.subarray(at, at + fields.packetLengths[p]!);
      at += packet.byteLength;
      zeroPages += this.decodePacket(packet, normalPages, fields.ordinal, memory, byteOffset, fail);
    }
    const missing = this.covered.subarray(0, normalPages).indexOf(0);
    if (missing >= 0) throw fail('runs', `all ${normalPages} normal pages`, `none for page ${missing}`);
    return zeroPages;
  }

  private readHeader(r: ByteReader, fail: Fail): QemuPacketHeader {
    const flags = r.u32('flags');
    const pagesAlloc = r.u32('pages_alloc');
    const nextPacketSize = r.u32('next_packet_size');
    const packetNum = r.u64('packet_num');
    const normalPages = r.u32('normal_pages');
    const zeroPages = r.u32('zero_pages');
    if (normalPages + zeroPages > this.pageCount) throw fail('normal_pages + zero_pages', `<= ${this.pageCount}`, normalPages + zeroPages);
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
    return { flags, sync: (flags & QEMU_FLAG_SYNC) !== 0, pagesAlloc, normalPages, zeroPages, nextPacketSize, packetNum, ramBlock, normalOffsets, zeroOffsets };
  }

  /** Validates one multifd packet, decodes it into its pages' places, verifies it; returns its zero-run pages. */
  private decodePacket(packet: Uint8Array, normalPages: number, ordinal: number, memory: WebAssembly.Memory, byteOffset: number, fail: Fail): number {
    if (packet.byteLength < PACKET_FIXED_HEADER_BYTES) throw fail('multifd packet', `>= ${PACKET_FIXED_HEADER_BYTES} bytes`, packet.byteLength);
    const raw = readRawPacketHeader(packet);
    if (raw.magic !== PACKET_MAGIC) throw fail('multifd packet magic', hex(PACKET_MAGIC, 8), hex(raw.magic, 8));
    if (raw.version !== PROTOCOL_VERSION) throw fail('multifd packet version', PROTOCOL_VERSION, raw.version);
    if (raw.flags !== 0 || raw.blockIndex !== 0) throw fail('multifd packet flags/block', 0, `${raw.flags}/${raw.blockIndex}`);
    const codec = codecByWireId(raw.codecWireId);
    if (!codec) throw fail('multifd packet codec', 'a known codec', raw.codecWireId);
    const headerBytes = PACKET_FIXED_HEADER_BYTES + 8 * (raw.normalRunCount + raw.zeroRunCount);
    if (packet.byteLength !== headerBytes + raw.payloadLength) throw fail('multifd packet length', headerBytes + raw.payloadLength, packet.byteLength);
    const runs = new ByteReader(packet.subarray(PACKET_FIXED_HEADER_BYTES, headerBytes));
    const normalRuns = readRuns(runs, raw.normalRunCount, 'normalRuns');
    const zeroRuns = readRuns(runs, raw.zeroRunCount, 'zeroRuns');
    // Each run inside the QEMU packet and on pages no run took before: no write lands twice.
    for (const [label, list] of [['normalRuns', normalRuns], ['zeroRuns', zeroRuns]] as const) this.cover(list, label, normalPages, fail);
    const count = runsPageCount(normalRuns);
    const bound = codec.payloadBound(count, this.pageSize);
    if (raw.payloadLength > bound) throw fail('multifd packet payloadLength', `<= ${bound}`, raw.payloadLength);
    if (count === 0 && raw.payloadLength !== 0) throw fail('multifd packet payloadLength', 0, raw.payloadLength);
    const pages = (first: number, pageCount: number) => new Uint8Array(memory.buffer, byteOffset + first * this.pageSize, pageCount * this.pageSize);
    const payload = packet.subarray(headerBytes);
    if (codec.info.payloadIsPages) {
      // The pages themselves (`none`): copied a run at a time.
      if (payload.byteLength !== count * this.pageSize) throw fail('multifd packet payloadLength', count * this.pageSize, payload.byteLength);
      let from = 0;
      for (const run of normalRuns) pages(run.first, run.count).set(payload.subarray(from, (from += run.count * this.pageSize)));
    } else if (count > 0) {
      this.decoder(raw.codecWireId).decode(payload, normalRuns.flatMap((run) => Array.from({ length: run.count }, (_, i) => pages(run.first + i, 1))));
    }
    for (const run of zeroRuns) pages(run.first, run.count).fill(0);
    verifyPacketChecksum(packet.subarray(0, headerBytes), this.hashesOf(normalRuns, memory, byteOffset), 0, ordinal);
    return runsPageCount(zeroRuns);
  }

  /** Marks `runs` covered; a run outside the packet or over a page already covered is refused. */
  private cover(runs: readonly PageRun[], label: string, normalPages: number, fail: Fail): void {
    for (const { first, count } of runs) {
      if (count === 0 || first + count > normalPages) throw fail(label, `runs of 1 or more pages within ${normalPages}`, `${first}+${count}`);
      const taken = this.covered.subarray(first, first + count).indexOf(1);
      if (taken >= 0) throw fail(label, 'each page in one run', `page ${first + taken} again`);
      this.covered.fill(1, first, first + count);
    }
  }

  /** The unit hashes of the pages of `runs`, in payload order, hashed where they were decoded. */
  private hashesOf(runs: readonly PageRun[], memory: WebAssembly.Memory, byteOffset: number): Uint32Array {
    let at = 0;
    for (const run of runs) {
      unitHashes(memory, byteOffset + run.first * this.pageSize, run.count * this.pageSize, this.hashes, at);
      at += (2 * run.count * this.pageSize) / HASH_UNIT_BYTES;
    }
    return this.hashes.subarray(0, at);
  }

  private failure(): Fail {
    return (field, expected, got) => linkError('ERR_LINK_FIELD', this.connection, `packet frame ${field}`, expected, got);
  }

  private decoder(wireId: number): PacketDecoder {
    let decoder = this.decoders.get(wireId);
    if (!decoder) {
      decoder = codecByWireId(wireId)!.createDecoder({ pageSize: this.pageSize, maxPages: this.pageCount });
      this.decoders.set(wireId, decoder);
    }
    return decoder;
  }
}
