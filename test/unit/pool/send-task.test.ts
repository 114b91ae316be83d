// The send task as `auto` uses it, run on this thread: packets a codec did not shrink go raw,
// and a sample is the same pages encoded by every codec named.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { codecByWireId, getCodec } from '../../../src/codecs/registry.js';
import type { PacketEncoder } from '../../../src/codecs/types.js';
import { none } from '../../../src/codecs/none.js';
import { readSendResult, runSendTask, SAMPLE_PAGES, type SendResult } from '../../../src/pool/send-task.js';
import type { SampleCodec } from '../../../src/pool/protocol.js';
import { readRawPacketHeader } from '../../../src/wire/packet.js';
import { filledMemory } from '../../helpers/migration.js';
import { packetBytes } from '../../helpers/pool-tasks.js';

const test = suite('send task: raw fallback and samples');
const PAGE = 4096;
const PAGES = 512;
const PAGES_PER_PACKET = 128;

/** Runs one send task over the 2 MiB block of `kind` pages with codec `codecId`. */
function send(kind: 'random' | 'text', codecId: string, level: number | undefined, extra: { rawIfLarger?: boolean; sample?: SampleCodec[] }): SendResult {
  const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: PAGES * PAGE }], kind, seed: 7 });
  const block = memory.blocks[0]!.memory;
  const encoders = new Map<string, PacketEncoder>();
  const encoderFor = (wireId: number, lvl: number | undefined) => {
    const key = `${wireId}/${lvl}`;
    if (!encoders.has(key)) encoders.set(key, codecByWireId(wireId)!.createEncoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET, level: lvl }));
    return encoders.get(key)!;
  };
  const task = { op: 'send', memory: block, byteOffset: 0, blockIndex: 0, firstPage: 0, pageCount: PAGES, round: 1, sequenceBase: 0, zeroPageDetection: 'multifd', hashChunks: false, stable: true } as const;
  const decoderFor = (wireId: number) => codecByWireId(wireId)!.createDecoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET });
  const buffer = runSendTask({ ...task, codecWireId: getCodec(codecId).info.wireId, level, pageSize: PAGE, pagesPerPacket: PAGES_PER_PACKET, ...extra }, { encoderFor, decoderFor });
  return readSendResult(buffer, block);
}

test('with rawIfLarger, a packet its codec did not shrink goes as none with its pages raw', () => {
  const result = send('random', 'zstd', 1, { rawIfLarger: true });
  assert.is(result.normalPages, PAGES);
  assert.is(result.rawPages, PAGES, 'every page raw');
  assert.is(result.payloadBytes, PAGES * PAGE);
  for (const packet of result.packets) assert.is(readRawPacketHeader(packetBytes(packet)).codecWireId, none.info.wireId);
  const compressed = send('text', 'zstd', 1, { rawIfLarger: true });
  assert.is(compressed.rawPages, 0, 'pages zstd shrinks stay compressed');
  assert.ok(compressed.packets.every((p) => readRawPacketHeader(packetBytes(p)).codecWireId === getCodec('zstd').info.wireId));
});

test('a sample is SAMPLE_PAGES pages of the task encoded by each codec named, and leaves the packets as they were', () => {
  const sample = [
    { codecWireId: getCodec('lz4').info.wireId, level: 1 },
    { codecWireId: getCodec('zstd').info.wireId, level: 1 },
    { codecWireId: getCodec('zstd').info.wireId, level: 3 },
  ];
  const plain = send('text', 'zstd', 1, {});
  const sampled = send('text', 'zstd', 1, { sample });
  assert.equal(sampled.packets.map(packetBytes), plain.packets.map(packetBytes), 'the same packets, byte for byte');
  assert.equal(plain.sampleEncodings, []);
  assert.is(sampled.sampleBytes, SAMPLE_PAGES * PAGE);
  // The same pages encoded here: the first SAMPLE_PAGES of the first full packet.
  const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: PAGES * PAGE }], kind: 'text', seed: 7 });
  const pages = Array.from({ length: SAMPLE_PAGES }, (_, i) => memory.blocks[0]!.bytes().subarray(i * PAGE, (i + 1) * PAGE));
  const expected = sample.map(({ codecWireId, level }) => codecByWireId(codecWireId)!.createEncoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET, level }).encode(pages, new Uint8Array(2 * SAMPLE_PAGES * PAGE)));
  assert.equal(sampled.sampleEncodings.map((e) => e.wireBytes), expected);
  assert.ok(expected[2]! < expected[0]!, `zstd-3 (${expected[2]}) leaves fewer bytes than lz4 (${expected[0]})`);
  assert.ok(sampled.sampleEncodings.every((e) => e.ms >= 0 && e.decodeMs >= 0) && sampled.encodeMs >= 0 && sampled.encodeMs <= sampled.workerMs);
});

test.run();
