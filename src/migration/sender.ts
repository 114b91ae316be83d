// The source side of a migration: agree the session on the control channel, open the data
// channels, then for each window of guest pages run a send task on the pool and spread the
// packets over the channels (least-queued first, as QEMU hands a batch to an idle channel).
// A round ends with a SYNC packet on every data channel and a round-end frame. Round 1 sends
// every page; a live migration then syncs its dirty log and sends the dirty set, round after
// round, until QEMU's rule allows the switchover: pause the workload, send what is left, and
// end with the image checksum, which the receiver must confirm (with `verify`, the checksum of
// the source hashed afresh after the last round instead of the one tracked round by round).
// Every data packet is kept until the receiver acknowledges it. When a data channel breaks,
// the sender opens a new one with the same id (once per loss) and writes the unacknowledged
// packets again on the live channels; the receiver applies a packet it already has only once.
import { randomBytes } from 'node:crypto';
import type { Duplex } from 'node:stream';
import { getCodec } from '../codecs/registry.js';
import type { AcceleratorOptions, CodecId } from '../codecs/types.js';
import { MultifdError, TransportError } from '../errors.js';
import { CHECKSUM_CHUNK_BYTES, combineChecksums } from '../memory/checksum.js';
import { WorkerPool } from '../pool/pool.js';
import type { SentPacket } from '../pool/send-task.js';
import type { ZeroPageDetection } from '../wire/index.js';
import { ended } from '../transport/backpressure.js';
import { drained, TokenBucket } from '../transport/index.js';
import { AckReader, encodeChannelInit, encodeSyncPacket, runsPageCount, type PageRun } from '../wire/index.js';
import { ControlChannel } from './control-channel.js';
import { BandwidthMeter, BANDWIDTH_WINDOW_MS, Convergence, type ConvergenceOptions } from './convergence.js';
import { bitmapRuns, countDirty, type DirtyBitmaps, type DirtyLog } from './dirty/index.js';
import { FailureLatch } from './failure-latch.js';
import { chunkBases, hashSource, legacyZeroPageSplit, markStale, mergeBitmaps, rehashStale, tasksOfRuns } from './round-planning.js';
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
  /** multifd-compression (default 'none'). */
  codec?: CodecId;
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
/** A channel with this much unsent data is full: wait for it to drain before giving it more. */
const CHANNEL_HIGH_WATER = 8 << 20;

interface DataChannel {
  id: number;
  socket: Duplex;
  bytesWritten: number;
  lost: boolean;
}

/** A data packet written but not acknowledged yet: kept to be written again if its channel breaks. */
interface Unacked {
  packet: SentPacket;
  channel: DataChannel;
  /** Called once the receiver acknowledged it. */
  release: () => void;
}

/**
 * Migrates `options.source` to a receiver and resolves with the final statistics once the
 * receiver confirmed the image checksum (`status: 'completed'`).
 * @throws MultifdError (ProtocolError, TransportError, CodecError; `ERR_CHECKSUM_MISMATCH`,
 * `ERR_NOT_CONVERGING`, `ERR_CANCELLED`) with `context.status`; the receiver never presents a
 * failed migration's image as complete.
 */
export async function migrate(options: MigrateOptions): Promise<MigrationStats> {
  const { source, live } = options;
  const { pageSize } = source;
  if (live && !source.guest) throw new TypeError('live migration needs a GuestMemory source (guestMemorySource)');
  const channelCount = options.channels ?? 2;
  const codec = getCodec(options.codec ?? 'none');
  const pagesPerPacket = options.pagesPerPacket ?? Math.max(1, (512 * 1024) / pageSize);
  const level = codec.info.levels ? (options.level ?? codec.info.levels.default) : undefined;
  const { accelerator } = options;
  codec.createEncoder({ pageSize, maxPages: pagesPerPacket, level, accelerator }); // validates the options up front
  const zeroPageDetection = options.zeroPageDetection ?? 'multifd';
  const stats = new StatsTracker(source.blocks.reduce((n, b) => n + b.byteLength, 0), pageSize);
  const pool = options.pool ?? new WorkerPool({ threads: options.threads });
  // The bandwidth waits end with the migration: dozens of tasks may queue behind the bucket's
  // debt, and their timers would keep a failed sender's process alive for seconds. (One
  // AbortSignal for them all would collect a listener per wait.)
  const sleeping = new Map<NodeJS.Timeout, () => void>();
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(() => {
        sleeping.delete(timer);
        resolve();
      }, ms);
      sleeping.set(timer, resolve);
    });
  const bucket = options.maxBandwidth ? new TokenBucket({ bytesPerSecond: options.maxBandwidth, sleep }) : undefined;
  const failure = new FailureLatch();
  const sockets: Duplex[] = [];
  const inFlight = new Set<Promise<void>>();
  let finished = false;
  const connect = async () => {
    const socket = await options.connect();
    sockets.push(socket);
    // A connection that arrives after the failure (a reconnect under way) would keep the
    // process alive: the cleanup below has already run.
    if (failure.error) socket.destroy();
    return socket;
  };
  const onAbort = () => failure.fail(new MultifdError('ERR_CANCELLED', 'migration cancelled'));
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const progress = options.onProgress ? setInterval(() => options.onProgress!(stats.snapshot()), options.progressIntervalMs ?? 250) : undefined;
  const meter = new BandwidthMeter();
  const metering = setInterval(() => meter.sample(stats.transferredBytes()), BANDWIDTH_WINDOW_MS);

  try {
    options.signal?.throwIfAborted();
    const sessionId = new Uint8Array(randomBytes(16));
    const controlSocket = await failure.race(connect());
    const controlLost = (why: string, cause?: Error) => finished || failure.fail(new TransportError('ERR_CONTROL_CLOSED', `control connection to the receiver ${why}`, { cause }));
    controlSocket.on('error', (error) => controlLost(`failed: ${error.message}`, error));
    controlSocket.on('close', () => controlLost('closed before the migration completed'));
    const control = new ControlChannel(controlSocket);
    await failure.race(
      control.send({
        type: 'hello',
        sessionId,
        pageSize,
        channels: channelCount,
        codecWireId: codec.info.wireId,
        level: level ?? 0,
        zeroPageDetection,
        pagesPerPacket,
        blocks: source.blocks.map((b) => ({ name: b.name, byteLength: b.byteLength })),
      }),
    );
    const awaitReceiver = options.awaitReceiver ?? true;
    if (awaitReceiver) {
      const ack = await failure.race(control.next(options.handshakeTimeoutMs ?? 30_000));
      if (ack.type === 'error') throw new TransportError(ack.code, `receiver refused the migration: ${ack.message}`);
      if (ack.type !== 'hello-ack') throw new TransportError('ERR_HANDSHAKE', `expected hello-ack from the receiver, got ${ack.type}`);
    }

    const channels: DataChannel[] = [];
    const unacked = new Map<number, Unacked>();
    let allAcked: (() => void) | undefined;
    const channelWaiters: Array<() => void> = [];
    let lastSyncedRound = 0;
    let dataDone = false;

    const onAcks = (sequences: number[]) => {
      for (const sequence of sequences) {
        const packet = unacked.get(sequence);
        if (!packet) continue; // a late second ack of a resent packet
        unacked.delete(sequence);
        packet.release();
      }
      if (unacked.size === 0) allAcked?.();
    };

    /** Opens data channel `id`: its init, then (when it replaces a broken one) the SYNC of the last round ended. */
    const openChannel = async (id: number): Promise<DataChannel> => {
      const socket = await failure.race(connect());
      if (finished) {
        socket.destroy();
        throw new TransportError('ERR_CHANNEL_CLOSED', `data channel ${id} opened after the migration ended`);
      }
      const channel: DataChannel = { id, socket, bytesWritten: 0, lost: false };
      const acks = new AckReader(id);
      socket.on('data', (chunk: Buffer) => {
        try {
          acks.push(chunk);
          for (let batch = acks.next(); batch; batch = acks.next()) onAcks(batch);
        } catch (error) {
          failure.fail(error as Error);
        }
      });
      socket.on('error', () => channelLost(channel));
      socket.on('close', () => channelLost(channel));
      const init = encodeChannelInit({ sessionId, channelId: id });
      socket.write(init);
      channel.bytesWritten += init.byteLength;
      if (lastSyncedRound > 0) {
        const sync = encodeSyncPacket(lastSyncedRound, sequence++);
        socket.write(sync);
        channel.bytesWritten += sync.byteLength;
      }
      channels.push(channel);
      channelWaiters.splice(0).forEach((resume) => resume());
      return channel;
    };

    /** A broken data channel: replace it if allowed, then write its unacknowledged packets again. */
    const channelLost = (channel: DataChannel) => {
      if (finished || dataDone || channel.lost) return;
      channel.lost = true;
      stats.channelsLost++;
      if (!awaitReceiver) {
        failure.fail(new TransportError('ERR_CHANNEL_CLOSED', `data channel ${channel.id} closed before the migration completed`));
        return;
      }
      const recover = async () => {
        if (options.reconnect ?? true) {
          try {
            await openChannel(channel.id);
            stats.channelsReconnected++;
          } catch {
            // The remaining channels carry on.
          }
        }
        if (channels.every((c) => c.lost)) {
          throw new TransportError('ERR_CHANNEL_CLOSED', `every data channel broke (${stats.channelsLost} lost) and none could be reopened`);
        }
        for (const entry of unacked.values()) {
          if (entry.channel !== channel) continue;
          stats.packetsResent++;
          stats.resentBytes += entry.packet.byteLength;
          await write(entry.packet, entry.release);
        }
      };
      recover().catch((error: Error) => failure.fail(error));
    };

    let sequence = 0;
    for (let id = 0; id < channelCount; id++) await openChannel(id);
    // From now on the receiver speaks only to report, or to say why it failed.
    const report = awaitReceiver
      ? control.next(0).then((message) => {
          if (message.type === 'report') finished = true; // the receiver closes its connections next
          if (message.type === 'error') failure.fail(new TransportError(message.code, `receiver failed: ${message.message}`));
          return message;
        }, (error: Error) => failure.fail(error))
      : undefined;
    if (live) await live.dirtyLog.start();
    const trackingSince = performance.now();
    stats.setupMs = stats.elapsedMs();
    stats.status = 'active';

    /** The live channel with the least data queued, once there is one. */
    const leastQueued = async (): Promise<DataChannel> => {
      for (;;) {
        let best: DataChannel | undefined;
        for (const c of channels) if (!c.lost && (!best || c.socket.writableLength < best.socket.writableLength)) best = c;
        if (best) return best;
        await failure.race(new Promise<void>((resolve) => channelWaiters.push(resolve)));
      }
    };

    /**
     * Writes a data packet on the least queued live channel, its parts corked into one writev.
     * `release` runs once the receiver acknowledged it (for a stream file: once the file took
     * it); until then it is kept in `unacked`, to be written again if its channel breaks.
     */
    const write = async (packet: SentPacket, release: () => void) => {
      let channel = await leastQueued();
      if (channel.socket.writableLength >= CHANNEL_HIGH_WATER) {
        // A channel that breaks during the wait is lost, not this packet: its loss handler
        // replaces it and resends what it held, and this packet goes to a live one below.
        await failure.race(drained(channel.socket)).catch(() => failure.check());
      }
      if (bucket) await failure.race(bucket.acquire(packet.byteLength));
      failure.check();
      if (channel.lost) channel = await leastQueued();
      if (awaitReceiver) unacked.set(packet.sequence, { packet, channel, release });
      const { socket } = channel;
      const last = packet.parts.length - 1;
      socket.cork();
      packet.parts.forEach((part, i) => socket.write(part, i === last && !awaitReceiver ? release : undefined));
      socket.uncork();
      channel.bytesWritten += packet.byteLength;
    };

    /** Resolves once the receiver acknowledged every packet written so far. */
    const acknowledgedAll = async () => {
      while (awaitReceiver && unacked.size > 0) await failure.race(new Promise<void>((resolve) => (allAcked = resolve)));
    };

    const chunkHashes: bigint[] = [];
    const blockChunkBase = chunkBases(source);
    /** When a live migration paused its workload: from then on its pages hold still. */
    let pausedAt: number | undefined;
    let round = 0;
    let packetsInRound = 0;
    const maxInFlight = 2 * pool.threads;
    const pagesPerTask = TASK_BYTES / pageSize;

    /**
     * Sends `runs` (window-relative; all pages when absent) of the window's pages [first,
     * first + pageCount). Resolves once the packets are written; `held` gets a promise that
     * settles once the receiver has them all (or the migration failed): until then the
     * packets may be views of the window's memory.
     */
    const sendTask = async (window: SourceWindow, first: number, pageCount: number, runs: PageRun[] | undefined, hashChunks: boolean, held?: Promise<void>[]) => {
      if (zeroPageDetection === 'legacy') {
        const split = legacyZeroPageSplit(window, first, pageCount, runs, pageSize);
        if (split.zeroRuns.length) await failure.race(control.send({ type: 'zero-pages', round, blockIndex: window.blockIndex, runs: split.zeroRuns }));
        stats.zeroPages += split.zeroPages;
        runs = split.normalRuns;
      }
      const sequenceBase = sequence;
      sequence += pageCount + 1;
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
        round,
        sequenceBase,
        codecWireId: codec.info.wireId,
        level,
        accelerator,
        pageSize,
        pagesPerPacket,
        zeroPageDetection,
        hashChunks,
        stable: !live || pausedAt !== undefined,
      });
      failure.check();
      if (hashChunks) {
        const chunkBase = blockChunkBase[window.blockIndex]! + ((window.firstPage + first) * pageSize) / CHECKSUM_CHUNK_BYTES;
        result.chunkHashes.forEach((hash, i) => (chunkHashes[chunkBase + i] = hash));
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
      for (const packet of result.packets) await write(packet, release);
      packetsInRound += result.packets.length;
      stats.normalPages += result.normalPages;
      stats.zeroPages += result.zeroPages;
      stats.payloadBytes += result.payloadBytes;
      stats.hardwarePages += result.hardwarePages;
      stats.remainingBytes -= (runs ? runsPageCount(runs) : pageCount) * pageSize;
      stats.dataBytes = channels.reduce((n, c) => n + c.bytesWritten, 0);
    };

    /** Starts a task once fewer than maxInFlight are under way; `done` settles when it has. */
    const submit = async (start: () => Promise<void>): Promise<{ done: Promise<void> }> => {
      while (inFlight.size >= maxInFlight) await failure.race(Promise.race(inFlight));
      failure.check();
      const done: Promise<void> = start().then(() => void inFlight.delete(done));
      done.catch((error: Error) => failure.fail(error));
      inFlight.add(done);
      return { done };
    };

    const beginRound = () => {
      round++;
      packetsInRound = 0;
      stats.rounds = round;
    };

    /**
     * Ends a round: once the receiver acknowledged all of its packets (so a broken channel's
     * resends cannot land behind a SYNC), a SYNC packet on every live channel, then the
     * round-end frame.
     */
    const endRound = async () => {
      await failure.race(Promise.all(inFlight));
      await acknowledgedAll();
      for (const channel of channels) {
        if (channel.lost) continue;
        const sync = encodeSyncPacket(round, sequence++);
        channel.socket.write(sync);
        channel.bytesWritten += sync.byteLength;
      }
      lastSyncedRound = round;
      stats.dataBytes = channels.reduce((n, c) => n + c.bytesWritten, 0);
      await failure.race(control.send({ type: 'round-end', round, packets: packetsInRound }));
    };

    /** Sends the pages of `bitmaps`, in tasks of up to 4 MiB spans of a block (a dirty round). */
    const sendDirty = async (bitmaps: DirtyBitmaps) => {
      const guest = source.guest!;
      for (const [blockIndex, block] of guest.blocks.entries()) {
        const window: SourceWindow = { blockIndex, firstPage: 0, pageCount: block.pageCount, memory: block.memory, byteOffset: 0, release() {} };
        for (const task of tasksOfRuns(bitmapRuns(bitmaps[blockIndex]!, block.pageCount), pagesPerTask)) {
          await submit(() => sendTask(window, task.first, task.pageCount, task.runs, false));
        }
      }
    };

    // Round 1 sends every page, hashing checksum chunks on the way.
    beginRound();
    await forEachWindow(source, failure, async (window) => {
      const tasks: Promise<void>[] = [];
      const held: Promise<void>[] = [];
      try {
        for (let first = 0; first < window.pageCount; first += pagesPerTask) {
          tasks.push((await submit(() => sendTask(window, first, Math.min(pagesPerTask, window.pageCount - first), undefined, true, held))).done);
        }
      } finally {
        // The window's memory may be refilled only once every task reading it has settled and
        // the receiver has every packet that may be a view of it; failed ones too, or a failure
        // would leave the ring without memory for good.
        void Promise.allSettled(tasks).then(() => Promise.all(held)).then(() => window.release());
      }
    });
    await endRound();

    if (live) {
      const stale = new Set<number>(); // checksum chunks written since they were hashed
      const convergence = new Convergence(live);
      let lastSyncMs = trackingSince;
      const sync = async () => {
        const bitmaps = await failure.race(live.dirtyLog.sync());
        const now = performance.now();
        const dirtyPages = countDirty(bitmaps);
        // The rate describes the running guest: the sync after the pause does not count.
        if (pausedAt === undefined) stats.dirtyPagesRate = Math.round(dirtyPages / Math.max((now - lastSyncMs) / 1000, 1e-3));
        lastSyncMs = now;
        markStale(stale, bitmaps, source, pageSize, blockChunkBase);
        return { bitmaps, dirtyPages };
      };
      for (;;) {
        const { bitmaps, dirtyPages } = await sync();
        stats.remainingBytes = dirtyPages * pageSize;
        const decision = convergence.decide(stats.remainingBytes, meter.bytesPerMs);
        stats.expectedDowntimeMs = decision.expectedDowntimeMs;
        if (decision.switchover) {
          // Switchover: stop the workload, take the last dirty set, send everything left.
          pausedAt = performance.now();
          await failure.race(live.pause());
          const last = await sync();
          beginRound();
          stats.remainingBytes = countDirty(mergeBitmaps(bitmaps, last.bitmaps)) * pageSize;
          await sendDirty(mergeBitmaps(bitmaps, last.bitmaps));
          await endRound();
          await rehashStale(pool, source, stale, chunkHashes, blockChunkBase);
          break;
        }
        if (round >= convergence.maxRounds) {
          throw new MultifdError(
            'ERR_NOT_CONVERGING',
            `not converging after ${round} rounds: ${stats.remainingBytes} bytes dirty, above the ${Math.round(decision.thresholdBytes)}-byte switchover threshold ` +
              `(bandwidth ${Math.round(meter.bytesPerMs * 1000)} bytes/s × downtime-limit)${live.autoConverge ? `, throttled at ${convergence.throttlePercent} %` : '; consider auto-converge'}`,
          );
        }
        const throttle = convergence.onSync(stats.remainingBytes, stats.transferredBytes());
        if (throttle !== undefined) {
          stats.throttlePercent = throttle;
          live.throttle?.(throttle);
        }
        beginRound();
        await sendDirty(bitmaps);
        await endRound();
      }
    }

    // Every packet is acknowledged (endRound waited): a data channel closing from now on, as the
    // receiver closes them once it has reported, loses nothing.
    dataDone = true;
    stats.sourceChecksum = combineChecksums(chunkHashes);
    // Verify: a chunk whose fresh hash differs from the tracked one changed after it was sent
    // and no later round sent it again.
    let unsentChunks = 0;
    const mismatch = (destination?: bigint) => verifyMismatch(stats.sourceChecksum!, unsentChunks, chunkHashes.length, live !== undefined, destination);
    if (options.verify) {
      const fresh = await hashSource(pool, source, failure, blockChunkBase, TASK_BYTES);
      unsentChunks = fresh.filter((hash, i) => hash !== chunkHashes[i]).length;
      stats.sourceChecksum = combineChecksums(fresh);
      // A stream file has no receiver to ask: what it holds is what was sent.
      if (!report && unsentChunks > 0) throw mismatch();
    }
    await failure.race(control.send({ type: 'complete', rounds: round, checksum: stats.sourceChecksum }));
    stats.controlBytes = control.bytesWritten;
    if (!report) {
      // Nobody confirms a stream file: it is complete once every channel has handed all its
      // writes to the file, not when they are merely queued. Channels close as they end.
      finished = true;
      const endWrites = (socket: Duplex, name: string) =>
        ended(socket).catch((error: TransportError) => {
          throw new TransportError(error.code, `${name}: the last writes did not reach the file: ${((error.cause as Error | undefined) ?? error).message}`, { cause: error.cause });
        });
      await failure.race(Promise.all([endWrites(controlSocket, 'control channel'), ...channels.map((c) => endWrites(c.socket, `data channel ${c.id}`))]));
      if (options.verify) stats.verified = true;
      stats.finish('completed');
      failure.settle();
      return stats.snapshot();
    }

    const final = await withTimeout(report, options.handshakeTimeoutMs ?? 30_000, failure);
    finished = true;
    if (final?.type !== 'report') throw new TransportError('ERR_HANDSHAKE', `expected the receiver's report, got ${final?.type}`);
    if (pausedAt !== undefined) stats.downtimeMs = performance.now() - pausedAt;
    stats.destinationChecksum = final.checksum;
    stats.recvCpuPercent = Math.round((final.cpuMicros / 10 / Math.max(stats.elapsedMs(), 1e-3)) * 100) / 100;
    if (final.checksum !== stats.sourceChecksum) {
      if (unsentChunks > 0) throw mismatch(final.checksum);
      throw new MultifdError('ERR_CHECKSUM_MISMATCH', `destination image checksum ${hex(final.checksum)} differs from the source's ${hex(stats.sourceChecksum)}`);
    }
    if (options.verify) stats.verified = true;
    stats.finish('completed');
    failure.settle();
    for (const socket of sockets) socket.end();
    return stats.snapshot();
  } catch (error) {
    finished = true;
    const cancelled = options.signal?.aborted === true;
    stats.finish(cancelled ? 'cancelled' : 'failed', (error as Error).message);
    failure.fail(error as Error);
    for (const socket of sockets) socket.destroy();
    await Promise.allSettled(inFlight);
    if (error instanceof MultifdError) error.context.status = stats.status;
    throw error;
  } finally {
    for (const [timer, wake] of sleeping) {
      clearTimeout(timer);
      wake(); // its writer has given up already (raced against the failure)
    }
    clearInterval(progress);
    clearInterval(metering);
    live?.dirtyLog.stop();
    options.signal?.removeEventListener('abort', onAbort);
    if (!options.pool) await pool.close();
    options.onProgress?.(stats.snapshot());
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
