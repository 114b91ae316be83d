import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec, listCodecs } from '../../../src/codecs/registry.js';
import { CodecError, ProtocolError } from '../../../src/errors.js';
import { imageChecksum, combineChecksums, unitHashesOfBytes } from '../../../src/memory/checksum.js';
import { GuestMemory } from '../../../src/memory/guest-memory.js';
import { WorkerPool } from '../../../src/pool/pool.js';
import { PacketReader, writePacket, packetHeaderBytes, type ParsedPacket } from '../../../src/wire/index.js';
import { concatPages, makePages } from '../../helpers/pages.js';
import { packetBytes, receivePackets } from '../../helpers/pool-tasks.js';

const test = suite('worker pool: send and receive tasks');
const PAGE = 4096;
let pool: WorkerPool;

test.before(() => {
  pool = new WorkerPool({ threads: 1 });
});

test.after(async () => {
  await pool.close();
});

/** A one-block memory holding 256 mixed pages (a quarter of them zero). */
function sourceMemory(): GuestMemory {
  const memory = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: 256 * PAGE }] });
  memory.blocks[0]!.bytes().set(concatPages(makePages('mixed', 256, PAGE, 21)));
  return memory;
}

function parse(packets: Uint8Array[], pageCount: number): ParsedPacket[] {
  const reader = new PacketReader({ channel: 0, pageSize: PAGE, pagesPerPacket: 128, blocks: [{ pageCount }] });
  const parsed: ParsedPacket[] = [];
  for (const packet of packets) {
    reader.push(packet);
    for (let p = reader.next(); p; p = reader.next()) parsed.push(p);
  }
  reader.end();
  return parsed;
}

async function sendAll(source: GuestMemory, codecWireId: number, stable = true) {
  return pool.send({
    memory: source.blocks[0]!.memory,
    byteOffset: 0,
    blockIndex: 0,
    firstPage: 0,
    pageCount: 256,
    round: 1,
    sequenceBase: 0,
    codecWireId,
    pageSize: PAGE,
    pagesPerPacket: 128,
    zeroPageDetection: 'multifd',
    hashChunks: true,
    stable,
  });
}

async function receiveAll(packets: ParsedPacket[], destination: GuestMemory, codecWireId: number) {
  await receivePackets(pool, packets, destination.blocks[0]!.memory, 256, { codecWireId, pageSize: PAGE, pagesPerPacket: 128 });
}

test('every codec moves a 256-page window through send and receive tasks byte for byte', async () => {
  const source = sourceMemory();
  for (const { id, wireId } of listCodecs()) {
    const result = await sendAll(source, wireId);
    assert.is(result.normalPages + result.zeroPages, 256, id);
    assert.is(result.zeroPages, 64, id);
    const destination = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: 256 * PAGE }] });
    await receiveAll(parse(result.packets.map(packetBytes), 256), destination, wireId);
    assert.equal(destination.blocks[0]!.bytes(), source.blocks[0]!.bytes(), id);
    assert.is(combineChecksums(result.chunkHashes), imageChecksum(source), id);
    // A running guest's pages are snapshotted first: the same packets, none of them a view of the guest.
    const snapshot = await sendAll(source, wireId, false);
    assert.equal(snapshot.packets.map(packetBytes), result.packets.map(packetBytes), id);
    assert.ok(snapshot.packets.every((p) => p.parts.every((part) => part.buffer === snapshot.buffer)), id);
  }
});

test('workers adopt the main thread compiled modules and compile none themselves', async () => {
  await sendAll(sourceMemory(), getCodec('zstd').info.wireId);
  const report = await pool.inspect();
  assert.is(report.compilations, 0);
  assert.ok(report.wasmMemoryBytes.zstd! > 0, 'zstd was instantiated in the worker');
});

test('a none packet of a still source is its header followed by views of the guest pages, not a copy', async () => {
  const source = sourceMemory();
  const result = await sendAll(source, getCodec('none').info.wireId);
  const guest = source.blocks[0]!.memory.buffer;
  for (const packet of result.packets) {
    const [head, ...pages] = packet.parts;
    assert.is(head!.buffer, result.buffer, 'the header is in the result');
    assert.ok(pages.length > 0 && pages.every((part) => part.byteLength % PAGE === 0));
    for (const part of pages) assert.equal(new Uint8Array(guest, part.byteOffset, part.byteLength), part, 'a view at the page itself');
  }
  assert.is(result.payloadBytes, result.normalPages * PAGE);
  assert.ok(result.buffer.byteLength < 4 * PAGE, 'the result holds headers only');
});

test('errors from a worker keep their class, code and details', async () => {
  const result = await sendAll(sourceMemory(), getCodec('none').info.wireId);
  const [corrupt] = parse(result.packets.map(packetBytes), 256);
  corrupt!.bytes[corrupt!.payloadOffset + 10]! ^= 0xff;
  const destination = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: 256 * PAGE }] });
  try {
    await receiveAll([corrupt!], destination, getCodec('none').info.wireId);
    assert.unreachable('a corrupt packet was applied');
  } catch (error) {
    assert.instance(error, ProtocolError);
    assert.is((error as ProtocolError).code, 'ERR_PACKET_CHECKSUM');
    assert.is((error as ProtocolError).context.field, 'checksum');
  }
  assert.ok(destination.blocks[0]!.bytes().every((b) => b === 0), 'nothing was written');

  // A payload that passes the checksum but does not decode: the codec refuses it.
  const headerBytes = packetHeaderBytes([{ first: 0, count: 2 }], []);
  const packet = new Uint8Array(new ArrayBuffer(headerBytes + 100)).fill(7, headerBytes);
  const header = { codecWireId: getCodec('zstd').info.wireId, flags: 0, blockIndex: 0, round: 1, sequence: 0, normalRuns: [{ first: 0, count: 2 }], zeroRuns: [], payloadLength: 100 };
  const length = writePacket(packet, header, 100, unitHashesOfBytes(new Uint8Array(2 * PAGE)));
  const [garbage] = parse([packet.subarray(0, length)], 256);
  try {
    await receiveAll([garbage!], destination, getCodec('zstd').info.wireId);
    assert.unreachable('garbage was decoded');
  } catch (error) {
    assert.instance(error, CodecError);
    assert.is((error as CodecError).code, 'ERR_CODEC_CORRUPT');
  }
  assert.ok(destination.blocks[0]!.bytes().every((b) => b === 0), 'nothing was written');
});

test('a worker holds its WASM memory steady across 1000 packets', async () => {
  const source = sourceMemory();
  const wireId = getCodec('zlib').info.wireId;
  const destination = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: 256 * PAGE }] });
  const roundTrip = async () => receiveAll(parse((await sendAll(source, wireId)).packets.map(packetBytes), 256), destination, wireId);
  for (let i = 0; i < 20; i++) await roundTrip();
  const before = (await pool.inspect()).wasmMemoryBytes;
  for (let i = 0; i < 500; i++) await roundTrip(); // 2 packets each
  assert.equal((await pool.inspect()).wasmMemoryBytes, before);
});

test.run();
