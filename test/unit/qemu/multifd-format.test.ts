import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import {
  QEMU_PACKET_DATA_BYTES,
  connectionKindOf,
  encodeQemuInit,
  encodeQemuPacketHeader,
  parseQemuInit,
  parseQemuPacketHeader,
  qemuPacketHeaderBytes,
  qemuPageCount,
  type QemuPacketHeader,
} from '../../../src/qemu/multifd-format.js';
import { throwsProtocol } from '../wire/fixtures.js';

const test = suite('QEMU multifd format');
const PAGE = 4096;
const HEADER_BYTES = 1344;
const UUID = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);

/**
 * A packet header as QEMU 7.2 writes it, laid out here from the reference's table (§2.2), not
 * with the encoder: SYNC riding on 3 pages of "pc.ram", pages_alloc 128, the 4-byte field at
 * 32 unused (0), and a stale offset left from an earlier packet behind the 3 listed ones.
 */
function handBuilt72Packet(): Uint8Array {
  const bytes = new Uint8Array(HEADER_BYTES);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0x11223344);
  view.setUint32(4, 1);
  view.setUint32(8, 0x01);
  view.setUint32(12, 128);
  view.setUint32(16, 3);
  view.setUint32(20, 3 * PAGE);
  view.setBigUint64(24, 0x1_0000_0007n);
  bytes.set(Buffer.from('pc.ram'), 64);
  view.setBigUint64(320, 0x1000n);
  view.setBigUint64(328, 0x7fff_f000n);
  view.setBigUint64(336, 0x3_0000_0000n);
  view.setBigUint64(344, 0xdead_0000n);
  return bytes;
}

/** A header with defaults: a 9.0+ data packet of one normal page in "pc.ram". */
function header(fields: Partial<QemuPacketHeader>): QemuPacketHeader {
  return {
    flags: 0,
    sync: false,
    pagesAlloc: 128,
    normalPages: 1,
    zeroPages: 0,
    nextPacketSize: PAGE,
    packetNum: 5n,
    ramBlock: 'pc.ram',
    normalOffsets: [0x2000],
    zeroOffsets: [],
    ...fields,
  };
}

/** `packet` (default: a valid one-page header) with `value` written as a be32 at `offset`. */
function withU32(offset: number, value: number, packet = encodeQemuPacketHeader(header({}), PAGE)): Uint8Array {
  const copy = packet.slice();
  new DataView(copy.buffer).setUint32(offset, value);
  return copy;
}

/** Where the refusal tests say a header was read, so every error must name a channel and packet. */
const AT = { channel: 1, packet: 9 };
const parse = (bytes: Uint8Array) => parseQemuPacketHeader(bytes, PAGE, AT);

/** Asserts `fn` throws a ProtocolError with `code` and `details` (see throwsProtocol) whose message has every one of `words`. */
function refuses(fn: () => unknown, code: string, details: Record<string, unknown>, ...words: string[]): void {
  const error = throwsProtocol(fn, code, details);
  for (const word of words) assert.ok(error.message.includes(word), `"${word}" in: ${error.message}`);
}

function throwsRange(fn: () => unknown, ...words: string[]): void {
  try {
    fn();
  } catch (error) {
    assert.instance(error, RangeError);
    assert.is((error as RangeError & { code: string }).code, 'ERR_OUT_OF_RANGE');
    for (const word of words) assert.ok((error as Error).message.includes(word), `"${word}" in: ${(error as Error).message}`);
    return;
  }
  assert.unreachable('expected a RangeError');
}

const roundTrip = (h: QemuPacketHeader, pageSize = PAGE) => parseQemuPacketHeader(encodeQemuPacketHeader(h, pageSize), pageSize);

test('a packet holds 512 KiB of pages and its header 320 + 8 bytes per page, whatever it carries', () => {
  assert.is(QEMU_PACKET_DATA_BYTES, 524288);
  assert.is(qemuPageCount(4096), 128);
  assert.is(qemuPacketHeaderBytes(4096), 1344);
  assert.is(qemuPageCount(65536), 8);
  assert.is(qemuPacketHeaderBytes(65536), 384);
  for (const bad of [0, 4095, 3000, 2 ** 20, 512]) throwsRange(() => qemuPageCount(bad), 'pageSize');
});

test('a hand-built QEMU 7.2 packet parses to its fields, the stale offset behind the listed ones ignored', () => {
  assert.equal(parseQemuPacketHeader(handBuilt72Packet(), PAGE), {
    flags: 0x01,
    sync: true,
    pagesAlloc: 128,
    normalPages: 3,
    zeroPages: 0,
    nextPacketSize: 3 * PAGE,
    packetNum: 0x1_0000_0007n,
    ramBlock: 'pc.ram',
    normalOffsets: [0x1000, 0x7fff_f000, 0x3_0000_0000],
    zeroOffsets: [],
  });
});

test('the encoder writes the hand-built 7.2 packet byte for byte, but for the stale offset, which it writes as zero', () => {
  const expected = handBuilt72Packet();
  expected.fill(0, 344, 352);
  assert.equal(encodeQemuPacketHeader(parseQemuPacketHeader(handBuilt72Packet(), PAGE), PAGE), expected);
});

test('7.2 shapes round trip exactly: SYNC with pages, data without SYNC, SYNC-only with pages_alloc 128', () => {
  const shapes = [
    header({ flags: 1, sync: true, normalPages: 2, nextPacketSize: 2 * PAGE, normalOffsets: [0, 0x5000] }),
    header({ normalPages: 128, nextPacketSize: 128 * PAGE, normalOffsets: Array.from({ length: 128 }, (_, i) => i * PAGE) }),
    header({ flags: 1, sync: true, normalPages: 0, nextPacketSize: 0, normalOffsets: [], ramBlock: '' }),
  ];
  for (const h of shapes) assert.equal(roundTrip(h), h);
});

test('7.2 leftovers are accepted: a stale ramblock name and next_packet_size in a SYNC-only packet, an empty packet without SYNC', () => {
  const staleSync = header({ flags: 1, sync: true, normalPages: 0, normalOffsets: [], nextPacketSize: 0x57000, ramBlock: '/rom@etc/acpi/tables' });
  assert.equal(roundTrip(staleSync), staleSync);
  const empty = header({ normalPages: 0, normalOffsets: [], nextPacketSize: 0x7b000 });
  assert.equal(roundTrip(empty), empty);
  const packet = handBuilt72Packet();
  new DataView(packet.buffer).setUint32(16, 0); // no normal pages: offsets and next_packet_size (3 pages) are stale
  const parsed = parseQemuPacketHeader(packet, PAGE);
  assert.equal([parsed.normalOffsets, parsed.nextPacketSize, parsed.ramBlock], [[], 3 * PAGE, 'pc.ram']);
});

test('9.0+ shapes round trip exactly: zero pages listed after the normal ones, an all-zero batch, SYNC-only with pages_alloc 0', () => {
  const mixed = header({ normalPages: 2, zeroPages: 3, nextPacketSize: 2 * PAGE, normalOffsets: [0x9000, 0x1000], zeroOffsets: [0x2000, 0x3000, 0x4000] });
  const allZero = header({ normalPages: 0, zeroPages: 126, nextPacketSize: 0, normalOffsets: [], zeroOffsets: Array.from({ length: 126 }, (_, i) => (i + 2) * PAGE) });
  const syncOnly = header({ flags: 1, sync: true, pagesAlloc: 0, normalPages: 0, nextPacketSize: 0, packetNum: 0n, ramBlock: '', normalOffsets: [] });
  for (const h of [mixed, allZero, syncOnly]) assert.equal(roundTrip(h), h);
  const bytes = encodeQemuPacketHeader(mixed, PAGE);
  const view = new DataView(bytes.buffer);
  assert.equal([view.getUint32(32), Number(view.getBigUint64(320 + 8 * 2)), Number(view.getBigUint64(320 + 8 * 5))], [3, 0x2000, 0]);
  const sync = encodeQemuPacketHeader(syncOnly, PAGE);
  assert.equal([...sync.subarray(0, 12)], [0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1, 0, 0, 0, 1]);
  assert.ok(sync.subarray(12).every((b) => b === 0), 'a 10.x SYNC-only packet is zero after its flags');
});

test('a header round trips with 64 KiB pages (8 pages per packet)', () => {
  const h = header({ pagesAlloc: 8, normalPages: 8, nextPacketSize: 8 * 65536, normalOffsets: Array.from({ length: 8 }, (_, i) => i * 65536) });
  assert.is(encodeQemuPacketHeader(h, 65536).byteLength, 384);
  assert.equal(roundTrip(h, 65536), h);
});

test('an init is magic, version, uuid and id, zero after: hand-built bytes parse, the encoder writes them', () => {
  const bytes = new Uint8Array(64);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, 0x11223344);
  view.setUint32(4, 1);
  bytes.set(UUID, 8);
  bytes[24] = 3;
  const init = parseQemuInit(bytes, 4);
  assert.equal(init, { uuid: UUID, channelId: 3 });
  assert.equal(encodeQemuInit(init), bytes);
  bytes[8] = 0xff;
  assert.is(init.uuid[0], 0x10, 'the uuid is a copy');
  assert.equal(parseQemuInit(Uint8Array.of(...encodeQemuInit({ uuid: UUID, channelId: 200 }), 1, 2)).channelId, 200);
  throwsRange(() => encodeQemuInit({ uuid: new Uint8Array(8), channelId: 0 }), 'uuid');
  throwsRange(() => encodeQemuInit({ uuid: UUID, channelId: 256 }), 'channelId');
});

test('an init is refused for its magic (the main stream named), version, reserved bytes, an id not below the channel count, or too few bytes', () => {
  const good = encodeQemuInit({ uuid: UUID, channelId: 2 });
  const patch = (offset: number, value: number[]) => {
    const copy = good.slice();
    copy.set(value, offset);
    return copy;
  };
  refuses(() => parseQemuInit(patch(0, [0x51, 0x45, 0x56, 0x4d])), 'ERR_QEMU_MAGIC', { channel: 2, field: 'magic', expected: '0x11223344' }, 'QEVM', 'main channel', 'QEMU multifd channel 2');
  refuses(() => parseQemuInit(patch(4, [0, 0, 0, 2])), 'ERR_QEMU_VERSION', { field: 'version', expected: 1, got: 2 });
  refuses(() => parseQemuInit(patch(40, [1])), 'ERR_QEMU_FIELD', { field: 'reserved byte 40', got: '0x01' });
  refuses(() => parseQemuInit(good, 2), 'ERR_QEMU_FIELD', { field: 'id', got: 2 }, '< 2');
  refuses(() => parseQemuInit(good.subarray(0, 63)), 'ERR_QEMU_TRUNCATED', { field: 'init', got: '63 bytes' });
  assert.throws(() => parseQemuInit(good.subarray(0, 10)), (error: Error) => error.message === 'QEMU multifd: init: expected 64 bytes, got 10 bytes');
});

test('a packet is refused for its magic or version', () => {
  refuses(() => parse(withU32(0, 0x11223345)), 'ERR_QEMU_MAGIC', { field: 'magic', expected: '0x11223344', got: '0x11223345' });
  refuses(() => parse(withU32(0, 0x5145564d)), 'ERR_QEMU_MAGIC', {}, 'QEVM');
  refuses(() => parse(withU32(4, 2)), 'ERR_QEMU_VERSION', { field: 'version', expected: 1, got: 2 });
});

test('every compression method is refused by name, an unknown method value too', () => {
  const methods: Array<[number, string]> = [[0x02, 'zlib'], [0x04, 'zstd'], [0x08, 'qpl'], [0x10, 'uadk'], [0x20, 'qatzip'], [0x0a, 'unknown compression value 0x0A']];
  for (const [flag, name] of methods) {
    for (const flags of [flag, flag | 1]) {
      refuses(() => parse(withU32(8, flags)), 'ERR_QEMU_COMPRESSION', { field: 'flags' }, name, 'method none');
    }
  }
});

test('the device-state flag 0x40 and flag bits no QEMU defines are refused by name', () => {
  refuses(() => parse(withU32(8, 0x40)), 'ERR_QEMU_DEVICE_STATE', { field: 'flags', got: '0x00000040 (device state, QEMU 10.0+ VFIO)' }, '0x40');
  refuses(() => parse(withU32(8, 0x41)), 'ERR_QEMU_DEVICE_STATE', { field: 'flags' });
  refuses(() => parse(withU32(8, 0x80)), 'ERR_QEMU_FLAGS', { field: 'flags' }, 'unknown bits 0x00000080');
  refuses(() => parse(withU32(8, 0x8000_0044)), 'ERR_QEMU_FLAGS', {}, 'unknown bits 0x80000000');
});

test('page counts are held to QEMU\'s rules: pages_alloc <= page_count, normal <= pages_alloc, zero <= pages_alloc - normal', () => {
  refuses(() => parse(withU32(12, 129)), 'ERR_QEMU_FIELD', { field: 'pages_alloc', expected: '<= 128 (page_count)', got: 129 });
  const sized = (pagesAlloc: number, normal: number, zero: number) => withU32(32, zero, withU32(16, normal, withU32(12, pagesAlloc, withU32(20, normal * PAGE))));
  refuses(() => parse(sized(4, 5, 0)), 'ERR_QEMU_FIELD', { field: 'normal_pages', got: 5 }, '<= 4');
  refuses(() => parse(sized(0, 1, 0)), 'ERR_QEMU_FIELD', { field: 'normal_pages', got: 1 }, '<= 0');
  refuses(() => parse(sized(128, 100, 29)), 'ERR_QEMU_FIELD', { field: 'zero_pages', got: 29 }, '<= 28');
  refuses(() => parse(sized(0, 0, 1)), 'ERR_QEMU_FIELD', { field: 'zero_pages', got: 1 });
  assert.is(parseQemuPacketHeader(sized(128, 100, 28), PAGE).zeroOffsets.length, 28);
});

test('next_packet_size must be the normal pages\' bytes, and without normal pages a whole number of pages up to 512 KiB', () => {
  refuses(() => parse(withU32(20, 2 * PAGE)), 'ERR_QEMU_FIELD', { field: 'next_packet_size', got: 8192 }, '4096', 'method none');
  refuses(() => parse(withU32(20, 100)), 'ERR_QEMU_FIELD', { field: 'next_packet_size', got: 100 });
  const pageless = encodeQemuPacketHeader(header({ normalPages: 0, normalOffsets: [], nextPacketSize: 0 }), PAGE);
  refuses(() => parse(withU32(20, 1000, pageless)), 'ERR_QEMU_FIELD', { field: 'next_packet_size', got: 1000 });
  refuses(() => parse(withU32(20, 129 * PAGE, pageless)), 'ERR_QEMU_FIELD', { field: 'next_packet_size' });
});

test('offsets must be page-aligned and below 2^53; each is named by its index in QEMU\'s array', () => {
  const h = header({ normalPages: 1, zeroPages: 1, zeroOffsets: [0x3000] });
  refuses(() => roundTripBytes(h, (v) => v.setBigUint64(320, 0x2001n)), 'ERR_QEMU_FIELD', { field: 'offset[0]', got: '0x0000000000002001' }, 'multiple of 4096');
  refuses(() => roundTripBytes(h, (v) => v.setBigUint64(328, 2n ** 53n)), 'ERR_QEMU_FIELD', { field: 'offset[1]', got: '0x0020000000000000' }, '2^53');
  assert.equal(roundTripBytes(h, (v) => v.setBigUint64(328, 2n ** 53n - BigInt(PAGE))).zeroOffsets, [2 ** 53 - PAGE]);
});

/** Encodes `h`, lets `patch` change the bytes, parses them. */
function roundTripBytes(h: QemuPacketHeader, patch: (view: DataView, bytes: Uint8Array) => void): QemuPacketHeader {
  const bytes = encodeQemuPacketHeader(h, PAGE);
  patch(new DataView(bytes.buffer), bytes);
  return parse(bytes);
}

test('the ramblock name must end with a NUL within 256 bytes, be UTF-8, and name a block when pages are listed', () => {
  refuses(() => roundTripBytes(header({}), (_, b) => b.fill(0x41, 64, 320)), 'ERR_QEMU_FIELD', { field: 'ramblock', got: 'none' }, 'NUL');
  refuses(() => roundTripBytes(header({}), (_, b) => b.set([0xc3, 0x28], 64)), 'ERR_QEMU_FIELD', { field: 'ramblock' }, 'UTF-8', '0xC3 0x28');
  refuses(() => roundTripBytes(header({}), (_, b) => b.fill(0, 64, 320)), 'ERR_QEMU_FIELD', { field: 'ramblock' }, 'RAMBlock name');
  const zeroOnly = header({ normalPages: 0, nextPacketSize: 0, normalOffsets: [], zeroPages: 1, zeroOffsets: [0] });
  refuses(() => roundTripBytes(zeroOnly, (_, b) => b.fill(0, 64, 320)), 'ERR_QEMU_FIELD', { field: 'ramblock' });
  assert.is(roundTripBytes(header({}), (_, b) => b.set([0, 0x58, 0x59], 70)).ramBlock, 'pc.ram', 'bytes after the NUL are padding');
  assert.is(roundTrip(header({ ramBlock: '0000:00:02.0/vga.vram' })).ramBlock, '0000:00:02.0/vga.vram');
  assert.is(roundTrip(header({ ramBlock: 'x'.repeat(255) })).ramBlock.length, 255);
});

test('reserved bytes 36-63 must be zero: a field a later QEMU fills is not silently dropped', () => {
  refuses(() => roundTripBytes(header({}), (_, b) => (b[36] = 1)), 'ERR_QEMU_FIELD', { field: 'reserved byte 36', expected: 0, got: '0x01' });
  refuses(() => roundTripBytes(header({}), (_, b) => (b[63] = 0x80)), 'ERR_QEMU_FIELD', { field: 'reserved byte 63' });
});

test('a buffer shorter than a header is truncated, in the prefix or after it', () => {
  const bytes = encodeQemuPacketHeader(header({}), PAGE);
  refuses(() => parse(bytes.subarray(0, 11)), 'ERR_QEMU_TRUNCATED', { field: 'packet header', expected: '12 bytes', got: '11 bytes' });
  refuses(() => parse(bytes.subarray(0, 1343)), 'ERR_QEMU_TRUNCATED', { expected: '1344 bytes', got: '1343 bytes' });
});

test('an error names the QEMU channel and packet it is given', () => {
  refuses(() => parseQemuPacketHeader(withU32(8, 0x04), PAGE, { channel: 2, packet: 17 }), 'ERR_QEMU_COMPRESSION', { channel: 2, packet: 17 }, 'QEMU multifd channel 2, packet 17: flags: expected compression method none');
});

test('the encoder refuses what the parser would, and headers whose parts disagree', () => {
  throwsRange(() => encodeQemuPacketHeader(header({ flags: 0x04 }), PAGE), 'flags', 'zstd');
  throwsRange(() => encodeQemuPacketHeader(header({ nextPacketSize: 0 }), PAGE), 'next_packet_size');
  throwsRange(() => encodeQemuPacketHeader(header({ normalOffsets: [0x2001] }), PAGE), 'offset[0]');
  throwsRange(() => encodeQemuPacketHeader(header({ pagesAlloc: 0 }), PAGE), 'normal_pages');
  throwsRange(() => encodeQemuPacketHeader(header({ normalPages: 2 }), PAGE), 'header.normalOffsets.length');
  throwsRange(() => encodeQemuPacketHeader(header({ zeroOffsets: [0] }), PAGE), 'header.zeroOffsets.length');
  throwsRange(() => encodeQemuPacketHeader(header({ sync: true }), PAGE), 'header.sync');
  throwsRange(() => encodeQemuPacketHeader(header({ ramBlock: 'x'.repeat(256) }), PAGE), 'header.ramBlock');
  throwsRange(() => encodeQemuPacketHeader(header({ ramBlock: 'a\0b' }), PAGE), 'header.ramBlock');
  throwsRange(() => encodeQemuPacketHeader(header({ normalOffsets: [2 ** 53] }), PAGE), 'offsets');
  const tooMany = Array.from({ length: 129 }, (_, i) => i * PAGE);
  throwsRange(() => encodeQemuPacketHeader(header({ pagesAlloc: 128, normalPages: 129, nextPacketSize: 129 * PAGE, normalOffsets: tooMany }), PAGE), 'at most 128');
});

test('the first four bytes tell QEMU\'s main channel from a multifd channel', () => {
  assert.is(connectionKindOf(Buffer.from('QEVM')), 'main');
  assert.is(connectionKindOf(encodeQemuInit({ uuid: UUID, channelId: 0 })), 'multifd');
  assert.is(connectionKindOf(Uint8Array.of(0x4d, 0x46, 0x44, 0x43)), undefined);
  assert.is(connectionKindOf(Uint8Array.of(0x11, 0x22, 0x33)), undefined);
});

test.run();
