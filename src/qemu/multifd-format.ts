// QEMU's multifd channel format (migration/multifd.[ch], reference/qemu-multifd.md §2), read
// and written byte for byte, for proxies that carry a real QEMU's multifd migration over
// multifd's own channels. Only RAM packets of the `none` method are understood. Everything
// else is refused by name: compression, VFIO device state, unknown flag bits, non-zero
// reserved bytes, another magic or version. A proxy that forwarded a packet it only half
// understood would give the destination QEMU something other than what the source sent.
//
// One parser covers 7.2 (Debian 12) to 10.x: the layout never changed, only the use of spare
// fields (zero_pages at offset 32 since 9.0, zero in 7.2) and what senders leave in fields
// that do not apply (see parseQemuPacketHeader).
import { ProtocolError, outOfRange } from '../errors.js';
import { ByteReader, ByteWriter } from '../wire/byte-cursor.js';
import { hex } from '../wire/constants.js';

/** First 4 bytes of a multifd channel's init and of every packet on it (`MULTIFD_MAGIC`). */
export const QEMU_MULTIFD_MAGIC = 0x11223344;

/** `MULTIFD_VERSION`: 1 from QEMU 4.0 to 10.x; formats evolved through spare fields instead. */
export const QEMU_MULTIFD_VERSION = 1;

/** First 4 bytes of QEMU's main migration stream: "QEVM". */
export const QEMU_MAIN_MAGIC = 0x5145564d;

/** Bytes of a multifd channel's init message (`MultiFDInit_t`). */
export const QEMU_INIT_BYTES = 64;

/** Bytes of the VM uuid in the init message. */
export const QEMU_UUID_BYTES = 16;

/** Guest bytes one packet can carry (`MULTIFD_PACKET_SIZE`): 512 KiB. */
export const QEMU_PACKET_DATA_BYTES = 512 * 1024;

/** Bytes of a packet header before its offset array. */
export const QEMU_PACKET_FIXED_BYTES = 320;

/** Magic, version and flags: what QEMU 10.0 reads first to tell a RAM packet from device state. */
export const QEMU_PACKET_PREFIX_BYTES = 12;

/** Bytes of the RAMBlock name field, NUL-padded. */
export const QEMU_RAMBLOCK_NAME_BYTES = 256;

/** Packet flag: a barrier packet (`MULTIFD_FLAG_SYNC`). */
export const QEMU_FLAG_SYNC = 0x01;

/** Packet flag of QEMU 10.0+: a VFIO device-state packet, another layout. */
export const QEMU_FLAG_DEVICE_STATE = 0x40;

/** Flag bits holding the compression method, compared as one value (`MULTIFD_FLAG_COMPRESSION_MASK`). */
export const QEMU_COMPRESSION_MASK = 0x3e;

/** The compression methods' flag values; `none` is 0. */
export const QEMU_COMPRESSION_FLAGS = { zlib: 0x02, zstd: 0x04, qpl: 0x08, uadk: 0x10, qatzip: 0x20 } as const;

/** Every flag bit some QEMU version defines; any other bit is refused as unknown. */
export const QEMU_KNOWN_FLAGS = QEMU_FLAG_SYNC | QEMU_COMPRESSION_MASK | QEMU_FLAG_DEVICE_STATE;

/** Offset of the RAMBlock name in a packet header. */
const RAMBLOCK_OFFSET = 64;
/** Offset of the reserved bytes after zero_pages (unused32[1], unused64[3]). */
const PACKET_RESERVED_OFFSET = 36;
/** Offset of the reserved bytes after the channel id in the init (unused1, unused2). */
const INIT_RESERVED_OFFSET = 25;
const MAX_OFFSET = 2n ** 53n;

const COMPRESSION_NAMES = new Map<number, string>(Object.entries(QEMU_COMPRESSION_FLAGS).map(([name, flag]) => [flag, name]));
const utf8 = new TextDecoder('utf-8', { fatal: true });

/** Which QEMU migration connection starts with these bytes (at least 4), as QEMU ≥ 8.0 peeks them. */
export function connectionKindOf(firstBytes: Uint8Array): 'main' | 'multifd' | undefined {
  if (firstBytes.byteLength < 4) return undefined;
  const magic = new DataView(firstBytes.buffer, firstBytes.byteOffset, 4).getUint32(0);
  if (magic === QEMU_MAIN_MAGIC) return 'main';
  if (magic === QEMU_MULTIFD_MAGIC) return 'multifd';
  return undefined;
}

/**
 * Pages per packet (`page_count`): 512 KiB / `pageSize`, 128 for 4 KiB pages. Both QEMUs
 * derive it from their own target page size, so the proxy must be given the same one.
 * @throws RangeError `ERR_OUT_OF_RANGE` unless `pageSize` is a power of two from 1 KiB to 512 KiB.
 */
export function qemuPageCount(pageSize: number): number {
  if (!Number.isInteger(pageSize) || pageSize < 1024 || pageSize > QEMU_PACKET_DATA_BYTES || (pageSize & (pageSize - 1)) !== 0) {
    throw outOfRange('pageSize', `a power of two from 1024 to ${QEMU_PACKET_DATA_BYTES}`, pageSize);
  }
  return QEMU_PACKET_DATA_BYTES / pageSize;
}

/** Bytes of every packet header, whatever it carries: 320 + 8 × page_count (1344 for 4 KiB pages). */
export function qemuPacketHeaderBytes(pageSize: number): number {
  return QEMU_PACKET_FIXED_BYTES + 8 * qemuPageCount(pageSize);
}

/** Where in a QEMU stream a fault was seen: the channel (its init's id) and the packet's ordinal on it (0 = first). */
export interface QemuLocation {
  channel?: number;
  packet?: number;
}

/**
 * A ProtocolError about a QEMU multifd stream, in the style of `protocolError` but saying
 * "QEMU multifd channel 2, packet 5": a proxy runs QEMU's channels beside its own, whose
 * numbers `protocolError` names, and may not know the channel yet (an init being read).
 * `context` has the usual channel, packet, field, expected and got.
 */
export function qemuProtocolError(code: string, at: QemuLocation, field: string, expected: string | number, got: string | number): ProtocolError {
  const channel = at.channel === undefined ? 'QEMU multifd' : `QEMU multifd channel ${at.channel}`;
  const where = at.packet === undefined ? channel : `${channel}, packet ${at.packet}`;
  return new ProtocolError(code, `${where}: ${field}: expected ${expected}, got ${got}`, {
    context: { channel: at.channel, packet: at.packet, field, expected, got },
  });
}

/** A multifd channel's init message. */
export interface QemuInit {
  /** The VM uuid (`-uuid`; all zero without one); the destination QEMU requires its own. */
  uuid: Uint8Array;
  /** The channel's index, 0 to multifd-channels − 1. */
  channelId: number;
}

/**
 * The 64-byte init a QEMU source writes first on multifd channel `channelId`.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a uuid that is not 16 bytes or an id that is not a u8.
 */
export function encodeQemuInit({ uuid, channelId }: QemuInit): Uint8Array {
  if (uuid.byteLength !== QEMU_UUID_BYTES) throw outOfRange('init.uuid.byteLength', `${QEMU_UUID_BYTES}`, uuid.byteLength);
  const out = new Uint8Array(QEMU_INIT_BYTES);
  const w = new ByteWriter(out);
  w.u32(QEMU_MULTIFD_MAGIC, 'magic');
  w.u32(QEMU_MULTIFD_VERSION, 'version');
  w.bytes(uuid);
  w.u8(channelId, 'init.channelId');
  return out;
}

/**
 * Reads a multifd channel's init (its first 64 bytes; later bytes are ignored): magic,
 * version, reserved bytes zero, and `id < channels` when `channels` is given (QEMU itself tests
 * `id > channels` and lets one id past its array). The uuid is returned as a copy. Errors
 * name the id the init claims, once 25 bytes hold one.
 * @throws ProtocolError `ERR_QEMU_TRUNCATED`, `ERR_QEMU_MAGIC`, `ERR_QEMU_VERSION` or
 * `ERR_QEMU_FIELD` (reserved bytes, `id`).
 */
export function parseQemuInit(bytes: Uint8Array, channels?: number): QemuInit {
  const at: QemuLocation = { channel: bytes[24] };
  if (bytes.byteLength < QEMU_INIT_BYTES) {
    throw qemuProtocolError('ERR_QEMU_TRUNCATED', at, 'init', `${QEMU_INIT_BYTES} bytes`, `${bytes.byteLength} bytes`);
  }
  const r = new ByteReader(bytes.subarray(0, QEMU_INIT_BYTES));
  checkMagicAndVersion(r, at);
  const uuid = r.bytesView('uuid', QEMU_UUID_BYTES).slice();
  const channelId = r.u8('id');
  checkReserved(bytes, INIT_RESERVED_OFFSET, QEMU_INIT_BYTES, at);
  if (channels !== undefined && channelId >= channels) {
    throw qemuProtocolError('ERR_QEMU_FIELD', at, 'id', `< ${channels} (multifd-channels)`, channelId);
  }
  return { uuid, channelId };
}

/** A RAM packet's header: what {@link parseQemuPacketHeader} returns and {@link encodeQemuPacketHeader} writes. */
export interface QemuPacketHeader {
  /** {@link QEMU_FLAG_SYNC} or 0: compression and device-state bits are refused. */
  flags: number;
  /** Whether {@link QEMU_FLAG_SYNC} is set; QEMU 7.2 may set it on a packet carrying pages. */
  sync: boolean;
  /** Capacity the sender declares: page_count, or 0 in a QEMU 9.2+ SYNC-only packet. */
  pagesAlloc: number;
  /** Pages whose bytes follow the header. */
  normalPages: number;
  /** Pages the destination makes zero (QEMU 9.0+ `zero_pages`; 0 from 7.2). */
  zeroPages: number;
  /** Payload bytes the sender declares; see {@link parseQemuPacketHeader} for page-less packets. */
  nextPacketSize: number;
  /** Sequence number across all channels; QEMU never checks it. */
  packetNum: bigint;
  /** The RAMBlock's idstr; may be stale or empty in a packet without pages. */
  ramBlock: string;
  /** Byte offsets of the normal pages in the block, in payload order. */
  normalOffsets: number[];
  /** Byte offsets of the zero pages in the block. */
  zeroOffsets: number[];
}

/**
 * Checks a packet's first 12 bytes: magic, version, then flags. A reader runs it as soon as
 * they are in, as QEMU 10.0 does, so a device-state packet (whose header is shorter) is
 * refused before its payload is taken for the rest of a RAM header. Returns the flags.
 * @throws ProtocolError `ERR_QEMU_TRUNCATED`, `ERR_QEMU_MAGIC`, `ERR_QEMU_VERSION`,
 * `ERR_QEMU_FLAGS` (bits no QEMU defines), `ERR_QEMU_DEVICE_STATE` or `ERR_QEMU_COMPRESSION`
 * (the method named).
 */
export function checkQemuPacketPrefix(bytes: Uint8Array, at: QemuLocation = {}): number {
  if (bytes.byteLength < QEMU_PACKET_PREFIX_BYTES) {
    throw qemuProtocolError('ERR_QEMU_TRUNCATED', at, 'packet header', `${QEMU_PACKET_PREFIX_BYTES} bytes`, `${bytes.byteLength} bytes`);
  }
  const r = new ByteReader(bytes.subarray(0, QEMU_PACKET_PREFIX_BYTES));
  checkMagicAndVersion(r, at);
  const flags = r.u32('flags');
  checkFlags(flags, at);
  return flags;
}

/**
 * Reads and validates a RAM packet header (its first {@link qemuPacketHeaderBytes} bytes), in
 * wire order: the prefix ({@link checkQemuPacketPrefix}); `pages_alloc ≤ page_count`,
 * `normal_pages ≤ pages_alloc`, `zero_pages ≤ pages_alloc − normal_pages` (QEMU's own rules);
 * `next_packet_size`; reserved bytes 36–63 zero; the RAMBlock name NUL-terminated within 256
 * bytes, UTF-8, non-empty when the packet lists pages; the listed offsets page-aligned and
 * below 2^53.
 *
 * What senders leave in fields that do not apply is accepted and ignored, as QEMU does:
 * offsets past the listed pages (7.2 leaves the previous packet's), bytes after the name's
 * NUL, and in a packet without normal pages `next_packet_size` (QEMU ≤ 8.1 leave the previous
 * packet's size there; it must still be a whole number of pages up to 512 KiB). With normal
 * pages it must be `normal_pages × pageSize`, the `none` method's payload. A 7.2 packet may
 * carry SYNC with pages, or neither (an empty packet after a SYNC ridden on data).
 * @throws ProtocolError `ERR_QEMU_TRUNCATED`, `ERR_QEMU_MAGIC`, `ERR_QEMU_VERSION`,
 * `ERR_QEMU_FLAGS`, `ERR_QEMU_DEVICE_STATE`, `ERR_QEMU_COMPRESSION` or `ERR_QEMU_FIELD`,
 * naming the field (QEMU's name: `pages_alloc`, `offset[3]`, ...), what was expected and got.
 * @throws RangeError `ERR_OUT_OF_RANGE` for a `pageSize` {@link qemuPageCount} refuses.
 */
export function parseQemuPacketHeader(bytes: Uint8Array, pageSize: number, at: QemuLocation = {}): QemuPacketHeader {
  const pageCount = qemuPageCount(pageSize);
  const headerBytes = qemuPacketHeaderBytes(pageSize);
  const flags = checkQemuPacketPrefix(bytes, at);
  if (bytes.byteLength < headerBytes) {
    throw qemuProtocolError('ERR_QEMU_TRUNCATED', at, 'packet header', `${headerBytes} bytes`, `${bytes.byteLength} bytes`);
  }
  const r = new ByteReader(bytes.subarray(QEMU_PACKET_PREFIX_BYTES, headerBytes));
  const pagesAlloc = r.u32('pages_alloc');
  const normalPages = r.u32('normal_pages');
  const nextPacketSize = r.u32('next_packet_size');
  const packetNum = r.u64('packet_num');
  const zeroPages = r.u32('zero_pages');
  checkPageCounts(pagesAlloc, normalPages, zeroPages, pageCount, at);
  checkNextPacketSize(nextPacketSize, normalPages, pageSize, at);
  checkReserved(bytes, PACKET_RESERVED_OFFSET, RAMBLOCK_OFFSET, at);
  const ramBlock = readRamBlockName(bytes.subarray(RAMBLOCK_OFFSET, QEMU_PACKET_FIXED_BYTES), normalPages + zeroPages > 0, at);
  const offsets = new ByteReader(bytes.subarray(QEMU_PACKET_FIXED_BYTES, headerBytes));
  const normalOffsets = readOffsets(offsets, 0, normalPages, pageSize, at);
  const zeroOffsets = readOffsets(offsets, normalPages, zeroPages, pageSize, at);
  const sync = (flags & QEMU_FLAG_SYNC) !== 0;
  return { flags, sync, pagesAlloc, normalPages, zeroPages, nextPacketSize, packetNum, ramBlock, normalOffsets, zeroOffsets };
}

/**
 * Writes `header` as a {@link qemuPacketHeaderBytes}-byte packet header: exactly the fields
 * {@link parseQemuPacketHeader} reads, every other byte zero (reserved fields, name padding,
 * offsets past the listed pages), so parsing the result gives `header` back.
 * @throws RangeError `ERR_OUT_OF_RANGE` when the lists' lengths disagree with the counts,
 * `sync` with `flags`, the name is longer than 255 UTF-8 bytes, or the header breaks a rule
 * the parser checks (the error then names that field, as the parser would).
 */
export function encodeQemuPacketHeader(header: QemuPacketHeader, pageSize: number): Uint8Array {
  const name = checkEncodable(header, pageSize);
  const out = new Uint8Array(qemuPacketHeaderBytes(pageSize));
  const w = new ByteWriter(out);
  w.u32(QEMU_MULTIFD_MAGIC, 'magic');
  w.u32(QEMU_MULTIFD_VERSION, 'version');
  w.u32(header.flags, 'header.flags');
  w.u32(header.pagesAlloc, 'header.pagesAlloc');
  w.u32(header.normalPages, 'header.normalPages');
  w.u32(header.nextPacketSize, 'header.nextPacketSize');
  w.u64(header.packetNum, 'header.packetNum');
  w.u32(header.zeroPages, 'header.zeroPages');
  out.set(name, RAMBLOCK_OFFSET);
  const offsets = new ByteWriter(out, QEMU_PACKET_FIXED_BYTES);
  for (const offset of [...header.normalOffsets, ...header.zeroOffsets]) offsets.u64(offset, 'header offsets');
  // The parser is the one statement of the rules: what it would refuse is not written.
  try {
    parseQemuPacketHeader(out, pageSize);
  } catch (error) {
    if (!(error instanceof ProtocolError)) throw error;
    const { field, expected, got } = error.context;
    throw outOfRange(`header (${String(field)})`, String(expected), got);
  }
  return out;
}

/** The shape checks the parser cannot make on the bytes; returns the name's UTF-8 bytes. */
function checkEncodable(header: QemuPacketHeader, pageSize: number): Uint8Array {
  const { normalOffsets, zeroOffsets } = header;
  if (normalOffsets.length !== header.normalPages) {
    throw outOfRange('header.normalOffsets.length', `header.normalPages (${header.normalPages})`, normalOffsets.length);
  }
  if (zeroOffsets.length !== header.zeroPages) {
    throw outOfRange('header.zeroOffsets.length', `header.zeroPages (${header.zeroPages})`, zeroOffsets.length);
  }
  const pageCount = qemuPageCount(pageSize);
  if (normalOffsets.length + zeroOffsets.length > pageCount) {
    throw outOfRange('header.normalPages + header.zeroPages', `at most ${pageCount}`, normalOffsets.length + zeroOffsets.length);
  }
  if (header.sync !== ((header.flags & QEMU_FLAG_SYNC) !== 0)) {
    throw outOfRange('header.sync', `${(header.flags & QEMU_FLAG_SYNC) !== 0} (as header.flags says)`, header.sync);
  }
  const name = new TextEncoder().encode(header.ramBlock);
  if (name.byteLength >= QEMU_RAMBLOCK_NAME_BYTES || name.includes(0)) {
    throw outOfRange('header.ramBlock', `at most ${QEMU_RAMBLOCK_NAME_BYTES - 1} UTF-8 bytes without NUL`, header.ramBlock);
  }
  return name;
}

function checkMagicAndVersion(r: ByteReader, at: QemuLocation): void {
  const magic = r.u32('magic');
  if (magic !== QEMU_MULTIFD_MAGIC) {
    const got = magic === QEMU_MAIN_MAGIC ? `${hex(magic, 8)} (QEVM: QEMU's main channel)` : hex(magic, 8);
    throw qemuProtocolError('ERR_QEMU_MAGIC', at, 'magic', hex(QEMU_MULTIFD_MAGIC, 8), got);
  }
  const version = r.u32('version');
  if (version !== QEMU_MULTIFD_VERSION) throw qemuProtocolError('ERR_QEMU_VERSION', at, 'version', QEMU_MULTIFD_VERSION, version);
}

/** Unknown bits first: garbage in the field should not read as a device-state or zstd packet. */
function checkFlags(flags: number, at: QemuLocation): void {
  const got = hex(flags, 8);
  const unknown = (flags & ~QEMU_KNOWN_FLAGS) >>> 0;
  if (unknown !== 0) {
    throw qemuProtocolError('ERR_QEMU_FLAGS', at, 'flags', `no bits outside ${hex(QEMU_KNOWN_FLAGS, 2)}`, `${got} (unknown bits ${hex(unknown, 8)})`);
  }
  if (flags & QEMU_FLAG_DEVICE_STATE) {
    const expected = `a RAM packet (bit ${hex(QEMU_FLAG_DEVICE_STATE, 2)} clear)`;
    throw qemuProtocolError('ERR_QEMU_DEVICE_STATE', at, 'flags', expected, `${got} (device state, QEMU 10.0+ VFIO)`);
  }
  const method = flags & QEMU_COMPRESSION_MASK;
  if (method !== 0) {
    const name = COMPRESSION_NAMES.get(method) ?? `unknown compression value ${hex(method, 2)}`;
    throw qemuProtocolError('ERR_QEMU_COMPRESSION', at, 'flags', `compression method none (bits ${hex(QEMU_COMPRESSION_MASK, 2)} clear)`, `${got} (${name})`);
  }
}

function checkPageCounts(pagesAlloc: number, normalPages: number, zeroPages: number, pageCount: number, at: QemuLocation): void {
  if (pagesAlloc > pageCount) throw qemuProtocolError('ERR_QEMU_FIELD', at, 'pages_alloc', `<= ${pageCount} (page_count)`, pagesAlloc);
  if (normalPages > pagesAlloc) throw qemuProtocolError('ERR_QEMU_FIELD', at, 'normal_pages', `<= ${pagesAlloc} (pages_alloc)`, normalPages);
  if (zeroPages > pagesAlloc - normalPages) {
    throw qemuProtocolError('ERR_QEMU_FIELD', at, 'zero_pages', `<= ${pagesAlloc - normalPages} (pages_alloc - normal_pages)`, zeroPages);
  }
}

function checkNextPacketSize(nextPacketSize: number, normalPages: number, pageSize: number, at: QemuLocation): void {
  if (normalPages > 0 && nextPacketSize !== normalPages * pageSize) {
    throw qemuProtocolError('ERR_QEMU_FIELD', at, 'next_packet_size', `${normalPages * pageSize} (normal_pages × ${pageSize}, method none)`, nextPacketSize);
  }
  // A stale size is one an earlier none-method packet had: whole pages, at most one packet's.
  if (normalPages === 0 && (nextPacketSize % pageSize !== 0 || nextPacketSize > QEMU_PACKET_DATA_BYTES)) {
    const expected = `a multiple of ${pageSize} up to ${QEMU_PACKET_DATA_BYTES} without normal pages`;
    throw qemuProtocolError('ERR_QEMU_FIELD', at, 'next_packet_size', expected, nextPacketSize);
  }
}

function checkReserved(bytes: Uint8Array, from: number, to: number, at: QemuLocation): void {
  for (let i = from; i < to; i++) {
    if (bytes[i] !== 0) throw qemuProtocolError('ERR_QEMU_FIELD', at, `reserved byte ${i}`, 0, hex(bytes[i]!, 2));
  }
}

function readRamBlockName(field: Uint8Array, listsPages: boolean, at: QemuLocation): string {
  const end = field.indexOf(0);
  if (end < 0) throw qemuProtocolError('ERR_QEMU_FIELD', at, 'ramblock', `a NUL within ${QEMU_RAMBLOCK_NAME_BYTES} bytes`, 'none');
  let name: string;
  try {
    name = utf8.decode(field.subarray(0, end));
  } catch {
    throw qemuProtocolError('ERR_QEMU_FIELD', at, 'ramblock', 'UTF-8', `bytes ${Array.from(field.subarray(0, end), (b) => hex(b, 2)).join(' ')}`);
  }
  if (listsPages && name === '') throw qemuProtocolError('ERR_QEMU_FIELD', at, 'ramblock', 'a RAMBlock name in a packet with pages', "''");
  return name;
}

/** Reads `count` offsets, QEMU's `offset[from]` onwards. */
function readOffsets(r: ByteReader, from: number, count: number, pageSize: number, at: QemuLocation): number[] {
  const offsets: number[] = [];
  const alignment = BigInt(pageSize);
  for (let i = from; i < from + count; i++) {
    const offset = r.u64('offset');
    if (offset >= MAX_OFFSET || offset % alignment !== 0n) {
      throw qemuProtocolError('ERR_QEMU_FIELD', at, `offset[${i}]`, `a multiple of ${pageSize} below 2^53`, hex(offset, 16));
    }
    offsets.push(Number(offset));
  }
  return offsets;
}
