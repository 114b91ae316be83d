// The destination side of a migration: the session. Connections are sorted into the control
// connection and data channels (src/migration/connection-sorting.ts: magic, init, pending
// limits); each data channel reads its packets into staging slots (src/channel/receive-
// channel.ts). The hello fixes the session. Packets are validated on the main thread (header,
// while a channel assembles them) and in a worker (payload decoded into scratch, then the
// pages' unit hashes against the checksum) before anything is written; the hashes also build
// the image checksum. Rounds are a barrier (src/migration/round-barrier.ts): after its SYNC a
// channel is not read further until the round is over. Applied packets are acknowledged on
// their channel. A data channel may break: the sender resends what was not acknowledged on
// another channel (or a reconnected one with the same id), and a packet that arrives twice in
// a round is applied once.
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { AUTO_WIRE_ID, codecByWireId, codecInfos, sessionCodecKnown } from '../codecs/registry.js';
import type { AcceleratorOptions } from '../codecs/types.js';
import { MultifdError, ProtocolError, TransportError, protocolError } from '../errors.js';
import { ReceiveChannel } from '../channel/receive-channel.js';
import { linkDown } from '../channel/send-channels.js';
import { WorkerPool } from '../pool/pool.js';
import type { BlockTarget, ReceiveSession } from '../pool/protocol.js';
import { applyZeroRun, blockPages } from '../pool/receive-task.js';
import { sameBytes } from '../wire/channel-init.js';
import { MAX_CHANNELS, PACKET_FLAG_SYNC, PacketReader, packetHeaderBytes, runsPageCount, type ControlMessage, type PacketHeader, type ParsedPacket } from '../wire/index.js';
import { ConnectionSorting, DATA_INIT_BYTES } from './connection-sorting.js';
import { ControlChannel } from './control-channel.js';
import type { Destination, DestinationFactory, Hello } from './destination.js';
import { FailureLatch } from './failure-latch.js';
import { PacketStaging } from './packet-staging.js';
import type { PendingConnection } from './pending-connections.js';
import { ReceivedChecksum } from './received-checksum.js';
import { ResumeKeys, type ResumeSecret } from './resume-secret.js';
import { RoundBarrier, type RoundPacket } from './round-barrier.js';
import { SessionControl } from './session-control.js';

/** Receiver options. */
export interface ReceiveOptions {
  /** Where pages go; built once the hello names the block table. */
  destination: DestinationFactory;
  /** Worker threads (decompress-threads); default: available cores. Ignored when `pool` is given. */
  threads?: number;
  pool?: WorkerPool;
  /**
   * How long to wait for the first sender to connect (its control connection, or a data
   * connection the session accepted); default: forever, as QEMU's `-incoming` waits.
   * Connections refused before that (a failed TLS handshake, a TLS peer at a receiver without
   * TLS, a data channel init of another session) do not end the wait. When it passes:
   * TransportError `ERR_ACCEPT_TIMEOUT`.
   */
  acceptTimeoutMs?: number;
  /**
   * How long the sender has to complete the handshake (hello and every data channel), counted
   * from its first connection, default 30 s. When it passes: TransportError `ERR_HANDSHAKE_TIMEOUT`.
   */
  handshakeTimeoutMs?: number;
  /**
   * How long any one connection may stay pending (see maxPendingConnections), default 10 s;
   * then it is refused with TransportError `ERR_CONNECTION_TIMEOUT` (a replacement still
   * waiting for its channel id: ProtocolError `ERR_CHANNEL_DUPLICATE`).
   */
  connectionTimeoutMs?: number;
  /** A migration during which nothing arrives and nothing is applied for this long fails, default 60 s. */
  idleTimeoutMs?: number;
  /** The most data channels a hello may ask for (1–255, default 255). */
  maxChannels?: number;
  /** The largest image a hello may describe, in bytes (default 1 TiB). */
  maxImageBytes?: number;
  /**
   * Connections held before they are accepted into the migration, default 64; more are refused
   * at once (TransportError `ERR_TOO_MANY_CONNECTIONS`). Pending are connections that have not
   * yet said what they are, data connections that came before the hello (their init's form is
   * checked at once, the rest once the hello is known), and a replacement for a channel id
   * still held by a connection the receiver is not reading.
   */
  maxPendingConnections?: number;
  /** Told of every connection refused without failing the migration. */
  onRefused?: (error: MultifdError) => void;
  /**
   * How long the session waits, after its control connection is lost, for the sender to
   * resume it on a new one (proving it knows the secret agreed in the hello), default 30 s;
   * then TransportError `ERR_LINK_DOWN`. After the report, how long the receiver stays for a
   * sender that may not have heard it. 0: no resume (a lost control connection fails at once).
   */
  reconnectTimeoutMs?: number;
  signal?: AbortSignal;
  /** qatzip, qpl, uadk: the codec's accelerator options (decode on the device if there is one, or require it; which library). */
  accelerator?: AcceleratorOptions;
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
  /** Data channels that broke during the migration (their packets were resent elsewhere). */
  channelsLost: number;
  /** Packets that arrived a second time (resends of packets already applied) and were skipped. */
  duplicatePackets: number;
  /** Normal pages decompressed on an accelerator (qatzip, qpl, uadk through the native shim). */
  hardwarePages: number;
  /** Times the sender resumed the session on a new control connection. */
  resumes: number;
}

/** Default of {@link ReceiveOptions.maxImageBytes}: 1 TiB. */
export const DEFAULT_MAX_IMAGE_BYTES = 2 ** 40;
/** Most refusals a receiver keeps for inspection (the oldest go first). */
const MAX_REFUSALS_KEPT = 100;

/** Packets one channel may have in workers before its socket is paused (backpressure). */
const MAX_IN_FLIGHT_PER_CHANNEL = 32;
/** Packets all channels together may have in workers: memory stays bounded whatever the channel count. */
const MAX_IN_FLIGHT_TOTAL = 64;
/**
 * What one channel may hold unread beyond its SYNC while the round is held at the barrier, in
 * packets of the session's largest size (header with `pagesPerPacket` runs plus the codec's
 * bound): 2 × 527 400 bytes for 128 pages of 4 KiB with zstd. Past it the socket is paused.
 */
export const BARRIER_READ_AHEAD_PACKETS = 2;
/** Longest an applied packet waits for its ack while more packets are in workers. */
const ACK_DELAY_MS = 5;

/** A packet on its way to a worker: where it came from and where it lies in the staging memory. */
interface Applying {
  channel: ReceiveChannel;
  header: PacketHeader;
  entry: RoundPacket<ReceiveChannel>;
  bytes: Uint8Array;
  ordinal: number;
}

/** Bytes a connection that has not proved its resume may send: a resume frame (80) with room to spare. */
const MAX_RESUME_BYTES = 4096;

/** Most packets one receive task carries (a batch forms only while every worker is busy). */
const MAX_PACKETS_PER_TASK = 8;

/** Names each receiving session for the pool workers. */
let nextSessionKey = 1;

/** Receives one migration from the connections given to `accept`. */
export class MigrationReceiver {
  /** Settles when the migration completed (checksum confirmed) or failed. */
  readonly result: Promise<ReceiveResult>;
  /** Connections refused without failing the migration (the latest {@link MAX_REFUSALS_KEPT}), each a typed error. */
  readonly refused: MultifdError[] = [];
  private readonly failure = new FailureLatch();
  private readonly pool: WorkerPool;
  private readonly sockets = new Set<Duplex>();
  /** The current connection of every channel id that connected, lost ones included. */
  private readonly channels = new Map<number, ReceiveChannel>();
  private readonly barrier = new RoundBarrier<ReceiveChannel>(() => this.roundSynced(), this.failure);
  /** Channels owing acks, written together (see {@link ack}). */
  private readonly ackQueue = new Set<ReceiveChannel>();
  private ackTimer: NodeJS.Timeout | undefined;
  private lastActivity = performance.now();
  private channelsLost = 0;
  private duplicatePackets = 0;
  private readonly sorting: ConnectionSorting;
  private control: SessionControl | undefined;
  private controlArrived!: (control: SessionControl) => void;
  private readonly controlReady = new Promise<SessionControl>((resolve) => (this.controlArrived = resolve));
  /** The session's resume secret, when the sender offered a key and resuming is on. */
  private resumeSecret: ResumeSecret | undefined;
  /** The last resume attempt accepted: a lower or equal one is a replay. */
  private resumeAttempt = 0;
  private resumes = 0;
  /** Runs while the control connection is lost: the sender must resume before it fires. */
  private resumeDeadline: NodeJS.Timeout | undefined;
  /** Set once the report is sent: from then on the sender may close its connections. */
  private reported = false;
  private hello: Hello | undefined;
  private destination: Destination | undefined;
  /** The destination factory's promise, from the hello on: a failure aborts what it builds. */
  private building: Promise<Destination> | undefined;
  private targets: readonly BlockTarget[] = [];
  private checksums: ReceivedChecksum | undefined;
  private inFlight = 0;
  /** Receive tasks in workers; a failed migration waits for them before it cleans up. */
  private readonly tasks = new Set<Promise<void>>();
  /** Packets dispatched while every worker was busy, for the next task. */
  private waiting: Applying[] = [];
  /** Where packets are assembled and read in place by the workers; sized once the hello is in. */
  private staging: PacketStaging | undefined;
  /** What the workers share for this migration's packets (see WorkerPool.receive). */
  private session: ReceiveSession | undefined;
  /** The staging memory's size when the session got its key. */
  private sessionStagingBytes = 0;
  /** See {@link BARRIER_READ_AHEAD_PACKETS}. */
  private maxReadAheadBytes = 0;
  private normalPages = 0;
  private readonly hardwarePages = new Int32Array(new SharedArrayBuffer(4));
  private zeroPages = 0;
  private bytesReceived = 0;
  private readonly startCpu = process.cpuUsage();
  /** Runs until the first sender connects, when acceptTimeoutMs is set. */
  private acceptTimer: NodeJS.Timeout | undefined;
  /** Starts with the first sender's connection: the handshake must be done in handshakeTimeoutMs. */
  private handshakeTimer: NodeJS.Timeout | undefined;
  private settled = false;

  constructor(private readonly options: ReceiveOptions) {
    this.pool = options.pool ?? new WorkerPool({ threads: options.threads });
    this.sorting = new ConnectionSorting(
      { maxPending: options.maxPendingConnections ?? 64, connectionTimeoutMs: options.connectionTimeoutMs ?? 10_000, refuse: (error) => this.refuse(error) },
      {
        arrived: (bytes) => this.arrived(bytes),
        track: (socket) => this.track(socket),
        control: (socket, head) => this.controlConnected(socket, head),
        resume: (pending, head) => this.resumeConnected(pending, head),
        data: (socket, id, head) => this.startChannel(socket, id, head),
        channels: () => ({
          live: new Set([...this.channels.values()].filter((c) => !c.lost).map((c) => c.id)),
          blocked: (id) => this.channels.get(id)?.blocked === true,
        }),
        fail: (error) => this.fail(error),
      },
    );
    const acceptMs = options.acceptTimeoutMs;
    if (acceptMs !== undefined) {
      this.acceptTimer = setTimeout(() => {
        const last = this.refused.at(-1);
        const refusals = last ? ` (refused ${this.refused.length} connection(s), the last because ${last.message})` : '';
        this.fail(new TransportError('ERR_ACCEPT_TIMEOUT', `no sender connected within ${acceptMs} ms${refusals}`, { context: { timeoutMs: acceptMs } }));
      }, acceptMs);
    }
    const idleMs = options.idleTimeoutMs ?? 60_000;
    const idle = setInterval(() => {
      if (this.hello && !this.resumeDeadline && performance.now() - this.lastActivity > idleMs) {
        this.fail(new TransportError('ERR_IDLE_TIMEOUT', `nothing arrived and nothing was applied for ${idleMs} ms`, { context: { timeoutMs: idleMs } }));
      }
    }, Math.min(1000, idleMs / 4));
    idle.unref();
    options.signal?.addEventListener('abort', () => this.fail(new MultifdError('ERR_CANCELLED', 'receive cancelled')), { once: true });
    this.result = this.failure
      .race(this.run())
      .catch((error: Error) => this.cleanUpFailed(error))
      .finally(async () => {
        this.settled = true;
        clearTimeout(this.acceptTimer);
        clearTimeout(this.handshakeTimer);
        clearTimeout(this.ackTimer);
        clearTimeout(this.resumeDeadline);
        clearInterval(idle);
        this.sorting.closeAll();
        for (const socket of this.sockets) socket.end();
        if (!options.pool) await this.pool.close();
      });
    // Whoever holds the receiver may await `result` late or never (a CLI that failed to start,
    // a caller that only wanted the destination): its failure must not become an unhandled
    // rejection that kills the process with a stack trace. Awaiting it still throws.
    this.result.catch(() => {});
  }

  /**
   * Hands a new connection to the receiver (control or data, told apart by its magic). It is
   * pending until accepted: see src/migration/connection-sorting.ts.
   */
  accept(socket: Duplex): void {
    if (this.settled) return void socket.destroy();
    this.sorting.accept(socket);
  }

  /**
   * A failed migration: lets workers finish what they hold (they never write a packet that
   * failed), tells the sender why (best effort), and leaves nothing that looks like a complete
   * image.
   */
  private async cleanUpFailed(error: Error): Promise<never> {
    for (const socket of this.sockets) socket.pause();
    await Promise.allSettled([...this.tasks]);
    await this.control?.send({ type: 'error', code: (error as MultifdError).code ?? 'ERR_RECEIVER', message: error.message }).catch(() => {});
    // A destination still being built (an image file being created) is awaited: aborted
    // only once it exists, or its `.partial` file would outlive the migration.
    const destination = this.destination ?? (await this.building?.catch(() => undefined));
    await destination?.abort();
    for (const socket of this.sockets) socket.destroy();
    throw error;
  }

  /**
   * The first sender connected: the accept wait is over and the handshake clock starts. A
   * refused connection (TLS, garbage) never gets here, so it cannot start a 30 s countdown
   * that ends a receiver still waiting for a good sender.
   */
  private senderArrived(): void {
    if (this.handshakeTimer || this.settled) return;
    clearTimeout(this.acceptTimer);
    const handshakeMs = this.handshakeTimeoutMs;
    this.handshakeTimer = setTimeout(() => {
      if (this.channelsReady()) return;
      const refusals = this.refused.length ? ` (refused: ${this.refused.map((e) => e.code).join(', ')})` : '';
      this.fail(new TransportError('ERR_HANDSHAKE_TIMEOUT', `the sender did not complete the handshake within ${handshakeMs} ms of connecting${refusals}`, { context: { timeoutMs: handshakeMs } }));
    }, handshakeMs);
  }

  /** Keeps `socket` to close with the migration. */
  private track(socket: Duplex): void {
    this.sockets.add(socket);
    socket.on('close', () => this.sockets.delete(socket));
  }

  private controlConnected(socket: Duplex, head: Uint8Array): void {
    this.senderArrived();
    socket.on('data', (c: Buffer) => this.arrived(c.byteLength));
    this.control = new SessionControl(new ControlChannel(socket, { initial: head, onFlood: (error) => this.fail(error) }), () => this.controlLost());
    this.controlArrived(this.control);
  }

  /**
   * The control connection closed. Once the report is sent that is the sender's to decide
   * (see complete()); before, the session waits reconnectTimeoutMs for a resume when it has a
   * resume secret, and fails at once when it has none.
   */
  private controlLost(): void {
    if (this.settled || this.reported) return;
    if (!this.resumeSecret) return this.fail(new TransportError('ERR_CONTROL_CLOSED', 'the control connection closed before the migration completed'));
    if (this.resumeDeadline) return;
    const timeoutMs = this.reconnectTimeoutMs;
    const lostAt = Date.now();
    this.resumeDeadline = setTimeout(() => this.fail(linkDown(Date.now() - lostAt, 'the control connection was lost and the sender did not resume the session', timeoutMs)), timeoutMs);
  }

  /**
   * Another control connection, once the session exists: it must open with a resume that
   * proves it is the sender of the hello (src/migration/resume-secret.ts). Until its first
   * frame is read and checked it stays pending; refused, it is told why and recorded.
   */
  private resumeConnected(pending: PendingConnection, head: Uint8Array): void {
    // Not yet trusted: it may send a resume frame's worth ahead, and a flood is its own refusal.
    const channel = new ControlChannel(pending.socket, { initial: head, maxBacklogBytes: MAX_RESUME_BYTES, onFlood: (error) => pending.refuse(error) });
    pending.socket.on('data', (c: Buffer) => this.arrived(c.byteLength));
    channel.next(this.options.connectionTimeoutMs ?? 10_000).then(
      (message) => {
        const refusal = this.checkResume(message);
        if (!refusal) return this.resumed(pending, channel, message as Extract<ControlMessage, { type: 'resume' }>);
        void channel.send({ type: 'error', code: refusal.code, message: refusal.message }).catch(() => {}).finally(() => pending.refuse(refusal));
      },
      (error: MultifdError) => pending.refuse(error),
    );
  }

  /** Why a resume is refused: not a resume, no resume secret, another session, a replayed attempt or a wrong proof; undefined when it passes. */
  private checkResume(message: ControlMessage): MultifdError | undefined {
    const refuse = (code: string, field: string, expected: string, got: string | number) => protocolError(code, { channel: 'control', field, expected, got });
    if (message.type !== 'resume') return refuse('ERR_CONNECTION_MAGIC', 'type', 'resume (one control connection per session)', message.type);
    if (!this.resumeSecret || this.settled || this.failure.error) return refuse('ERR_RESUME_REFUSED', 'session', 'a session that can be resumed', 'none');
    if (!sameBytes(message.sessionId, this.hello!.sessionId)) return refuse('ERR_SESSION_MISMATCH', 'sessionId', 'this session', 'another');
    if (message.attempt <= this.resumeAttempt) return refuse('ERR_RESUME_REPLAY', 'attempt', `> ${this.resumeAttempt}`, message.attempt);
    if (!this.resumeSecret.verify('resume', message, message.proof)) return refuse('ERR_RESUME_PROOF', 'proof', 'proof of the session secret', 'a wrong proof');
    return undefined;
  }

  /**
   * A valid resume: the session carries on over `channel`. It answers with its own proof and
   * count, sends again what the sender missed, and drops every data connection it had: the
   * sender redials them once resumed, and an old one may be dead without knowing it (a link
   * that dropped packets silently).
   */
  private resumed(pending: PendingConnection, channel: ControlChannel, message: Extract<ControlMessage, { type: 'resume' }>): void {
    pending.accept();
    channel.trust((error) => this.fail(error));
    this.resumeAttempt = message.attempt;
    this.resumes++;
    clearTimeout(this.resumeDeadline);
    this.resumeDeadline = undefined;
    const claim = { sessionId: message.sessionId, attempt: message.attempt, received: this.control!.received };
    void channel.send({ type: 'resume-ack', ...claim, proof: this.resumeSecret!.prove('resume-ack', claim) }).catch(() => {});
    this.guard(() => this.control!.replace(channel, message.received));
    for (const data of this.channels.values()) if (!data.lost) data.socket.destroy();
  }

  private async run(): Promise<ReceiveResult> {
    const control = await this.failure.race(this.controlReady);
    const hello = await this.failure.race(control.next(this.handshakeTimeoutMs));
    if (hello.type !== 'hello') throw protocolError('ERR_HANDSHAKE', { channel: 'control', packet: 0, field: 'type', expected: 'hello', got: hello.type });
    if (!sessionCodecKnown(hello.codecWireId)) throw protocolError('ERR_CONTROL_FIELD', { channel: 'control', packet: 0, field: 'codecWireId', expected: 'a known codec', got: hello.codecWireId });
    this.checkLimits(hello);
    this.hello = hello;
    this.sorting.helloRead(hello);
    this.building = this.options.destination(hello);
    this.destination = await this.failure.race(this.building);
    this.openSession(hello, this.destination);
    const keys = hello.resumeKey && this.reconnectTimeoutMs > 0 ? new ResumeKeys() : undefined;
    if (keys) this.resumeSecret = keys.secret(hello.resumeKey!, hello.sessionId);
    await control.send({ type: 'hello-ack', sessionId: hello.sessionId, ...(keys && { resumeKey: keys.publicKey }) });
    if (keys) control.startNumbering();
    this.sorting.opened();

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

  /** Sizes what the session's packets need: the staging memory, the receive bitmaps, the checksum tables, what the workers share. */
  private openSession(hello: Hello, destination: Destination): void {
    const largestPacket = largestPacketBytes(hello);
    this.maxReadAheadBytes = BARRIER_READ_AHEAD_PACKETS * largestPacket;
    this.targets = destination.targets;
    this.checksums = new ReceivedChecksum(hello.blocks.map((b) => b.byteLength));
    this.staging = new PacketStaging(largestPacket);
    this.session = {
      key: nextSessionKey++,
      staging: this.staging.memory,
      targets: [...this.targets],
      received: hello.blocks.map((b) => new Int32Array(new SharedArrayBuffer(4 * Math.ceil(b.byteLength / hello.pageSize / 32)))),
      unitHashes: this.checksums.unitHashes,
      staleChunks: this.checksums.stale,
      hardwarePages: this.hardwarePages,
      codecWireId: hello.codecWireId,
      pageSize: hello.pageSize,
      pagesPerPacket: hello.pagesPerPacket,
      accelerator: this.options.accelerator,
    };
  }

  /** Starts channel `id` on a connection the sorting accepted; `head` holds its init and what followed it. */
  private startChannel(socket: Duplex, id: number, head: Uint8Array): void {
    this.senderArrived();
    const hello = this.hello!;
    const reader = new PacketReader({
      channel: id,
      pageSize: hello.pageSize,
      pagesPerPacket: hello.pagesPerPacket,
      blocks: hello.blocks.map((b) => ({ pageCount: b.byteLength / hello.pageSize })),
      // With auto each packet names its codec; otherwise it must be the hello's.
      codecWireId: hello.codecWireId === AUTO_WIRE_ID ? undefined : hello.codecWireId,
      allocate: (byteLength) => this.staging!.take(byteLength),
    });
    const channel = new ReceiveChannel(id, socket, reader, head, DATA_INIT_BYTES, {
      arrived: (bytes) => this.arrived(bytes),
      readable: (c, parse) =>
        this.guard(() => {
          parse();
          this.pump(c);
          this.updateFlow(c);
        }),
      // A channel that ends or breaks before the migration completed is lost: its packets cut
      // short are dropped and the sender resends what was not acknowledged. A lost channel
      // only costs the migration if the sender cannot make up for it: then the round-end's
      // packet count, or the control connection, fails it.
      lost: (c) => {
        this.ackQueue.delete(c);
        if (!this.reported) {
          this.channelsLost++;
          this.barrier.check();
        }
        this.sorting.released(c.id);
      },
      moved: (from, to) => {
        this.sockets.delete(from);
        this.track(to);
      },
    });
    this.channels.set(id, channel);
    channel.start();
    this.updateFlow(channel);
  }

  /** Parses and dispatches the channel's packets until it reaches the SYNC of the current round. */
  private pump(channel: ReceiveChannel): void {
    while (channel.syncedRound < this.barrier.round) {
      const next = channel.next();
      if (!next) return;
      this.dispatch(channel, next.packet, next.ordinal);
    }
  }

  private dispatch(channel: ReceiveChannel, packet: ParsedPacket, ordinal: number): void {
    const { header } = packet;
    const { round } = this.barrier;
    if (header.flags & PACKET_FLAG_SYNC) {
      // Normally the next round; a reconnected channel starts with the SYNC of the last round
      // the sender ended, which may be the one before ours.
      if (header.round <= channel.syncedRound || header.round > round) {
        throw protocolError('ERR_PACKET_ROUND', { channel: channel.id, packet: ordinal, field: 'round', expected: `${channel.syncedRound + 1} to ${round}`, got: header.round });
      }
      channel.syncedRound = header.round;
      return this.barrier.check();
    }
    if (header.round !== round) {
      throw protocolError('ERR_PACKET_ROUND', { channel: channel.id, packet: ordinal, field: 'round', expected: round, got: header.round });
    }
    const { entry, duplicate } = this.barrier.admit(header.sequence, channel);
    if (duplicate) {
      // A resend of a packet this round already has (its first channel broke before the ack
      // got through): acknowledged here too once it is applied, and applied only once.
      this.duplicatePackets++;
      this.staging!.give(packet.bytes);
      if (entry.applied) this.ack(channel, header.sequence);
      return;
    }
    channel.inFlight++;
    this.inFlight++;
    this.updateFlow(channel);
    this.waiting.push({ channel, header, entry, bytes: packet.bytes, ordinal });
    this.submitWaiting();
  }

  /**
   * Hands waiting packets to the workers: at once while a worker is free, else together once
   * one is, so that under load a task carries several packets and its hand-off costs less per
   * packet.
   */
  private submitWaiting(): void {
    while (this.waiting.length > 0 && this.tasks.size < this.pool.threads) {
      // A worker's view of the staging memory keeps the length it had when the worker got the
      // session (V8 updates another thread's view of a grown shared memory only lazily): after
      // a growth the session gets a new key, so every worker takes the memory afresh.
      if (this.sessionStagingBytes !== this.staging!.byteLength) {
        this.session = { ...this.session!, key: nextSessionKey++ };
        this.sessionStagingBytes = this.staging!.byteLength;
      }
      const batch = this.waiting.splice(0, MAX_PACKETS_PER_TASK);
      const staged = batch.map(({ bytes, channel, ordinal }) => ({ byteOffset: bytes.byteOffset, packetBytes: bytes.byteLength, channel: channel.id, ordinal }));
      const task: Promise<void> = this.pool
        .receive(this.session!, staged)
        .then(() => batch.forEach((applying) => this.applied(applying)))
        .catch((error: Error) => this.fail(error))
        .finally(() => {
          for (const { bytes } of batch) this.staging!.give(bytes);
          this.tasks.delete(task);
          if (!this.failure.error) this.submitWaiting();
        });
      this.tasks.add(task);
    }
  }

  /** A packet is in place: count it, acknowledge it wherever it arrived, and read on. */
  private applied({ channel, header, entry }: Applying): void {
    this.lastActivity = performance.now();
    channel.inFlight--;
    this.inFlight--;
    this.normalPages += runsPageCount(header.normalRuns);
    this.zeroPages += runsPageCount(header.zeroRuns);
    for (const to of entry.ackTo) this.ack(to, header.sequence);
    for (const c of this.channels.values()) this.updateFlow(c);
    this.barrier.applied(entry);
  }

  /**
   * Queues an ack of `sequence` on `channel`'s connection. Acks go out together: at once when
   * the workers have caught up (the sender may be waiting to end its round), else after
   * {@link ACK_DELAY_MS}, so a stream of packets costs a few ack writes, not one per packet.
   */
  private ack(channel: ReceiveChannel, sequence: number): void {
    if (!channel.owe(sequence)) return;
    this.ackQueue.add(channel);
    if (this.inFlight === 0) return this.flushAcks();
    this.ackTimer ??= setTimeout(() => this.flushAcks(), ACK_DELAY_MS);
  }

  private flushAcks(): void {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    for (const channel of this.ackQueue) channel.flushAcks();
    this.ackQueue.clear();
  }

  /** Counts bytes from any connection; arriving bytes keep the idle timeout away. */
  private arrived(bytes: number): void {
    this.bytesReceived += bytes;
    this.lastActivity = performance.now();
  }

  /** Records a connection refused without failing the migration (also for refusals before it got here, e.g. a failed TLS handshake). */
  refuse(error: MultifdError): void {
    this.refused.push(error);
    if (this.refused.length > MAX_REFUSALS_KEPT) this.refused.shift();
    this.options.onRefused?.(error);
  }

  /**
   * Refuses a hello asking for more than this receiver allows: too many channels, or an image
   * larger than `maxImageBytes`.
   * @throws TransportError `ERR_LIMIT_CHANNELS` or `ERR_LIMIT_IMAGE`.
   */
  private checkLimits(hello: Hello): void {
    const maxChannels = this.options.maxChannels ?? MAX_CHANNELS;
    if (hello.channels > maxChannels) {
      throw new TransportError('ERR_LIMIT_CHANNELS', `the sender asks for ${hello.channels} data channels, more than this receiver's limit of ${maxChannels}`, { context: { expected: `<= ${maxChannels}`, got: hello.channels } });
    }
    const maxImageBytes = this.options.maxImageBytes ?? DEFAULT_MAX_IMAGE_BYTES;
    const imageBytes = hello.blocks.reduce((n, b) => n + b.byteLength, 0);
    if (imageBytes > maxImageBytes) {
      throw new TransportError('ERR_LIMIT_IMAGE', `the sender's image of ${imageBytes} bytes exceeds this receiver's limit of ${maxImageBytes} bytes`, { context: { expected: `<= ${maxImageBytes}`, got: imageBytes } });
    }
  }

  private get reconnectTimeoutMs(): number {
    return this.options.reconnectTimeoutMs ?? 30_000;
  }

  private get handshakeTimeoutMs(): number {
    return this.options.handshakeTimeoutMs ?? 30_000;
  }

  /**
   * Reads a channel's socket only while it, and all channels together, have few enough packets
   * in workers, and while what it holds unread past its SYNC stays under the read-ahead cap;
   * paused, TCP's own flow control slows the sender.
   *
   * A channel at the round's barrier keeps reading up to the cap, so that the next round's
   * first packets are at hand and its end of stream is seen when it comes; past the cap an
   * authenticated sender could otherwise make the receiver buffer without bound. Pausing it
   * cannot hold the barrier: the barrier waits only for channels that have not synced (never
   * paused for read-ahead), the workers and the round-end frame. A paused socket may not report
   * its peer's end until it is read again, which happens when the round is released (see
   * finishRound); until then the channel counts as live, and a replacement connection for its
   * id waits for it (connection-sorting.ts) instead of being refused as a duplicate.
   */
  private updateFlow(channel: ReceiveChannel): void {
    const readAheadFull = channel.syncedRound >= this.barrier.round && channel.bufferedBytes >= this.maxReadAheadBytes;
    channel.setBlocked(readAheadFull || channel.inFlight >= MAX_IN_FLIGHT_PER_CHANNEL || this.inFlight >= MAX_IN_FLIGHT_TOTAL);
  }

  /** Every channel id of the hello has connected at least once. */
  private channelsReady(): boolean {
    return this.hello !== undefined && this.channels.size === this.hello.channels;
  }

  /** Every channel connected, every live one synced the round, and no packet is in a worker. */
  private roundSynced(): boolean {
    if (!this.channelsReady() || this.inFlight > 0) return false;
    for (const channel of this.channels.values()) if (!channel.lost && channel.syncedRound < this.barrier.round) return false;
    return true;
  }

  private async finishRound(message: Extract<ControlMessage, { type: 'round-end' }>): Promise<void> {
    await this.barrier.end(message.round, message.packets, () => this.channelsLost);
    // The round's pages are in place: take the hashes of the chunks it changed.
    this.checksums!.refresh();
    // Channels paused with their read-ahead full are resumed here: what they hold may start
    // with the next round's SYNC, which dispatches nothing that would resume them.
    for (const channel of this.channels.values()) {
      this.guard(() => {
        this.pump(channel);
        this.updateFlow(channel);
      });
    }
  }

  /** zero-page-detection=legacy: zero runs arrive on the control channel (main thread applies them). */
  private applyLegacyZeroPages(message: Extract<ControlMessage, { type: 'zero-pages' }>): void {
    const hello = this.hello!;
    const block = hello.blocks[message.blockIndex];
    const pageCount = block ? block.byteLength / hello.pageSize : 0;
    const { round } = this.barrier;
    if (message.round !== round || !block) {
      throw protocolError('ERR_CONTROL_FIELD', { channel: 'control', field: 'zero-pages', expected: `round ${round}, block < ${hello.blocks.length}`, got: `round ${message.round}, block ${message.blockIndex}` });
    }
    for (const run of message.runs) {
      if (run.first + run.count > pageCount) {
        throw protocolError('ERR_PACKET_PAGE_INDEX', { channel: 'control', field: 'zero-pages run', expected: `≤ ${pageCount}`, got: run.first + run.count });
      }
    }
    const applied = blockPages(this.session!, message.blockIndex);
    for (const run of message.runs) applyZeroRun(this.targets[message.blockIndex]!, applied, run);
    this.zeroPages += runsPageCount(message.runs);
  }

  private async complete(control: SessionControl, message: Extract<ControlMessage, { type: 'complete' }>): Promise<ReceiveResult> {
    const rounds = this.barrier.round - 1;
    if (message.rounds !== rounds) {
      throw protocolError('ERR_CONTROL_FIELD', { channel: 'control', field: 'complete.rounds', expected: rounds, got: message.rounds });
    }
    const checksum = this.checksums!.checksum();
    const cpu = process.cpuUsage(this.startCpu);
    await control.send({ type: 'report', normalPages: this.normalPages, zeroPages: this.zeroPages, checksum, cpuMicros: cpu.user + cpu.system });
    this.reported = true;
    if (checksum !== message.checksum) {
      throw new ProtocolError('ERR_CHECKSUM_MISMATCH', `received image checksum ${hex(checksum)} differs from the sender's ${hex(message.checksum)}`);
    }
    await this.destination!.complete();
    this.failure.settle();
    // The image is complete; a sender that resumes now has not heard the report.
    if (this.resumeSecret) await Promise.race([control.peerEnded(), sleep(this.reconnectTimeoutMs, undefined, { ref: false })]);
    return {
      status: 'completed',
      normalPages: this.normalPages,
      zeroPages: this.zeroPages,
      rounds,
      bytesReceived: this.bytesReceived,
      checksum,
      channelsLost: this.channelsLost,
      duplicatePackets: this.duplicatePackets,
      hardwarePages: Atomics.load(this.hardwarePages, 0),
      resumes: this.resumes,
    };
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

/** Header with one run per normal page, plus the largest payload the session's codec (with `auto`, any codec) may send for a full packet. */
function largestPacketBytes(hello: Hello): number {
  const codecs = hello.codecWireId === AUTO_WIRE_ID ? codecInfos().map((info) => codecByWireId(info.wireId)!) : [codecByWireId(hello.codecWireId)!];
  const runs = Array.from({ length: hello.pagesPerPacket }, (_, i) => ({ first: 2 * i, count: 1 }));
  return packetHeaderBytes(runs, []) + Math.max(...codecs.map((codec) => codec.payloadBound(hello.pagesPerPacket, hello.pageSize)));
}

function hex(value: bigint): string {
  return value.toString(16).padStart(16, '0');
}
