// `npm run fuzz:seed [-- target...]`: rewrites the seed corpora (of the named targets, or all) in test/fuzz/corpus/ from real streams. Packets
// come from the sender's own send task (zero-page scan, packet cutting, every codec's encoder)
// over guest memory of every page kind; control frames and inits from the encoders the sender
// and receiver write them with, acks from encodeAcks; codec payloads from each codec's encoder. Seeds are named
// `seed-<sha1>`; inputs kept from fuzzing runs (fixed crashes) are named otherwise and kept.
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { getCodec, listCodecs } from '../../src/codecs/registry.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { readSendResult, runSendTask } from '../../src/pool/send-task.js';
import { packetBytes } from '../helpers/pool-tasks.js';
import type { ZeroPageDetection } from '../../src/wire/index.js';
import { encodeAcks, encodeChannelInit, encodeControl, encodeSyncPacket, type ControlMessage } from '../../src/wire/index.js';
import { PAGE_KINDS, makePages, concatPages } from '../helpers/pages.js';
import { encodePayload } from '../helpers/codec-conformance.js';
import { concat } from '../unit/wire/fixtures.js';
import { corpusDir, saveInput } from './corpus.js';
import { BLOCK_PAGES, PAGE, PAGES_PER_PACKET, SESSION_ID } from './targets.js';

/** Mode bytes (targets.ts): whole stream; byte by byte with checksums recomputed; 333-byte chunks. */
const MODES = [0x00, 0x03, 0x08];

function reseed(target: string, inputs: Uint8Array[]): void {
  const dir = corpusDir(target);
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(dir, { withFileTypes: true }).filter((f) => f.name.startsWith('seed-'))) rmSync(join(dir, name.name));
  for (const input of inputs) saveInput(dir, input, 'seed-');
  console.log(`${target}: ${inputs.length} seeds, ${inputs.reduce((n, i) => n + i.byteLength, 0)} bytes`);
}

const withMode = (mode: number, bytes: Uint8Array) => concat([Uint8Array.of(mode), bytes]);

/** The packets the send task writes for `pageCount` pages of block `blockIndex`, then the round's SYNC. */
function sentPackets(memory: GuestMemory, blockIndex: number, pageCount: number, codecId: string, detection: ZeroPageDetection): Uint8Array {
  const codec = getCodec(codecId);
  const encoder = codec.createEncoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET });
  const result = runSendTask(
    {
      op: 'send',
      memory: memory.blocks[blockIndex]!.memory,
      byteOffset: 0,
      blockIndex,
      firstPage: 0,
      pageCount,
      round: 1,
      sequenceBase: 0,
      zeroPageDetection: detection,
      hashChunks: false,
      stable: true,
      codecWireId: codec.info.wireId,
      pageSize: PAGE,
      pagesPerPacket: PAGES_PER_PACKET,
    },
    { encoderFor: () => encoder, decoderFor: () => codec.createDecoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET }) },
  );
  const { packets } = readSendResult(result, memory.blocks[blockIndex]!.memory);
  return concat([...packets.map(packetBytes), encodeSyncPacket(1, packets.length)]);
}

function packetSeeds(): Uint8Array[] {
  const memory = GuestMemory.create({ pageSize: PAGE, blocks: BLOCK_PAGES.map((pages, i) => ({ name: `block${i}`, byteLength: pages * PAGE })) });
  memory.blocks[0]!.bytes().set(concatPages(makePages('mixed', 16, PAGE, 1)));
  memory.blocks[1]!.bytes().set(concatPages(makePages('text', BLOCK_PAGES[1], PAGE, 2)));
  const seeds: Uint8Array[] = [];
  listCodecs().forEach(({ id }, i) => {
    seeds.push(withMode(MODES[i % MODES.length]!, sentPackets(memory, 0, 16, id, 'multifd')));
    seeds.push(withMode(0, sentPackets(memory, 1, BLOCK_PAGES[1], id, 'none')));
  });
  return seeds;
}

function controlSeeds(): Uint8Array[] {
  const hello: ControlMessage = {
    type: 'hello',
    sessionId: SESSION_ID,
    pageSize: PAGE,
    channels: 2,
    codecWireId: getCodec('zstd').info.wireId,
    level: 1,
    zeroPageDetection: 'legacy',
    pagesPerPacket: PAGES_PER_PACKET,
    blocks: BLOCK_PAGES.map((pages, i) => ({ name: i ? 'vga.vram' : 'pc.ram', byteLength: pages * PAGE })),
  };
  const session: ControlMessage[] = [
    { ...hello, resumeKey: new Uint8Array(32).fill(0x24) },
    { type: 'zero-pages', round: 1, blockIndex: 0, runs: [{ first: 0, count: 3 }, { first: 9, count: 20 }] },
    { type: 'round-end', round: 1, packets: 5 },
    { type: 'complete', rounds: 1, checksum: 0x0123456789abcdefn },
  ];
  const replies: ControlMessage[] = [
    { type: 'hello-ack', sessionId: SESSION_ID },
    { type: 'hello-ack', sessionId: SESSION_ID, resumeKey: new Uint8Array(32).fill(0x42) },
    { type: 'resume', sessionId: SESSION_ID, attempt: 2, received: 3, proof: new Uint8Array(32).fill(0x17) },
    { type: 'resume-ack', sessionId: SESSION_ID, attempt: 2, received: 4, proof: new Uint8Array(32).fill(0x71) },
    { type: 'report', normalPages: 12, zeroPages: 23, checksum: 0x0123456789abcdefn, cpuMicros: 4321 },
    { type: 'error', code: 'ERR_PACKET_CHECKSUM', message: 'channel 0, packet 3: checksum: expected 0011223344556677, got 7766554433221100' },
  ];
  return [
    ...[hello, ...session, ...replies].map((message) => withMode(0, encodeControl(message))),
    ...MODES.map((mode) => withMode(mode, concat(session.map(encodeControl)))),
  ];
}

function initSeeds(): Uint8Array[] {
  // Mode bits 4–6 give the channel count minus one (targets.ts); channel 1 is always taken.
  return [
    withMode(0x10, encodeChannelInit({ sessionId: SESSION_ID, channelId: 0 })),
    withMode(0x71, encodeChannelInit({ sessionId: SESSION_ID, channelId: 7 })),
  ];
}

function ackSeeds(): Uint8Array[] {
  return [withMode(0, encodeAcks([0, 1, 2, 5])), withMode(0x02, concat([encodeAcks([7]), encodeAcks([2 ** 53 - 1, 8, 9])]))];
}

function codecSeeds(id: string): Uint8Array[] {
  const seeds: Uint8Array[] = [];
  for (const kind of PAGE_KINDS) {
    for (const count of [1, 4]) {
      const payload = encodePayload(getCodec(id), makePages(kind, count, PAGE, count), PAGE);
      seeds.push(withMode(count - 1, payload));
    }
  }
  return seeds;
}

const seeds = new Map<string, () => Uint8Array[]>([
  ['packet', packetSeeds],
  ['control', controlSeeds],
  ['init', initSeeds],
  ['ack', ackSeeds],
  ...listCodecs().map(({ id }): [string, () => Uint8Array[]] => [`codec-${id}`, () => codecSeeds(id)]),
]);
const wanted = process.argv.slice(2);
for (const [target, make] of seeds) if (!wanted.length || wanted.includes(target)) reseed(target, make());
