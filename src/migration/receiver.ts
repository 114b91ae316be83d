// The destination side of a migration. Connections are told apart by their first four bytes
// (control or data, as QEMU ≥ 8.0 peeks the magic). The hello fixes the session; data channels
// must present its session id and a fresh id below the channel count. Packets are validated on
// the main thread (header) and in a worker (checksum, payload) before anything is written.
// Rounds are a barrier: after its SYNC a channel is not read further until every channel
// synced, every packet of the round is applied and the round-end frame agreed on the count.
import type { Duplex } from 'node:stream';
import { codecByWireId } from '../codecs/registry.js';
import { MultifdError, ProtocolError, TransportError, protocolError } from '../errors.js';
import { WorkerPool } from '../pool/pool.js';
import type { BlockTarget } from '../pool/protocol.js';
import {
  CONTROL_MAGIC,
  DATA_MAGIC,
  PACKET_FLAG_SYNC,
  PacketReader,
  packetHeaderBytes,
  parseChannelInit,
  type ControlMessage,
  runsPageCount,
  type ParsedPacket,
} from '../wire/index.js';
import { applyZeroRun } from '../pool/receive-task.js';
import { ControlChannel } from './control-channel.js';
import type { Destination, DestinationFactory, Hello } from './destination.js';
import { FailureLatch } from './failure-latch.js';
import { ReceivedChecksum } from './received-checksum.js';

/** Receiver options. */
export interface ReceiveOptions {
  /** Where pages go; built once the hello names the block table. */
  destination: DestinationFactory;
  /** Worker threads (decompress-threads); default: available cores. Ignored when `pool` is given. */
  threads?: number;
  pool?: WorkerPool;
  /** How long the sender has to complete the handshake (hello and every data channel), default 30 s. */
  handshakeTimeoutMs?: number;
  signal?: AbortSignal;
}

/** What a receiver ends with. */
export interface ReceiveResult {
  status: 'completed';
  normalPages: number;
  zeroPages: number;
  rounds: number;
  /** Bytes read from every connection. */
  bytesReceived: number;
  checksum: bigint;
}

const DATA_INIT_BYTES = 32;
/** Packets one channel may have in workers before its socket is paused (backpressure). */
const MAX_IN_FLIGHT_PER_CHANNEL = 32;
/** Packets all channels together may have in workers: memory stays bounded whatever the channel count. */
const MAX_IN_FLIGHT_TOTAL = 64;
/** Packet buffers kept for reuse. */
const MAX_SPARE_BUFFERS = 64;

interface ChannelState {
  id: number;
  socket: Duplex;
  reader: PacketReader;
  /** Packets seen on this channel (the ordinal errors name). */
  ordinal: number;
  /** The last round whose SYNC arrived on this channel. */
  syncedRound: number;
  inFlight: number;
  /** Why the channel ended early, reported once its packets in workers have settled. */
  closedEarly?: Error;
}

/** Receives one migration from the connections given to `accept`. */
export class MigrationReceiver {
  /** Settles when the migration completed (checksum confirmed) or failed. */
  readonly result: Promise<ReceiveResult>;
  private readonly failure = new FailureLatch();
  private readonly pool: WorkerPool;
  private readonly sockets = new Set<Duplex>();
  private readonly channels = new Map<number, ChannelState>();
  private readonly waitingForHello: Array<() => void> = [];
  private control: ControlChannel | undefined;
  private controlArrived!: (control: ControlChannel) => void;
  private readonly controlReady = new Promise<ControlChannel>((resolve) => (this.controlArrived = resolve));
  /** Set once the report is sent: from then on the sender may close its connections. */
  private reported = false;
  private hello: Hello | undefined;
  private destination: Destination | undefined;
  private targets: readonly BlockTarget[] = [];
  private received: Int32Array[] = [];
  private checksums: ReceivedChecksum | undefined;
  private round = 1;
  private inFlight = 0;
  /** Receive tasks in workers; a failed migration waits for them before it cleans up. */
  private readonly tasks = new Set<Promise<void>>();
  /** Packet buffers workers handed back, for the next packets to be assembled in. */
  private readonly spareBuffers: ArrayBuffer[] = [];
  /** Bytes of the largest valid packet of this session (its most normal pages, incompressible). */
  private largestPacketBytes = 0;
  private appliedInRound = 0;
  private roundBarrier: (() => void) | undefined;
  private normalPages = 0;
  private zeroPages = 0;
  private bytesReceived = 0;
  private readonly startCpu = process.cpuUsage();

  constructor(private readonly options: ReceiveOptions) {
    this.pool = options.pool ?? new WorkerPool({ threads: options.threads });
    const timer = setTimeout(() => {
      if (!this.channelsReady()) this.fail(new TransportError('ERR_HANDSHAKE_TIMEOUT', `the sender did not complete the handshake within ${options.handshakeTimeoutMs ?? 30_000} ms`));
    }, options.handshakeTimeoutMs ?? 30_000);
    options.signal?.addEventListener('abort', () => this.fail(new MultifdError('ERR_CANCELLED', 'receive cancelled')), { once: true });
    this.result = this.failure
      .race(this.run())
      .catch(async (error: Error) => {
        // Let workers finish what they hold (they never write a packet that failed), tell the
        // sender why (best effort), and leave nothing that looks like a complete image.
        for (const socket of this.sockets) socket.pause();
        await Promise.allSettled([...this.tasks]);
        await this.control?.send({ type: 'error', code: (error as MultifdError).code ?? 'ERR_RECEIVER', message: error.message }).catch(() => {});
        await this.destination?.abort();
        for (const socket of this.sockets) socket.destroy();
        throw error;
      })
      .finally(async () => {
        clearTimeout(timer);
        for (const socket of this.sockets) socket.end();
        if (!options.pool) await this.pool.close();
      });
  }

  /** Hands a new connection to the receiver (control or data, told apart by its magic). */
  accept(socket: Duplex): void {
    this.sockets.add(socket);
    socket.on('error', (error) => this.fail(new TransportError('ERR_CHANNEL_CLOSED', `connection failed: ${error.message}`, { cause: error })));
    let head: Uint8Array = new Uint8Array(0);
    const onData = (chunk: Buffer) => {
      this.bytesReceived += chunk.byteLength;
      head = concat(head, chunk);
      if (head.byteLength < 4) return;
      socket.off('data', onData);
      const magic = new DataView(head.buffer, head.byteOffset).getUint32(0);
      if (magic === CONTROL_MAGIC && !this.control) {
        this.control = new ControlChannel(socket, head);
        this.controlArrived(this.control);
        socket.on('data', (c: Buffer) => (this.bytesReceived += c.byteLength));
      } else if (magic === DATA_MAGIC) {
        this.acceptData(socket, head);
      } else {
        // A second control connection, or one that speaks something else: dropped. Before the
        // session exists a wrong magic fails fast (a misconfigured sender hears why); once it
        // exists, a stray connection must not be able to end the migration.
        socket.destroy();
        if (magic !== CONTROL_MAGIC && !this.hello) {
          this.fail(protocolError('ERR_CONNECTION_MAGIC', { channel: 'control', field: 'magic', expected: 'MFDC or MFDD', got: `0x${magic.toString(16)}` }));
        }
      }
    };
    socket.on('data', onData);
  }

  private async run(): Promise<ReceiveResult> {
    const control = await this.failure.race(this.controlReady);
    const hello = await this.failure.race(control.next(this.options.handshakeTimeoutMs ?? 30_000));
    if (hello.type !== 'hello') throw protocolError('ERR_HANDSHAKE', { channel: 'control', packet: 0, field: 'type', expected: 'hello', got: hello.type });
    if (!codecByWireId(hello.codecWireId)) throw protocolError('ERR_CONTROL_FIELD', { channel: 'control', packet: 0, field: 'codecWireId', expected: 'a known codec', got: hello.codecWireId });
    this.hello = hello;
    this.largestPacketBytes = largestPacketBytes(hello);
    this.destination = await this.options.destination(hello);
    this.targets = this.destination.targets;
    this.received = hello.blocks.map((b) => new Int32Array(new SharedArrayBuffer(4 * Math.ceil(b.byteLength / hello.pageSize / 32))));
    const destination = this.destination;
    this.checksums = new ReceivedChecksum(
      hello.blocks.map((b) => b.byteLength),
      (block, byteOffset, byteLength) => destination.hashChunks(this.pool, block, byteOffset, byteLength),
    );
    await control.send({ type: 'hello-ack', sessionId: hello.sessionId });
    this.waitingForHello.splice(0).forEach((resume) => resume());

    for (;;) {
      const message = await this.failure.race(control.next(0));
      switch (message.type) {
        case 'zero-pages':
          this.applyLegacyZeroPages(message);
          break;
        case 'round-end':
          await this.finishRound(message);
          break;
        case 'complete':
          return this.complete(control, message);
        case 'error':
          throw new TransportError(message.code, `sender failed: ${message.message}`);
        default:
          throw protocolError('ERR_CONTROL_TYPE', { channel: 'control', field: 'type', expected: 'zero-pages, round-end, complete or error', got: message.type });
      }
    }
  }

  private acceptData(socket: Duplex, head: Uint8Array): void {
    let bytes = head;
    const onData = (chunk: Buffer) => {
      this.bytesReceived += chunk.byteLength;
      bytes = concat(bytes, chunk);
      if (bytes.byteLength >= DATA_INIT_BYTES) {
        socket.off('data', onData);
        socket.pause();
        const start = () => this.startChannel(socket, bytes);
        if (this.hello) start();
        else this.waitingForHello.push(start);
      }
    };
    socket.on('data', onData);
    if (bytes.byteLength >= DATA_INIT_BYTES) onData(Buffer.alloc(0));
  }

  private startChannel(socket: Duplex, bytes: Uint8Array): void {
    const hello = this.hello!;
    let id: number;
    try {
      id = parseChannelInit(bytes.subarray(0, DATA_INIT_BYTES), { sessionId: hello.sessionId, channels: hello.channels, taken: new Set(this.channels.keys()) });
    } catch (error) {
      socket.destroy();
      return this.fail(error as Error);
    }
    const state: ChannelState = {
      id,
      socket,
      reader: new PacketReader({
        channel: id,
        pageSize: hello.pageSize,
        pagesPerPacket: hello.pagesPerPacket,
        blocks: hello.blocks.map((b) => ({ pageCount: b.byteLength / hello.pageSize })),
        allocate: (byteLength) => this.packetBuffer(byteLength),
      }),
      ordinal: 0,
      syncedRound: 0,
      inFlight: 0,
    };
    this.channels.set(id, state);
    socket.on('data', (chunk: Buffer) => {
      this.bytesReceived += chunk.byteLength;
      this.guard(() => {
        state.reader.push(chunk);
        this.pump(state);
      });
    });
    // A channel that ends early fails the migration, but only after its packets already in
    // workers have settled: if one of them was bad, that is the better reason to report. One
    // that ends right after its SYNC has sent all it will (a stream file does, at its end): that
    // fails only when a later round needs it (see finishRound).
    const closed = () => {
      if (this.reported || state.closedEarly) return;
      state.closedEarly = new TransportError('ERR_CHANNEL_CLOSED', `data channel ${id} closed before the migration completed`);
      this.failIfChannelLost(state);
    };
    socket.on('end', () => this.guard(() => (state.reader.end(), closed())));
    socket.on('close', closed);
    this.guard(() => this.pump(state, bytes.subarray(DATA_INIT_BYTES)));
    this.updateFlow(state);
  }

  /** Parses and dispatches the channel's packets until it reaches the SYNC of the current round. */
  private pump(state: ChannelState, extra?: Uint8Array): void {
    if (extra?.byteLength) state.reader.push(extra);
    while (state.syncedRound < this.round) {
      const packet = state.reader.next();
      if (!packet) return;
      this.dispatch(state, packet, state.ordinal++);
    }
  }

  private dispatch(state: ChannelState, packet: ParsedPacket, ordinal: number): void {
    const { header } = packet;
    if (header.round !== this.round) {
      throw protocolError('ERR_PACKET_ROUND', { channel: state.id, packet: ordinal, field: 'round', expected: this.round, got: header.round });
    }
    if (header.flags & PACKET_FLAG_SYNC) {
      state.syncedRound = header.round;
      return this.checkBarrier();
    }
    const hello = this.hello!;
    state.inFlight++;
    this.inFlight++;
    this.updateFlow(state);
    const task = this.pool
      .receive({
        packet: packet.bytes.buffer,
        packetBytes: packet.bytes.byteLength,
        header,
        channel: state.id,
        ordinal,
        target: this.targets[header.blockIndex]!,
        received: this.received[header.blockIndex]!,
        writtenChunks: this.checksums!.written[header.blockIndex]!,
        staleChunks: this.checksums!.stale[header.blockIndex]!,
        codecWireId: header.codecWireId,
        pageSize: hello.pageSize,
        pagesPerPacket: hello.pagesPerPacket,
      })
      .then((buffer) => {
        if (this.spareBuffers.length < MAX_SPARE_BUFFERS) this.spareBuffers.push(buffer);
        state.inFlight--;
        this.inFlight--;
        this.appliedInRound++;
        this.normalPages += runsPageCount(header.normalRuns);
        this.zeroPages += runsPageCount(header.zeroRuns);
        for (const channel of this.channels.values()) this.updateFlow(channel);
        this.failIfChannelLost(state);
        this.checkBarrier();
      })
      .catch((error: Error) => this.fail(error))
      .finally(() => this.tasks.delete(task));
    this.tasks.add(task);
  }

  /**
   * Reads a channel's socket only while it, and all channels together, have few enough packets
   * in workers; paused, TCP's own flow control slows the sender. (A channel waiting at a round's
   * barrier keeps reading: its end of stream must be seen when it comes, and what it buffers is
   * bounded by what the sender sends before the other channels' SYNCs arrive.)
   */
  private updateFlow(state: ChannelState): void {
    const blocked = state.inFlight >= MAX_IN_FLIGHT_PER_CHANNEL || this.inFlight >= MAX_IN_FLIGHT_TOTAL;
    if (blocked) state.socket.pause();
    else if (state.socket.isPaused()) state.socket.resume();
  }

  /**
   * A buffer for the next packet: one a worker handed back if it is large enough, else a new
   * one sized for the largest packet of this session (so it can be reused for any other).
   */
  private packetBuffer(byteLength: number): ArrayBuffer {
    while (this.spareBuffers.length) {
      const buffer = this.spareBuffers.pop()!;
      if (buffer.byteLength >= byteLength) return buffer;
    }
    return new ArrayBuffer(Math.max(byteLength, this.largestPacketBytes));
  }

  /** Fails with the channel's early end once its packets settled, unless it already synced the round in progress. */
  private failIfChannelLost(state: ChannelState): void {
    if (state.closedEarly && state.inFlight === 0 && state.syncedRound < this.round) this.fail(state.closedEarly);
  }

  private channelsReady(): boolean {
    return this.hello !== undefined && this.channels.size === this.hello.channels;
  }

  /** Releases the round when every channel synced it and all its packets are applied. */
  private checkBarrier(): void {
    if (!this.roundBarrier || !this.channelsReady() || this.inFlight > 0) return;
    for (const state of this.channels.values()) if (state.syncedRound < this.round) return;
    const release = this.roundBarrier;
    this.roundBarrier = undefined;
    release();
  }

  private async finishRound(message: Extract<ControlMessage, { type: 'round-end' }>): Promise<void> {
    if (message.round !== this.round) {
      throw protocolError('ERR_CONTROL_FIELD', { channel: 'control', field: 'round-end.round', expected: this.round, got: message.round });
    }
    for (const state of this.channels.values()) if (state.closedEarly && state.syncedRound < message.round) throw state.closedEarly;
    await this.failure.race(new Promise<void>((resolve) => {
      this.roundBarrier = resolve;
      this.checkBarrier();
    }));
    if (this.appliedInRound !== message.packets) {
      throw protocolError('ERR_ROUND_PACKETS', { channel: 'control', field: `round ${message.round} packets`, expected: message.packets, got: this.appliedInRound });
    }
    this.appliedInRound = 0;
    this.round++;
    // The round's pages are in place: hash what it changed while the next round streams in.
    this.checksums!.refresh().catch((error: Error) => this.fail(error));
    for (const state of this.channels.values()) this.guard(() => this.pump(state));
  }

  /** zero-page-detection=legacy: zero runs arrive on the control channel (main thread applies them). */
  private applyLegacyZeroPages(message: Extract<ControlMessage, { type: 'zero-pages' }>): void {
    const hello = this.hello!;
    const block = hello.blocks[message.blockIndex];
    const pageCount = block ? block.byteLength / hello.pageSize : 0;
    if (message.round !== this.round || !block) {
      throw protocolError('ERR_CONTROL_FIELD', { channel: 'control', field: 'zero-pages', expected: `round ${this.round}, block < ${hello.blocks.length}`, got: `round ${message.round}, block ${message.blockIndex}` });
    }
    for (const run of message.runs) {
      if (run.first + run.count > pageCount) {
        throw protocolError('ERR_PACKET_PAGE_INDEX', { channel: 'control', field: 'zero-pages run', expected: `≤ ${pageCount}`, got: run.first + run.count });
      }
    }
    for (const run of message.runs) {
      const chunks = { writtenChunks: this.checksums!.written[message.blockIndex]!, staleChunks: this.checksums!.stale[message.blockIndex]! };
      applyZeroRun(this.targets[message.blockIndex]!, this.received[message.blockIndex]!, chunks, run, hello.pageSize);
    }
    this.zeroPages += runsPageCount(message.runs);
  }

  private async complete(control: ControlChannel, message: Extract<ControlMessage, { type: 'complete' }>): Promise<ReceiveResult> {
    if (message.rounds !== this.round - 1) {
      throw protocolError('ERR_CONTROL_FIELD', { channel: 'control', field: 'complete.rounds', expected: this.round - 1, got: message.rounds });
    }
    const checksum = await this.checksums!.checksum();
    const cpu = process.cpuUsage(this.startCpu);
    await control.send({ type: 'report', normalPages: this.normalPages, zeroPages: this.zeroPages, checksum, cpuMicros: cpu.user + cpu.system });
    this.reported = true;
    if (checksum !== message.checksum) {
      throw new ProtocolError('ERR_CHECKSUM_MISMATCH', `received image checksum ${hex(checksum)} differs from the sender's ${hex(message.checksum)}`);
    }
    await this.destination!.complete();
    this.failure.settle();
    return { status: 'completed', normalPages: this.normalPages, zeroPages: this.zeroPages, rounds: this.round - 1, bytesReceived: this.bytesReceived, checksum };
  }

  private guard(step: () => void): void {
    try {
      step();
    } catch (error) {
      this.fail(error as Error);
    }
  }

  private fail(error: Error): void {
    this.failure.fail(error);
  }
}

/** Header with one run per normal page, plus the largest payload any codec may send for a full packet. */
function largestPacketBytes(hello: Hello): number {
  const codec = codecByWireId(hello.codecWireId)!;
  const runs = Array.from({ length: hello.pagesPerPacket }, (_, i) => ({ first: 2 * i, count: 1 }));
  return packetHeaderBytes(runs, []) + codec.payloadBound(hello.pagesPerPacket, hello.pageSize);
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, '0');
}
