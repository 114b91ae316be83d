// The source side of a migration: agree the session on the control channel, open the data
// channels, then for each window of guest pages run a send task on the pool and hand its
// packets to the channels (src/channel/send-channels.ts: least-queued first, kept until the
// receiver acknowledges them, resent when their channel breaks). A round ends, once the
// receiver has acknowledged every packet of it, with a SYNC packet on every data channel and a
// round-end frame. Round 1 sends every page; a live migration then syncs its dirty log and
// sends the dirty set, round after round, until QEMU's rule allows the switchover: pause the
// workload, send what is left, and end with the image checksum, which the receiver must
// confirm (with `verify`, the checksum of the source hashed afresh after the last round
// instead of the one tracked round by round).
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { writesReachedFile } from '../channel/send-channel.js';
import { LinkOutage, type LinkEvent } from '../channel/link-outage.js';
import { SendChannels, linkDown } from '../channel/send-channels.js';
import { AUTO_WIRE_ID, getCodec } from '../codecs/registry.js';
import { CodecChooser, type ChoiceOutcome } from './codec-choice.js';
import type { MigrationControl } from './migration-control.js';
import type { AcceleratorOptions, Codec, CodecId } from '../codecs/types.js';
import { MultifdError, TransportError } from '../errors.js';
import { CHECKSUM_CHUNK_BYTES, combineChecksums } from '../memory/checksum.js';
import { WorkerPool } from '../pool/pool.js';
import type { SendResult } from '../pool/send-task.js';
import { TokenBucket } from '../transport/index.js';
import { runsPageCount, type ControlMessage, type PageRun, type ZeroPageDetection } from '../wire/index.js';
import { ControlChannel } from './control-channel.js';
import { ControlResume } from './control-resume.js';
import { BandwidthMeter, BANDWIDTH_WINDOW_MS, Convergence, type ConvergenceOptions } from './convergence.js';
import { bitmapRuns, countDirty, type DirtyBitmaps, type DirtyLog } from './dirty/index.js';
import { FailureLatch } from './failure-latch.js';
import { chunkBases, hashSource, legacyZeroPageSplit, markStale, mergeBitmaps, rehashStale, tasksOfRuns } from './round-planning.js';
import { ResumeKeys } from './resume-secret.js';
import { SessionControl } from './session-control.js';
import { forEachWindow, type PageSource, type SourceWindow } from './source.js';
import { StatsTracker, type MigrationStats } from './stats.js';

/** Live pre-copy: where dirty pages come from and how the workload is steered. */
export interface LiveOptions extends ConvergenceOptions {
  /** Reports the pages written since the last sync; migrate() starts it before round 1 and stops it at the end. */
  dirtyLog: DirtyLog;
  /** Stops the workload at switchover; resolves once nothing writes any more. */
  pause: () => Promise<void>;
  /** Auto-converge's throttle, called with the new cpu-throttle-percentage. */
  throttle?: (percent: number) => void;
}

/** How to migrate; names follow QEMU's migration parameters. */
export interface MigrateOptions {
  /** The pages to send. */
  source: PageSource;
  /** Opens one connection to the receiver (called once for control, once per data channel). */
  connect: () => Promise<Duplex>;
  /** multifd-channels: data channels, 1..255 (default 2). */
  channels?: number;
  /**
   * multifd-compression (default 'none'). `auto`: the codec is chosen task by task among none,
   * lz4 and zstd 1–3 from what the migration measures (codec-choice.ts); each packet names its own.
   */
  codec?: CodecId | 'auto';
  /** The codec's level (multifd-zlib-level, multifd-zstd-level, ...); its default when omitted. */
  level?: number;
  /** qatzip, qpl, uadk: the codec's accelerator options (use the device if there is one, or require it; which library). */
  accelerator?: AcceleratorOptions;
  /** zero-page-detection (default 'multifd'). */
  zeroPageDetection?: ZeroPageDetection;
  /** max-bandwidth in bytes per second over all channels; 0 or absent = unlimited. */
  maxBandwidth?: number;
  /** Worker threads (compress-threads); default: available cores. Ignored when `pool` is given. */
  threads?: number;
  /** A pool to reuse (its threads setting wins). */
  pool?: WorkerPool;
  /** Normal pages per packet (default 512 KiB / page size, QEMU's MULTIFD_PACKET_SIZE). */
  pagesPerPacket?: number;
  /** Live pre-copy of a GuestMemory that keeps changing; absent: one round. */
  live?: LiveOptions;
  /** Cancels the migration. */
  signal?: AbortSignal;
  /** Changes parameters while the migration runs (max-bandwidth), as QEMU's migrate-set-parameters. */
  control?: MigrationControl;
  /** Called with a stats snapshot about every `progressIntervalMs` (default 250) and at the end. */
  onProgress?: (stats: MigrationStats) => void;
  progressIntervalMs?: number;
  /** How long to wait for the receiver's hello-ack and for its final report (default 30 s). */
  handshakeTimeoutMs?: number;
  /**
   * Wait for the receiver's hello-ack, its acks and its checksum report (default true). False
   * for a migration stream file, which nobody reads until later: its receiver checks the
   * checksum, and a broken channel fails the migration (nothing can be resent).
   */
  awaitReceiver?: boolean;
  /** Replace a broken data channel with a new connection (default true); its packets are resent either way. */
  reconnect?: boolean;
  /**
   * How long an outage may last: the control connection lost, or every data channel at once.
   * The sender redials (the control connection with a `resume` that proves it is the sender
   * of the hello) and the session carries on where the acknowledgements say; past this it
   * fails with `ERR_LINK_DOWN` (default 30 000).
   */
  reconnectTimeoutMs?: number;
  /**
   * How long the receiver may stay silent (no ack, no report) while the sender waits for it
   * before the sender treats the link as lost, drops every connection and resumes: a link
   * that drops packets silently never resets a connection (default 10 000).
   */
  silenceTimeoutMs?: number;
  /** Told when an outage starts (`outage`) and when the link is back (`resumed`). */
  onLinkEvent?: (event: LinkEvent) => void;
  /**
   * Hash the whole source again after the last round (at the pause, for a live migration;
   * a file source is read again) and send that checksum for the receiver to match, instead
   * of the one tracked from round 1's hashes plus re-hashes of the chunks the dirty log named.
   * The tracked checksum proves the transport delivered what was sent; the fresh one also
   * proves nothing changed unseen: a write the dirty log missed, or a source file written to
   * during the send, fails with `ERR_VERIFY_MISMATCH` instead of completing with a stale
   * destination. Into a stream file (`awaitReceiver: false`), where nobody answers, such a
   * change fails the send before its final frame. Costs one more read of the source, in the
   * downtime of a live migration. Default false.
   */
  verify?: boolean;
}

/**
 * Guest bytes per send task: 4 MiB, a whole number of 1 MiB checksum chunks. Measured with 2
 * workers and 4 tasks in flight on the corpus (send tasks only, no sockets): `none` moves 2.0,
 * 5.9, 8.0, 8.3, 8.2 and 9.3 GB/s with tasks of 0.5, 1, 2, 4, 8 and 16 MiB, zstd-1 823 to 966
 * MB/s; past 4 MiB the hand-off is amortised and bigger tasks only coarsen the pipeline.
 */
const TASK_BYTES = 4 * CHECKSUM_CHUNK_BYTES;
/** MigrateOptions.reconnectTimeoutMs's default. */
export const DEFAULT_RECONNECT_TIMEOUT_MS = 30_000;
/** MigrateOptions.silenceTimeoutMs's default. */
export const DEFAULT_SILENCE_TIMEOUT_MS = 10_000;

/**
 * Migrates `options.source` to a receiver and resolves with the final statistics once the
 * receiver confirmed the image checksum (`status: 'completed'`).
 * @throws MultifdError (ProtocolError, TransportError, CodecError; `ERR_CHECKSUM_MISMATCH`,
 * `ERR_NOT_CONVERGING`, `ERR_CANCELLED`) with `context.status`; the receiver never presents a
 * failed migration's image as complete.
 */
export async function migrate(options: MigrateOptions): Promise<MigrationStats> {
  return new SendSession(options).run();
}

/**
 * One migration, seen from the sender: the handshake, the rounds and the completion, over a
 * control channel and a {@link SendChannels}. Every wait is raced against one FailureLatch, so
 * the first failure anywhere (a connection, the receiver's error frame, a worker,
 * cancellation) stops every step with that error.
 */
class SendSession {
  private readonly source: PageSource;
  private readonly pageSize: number;
  private readonly channelCount: number;
  /** The codec, or for `auto` the first candidate (what a SYNC packet names). */
  private readonly codec: Codec;
  private readonly level: number | undefined;
  /** `auto`'s chooser; undefined for a fixed codec. */
  private readonly chooser: CodecChooser | undefined;
  /** The sockets pushed back in the last bandwidth window (see linkBytesPerMs). */
  private linkPushedBack = false;
  private drainWaitsSeen = 0;
  private readonly pagesPerPacket: number;
  private readonly pagesPerTask: number;
  private readonly zeroPageDetection: ZeroPageDetection;
  /** False for a stream file: nobody answers (see MigrateOptions.awaitReceiver). */
  private readonly awaitReceiver: boolean;
  private readonly stats: StatsTracker;
  private readonly pool: WorkerPool;
  /**
   * Send tasks under way at most: two per worker thread, so each worker has its next task
   * queued while the main thread writes the packets of its last.
   */
  private readonly maxInFlight: number;
  private readonly bandwidthWaits = new BandwidthWaits();
  private readonly bucket: TokenBucket | undefined;
  private readonly failure = new FailureLatch();
  /** Every connection opened, control and data: destroyed at a failure, ended at completion. */
  private readonly sockets: Duplex[] = [];
  /** The send tasks under way. */
  private readonly inFlight = new Set<Promise<void>>();
  /** The migration is over (or the receiver reported): a connection closing now is no failure. */
  private finished = false;
  private readonly meter = new BandwidthMeter();
  /** The hash of every checksum chunk of the source, in block order, as last sent. */
  private readonly chunkHashes: bigint[] = [];
  /** The index in chunkHashes of each block's first chunk. */
  private readonly blockChunkBase: number[];
  /** The control connection, resumable; set by handshake(). */
  private control!: SessionControl;
  /** Resumes the control connection when it is lost; set once the receiver agreed a resume secret. */
  private resume: ControlResume | undefined;
  private readonly outage: LinkOutage;
  private readonly reconnectTimeoutMs: number;
  /** How many control messages were sent up to the last round-end: the receiver has read those once the next round is acknowledged. */
  private controlSentAtRoundEnd = 0;
  /** When the complete frame was sent, until the report arrives: the receiver owes an answer. */
  private awaitingReportSince: number | undefined;
  /** The data channels, set by start(). */
  private channels!: SendChannels;
  /** The receiver's report, or why it failed; absent for a stream file. Set by start(). */
  private report: Promise<ControlMessage | void> | undefined;
  /** When the dirty log started: the first dirty page rate is measured from here. */
  private trackingSince = 0;
  /** The next packet sequence number; data packets and SYNCs share one sequence. */
  private sequence = 0;
  private round = 0;
  private packetsInRound = 0;
  /** When a live migration paused its workload: from then on its pages hold still. */
  private pausedAt: number | undefined;

  constructor(private readonly options: MigrateOptions) {
    const { source, live } = options;
    const { pageSize } = source;
    if (live && !source.guest) throw new TypeError('live migration needs a GuestMemory source (guestMemorySource)');
    this.source = source;
    this.pageSize = pageSize;
    this.channelCount = options.channels ?? 2;
    this.pool = options.pool ?? new WorkerPool({ threads: options.threads });
    this.chooser = options.codec === 'auto' ? new CodecChooser(this.pool.threads) : undefined;
    this.codec = this.chooser ? this.chooser.candidates[0]!.codec : getCodec(options.codec ?? 'none');
    this.pagesPerPacket = options.pagesPerPacket ?? Math.max(1, (512 * 1024) / pageSize);
    this.level = this.codec.info.levels ? (options.level ?? this.codec.info.levels.default) : undefined;
    this.codec.createEncoder({ pageSize, maxPages: this.pagesPerPacket, level: this.level, accelerator: options.accelerator }); // validates the options up front
    this.zeroPageDetection = options.zeroPageDetection ?? 'multifd';
    this.awaitReceiver = options.awaitReceiver ?? true;
    this.stats = new StatsTracker(source.blocks.reduce((n, b) => n + b.byteLength, 0), pageSize);
    this.stats.auto = this.chooser;
    this.maxInFlight = 2 * this.pool.threads;
    this.pagesPerTask = TASK_BYTES / pageSize;
    // With a control, a bucket always: the limit may be set later.
    this.bucket = options.maxBandwidth || options.control ? new TokenBucket({ bytesPerSecond: options.maxBandwidth ?? 0, sleep: (ms) => this.bandwidthWaits.sleep(ms) }) : undefined;
    if (this.bucket) options.control?.attach(this.bucket);
    this.blockChunkBase = chunkBases(source);
    this.outage = new LinkOutage(this.stats, options.onLinkEvent);
    this.reconnectTimeoutMs = options.reconnectTimeoutMs ?? DEFAULT_RECONNECT_TIMEOUT_MS;
  }

  /** The whole migration: start, round 1, the live rounds, completion; and the cleanup, however it ends. */
  async run(): Promise<MigrationStats> {
    const { options, stats } = this;
    const onAbort = () => this.failure.fail(new MultifdError('ERR_CANCELLED', 'migration cancelled'));
    options.signal?.addEventListener('abort', onAbort, { once: true });
    const progress = options.onProgress ? setInterval(() => options.onProgress!(stats.snapshot()), options.progressIntervalMs ?? 250) : undefined;
    const metering = setInterval(() => {
      this.sampleLink();
      this.checkSilence();
    }, BANDWIDTH_WINDOW_MS);
    try {
      options.signal?.throwIfAborted();
      await this.start();
      await this.sendAllPages();
      if (options.live) await this.liveRounds(options.live);
      return await this.complete();
    } catch (error) {
      throw await this.failed(error as Error);
    } finally {
      // The bandwidth waits end with the migration (see BandwidthWaits).
      this.bandwidthWaits.wakeAll();
      clearInterval(progress);
      clearInterval(metering);
      options.live?.dirtyLog.stop();
      options.signal?.removeEventListener('abort', onAbort);
      if (!options.pool) await this.pool.close();
      options.onProgress?.(stats.snapshot());
    }
  }

  /** Opens one connection, kept to be ended or destroyed with the migration. */
  private async connect(): Promise<Duplex> {
    const socket = await this.options.connect();
    this.sockets.push(socket);
    // A connection that arrives after the failure (a reconnect under way) would keep the
    // process alive: failed() has already destroyed the others.
    if (this.failure.error) socket.destroy();
    return socket;
  }

  /** The handshake, then the data channels; the migration is active from here on. */
  private async start(): Promise<void> {
    const { options, stats } = this;
    const sessionId = new Uint8Array(randomBytes(16));
    await this.handshake(sessionId);
    this.channels = await SendChannels.open({
      count: this.channelCount,
      sessionId,
      connect: () => this.connect(),
      failure: this.failure,
      stats,
      awaitReceiver: this.awaitReceiver,
      reconnect: options.reconnect ?? true,
      reconnectTimeoutMs: this.reconnectTimeoutMs,
      outage: this.outage,
      allLost: () => {
        if (!this.resume || this.outage.isDown('control')) return;
        this.control.drop();
        this.controlLost();
      },
      bucket: this.bucket,
      nextSequence: () => this.takeSequences(1),
      isFinished: () => this.finished,
    });
    // From now on the receiver speaks only to report, or to say why it failed.
    this.report = this.awaitReceiver
      ? this.control.next(0).then((message) => {
          if (message.type === 'report') {
            this.finished = true; // the receiver closes its connections next
            this.awaitingReportSince = undefined;
            this.outage.restored('data'); // the receiver has every packet: nothing is down any more
          }
          if (message.type === 'error') this.failure.fail(new TransportError(message.code, `receiver failed: ${message.message}`));
          return message;
        }, (error: Error) => this.failure.fail(error))
      : undefined;
    if (options.live) await options.live.dirtyLog.start();
    this.trackingSince = performance.now();
    stats.setupMs = stats.elapsedMs();
    stats.status = 'active';
  }

  /**
   * Opens the control connection and sends the hello; waits for the hello-ack unless nobody
   * answers (a stream file). When both ends offer a resume key, the session's resume secret
   * is agreed here, and from then on a lost control connection is resumed, not fatal.
   */
  private async handshake(sessionId: Uint8Array): Promise<void> {
    const { options, source, failure } = this;
    const controlSocket = await failure.race(this.connect());
    this.control = new SessionControl(new ControlChannel(controlSocket), () => this.controlLost());
    const keys = this.awaitReceiver && (options.reconnect ?? true) ? new ResumeKeys() : undefined;
    await failure.race(
      this.control.send({
        type: 'hello',
        sessionId,
        pageSize: this.pageSize,
        channels: this.channelCount,
        codecWireId: this.chooser ? AUTO_WIRE_ID : this.codec.info.wireId,
        level: this.level ?? 0,
        zeroPageDetection: this.zeroPageDetection,
        pagesPerPacket: this.pagesPerPacket,
        blocks: source.blocks.map((b) => ({ name: b.name, byteLength: b.byteLength })),
        ...(keys && { resumeKey: keys.publicKey }),
      }),
    );
    if (!this.awaitReceiver) return;
    const ack = await failure.race(this.control.next(options.handshakeTimeoutMs ?? 30_000));
    if (ack.type === 'error') throw new TransportError(ack.code, `receiver refused the migration: ${ack.message}`);
    if (ack.type !== 'hello-ack') throw new TransportError('ERR_HANDSHAKE', `expected hello-ack from the receiver, got ${ack.type}`);
    if (!keys || !ack.resumeKey) return;
    const secret = keys.secret(ack.resumeKey, sessionId);
    this.control.startNumbering();
    const { control, outage, stats, reconnectTimeoutMs } = this;
    this.resume = new ControlResume({ sessionId, secret, control, outage, failure, stats, reconnectTimeoutMs, connect: () => this.connect(), isFinished: () => this.finished });
  }

  /**
   * The control connection closed: resumed when the session can be, else the migration fails
   * (unless it is over). A resume takes the whole link back: the receiver drops the data
   * connections it had, so they are dropped here too, and redialled once it has resumed.
   */
  private controlLost(): void {
    if (this.finished) return;
    if (this.resume) {
      this.resume.lost();
      this.channels?.dropAll();
      return;
    }
    this.failure.fail(new TransportError('ERR_CONTROL_CLOSED', 'control connection to the receiver closed before the migration completed'));
  }

  /**
   * Called every bandwidth window: an outage past the reconnect timeout fails the migration;
   * a receiver silent for silenceTimeoutMs while packets wait
   * for its acks, or the complete frame for its report, is taken for a link that drops
   * packets without resetting anything. Every connection is dropped, which starts an outage:
   * the control connection is resumed and the data channels redialled, as after a reset.
   */
  private checkSilence(): void {
    if (this.finished) return;
    // However the outage goes (connections open again but the receiver never answers), it
    // ends at the reconnect timeout.
    const down = this.outage.downForMs();
    if (down >= this.reconnectTimeoutMs) return void this.failure.fail(linkDown(down, 'the receiver did not answer again', this.reconnectTimeoutMs));
    if (!this.resume || down > 0) return;
    const reportSilence = this.awaitingReportSince === undefined ? 0 : performance.now() - this.awaitingReportSince;
    const silence = Math.max(this.channels?.silentForMs() ?? 0, reportSilence);
    if (silence < (this.options.silenceTimeoutMs ?? DEFAULT_SILENCE_TIMEOUT_MS)) return;
    this.awaitingReportSince &&= performance.now();
    // Control first: the data channels dropped next must wait for its resume to redial.
    this.control.drop();
    this.controlLost();
  }

  /** The first of `count` consecutive sequence numbers, taken. */
  private takeSequences(count: number): number {
    const first = this.sequence;
    this.sequence += count;
    return first;
  }

  /**
   * Sends `runs` (window-relative; all pages when absent) of the window's pages [first,
   * first + pageCount). Resolves once the packets are written; `held` gets a promise that
   * settles once the receiver has them all (or the migration failed): until then the
   * packets may be views of the window's memory.
   */
  private async sendTask(window: SourceWindow, first: number, pageCount: number, runs: PageRun[] | undefined, hashChunks: boolean, held?: Promise<void>[]): Promise<void> {
    const { failure, stats, pool, pageSize } = this;
    if (this.zeroPageDetection === 'legacy') {
      const split = legacyZeroPageSplit(window, first, pageCount, runs, pageSize);
      if (split.zeroRuns.length) await failure.race(this.control.send({ type: 'zero-pages', round: this.round, blockIndex: window.blockIndex, runs: split.zeroRuns }));
      stats.zeroPages += split.zeroPages;
      runs = split.normalRuns;
    }
    const sequenceBase = this.takeSequences(pageCount + 1);
    const plan = this.chooser?.choose(this.linkBytesPerMs(), this.channels.loopback);
    const codec = plan?.choice.codec ?? this.codec;
    // Not raced against the failure latch: the task ends only once no worker reads the
    // window, so its memory can be handed back (a failure waits at most for the encodes
    // in flight).
    const result = await pool.send({
      memory: window.memory,
      byteOffset: window.byteOffset + first * pageSize,
      blockIndex: window.blockIndex,
      firstPage: window.firstPage + first,
      pageCount,
      runs,
      round: this.round,
      sequenceBase,
      codecWireId: codec.info.wireId,
      level: plan ? plan.choice.level : this.level,
      accelerator: this.options.accelerator,
      rawIfLarger: plan !== undefined,
      sample: plan?.sample?.map((c) => ({ codecWireId: c.codec.info.wireId, level: c.level })),
      pageSize,
      pagesPerPacket: this.pagesPerPacket,
      zeroPageDetection: this.zeroPageDetection,
      hashChunks,
      stable: !this.options.live || this.pausedAt !== undefined,
    });
    failure.check();
    // At once, not after the writes (which may wait on the link): the tasks chosen meanwhile see it.
    if (plan) this.chooser!.record(plan, choiceOutcome(result, pageSize));
    if (hashChunks) {
      const chunkBase = this.blockChunkBase[window.blockIndex]! + ((window.firstPage + first) * pageSize) / CHECKSUM_CHUNK_BYTES;
      result.chunkHashes.forEach((hash, i) => (this.chunkHashes[chunkBase + i] = hash));
    }
    // The packets are views of one buffer (and of the window): it goes back to the pool once
    // the receiver acknowledged every one of them (for a stream file: once the file took them).
    let outstanding = result.packets.length;
    let allReleased!: () => void;
    const released = new Promise<void>((resolve) => (allReleased = resolve));
    held?.push(failure.race(released).catch(() => {}));
    const release = () => {
      if (--outstanding > 0) return;
      pool.recycle(result.buffer);
      allReleased();
    };
    if (outstanding === 0) release();
    for (const packet of result.packets) await this.channels.write(packet, release);
    this.countSent(result, (runs ? runsPageCount(runs) : pageCount) * pageSize);
  }

  /** Counts a task's packets and pages, `bytes` of guest memory now sent. */
  private countSent(result: SendResult, bytes: number): void {
    const { stats } = this;
    this.packetsInRound += result.packets.length;
    stats.normalPages += result.normalPages;
    stats.zeroPages += result.zeroPages;
    stats.payloadBytes += result.payloadBytes;
    stats.hardwarePages += result.hardwarePages;
    stats.remainingBytes -= bytes;
    stats.dataBytes = this.channels.bytesWritten;
  }

  /** A bandwidth window: the meter's sample, and whether the sockets pushed back in it. */
  private sampleLink(): void {
    this.meter.sample(this.stats.transferredBytes(), this.stats.guestBytes());
    const waits = this.channels?.drainWaits ?? 0;
    this.linkPushedBack = waits > this.drainWaitsSeen;
    this.drainWaitsSeen = waits;
  }

  /**
   * The wire bytes per ms the link takes, for `auto`: max-bandwidth when set; else the measured
   * rate while the sockets push back (the link is full); else unbounded (Infinity). On loopback
   * there is no link to fill: pushback there is the receiver's, and compressing more cannot
   * relieve a receiver that must then decompress too.
   */
  private linkBytesPerMs(): number {
    if (this.bucket && !this.bucket.unlimited) return this.bucket.bytesPerSecond / 1000;
    const linkFull = this.linkPushedBack && !this.channels.loopback && this.meter.bytesPerMs > 0;
    return linkFull ? this.meter.bytesPerMs : Infinity;
  }

  /** Starts a task once fewer than maxInFlight are under way; `done` settles when it has. */
  private async submit(start: () => Promise<void>): Promise<{ done: Promise<void> }> {
    while (this.inFlight.size >= this.maxInFlight) await this.failure.race(Promise.race(this.inFlight));
    this.failure.check();
    const done: Promise<void> = start().then(() => void this.inFlight.delete(done));
    done.catch((error: Error) => this.failure.fail(error));
    this.inFlight.add(done);
    return { done };
  }

  private beginRound(): void {
    this.round++;
    this.packetsInRound = 0;
    this.stats.rounds = this.round;
  }

  /**
   * Ends a round: once the receiver acknowledged all of its packets (so a broken channel's
   * resends cannot land behind a SYNC), a SYNC packet on every live channel, then the
   * round-end frame.
   */
  private async endRound(): Promise<void> {
    await this.failure.race(Promise.all(this.inFlight));
    await this.channels.acknowledgedAll();
    // The receiver reads a round's packets only after the round-end before them: with one of
    // them acknowledged, it has read every control message up to that round-end.
    if (this.packetsInRound > 0) this.control.confirm(this.controlSentAtRoundEnd);
    this.channels.sync(this.round);
    this.stats.dataBytes = this.channels.bytesWritten;
    await this.failure.race(this.control.send({ type: 'round-end', round: this.round, packets: this.packetsInRound }));
    this.controlSentAtRoundEnd = this.control.sent;
  }

  /** Round 1 sends every page, hashing checksum chunks on the way. */
  private async sendAllPages(): Promise<void> {
    this.beginRound();
    await forEachWindow(this.source, this.failure, (window) => this.sendWindow(window));
    await this.endRound();
  }

  /** Submits a send task per 4 MiB of the window; hands the window back once nothing can read it any more. */
  private async sendWindow(window: SourceWindow): Promise<void> {
    const tasks: Promise<void>[] = [];
    const held: Promise<void>[] = [];
    try {
      for (let first = 0; first < window.pageCount; first += this.pagesPerTask) {
        const pageCount = Math.min(this.pagesPerTask, window.pageCount - first);
        tasks.push((await this.submit(() => this.sendTask(window, first, pageCount, undefined, true, held))).done);
      }
    } finally {
      // The window's memory may be refilled only once every task reading it has settled and
      // the receiver has every packet that may be a view of it; failed ones too, or a failure
      // would leave the ring without memory for good.
      void Promise.allSettled(tasks).then(() => Promise.all(held)).then(() => window.release());
    }
  }

  /** Sends the pages of `bitmaps`, in tasks of up to 4 MiB spans of a block (a dirty round). */
  private async sendDirty(bitmaps: DirtyBitmaps): Promise<void> {
    const guest = this.source.guest!;
    for (const [blockIndex, block] of guest.blocks.entries()) {
      const window: SourceWindow = { blockIndex, firstPage: 0, pageCount: block.pageCount, memory: block.memory, byteOffset: 0, release() {} };
      for (const task of tasksOfRuns(bitmapRuns(bitmaps[blockIndex]!, block.pageCount), this.pagesPerTask)) {
        await this.submit(() => this.sendTask(window, task.first, task.pageCount, task.runs, false));
      }
    }
  }

  /**
   * The rounds of a live migration after round 1: sync the dirty log and send the dirty set,
   * round after round, until QEMU's rule allows the switchover; then pause the workload and
   * send what is left, and re-hash the checksum chunks written since round 1 hashed them.
   * @throws MultifdError `ERR_NOT_CONVERGING` after `maxRounds` rounds without a switchover.
   */
  private async liveRounds(live: LiveOptions): Promise<void> {
    const { stats, pageSize, meter } = this;
    const stale = new Set<number>(); // checksum chunks written since they were hashed
    const convergence = new Convergence(live);
    stats.downtimeLimitMs = convergence.downtimeLimitMs;
    let lastSyncMs = this.trackingSince;
    const sync = async () => {
      const bitmaps = await this.failure.race(live.dirtyLog.sync());
      const now = performance.now();
      const dirtyPages = countDirty(bitmaps);
      // The rate describes the running guest: the sync after the pause does not count.
      if (this.pausedAt === undefined) stats.dirtyPagesRate = Math.round(dirtyPages / Math.max((now - lastSyncMs) / 1000, 1e-3));
      lastSyncMs = now;
      markStale(stale, bitmaps, this.source, pageSize, this.blockChunkBase);
      return { bitmaps, dirtyPages };
    };
    for (;;) {
      const { bitmaps, dirtyPages } = await sync();
      stats.remainingBytes = dirtyPages * pageSize;
      const decision = convergence.decide(stats.remainingBytes, meter);
      stats.expectedDowntimeMs = decision.expectedDowntimeMs;
      if (decision.switchover) {
        // Switchover: stop the workload, take the last dirty set, send everything left.
        this.pausedAt = performance.now();
        await this.failure.race(live.pause());
        const left = mergeBitmaps(bitmaps, (await sync()).bitmaps);
        this.beginRound();
        stats.remainingBytes = countDirty(left) * pageSize;
        await this.sendDirty(left);
        await this.endRound();
        await rehashStale(this.pool, this.source, stale, this.chunkHashes, this.blockChunkBase);
        return;
      }
      const raised = convergence.rampDowntimeLimit();
      if (raised !== undefined) stats.downtimeLimitMs = raised;
      if (this.round >= convergence.maxRounds) {
        throw new MultifdError(
          'ERR_NOT_CONVERGING',
          `not converging after ${this.round} rounds: ${stats.remainingBytes} bytes dirty, above the ${Math.round(decision.thresholdBytes)}-byte switchover threshold ` +
            `(guest bytes ${Math.round(meter.guestBytesPerMs * 1000)} per s over the link × downtime-limit)${live.autoConverge ? `, throttled at ${convergence.throttlePercent} %` : '; consider auto-converge'}`,
        );
      }
      const throttle = convergence.onSync(stats.remainingBytes, stats.guestBytes());
      if (throttle !== undefined) {
        stats.throttlePercent = throttle;
        live.throttle?.(throttle);
      }
      this.beginRound();
      await this.sendDirty(bitmaps);
      await this.endRound();
    }
  }

  /**
   * Ends a migration whose every round is acknowledged: the image checksum in the complete
   * frame, then the receiver's confirmation of it or, for a stream file, the last writes
   * reaching the file.
   */
  private async complete(): Promise<MigrationStats> {
    const { stats, failure, report } = this;
    // Every packet is acknowledged (endRound waited): a data channel closing from now on, as the
    // receiver closes them once it has reported, loses nothing.
    this.channels.settle();
    const unsentChunks = await this.finalChecksum();
    this.awaitingReportSince = performance.now();
    await failure.race(this.control.send({ type: 'complete', rounds: this.round, checksum: stats.sourceChecksum! }));
    stats.controlBytes = this.control.bytesWritten;
    if (report) await this.confirmed(report, unsentChunks);
    else await this.streamFileWritten();
    if (this.options.verify) stats.verified = true;
    stats.finish('completed');
    failure.settle();
    // A stream file's connections are ended already.
    if (report) for (const socket of this.sockets) socket.end();
    return stats.snapshot();
  }

  /**
   * Sets the source's checksum: the one tracked round by round or, with `verify`, the source
   * hashed afresh. Returns how many checksum chunks changed after they were sent and were
   * not sent again (0 without `verify`).
   * @throws MultifdError `ERR_VERIFY_MISMATCH` for a stream file with such chunks.
   */
  private async finalChecksum(): Promise<number> {
    const { stats } = this;
    stats.sourceChecksum = combineChecksums(this.chunkHashes);
    if (!this.options.verify) return 0;
    // A chunk whose fresh hash differs from the tracked one changed after it was sent and no
    // later round sent it again.
    const fresh = await hashSource(this.pool, this.source, this.failure, this.blockChunkBase, TASK_BYTES);
    const unsentChunks = fresh.filter((hash, i) => hash !== this.chunkHashes[i]).length;
    stats.sourceChecksum = combineChecksums(fresh);
    // A stream file has no receiver to ask: what it holds is what was sent.
    if (!this.report && unsentChunks > 0) throw verifyMismatch(stats.sourceChecksum, unsentChunks, this.chunkHashes.length, this.options.live !== undefined);
    return unsentChunks;
  }

  /**
   * Waits for the receiver's report and checks its checksum against the source's.
   * @throws MultifdError `ERR_VERIFY_MISMATCH` (`unsentChunks` > 0) or `ERR_CHECKSUM_MISMATCH` when they differ.
   */
  private async confirmed(report: Promise<ControlMessage | void>, unsentChunks: number): Promise<void> {
    const { stats } = this;
    // An outage on the way may take up to its timeout to resume.
    const final = await withTimeout(report, (this.options.handshakeTimeoutMs ?? 30_000) + (this.resume ? this.reconnectTimeoutMs : 0), this.failure);
    this.finished = true;
    if (final?.type !== 'report') throw new TransportError('ERR_HANDSHAKE', `expected the receiver's report, got ${final?.type}`);
    if (this.pausedAt !== undefined) stats.downtimeMs = performance.now() - this.pausedAt;
    stats.destinationChecksum = final.checksum;
    stats.recvCpuPercent = Math.round((final.cpuMicros / 10 / Math.max(stats.elapsedMs(), 1e-3)) * 100) / 100;
    if (final.checksum === stats.sourceChecksum) return;
    if (unsentChunks > 0) throw verifyMismatch(stats.sourceChecksum!, unsentChunks, this.chunkHashes.length, this.options.live !== undefined, final.checksum);
    throw new MultifdError('ERR_CHECKSUM_MISMATCH', `destination image checksum ${hex(final.checksum)} differs from the source's ${hex(stats.sourceChecksum)}`);
  }

  /**
   * Nobody confirms a stream file: it is complete once every connection has handed all its
   * writes to the file, not when they are merely queued. Connections close as they end.
   */
  private async streamFileWritten(): Promise<void> {
    this.finished = true;
    await this.failure.race(Promise.all([writesReachedFile(this.control.socket, 'control channel'), this.channels.end()]));
  }

  /** The migration failed: record why, stop every step and connection, and return the error to throw. */
  private async failed(error: Error): Promise<Error> {
    const { stats } = this;
    this.finished = true;
    const cancelled = this.options.signal?.aborted === true;
    stats.finish(cancelled ? 'cancelled' : 'failed', error.message);
    this.failure.fail(error);
    // The receiver hears why, if its control connection is still there: else it would wait
    // for a resume until its own reconnect timeout.
    const told = this.awaitReceiver ? this.control?.endWithError((error as MultifdError).code ?? 'ERR_SENDER', error.message.slice(0, 1000)) : undefined;
    for (const socket of this.sockets) if (socket !== told) socket.destroy();
    await Promise.allSettled(this.inFlight);
    if (error instanceof MultifdError) error.context.status = stats.status;
    return error;
  }
}

/** What a send task of `auto` produced, for its chooser. */
function choiceOutcome(result: SendResult, pageSize: number): ChoiceOutcome {
  return {
    guestBytes: (result.normalPages + result.zeroPages) * pageSize,
    normalBytes: result.normalPages * pageSize,
    wireBytes: result.packets.reduce((n, p) => n + p.byteLength, 0),
    payloadBytes: result.payloadBytes,
    workerMs: result.workerMs,
    encodeMs: result.encodeMs,
    packets: result.packets.length,
    normalPages: result.normalPages,
    rawPages: result.rawPages,
    sampleBytes: result.sampleBytes,
    sampleEncodings: result.sampleEncodings,
  };
}

/**
 * The token bucket's sleeps, all cut short when the migration ends: dozens of tasks may queue
 * behind the bucket's debt, and their timers would keep a failed sender's process alive for
 * seconds. (One AbortSignal for them all would collect a listener per wait.)
 */
class BandwidthWaits {
  private readonly sleeping = new Map<NodeJS.Timeout, () => void>();

  /** Resolves after `ms`, or at wakeAll(). */
  sleep(ms: number): Promise<void> {
    return new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        this.sleeping.delete(timer);
        resolve();
      }, ms);
      this.sleeping.set(timer, resolve);
    });
  }

  /** Ends every sleep now: its writer has given up already (raced against the failure). */
  wakeAll(): void {
    for (const [timer, wake] of this.sleeping) {
      clearTimeout(timer);
      wake();
    }
  }
}

/**
 * `ERR_VERIFY_MISMATCH`: the destination (its checksum; absent for a stream file, which holds
 * what was sent) differs from the source hashed afresh, `unsentChunks` of `chunkCount` chunks.
 */
function verifyMismatch(fresh: bigint, unsentChunks: number, chunkCount: number, live: boolean, destination?: bigint): MultifdError {
  const what = destination === undefined ? 'the pages in the stream file differ' : `destination image checksum ${hex(destination)} differs`;
  return new MultifdError(
    'ERR_VERIFY_MISMATCH',
    `${what} from the source ${live ? 'at the pause' : 'after the send'} (hashed afresh: ${hex(fresh)}): ` +
      `${unsentChunks} of ${chunkCount} checksum chunks changed after they were sent and no later round resent them: ` +
      (live ? 'a write the dirty log did not see' : 'the source file changed during the send'),
    { context: { sourceChecksum: hex(fresh), destinationChecksum: destination === undefined ? undefined : hex(destination), unsentChunks } },
  );
}

/** `promise` raced against the latch and a timeout; the timer goes as soon as either ends the wait. */
function withTimeout<T>(promise: Promise<T>, ms: number, failure: FailureLatch): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new TransportError('ERR_CONTROL_TIMEOUT', `no report from the receiver within ${ms} ms`)), ms);
  });
  return failure.race(Promise.race([promise, timeout])).finally(() => clearTimeout(timer));
}

function hex(value: bigint | undefined): string {
  return (value ?? 0n).toString(16).padStart(16, '0');
}
