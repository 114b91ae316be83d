// The fuzz targets: the receiver's packet path (reader, checksum, decode, apply), the control
// frame reader, the channel init parser, the sender's ack reader, and every registered codec's
// decoder. Each target turns one input into the calls a peer's bytes reach and checks what must
// hold whatever the bytes: only typed errors (the engine checks that), no byte written past a
// destination block or page, no page written that no packet names, nothing written by a
// refused payload, a reader that never yields more items than its bytes can hold, and frames
// a reader accepts encoded back byte for byte by the matching writer. The first input byte is a mode byte: how
// to split the stream into chunks and whether to recompute checksums, so that mutated inputs
// get past the checksum to the field checks and decoders behind it.
import { getCodec, listCodecs, codecByWireId } from '../../src/codecs/registry.js';
import type { PacketDecoder } from '../../src/codecs/types.js';
import type { ReceiveSession } from '../../src/pool/protocol.js';
import { runReceiveTask } from '../../src/pool/receive-task.js';
import { checksum64 } from '../../src/wasm/kernels.js';
import { unitHashesOfBytes } from '../../src/memory/checksum.js';
import {
  ACK_MAGIC,
  AckReader,
  CONTROL_MAGIC,
  ControlReader,
  DATA_MAGIC,
  MAX_CONTROL_BODY,
  MAX_ZERO_RUNS,
  PACKET_MAGIC,
  PacketReader,
  MAX_ACKS_PER_FRAME,
  encodeAcks,
  encodeChannelInit,
  encodeControl,
  packetChecksum,
  parseChannelInit,
  runsPageCount,
  type ParsedPacket,
} from '../../src/wire/index.js';
import { guardedPages } from '../helpers/codec-conformance.js';
import { GuardedBlock } from '../helpers/guarded-memory.js';
import { readAll, resealFrame, split } from '../unit/wire/fixtures.js';
import type { FuzzTarget } from './engine.js';

/** The session every target's bytes belong to: 4 KiB pages, up to 8 pages a packet, two blocks. */
export const PAGE = 4096;
export const PAGES_PER_PACKET = 8;
export const BLOCK_PAGES = [32, 3] as const;
export const SESSION_ID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

/** Chunk sizes a mode byte picks from (bits 1–3): whole, byte by byte, odd sizes. */
const CHUNK_BYTES = [Infinity, 1, 7, 40, 333, 4096, 64, 12];
/** Chunks of that size at the start of a stream; the rest comes in one piece, so a long input stays fast. */
const SMALL_CHUNKS = 64;

/**
 * A target input: the mode byte's meaning and the bytes behind it. Bit 0: recompute checksums;
 * bits 1–3: chunk size; bit 4: the session agreed on codec wire id `mode >> 5` (the packet
 * reader then refuses packets of any other codec), else no codec is bound.
 */
function modeOf(data: Uint8Array): { reseal: boolean; sessionCodec: number | undefined; chunks(bytes: Uint8Array): Uint8Array[]; rest: Uint8Array } {
  const mode = data[0] ?? 0;
  const size = CHUNK_BYTES[(mode >> 1) & 7]!;
  const cuts = size === Infinity ? [] : Array.from({ length: SMALL_CHUNKS }, (_, i) => (i + 1) * size);
  const sessionCodec = mode & 0x10 ? mode >> 5 : undefined;
  return { reseal: (mode & 1) === 1, sessionCodec, chunks: (bytes) => split(bytes, cuts), rest: data.subarray(1) };
}

/** A guarded block with the receive bitmaps and unit-hash table a worker updates. */
class FuzzBlock extends GuardedBlock {
  readonly received: Int32Array;
  readonly staleChunks = new Int32Array(1);
  readonly unitHashes: Uint32Array;

  constructor(pageCount: number) {
    super(pageCount, PAGE);
    this.received = new Int32Array(Math.ceil(pageCount / 32));
    this.unitHashes = new Uint32Array(2 * pageCount);
  }

  override reset(): void {
    super.reset();
    this.received.fill(0);
  }
}

/** The staging memory the fuzzed packets are assembled in, as a receiver's. */
const staging = new WebAssembly.Memory({ initial: 16, maximum: 65536, shared: true });

/** The packets of one input are applied one at a time: each is assembled at the start of the staging memory. */
function stagingSlot(byteLength: number): Uint8Array {
  if (staging.buffer.byteLength < byteLength) staging.grow(Math.ceil((byteLength - staging.buffer.byteLength) / 65536));
  return new Uint8Array(staging.buffer, 0, byteLength);
}

/**
 * Gives a packet a checksum that matches what its payload decodes to, so that the apply step
 * runs (a payload that does not decode fails in the worker before any checksum).
 */
function resealDecoded(packet: ParsedPacket): void {
  const pages = runsPageCount(packet.header.normalRuns);
  const payload = packet.bytes.subarray(packet.payloadOffset);
  let decoded: Uint8Array = new Uint8Array(0);
  const codec = codecByWireId(packet.header.codecWireId)!;
  if (codec.info.payloadIsPages) decoded = payload.byteLength === pages * PAGE ? payload : decoded;
  else if (pages > 0) {
    decoded = new Uint8Array(pages * PAGE);
    try {
      decoderFor(packet.header.codecWireId).decode(payload, Array.from({ length: pages }, (_, i) => decoded.subarray(i * PAGE, (i + 1) * PAGE)));
    } catch {
      return; // the worker will refuse it the same way
    }
  }
  const hashes = decoded.byteLength ? unitHashesOfBytes(decoded) : new Uint32Array(0);
  new DataView(packet.bytes.buffer, packet.bytes.byteOffset).setBigUint64(32, packetChecksum(packet.bytes.subarray(0, packet.payloadOffset), hashes));
}

const decoders = new Map<number, PacketDecoder>();
function decoderFor(codecWireId: number): PacketDecoder {
  let decoder = decoders.get(codecWireId);
  if (!decoder) {
    decoder = codecByWireId(codecWireId)!.createDecoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET });
    decoders.set(codecWireId, decoder);
  }
  return decoder;
}

/** Fails the input if a reader yields more items than its bytes could hold (a loop that does not consume). */
const readerLimit = (bytes: Uint8Array) => bytes.byteLength / 20 + 2;

/**
 * A data channel after its init: packets read by PacketReader, then, as a worker does,
 * checksum, decode and apply (runReceiveTask) into guarded blocks.
 */
function packetTarget(): FuzzTarget {
  const blocks = BLOCK_PAGES.map((pages) => new FuzzBlock(pages));
  /** The guarded blocks as a receiving session whose packets name `codecWireId`. */
  const session = (codecWireId: number): ReceiveSession => ({
    key: 0,
    staging,
    targets: blocks.map((b) => ({ memory: b.memory })),
    received: blocks.map((b) => b.received),
    unitHashes: blocks.map((b) => b.unitHashes),
    staleChunks: blocks.map((b) => b.staleChunks),
    codecWireId,
    pageSize: PAGE,
    pagesPerPacket: PAGES_PER_PACKET,
  });
  return {
    name: 'packet',
    sources: ['/src/wire/', '/src/pool/receive-task', '/src/codecs/'],
    maxLength: 64 * 1024,
    dictionary: [PACKET_MAGIC, 1, 0x0001, PAGES_PER_PACKET, PAGES_PER_PACKET + 1, ...BLOCK_PAGES, BLOCK_PAGES[0] + 1, MAX_ZERO_RUNS, MAX_ZERO_RUNS + 1, PAGE, PAGE * PAGES_PER_PACKET, 2 ** 53 - 1],
    run(data) {
      const { reseal, sessionCodec, chunks, rest } = modeOf(data);
      for (const block of blocks) block.reset();
      const named = blocks.map((b) => new Uint8Array(b.pageCount));
      const reader = new PacketReader({ channel: 0, pageSize: PAGE, pagesPerPacket: PAGES_PER_PACKET, blocks, codecWireId: sessionCodec, allocate: (n) => stagingSlot(n) });
      let ordinal = 0;
      const apply = (packet: ParsedPacket) => {
        if (++ordinal > readerLimit(rest)) throw new Error('the packet reader yielded more packets than its bytes hold');
        const { header } = packet;
        if (reseal) resealDecoded(packet);
        runReceiveTask(session(header.codecWireId), { byteOffset: packet.bytes.byteOffset, packetBytes: packet.bytes.byteLength, channel: 0, ordinal }, decoderFor);
        for (const run of [...header.normalRuns, ...header.zeroRuns]) named[header.blockIndex]!.fill(1, run.first, run.first + run.count);
      };
      try {
        for (const chunk of chunks(rest)) {
          reader.push(chunk);
          for (let packet = reader.next(); packet; packet = reader.next()) apply(packet);
        }
        reader.end();
      } finally {
        blocks.forEach((block, i) => block.check(`block ${i}`, named[i]!));
      }
    },
  };
}

/** Frame boundaries of a control stream, as far as whole frames go (bodyLength read as is). */
function frameSpans(stream: Uint8Array): Array<[number, number]> {
  const spans: Array<[number, number]> = [];
  const view = new DataView(stream.buffer, stream.byteOffset, stream.byteLength);
  for (let at = 0; at + 12 <= stream.byteLength; ) {
    const end = at + 12 + view.getUint32(at + 8) + 8;
    if (end > stream.byteLength) break;
    spans.push([at, end]);
    at = end;
  }
  return spans;
}

/**
 * The control connection: ControlReader over the stream. Every frame it accepts must be
 * what encodeControl writes for the message it returned, byte for byte: reader and writer
 * agree on the format.
 */
function controlTarget(): FuzzTarget {
  return {
    name: 'control',
    sources: ['/src/wire/'],
    maxLength: 16 * 1024,
    dictionary: [CONTROL_MAGIC, 1, 2, 3, 4, 5, 6, 7, 8, MAX_CONTROL_BODY, MAX_CONTROL_BODY + 1, PAGE, 65536, 255, 256, 4096, 4097, 1024, 1025, 2 ** 32],
    run(data) {
      const { reseal, chunks, rest } = modeOf(data);
      const stream = rest.slice();
      const spans = frameSpans(stream);
      if (reseal) for (const [start, end] of spans) resealFrame(stream.subarray(start, end));
      const messages = readAll(new ControlReader(), chunks(stream));
      messages.forEach((message, i) => {
        const [start, end] = spans[i]!;
        const again = encodeControl(message);
        const frame = stream.subarray(start, end);
        if (again.byteLength !== frame.byteLength || again.some((b, j) => b !== frame[j])) {
          throw new Error(`control frame ${i} (${message.type}) was accepted but encodes differently`);
        }
      });
    },
  };
}

/** A data connection's first 32 bytes, against a session of 1–8 channels with channel 1 taken. */
function initTarget(): FuzzTarget {
  return {
    name: 'init',
    sources: ['/src/wire/'],
    maxLength: 64,
    dictionary: [DATA_MAGIC, CONTROL_MAGIC, PACKET_MAGIC, ACK_MAGIC, 1, 2, 7, 8, 255, 256, 65535],
    run(data) {
      const { reseal, rest } = modeOf(data);
      const bytes = rest.slice();
      if (reseal && bytes.byteLength >= 32) new DataView(bytes.buffer).setBigUint64(24, checksum64(bytes.subarray(0, 24)));
      const channels = 1 + ((data[0] ?? 0) >> 4) % 8;
      const id = parseChannelInit(bytes, { sessionId: SESSION_ID, channels, taken: new Set([1]) });
      if (id >= channels || id === 1) throw new Error(`init accepted channel ${id} of ${channels}, 1 taken`);
      const again = encodeChannelInit({ sessionId: SESSION_ID, channelId: id });
      if (again.some((b, i) => b !== bytes[i])) throw new Error('an accepted init differs from the one encodeChannelInit writes');
    },
  };
}

/**
 * A data channel seen from the sender: the receiver's acks. Every batch AckReader returns must
 * be what encodeAcks writes for it.
 */
function ackTarget(): FuzzTarget {
  return {
    name: 'ack',
    sources: ['/src/wire/'],
    maxLength: 4096,
    dictionary: [ACK_MAGIC, 1, MAX_ACKS_PER_FRAME, MAX_ACKS_PER_FRAME + 1, 2 ** 53 - 1, 2 ** 53],
    run(data) {
      const { chunks, rest } = modeOf(data);
      let at = 0;
      readAll(new AckReader(0), chunks(rest)).forEach((sequences, i) => {
        const frame = encodeAcks(sequences);
        if (frame.some((b, j) => b !== rest[at + j])) throw new Error(`ack frame ${i} was accepted but encodes differently`);
        at += frame.byteLength;
      });
    },
  };
}

/**
 * One codec's decoder: byte 0 picks 1–8 destination pages, the rest is the payload. Pages lie
 * between guard bytes; a refused payload must leave every page untouched.
 */
function codecTarget(id: string): FuzzTarget {
  const codec = getCodec(id);
  const decoder = codec.createDecoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET });
  return {
    name: `codec-${id}`,
    sources: ['/src/codecs/', '/src/wasm/c-module'],
    maxLength: codec.payloadBound(PAGES_PER_PACKET, PAGE) + 64,
    dictionary: [0x789c, 0x78da, 0x7801, 0x1f8b08, 0x28b52ffd, 0xfd2fb528, 0x184d2204, 0x04224d18, 0x5a51, PAGE, PAGE - 1, PAGE + 1, 0xffff, 0x10000],
    run(data) {
      const count = 1 + ((data[0] ?? 0) % PAGES_PER_PACKET);
      const destination = guardedPages(count, PAGE);
      try {
        decoder.decode(data.subarray(1), destination.pages);
      } catch (error) {
        if (!destination.untouched()) throw new Error(`${id}: a refused payload wrote to the destination`, { cause: error });
        throw error;
      } finally {
        if (!destination.guardsIntact()) throw new Error(`${id}: decode wrote outside a destination page`);
      }
    },
  };
}

/** Every target by name: packet, control, init, ack, codec-<id> for each registered codec. */
export function fuzzTargets(): Map<string, () => FuzzTarget> {
  const targets = new Map<string, () => FuzzTarget>([
    ['packet', packetTarget],
    ['control', controlTarget],
    ['init', initTarget],
    ['ack', ackTarget],
  ]);
  for (const { id } of listCodecs()) targets.set(`codec-${id}`, () => codecTarget(id));
  return targets;
}
