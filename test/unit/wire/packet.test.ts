import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import fc from 'fast-check';
import { codecByWireId, getCodec } from '../../../src/codecs/registry.js';
import { makePages } from '../../helpers/pages.js';
import {
  PACKET_FLAG_SYNC,
  PacketReader,
  encodeSyncPacket,
  packetHeaderBytes,
  runsPageCount,
  writePacket,
  type PacketHeader,
  type PageRun,
} from '../../../src/wire/index.js';
import { PAGE, PAGES_PER_PACKET, SESSION_BLOCKS, buildPacket, concat, header, pageHashes, pattern, readPackets, split, verifyParsed } from './fixtures.js';

const roundTrip = suite('packets round trip');

function expectRoundTrip(h: PacketHeader, payload: Uint8Array = new Uint8Array(0)): void {
  const packet = buildPacket(h, payload);
  const [parsed, ...rest] = readPackets([packet]);
  assert.is(rest.length, 0);
  assert.equal(parsed!.header, { ...h, payloadLength: payload.byteLength });
  assert.equal(parsed!.bytes, packet);
  assert.is(parsed!.payloadOffset, packetHeaderBytes(h.normalRuns, h.zeroRuns));
  assert.equal(parsed!.bytes.subarray(parsed!.payloadOffset), payload);
  verifyParsed(parsed!);
}

roundTrip('a packet of normal pages only carries them raw with codec none', () => {
  expectRoundTrip(header({ normalRuns: [{ first: 10, count: 3 }], sequence: 77 }), pattern(3 * PAGE));
});

roundTrip('a packet of zero pages only is header and runs, however many pages they span', () => {
  // A u32 count covers 2^32 - 1 pages, so a block of 2^32 pages takes two runs.
  const allOfIt = header({ blockIndex: 1, zeroRuns: [{ first: 0, count: 2 ** 32 - 1 }, { first: 2 ** 32 - 1, count: 1 }] });
  assert.is(buildPacket(allOfIt).byteLength, 56, '16 TiB of zero pages in 56 bytes');
  expectRoundTrip(allOfIt);
  const firstGiB = buildPacket(header({ sequence: 5, zeroRuns: [{ first: 0, count: 262144 }] }));
  const fields = ['4d464450', '02', '00', '0000', '00000000', '00000001', '0000000000000005', '0000', '0001', '00000000', 'f879f005cc3985c2', '00000000', '00040000'];
  assert.is(Buffer.from(firstGiB).toString('hex'), fields.join(''), 'the example of docs/wire-format.md');
  expectRoundTrip(header({ zeroRuns: [{ first: 0, count: 1 }, { first: 2, count: 254 }] }));
});

roundTrip('normal and zero runs may interleave as long as no page is in both', () => {
  expectRoundTrip(
    header({
      codecWireId: 0,
      round: 0xffffffff,
      sequence: Number.MAX_SAFE_INTEGER,
      normalRuns: [{ first: 0, count: 2 }, { first: 5, count: 1 }, { first: 250, count: 5 }],
      zeroRuns: [{ first: 2, count: 3 }, { first: 6, count: 100 }, { first: 255, count: 1 }],
    }),
    pattern(8 * PAGE, 2),
  );
});

roundTrip('a SYNC packet is a bare 40-byte header that names its round', () => {
  // As docs/wire-format.md shows it; the checksum was computed independently with `xxh64sum`.
  const fields = ['4d464450', '02', '00', '0001', '00000000', '00000001', '0000000000000007', '0000', '0000', '00000000', '6bbe640106c90953'];
  assert.is(Buffer.from(encodeSyncPacket(1, 7)).toString('hex'), fields.join(''));
  const sync = encodeSyncPacket(12, 345);
  assert.is(sync.byteLength, 40);
  const [parsed] = readPackets([sync]);
  assert.equal(parsed!.header, header({ flags: PACKET_FLAG_SYNC, round: 12, sequence: 345 }));
  assert.is(parsed!.payloadOffset, 40);
  verifyParsed(parsed!);
});

roundTrip('the fixed header is laid out big-endian field by field', () => {
  const h = header({ codecWireId: 2, blockIndex: 1, round: 0x01020304, sequence: 0x0a0b0c0d0e, normalRuns: [{ first: 7, count: 1 }], zeroRuns: [{ first: 0x10, count: 0x20 }] });
  const packet = buildPacket(h, Uint8Array.of(0xaa, 0xbb));
  assert.equal([...packet.subarray(0, 32)], [
    0x4d, 0x46, 0x44, 0x50, 2, 2, 0, 0, // magic "MFDP", version, codec, flags
    0, 0, 0, 1, 1, 2, 3, 4, // blockIndex, round
    0, 0, 0, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, // sequence
    0, 1, 0, 1, 0, 0, 0, 2, // normalRunCount, zeroRunCount, payloadLength
  ]);
  assert.equal([...packet.subarray(40)], [0, 0, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0x10, 0, 0, 0, 0x20, 0xaa, 0xbb]);
});

roundTrip('a worker compresses straight into the packet buffer; the receiver decodes the payload and checks the pages it got', () => {
  const zstd = getCodec('zstd');
  const pages = makePages('mixed', 4, PAGE, 5);
  const normalRuns: PageRun[] = [{ first: 20, count: 2 }, { first: 40, count: 2 }];
  const at = packetHeaderBytes(normalRuns, []);
  const encoder = zstd.createEncoder({ pageSize: PAGE, maxPages: 4 });
  const out = new Uint8Array(at + encoder.payloadBound(4));
  const payloadLength = encoder.encode(pages, out.subarray(at));
  const length = writePacket(out, header({ codecWireId: 2, normalRuns, payloadLength }), payloadLength, pageHashes(concat(pages)));
  const [parsed] = readPackets([out.subarray(0, length)]);
  const decoded = new Uint8Array(4 * PAGE);
  const views = Array.from({ length: 4 }, (_, i) => decoded.subarray(i * PAGE, (i + 1) * PAGE));
  zstd.createDecoder({ pageSize: PAGE, maxPages: 4 }).decode(parsed!.bytes.subarray(parsed!.payloadOffset), views);
  assert.equal(views, pages);
  verifyParsed(parsed!, decoded);
  decoded[5000]! ^= 1;
  assert.throws(() => verifyParsed(parsed!, decoded), /ERR_PACKET_CHECKSUM|checksum/, 'pages that differ from the sealed ones are refused');
});

roundTrip('a parsed packet is assembled in the buffer the reader was given', () => {
  const packets = [buildPacket(header({ normalRuns: [{ first: 1, count: 1 }] }), pattern(PAGE)), encodeSyncPacket(1, 2)];
  const slab = new Uint8Array(new SharedArrayBuffer(1 << 20));
  let used = 0;
  const reader = new PacketReader({ channel: 3, pageSize: PAGE, pagesPerPacket: PAGES_PER_PACKET, blocks: SESSION_BLOCKS, allocate: (n) => slab.subarray(used, (used += n)) });
  reader.push(concat(packets));
  const parsed = [reader.next()!, reader.next()!];
  parsed.forEach((p, i) => {
    assert.is(p.bytes.buffer, slab.buffer);
    assert.equal(p.bytes, packets[i]);
  });
});

roundTrip('writePacket refuses a short buffer, a payload length that disagrees and fields wider than the wire', () => {
  const h = header({ normalRuns: [{ first: 0, count: 1 }], payloadLength: 10 });
  const none = new Uint32Array(0);
  assert.throws(() => writePacket(new Uint8Array(57), h, 10, none), /out\.byteLength/);
  assert.throws(() => writePacket(new Uint8Array(100), h, 9, none), /payloadBytes/);
  assert.throws(() => writePacket(new Uint8Array(100), { ...h, round: 2 ** 32 }, 10, none), /header\.round/);
  assert.throws(() => writePacket(new Uint8Array(100), { ...h, normalRuns: [{ first: -1, count: 1 }] }, 10, none), /header\.normalRuns\[0\]\.first/);
});

roundTrip('runsPageCount adds up the pages of a run list', () => {
  assert.is(runsPageCount([]), 0);
  assert.is(runsPageCount([{ first: 3, count: 4 }, { first: 100, count: 2 ** 32 - 100 }]), 2 ** 32 - 96);
});

const CODEC_IDS = [0, 1, 2, 3, 4, 8, 16];

/**
 * Any packet the session (fixtures: blocks of 256 and 2^32 pages, 8 normal pages per packet)
 * accepts: runs laid out left to right from random gaps, normal runs turned zero once the
 * normal-page budget is spent, a payload of random length within the codec's bound.
 */
const validPacket: fc.Arbitrary<{ header: PacketHeader; payload: Uint8Array }> = fc
  .record({
    sync: fc.boolean(),
    blockIndex: fc.integer({ min: 0, max: SESSION_BLOCKS.length - 1 }),
    start: fc.nat(),
    codecWireId: fc.constantFrom(...CODEC_IDS),
    round: fc.integer({ min: 0, max: 0xffffffff }),
    sequence: fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER }),
    plan: fc.array(fc.record({ gap: fc.nat(40), count: fc.integer({ min: 1, max: 5 }), long: fc.nat(2000000), zero: fc.boolean() }), {
      minLength: 1,
      maxLength: 24,
    }),
    payloadSeed: fc.nat(),
    payloadShare: fc.double({ min: 0, max: 1, noNaN: true }),
  })
  .map((r) => {
    if (r.sync) return { header: header({ flags: PACKET_FLAG_SYNC, round: r.round, sequence: r.sequence }), payload: new Uint8Array(0) };
    const pageCount = SESSION_BLOCKS[r.blockIndex]!.pageCount;
    const normalRuns: PageRun[] = [];
    const zeroRuns: PageRun[] = [];
    let at = r.blockIndex === 1 ? r.start : r.start % 64;
    let normalPages = 0;
    for (const step of r.plan) {
      const first = at + step.gap;
      const zero = step.zero || normalPages + step.count > PAGES_PER_PACKET;
      const count = zero && r.blockIndex === 1 ? step.count + step.long : step.count;
      if (first + count > pageCount) break;
      (zero ? zeroRuns : normalRuns).push({ first, count });
      if (!zero) normalPages += count;
      at = first + count;
    }
    if (normalRuns.length + zeroRuns.length === 0) zeroRuns.push({ first: pageCount - 1, count: 1 });
    const bound = normalPages ? codecByWireId(r.codecWireId)!.payloadBound(normalPages, PAGE) : 0;
    const payload = pattern(Math.floor(Math.min(bound, 3000) * r.payloadShare), r.payloadSeed);
    return { header: header({ codecWireId: r.codecWireId, blockIndex: r.blockIndex, round: r.round, sequence: r.sequence, normalRuns, zeroRuns }), payload };
  });

roundTrip('any valid header and payload survive write then read unchanged (property)', () => {
  fc.assert(
    fc.property(validPacket, ({ header: h, payload }) => expectRoundTrip(h, payload)),
    { seed: 0xdada, numRuns: 400 },
  );
});

roundTrip('any chunking of a stream of packets yields the same packets (property)', () => {
  fc.assert(
    fc.property(fc.array(validPacket, { minLength: 1, maxLength: 8 }), fc.array(fc.nat(), { maxLength: 40 }), (packets, cuts) => {
      const built = packets.map((p) => buildPacket(p.header, p.payload));
      const stream = concat(built);
      const parsed = readPackets(split(stream, cuts.map((c) => c % (stream.byteLength + 1))));
      assert.equal(parsed.map((p) => p.bytes), built);
      assert.equal(parsed.map((p) => p.header), packets.map((p) => ({ ...p.header, payloadLength: p.payload.byteLength })));
    }),
    { seed: 0xbeef, numRuns: 200 },
  );
});

roundTrip('a stream fed one byte at a time yields the same packets as one chunk', () => {
  const stream = concat([
    buildPacket(header({ normalRuns: [{ first: 0, count: 1 }] }), pattern(PAGE)),
    encodeSyncPacket(1, 1),
    buildPacket(header({ round: 2, zeroRuns: [{ first: 9, count: 9 }] })),
  ]);
  const whole = readPackets([stream]);
  const bytewise = readPackets(split(stream, Array.from(stream, (_, i) => i)));
  assert.is(whole.length, 3);
  assert.equal(bytewise, whole);
});

roundTrip.run();
