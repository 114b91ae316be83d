import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec } from '../../../src/codecs/registry.js';
import { PacketReader, encodeSyncPacket, verifyPacketChecksum, type PageRun } from '../../../src/wire/index.js';
import { PAGE, buildPacket, header, newPacketReader, pageHashes, pattern, readPackets, resealPacket, throwsProtocol } from './fixtures.js';

const test = suite('packet reader validation');

/** Header and runs of GOOD: 40 + 2 runs. */
const GOOD_HEADER = 56;
const GOOD = buildPacket(header({ normalRuns: [{ first: 4, count: 2 }], zeroRuns: [{ first: 6, count: 3 }] }), pattern(2 * PAGE));

/** A copy of GOOD (or `packet`) with `bytes` at `offset`; the reader ignores checksums, so no reseal. */
function patched(offset: number, bytes: number[], packet = GOOD): Uint8Array {
  const copy = packet.slice();
  copy.set(bytes, offset);
  return copy;
}

/** Reads `packet` as the second packet of channel 3, so `details.packet` must say 1. */
function readSecond(packet: Uint8Array) {
  return () => readPackets([GOOD, packet]);
}

const runs = (...pairs: Array<[number, number]>): PageRun[] => pairs.map(([first, count]) => ({ first, count }));

test('a wrong magic is refused and names channel, packet, field, expected and got', () => {
  throwsProtocol(readSecond(patched(0, [0x11, 0x22, 0x33, 0x44])), 'ERR_PACKET_MAGIC', {
    channel: 3,
    packet: 1,
    field: 'magic',
    expected: '0x4D464450',
    got: '0x11223344',
  });
});

test('a version other than 2 is refused, the packets of wire format 1 too', () => {
  throwsProtocol(readSecond(patched(4, [1])), 'ERR_PACKET_VERSION', { packet: 1, field: 'version', expected: 2, got: 1 });
  throwsProtocol(readSecond(patched(4, [3])), 'ERR_PACKET_VERSION', { packet: 1, field: 'version', expected: 2, got: 3 });
});

test('a codec wire id no registered codec has is refused', () => {
  throwsProtocol(readSecond(patched(5, [5])), 'ERR_PACKET_CODEC', { field: 'codecWireId', got: 5 });
  throwsProtocol(readSecond(patched(5, [255])), 'ERR_PACKET_CODEC', { field: 'codecWireId', got: 255 });
});

test('flag bits version 1 does not know are refused', () => {
  throwsProtocol(readSecond(patched(6, [0, 2])), 'ERR_PACKET_FLAGS', { field: 'flags', got: '0x0002' });
  throwsProtocol(readSecond(patched(6, [0x80, 1])), 'ERR_PACKET_FLAGS', { field: 'flags', got: '0x8001' });
});

test('a SYNC packet with a codec, block, runs or payload is malformed', () => {
  const sync = encodeSyncPacket(4, 9);
  throwsProtocol(readSecond(patched(5, [1], sync)), 'ERR_PACKET_SYNC', { field: 'codecWireId', got: 1 });
  throwsProtocol(readSecond(patched(8, [0, 0, 0, 1], sync)), 'ERR_PACKET_SYNC', { field: 'blockIndex', got: 1 });
  throwsProtocol(readSecond(patched(24, [0, 1], sync)), 'ERR_PACKET_SYNC', { field: 'normalRunCount', got: 1 });
  throwsProtocol(readSecond(patched(26, [0, 1], sync)), 'ERR_PACKET_SYNC', { field: 'zeroRunCount', got: 1 });
  throwsProtocol(readSecond(patched(28, [0, 0, 0, 1], sync)), 'ERR_PACKET_SYNC', { field: 'payloadLength', got: 1 });
  throwsProtocol(readSecond(patched(6, [0, 1])), 'ERR_PACKET_SYNC', { field: 'normalRunCount' });
});

test('a sequence number beyond 2^53 - 1 is refused', () => {
  throwsProtocol(readSecond(patched(16, [0, 0x20, 0, 0, 0, 0, 0, 0])), 'ERR_PACKET_SEQUENCE', { field: 'sequence', got: String(2 ** 53) });
});

test('a block index outside the hello block table is refused', () => {
  throwsProtocol(readSecond(patched(8, [0, 0, 0, 2])), 'ERR_PACKET_BLOCK', { field: 'blockIndex', expected: '< 2', got: 2 });
});

test('run counts above the limits, too many normal pages and a packet without runs are refused', () => {
  const nine = runs(...Array.from({ length: 9 }, (_, i): [number, number] => [2 * i, 1]));
  throwsProtocol(readSecond(buildPacket(header({ normalRuns: nine }), pattern(9 * PAGE))), 'ERR_PACKET_COUNT', { field: 'normalRunCount', expected: '<= 8', got: 9 });
  const many = runs(...Array.from({ length: 4097 }, (_, i): [number, number] => [2 * i, 1]));
  throwsProtocol(readSecond(buildPacket(header({ blockIndex: 1, zeroRuns: many }))), 'ERR_PACKET_COUNT', { field: 'zeroRunCount', expected: '<= 4096', got: 4097 });
  throwsProtocol(readSecond(buildPacket(header({ normalRuns: runs([0, 5], [10, 4]) }), pattern(9 * PAGE))), 'ERR_PACKET_COUNT', { field: 'normal pages', got: 9 });
  throwsProtocol(readSecond(buildPacket(header({}))), 'ERR_PACKET_COUNT', { field: 'normalRunCount + zeroRunCount', got: 0 });
});

test('an empty run or one that ends past its block is refused as a page index error', () => {
  throwsProtocol(readSecond(buildPacket(header({ zeroRuns: runs([3, 0]) }))), 'ERR_PACKET_PAGE_INDEX', { field: 'zeroRuns[0].count', got: 0 });
  throwsProtocol(readSecond(buildPacket(header({ zeroRuns: runs([0, 1], [200, 57]) }))), 'ERR_PACKET_PAGE_INDEX', {
    field: 'zeroRuns[1].first + zeroRuns[1].count',
    expected: '<= 256',
    got: 257,
  });
  throwsProtocol(readSecond(buildPacket(header({ normalRuns: runs([256, 1]) }), pattern(PAGE))), 'ERR_PACKET_PAGE_INDEX', { field: 'normalRuns[0].first + normalRuns[0].count' });
  const huge = buildPacket(header({ blockIndex: 1, zeroRuns: runs([0xffffffff, 0xffffffff]) }));
  throwsProtocol(readSecond(huge), 'ERR_PACKET_PAGE_INDEX', { got: 2 * 0xffffffff, expected: `<= ${2 ** 32}` });
});

test('runs out of order or sharing a page, within a list or across the two, are refused', () => {
  throwsProtocol(readSecond(buildPacket(header({ zeroRuns: runs([10, 5], [14, 1]) }))), 'ERR_PACKET_OVERLAP', { field: 'zeroRuns[1].first', expected: '>= 15', got: 14 });
  throwsProtocol(readSecond(buildPacket(header({ zeroRuns: runs([10, 1], [5, 1]) }))), 'ERR_PACKET_OVERLAP', { field: 'zeroRuns[1].first' });
  throwsProtocol(readSecond(buildPacket(header({ normalRuns: runs([7, 1], [7, 1]) }), pattern(2 * PAGE))), 'ERR_PACKET_OVERLAP', { field: 'normalRuns[1].first' });
  throwsProtocol(
    readSecond(buildPacket(header({ normalRuns: runs([0, 1], [20, 2]), zeroRuns: runs([2, 5], [21, 30]) }), pattern(3 * PAGE))),
    'ERR_PACKET_OVERLAP',
    { field: 'zeroRuns[1]', got: '21+30' },
  );
});

test('a payload longer than its codec bound, or any payload without normal pages, is refused', () => {
  throwsProtocol(readSecond(buildPacket(header({ normalRuns: runs([0, 2]) }), pattern(2 * PAGE + 1))), 'ERR_PACKET_PAYLOAD_LENGTH', {
    field: 'payloadLength',
    expected: `<= ${2 * PAGE} for 2 pages`,
    got: 2 * PAGE + 1,
  });
  const zstdBound = getCodec('zstd').payloadBound(2, PAGE);
  const overZstd = buildPacket(header({ codecWireId: 2, normalRuns: runs([0, 2]) }), new Uint8Array(zstdBound + 1));
  throwsProtocol(readSecond(overZstd), 'ERR_PACKET_PAYLOAD_LENGTH', { got: zstdBound + 1 });
  throwsProtocol(readSecond(buildPacket(header({ zeroRuns: runs([0, 2]) }), new Uint8Array(1))), 'ERR_PACKET_PAYLOAD_LENGTH', { expected: '0 without normal pages', got: 1 });
});

test('a hostile payload length is refused from the header, before any payload byte arrives', () => {
  const reader = newPacketReader();
  const claimsFourGiB = patched(28, [0xff, 0xff, 0xff, 0xff]);
  reader.push(claimsFourGiB.subarray(0, 40 + 16));
  throwsProtocol(() => reader.next(), 'ERR_PACKET_PAYLOAD_LENGTH', { packet: 0, got: 0xffffffff });
});

test('a channel that closes mid-packet is truncated wherever it stops, and one that closes between packets is not', () => {
  for (const cut of [1, 39, 40, 47, 56, 57, GOOD.byteLength - 1]) {
    throwsProtocol(() => readPackets([GOOD, GOOD.subarray(0, cut)]), 'ERR_PACKET_TRUNCATED', { channel: 3, packet: 1, field: 'packet' });
  }
  assert.is(readPackets([GOOD, GOOD]).length, 2);
});

test('the checksum covers header, runs and the pages the payload holds, and a mismatch names both values', () => {
  const verify = (packet: Uint8Array, ordinal = 0) =>
    verifyPacketChecksum(packet.subarray(0, GOOD_HEADER), pageHashes(packet.subarray(GOOD_HEADER)), 3, ordinal);
  verify(GOOD);
  for (const offset of [5, 33, 45, GOOD_HEADER + 100, GOOD.byteLength - 1]) {
    const bad = GOOD.slice();
    bad[offset]! ^= 0x10;
    const error = throwsProtocol(() => verify(bad, 7), 'ERR_PACKET_CHECKSUM', { channel: 3, packet: 7, field: 'checksum' });
    assert.match(String(error.context.got), /^0x[0-9A-F]{16}$/);
  }
  const patchedButResealed = resealPacket(patched(40, [0, 0, 0, 9]));
  const before = patchedButResealed.slice();
  verify(patchedButResealed);
  assert.equal(patchedButResealed, before, 'verifying leaves the packet as it was');
  throwsProtocol(() => verifyPacketChecksum(GOOD.subarray(0, 39), new Uint32Array(0), 3, 0), 'ERR_PACKET_TRUNCATED');
});

test('after an error the reader keeps throwing the same error, even for good bytes', () => {
  const reader = newPacketReader();
  reader.push(patched(0, [0]));
  const first = throwsProtocol(() => reader.next(), 'ERR_PACKET_MAGIC');
  assert.is(throwsProtocol(() => reader.push(GOOD), 'ERR_PACKET_MAGIC'), first);
  assert.is(throwsProtocol(() => reader.next(), 'ERR_PACKET_MAGIC'), first);
  assert.is(throwsProtocol(() => reader.end(), 'ERR_PACKET_MAGIC'), first);
});

test('a reader refuses options outside the hello rules', () => {
  assert.throws(() => new PacketReader({ channel: 0, pageSize: PAGE, pagesPerPacket: 0, blocks: [{ pageCount: 1 }] }), /pagesPerPacket/);
  assert.throws(() => new PacketReader({ channel: 0, pageSize: PAGE, pagesPerPacket: 1025, blocks: [{ pageCount: 1 }] }), /pagesPerPacket/);
});

test.run();
