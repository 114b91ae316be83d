import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { ProtocolError } from '../../../src/errors.js';
import { QemuChannelReader, type QemuChannelItem } from '../../../src/qemu/channel-reader.js';
import { encodeQemuInit, encodeQemuPacketHeader, type QemuPacketHeader } from '../../../src/qemu/multifd-format.js';
import { throwsProtocol } from '../wire/fixtures.js';

const test = suite('QEMU channel reader');
const PAGE = 4096;
const HEADER_BYTES = 1344;
/** The most a drained reader may hold: one header and one full packet's pages. */
const BOUND = HEADER_BYTES + 128 * PAGE;
const UUID = Uint8Array.from({ length: 16 }, (_, i) => 0x10 + i);
const INIT = encodeQemuInit({ uuid: UUID, channelId: 3 });

/** `count` pages whose bytes differ from page to page and from `seed` to `seed`. */
function pageBytes(count: number, seed: number): Uint8Array {
  return Uint8Array.from({ length: count * PAGE }, (_, i) => (i * 7 + (i >> 12) + seed) & 0xff);
}

/** A packet item of `normalOffsets.length` normal pages with defaults: a data packet of "pc.ram". */
function packet(fields: Partial<QemuPacketHeader> & { normalOffsets: number[] }, seed = 1): QemuChannelItem & { kind: 'packet' } {
  const normalPages = fields.normalOffsets.length;
  const header: QemuPacketHeader = {
    flags: 0,
    sync: false,
    pagesAlloc: 128,
    normalPages,
    zeroPages: 0,
    nextPacketSize: normalPages * PAGE,
    packetNum: 0n,
    ramBlock: 'pc.ram',
    zeroOffsets: [],
    ...fields,
  };
  return { kind: 'packet', header, pages: pageBytes(normalPages, seed) };
}

/** The packets of one channel across QEMU versions, as a reader must return them. */
const PACKETS = [
  packet({ flags: 1, sync: true, normalOffsets: [0x1000, 0x5000, 0x2000], packetNum: 1n }, 1), // 7.2: SYNC on pages
  packet({ flags: 1, sync: true, normalOffsets: [], nextPacketSize: 3 * PAGE, packetNum: 2n, ramBlock: 'pc.ram' }), // 7.2: stale fields
  packet({ normalOffsets: [0x9000, 0x8000], zeroPages: 2, zeroOffsets: [0xa000, 0xb000], packetNum: 3n }, 2), // 9.0+: zero pages
  packet({ flags: 1, sync: true, pagesAlloc: 0, normalOffsets: [], packetNum: 4n, ramBlock: '' }), // 9.2+: SYNC-only
  packet({ normalOffsets: Array.from({ length: 128 }, (_, i) => (127 - i) * PAGE), packetNum: 5n, ramBlock: 'vga.vram' }, 3),
];

function wire(item: QemuChannelItem & { kind: 'packet' }): Uint8Array {
  return Buffer.concat([encodeQemuPacketHeader(item.header, PAGE), item.pages]);
}

const STREAM = Buffer.concat([INIT, ...PACKETS.map(wire)]);

/**
 * Pushes `stream` in `chunkBytes` pieces, taking every item after each push, as a socket's
 * data handler would; records the most the reader held once drained. Ends the stream unless
 * told not to.
 */
function readAll(stream: Uint8Array, chunkBytes: number, reader = new QemuChannelReader({ pageSize: PAGE, channels: 4 }), end = true) {
  const items: QemuChannelItem[] = [];
  let mostHeld = 0;
  for (let at = 0; at < stream.byteLength; at += chunkBytes) {
    reader.push(stream.subarray(at, at + chunkBytes));
    for (let item = reader.next(); item; item = reader.next()) items.push(item);
    mostHeld = Math.max(mostHeld, reader.bufferedBytes);
  }
  if (end) reader.end();
  return { items, mostHeld, reader };
}

test('a stream fed 1 byte, 7 bytes or all at once gives the same init and packets', () => {
  const expected = [{ kind: 'init', init: { uuid: UUID, channelId: 3 } }, ...PACKETS];
  for (const chunkBytes of [1, 7, STREAM.byteLength]) {
    const { items, reader } = readAll(STREAM, chunkBytes);
    assert.equal(items, expected, `chunks of ${chunkBytes}`);
    assert.is(reader.channelId, 3);
  }
});

test('a drained reader holds less than one header and one full packet\'s pages, whatever the chunk size', () => {
  for (const chunkBytes of [7, 1000, 65536, STREAM.byteLength]) {
    assert.ok(readAll(STREAM, chunkBytes).mostHeld < BOUND, `chunks of ${chunkBytes}`);
  }
  // One byte short of the full packet it holds exactly its header and the pages that came.
  const { reader, items } = readAll(STREAM.subarray(0, STREAM.byteLength - 1), 65536, undefined, false);
  assert.is(items.length, 5);
  assert.is(reader.bufferedBytes, BOUND - 1);
});

test('a bad header is refused as soon as its bytes are in, before a byte of its pages is pushed', () => {
  const header = encodeQemuPacketHeader(PACKETS[0]!.header, PAGE);
  new DataView(header.buffer).setUint32(20, 2 * PAGE); // next_packet_size for 2 pages, 3 listed
  const reader = new QemuChannelReader({ pageSize: PAGE });
  reader.push(INIT);
  assert.is(reader.next()?.kind, 'init');
  for (let at = 0; at < HEADER_BYTES - 1; at += 7) {
    reader.push(header.subarray(at, Math.min(at + 7, HEADER_BYTES - 1)));
    assert.is(reader.next(), undefined);
  }
  reader.push(header.subarray(HEADER_BYTES - 1));
  throwsProtocol(() => reader.next(), 'ERR_QEMU_FIELD', { channel: 3, packet: 0, field: 'next_packet_size', got: 2 * PAGE });
});

test('a compressed or device-state packet is refused from its first 12 bytes, before the rest of a header', () => {
  for (const [flags, code, word] of [[0x05, 'ERR_QEMU_COMPRESSION', 'zstd'], [0x40, 'ERR_QEMU_DEVICE_STATE', 'device state']] as const) {
    const reader = new QemuChannelReader({ pageSize: PAGE });
    reader.push(INIT);
    reader.next();
    reader.push(Uint8Array.of(0x11, 0x22, 0x33, 0x44, 0, 0, 0, 1, 0, 0, 0, flags));
    const error = throwsProtocol(() => reader.next(), code, { channel: 3, packet: 0, field: 'flags' });
    assert.ok(error.message.includes(word), error.message);
  }
});

test('an init is checked against the channel count, and a wrong magic there names the main channel', () => {
  const reader = new QemuChannelReader({ pageSize: PAGE, channels: 3 });
  reader.push(INIT);
  throwsProtocol(() => reader.next(), 'ERR_QEMU_FIELD', { channel: 3, field: 'id', got: 3 });
  const main = new QemuChannelReader({ pageSize: PAGE });
  main.push(Buffer.concat([Buffer.from('QEVM'), INIT.subarray(4)]));
  const error = throwsProtocol(() => main.next(), 'ERR_QEMU_MAGIC', { field: 'magic' });
  assert.ok(error.message.includes('main channel'), error.message);
});

test('a stream that ends inside the init, a header or the pages is truncated, naming the part', () => {
  const empty = new QemuChannelReader({ pageSize: PAGE });
  assert.throws(() => empty.end(), (error: unknown) => error instanceof ProtocolError && error.code === 'ERR_QEMU_TRUNCATED' && error.context.field === 'init');
  const cases: Array<[number, Record<string, unknown>]> = [
    [30, { channel: 3, packet: undefined, field: 'init', expected: '64 bytes', got: '30 bytes before the end' }],
    [64 + 600, { channel: 3, packet: 0, field: 'packet header', expected: '1344 bytes', got: '600 bytes before the end' }],
    [64 + HEADER_BYTES + 5000, { channel: 3, packet: 0, field: 'pages', expected: `${3 * PAGE} bytes`, got: '5000 bytes before the end' }],
    [64 + wire(PACKETS[0]!).byteLength + 100, { channel: 3, packet: 1, field: 'packet header', got: '100 bytes before the end' }],
  ];
  for (const [length, details] of cases) {
    for (const chunkBytes of [7, length]) {
      throwsProtocol(() => readAll(STREAM.subarray(0, length), chunkBytes), 'ERR_QEMU_TRUNCATED', details);
    }
  }
});

test('a stream that ends between packets, or right after its init, ends cleanly', () => {
  assert.is(readAll(INIT, 64).items.length, 1);
  assert.is(readAll(STREAM.subarray(0, 64 + wire(PACKETS[0]!).byteLength), 7).items.length, 2);
});

test('an error names the channel and the packet\'s ordinal, and the reader then throws it again', () => {
  const bad = wire(PACKETS[2]!);
  new DataView(bad.buffer, bad.byteOffset).setBigUint64(320, 0x9001n);
  const reader = new QemuChannelReader({ pageSize: PAGE });
  reader.push(Buffer.concat([INIT, wire(PACKETS[0]!), bad]));
  reader.next();
  reader.next();
  const error = throwsProtocol(() => reader.next(), 'ERR_QEMU_FIELD', { channel: 3, packet: 1, field: 'offset[0]' });
  assert.ok(error.message.startsWith('QEMU multifd channel 3, packet 1: offset[0]:'), error.message);
  assert.is(reader.bufferedBytes, 0);
  assert.throws(() => reader.push(INIT), (e: unknown) => e === error);
  assert.throws(() => reader.next(), (e: unknown) => e === error);
});

test.run();
