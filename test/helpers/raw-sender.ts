// A hand-driven sender for receiver tests: it speaks the wire format step by step over
// in-memory connections, so a test can send exactly the bad bytes it wants to see refused.
import type { Duplex } from 'node:stream';
import { getCodec } from '../../src/codecs/registry.js';
import type { CodecId } from '../../src/codecs/types.js';
import { unitHashesOfBytes } from '../../src/memory/checksum.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { ControlChannel } from '../../src/migration/control-channel.js';
import { memoryDestination, type DestinationFactory } from '../../src/migration/destination.js';
import { MigrationReceiver, type ReceiveOptions } from '../../src/migration/receiver.js';
import type { WorkerPool } from '../../src/pool/pool.js';
import { memoryPair } from '../../src/transport/index.js';
import { concatPages } from './pages.js';
import { encodeChannelInit, packetHeaderBytes, writePacket, type PacketHeader, type PageRun } from '../../src/wire/index.js';

export const PAGE = 4096;
/** Pages in the test block. */
export const BLOCK_PAGES = 256;

/** A receiver under test, the control channel to it, and its destination memory once created. */
export interface RawSession {
  receiver: MigrationReceiver;
  control: ControlChannel;
  sessionId: Uint8Array;
  destination(): GuestMemory | undefined;
  /** Opens a data connection and sends its init with `channelId` (and optionally another session id). */
  openChannel(channelId: number, sessionId?: Uint8Array): Duplex;
}

/** Opens a connection to `receiver` and returns this end of it; by default an in-memory pair. */
export type RawConnect = (receiver: MigrationReceiver) => Duplex;

const memoryConnect: RawConnect = (receiver) => {
  const [mine, theirs] = memoryPair();
  receiver.accept(theirs);
  return mine;
};

/** Starts a receiver and completes the hello / hello-ack exchange with it (the hello names `codec`, default zstd). */
export async function rawSession(
  pool: WorkerPool,
  options: { channels?: number; codec?: CodecId; destination?: DestinationFactory; receive?: Partial<ReceiveOptions>; connect?: RawConnect } = {},
): Promise<RawSession> {
  const connect = options.connect ?? memoryConnect;
  let memory: GuestMemory | undefined;
  const receiver = new MigrationReceiver({ destination: options.destination ?? memoryDestination((m) => (memory = m)), pool, handshakeTimeoutMs: 5000, ...options.receive });
  receiver.result.catch(() => {});
  const control = new ControlChannel(connect(receiver));
  const sessionId = new Uint8Array(16).fill(7);
  await control.send({
    type: 'hello',
    sessionId,
    pageSize: PAGE,
    channels: options.channels ?? 1,
    codecWireId: getCodec(options.codec ?? 'zstd').info.wireId,
    level: 1,
    zeroPageDetection: 'multifd',
    pagesPerPacket: 128,
    blocks: [{ name: 'pc.ram', byteLength: BLOCK_PAGES * PAGE }],
  });
  const ack = await control.next(5000);
  if (ack.type !== 'hello-ack') throw new Error(`expected hello-ack, got ${ack.type}`);
  return {
    receiver,
    control,
    sessionId,
    destination: () => memory,
    openChannel(channelId, otherSession) {
      const mine = connect(receiver);
      mine.on('error', () => {});
      mine.write(encodeChannelInit({ sessionId: otherSession ?? sessionId, channelId }));
      return mine;
    },
  };
}

/** A valid data packet carrying `pages` (compressed with `codec`) at `normalRuns`, plus `zeroRuns`. */
export function dataPacket(
  codec: CodecId,
  normalRuns: PageRun[],
  pages: Uint8Array[],
  options: { zeroRuns?: PageRun[]; round?: number; sequence?: number } = {},
): Uint8Array {
  const zeroRuns = options.zeroRuns ?? [];
  const encoder = getCodec(codec).createEncoder({ pageSize: PAGE, maxPages: Math.max(1, pages.length) });
  const headerBytes = packetHeaderBytes(normalRuns, zeroRuns);
  const out = new Uint8Array(headerBytes + encoder.payloadBound(pages.length));
  const payloadLength = pages.length ? encoder.encode(pages, out.subarray(headerBytes)) : 0;
  const header: PacketHeader = {
    codecWireId: getCodec(codec).info.wireId,
    flags: 0,
    blockIndex: 0,
    round: options.round ?? 1,
    sequence: options.sequence ?? 0,
    normalRuns,
    zeroRuns,
    payloadLength,
  };
  return out.slice(0, writePacket(out, header, payloadLength, unitHashesOfBytes(concatPages(pages))));
}
