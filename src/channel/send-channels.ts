// The data channels of one migration, seen from the sender. Each packet goes to the live
// channel with the least data queued, as QEMU hands a batch to an idle channel; a full channel
// makes its writer wait for it to drain, and `max-bandwidth` makes every writer wait its turn
// at one token bucket across all channels.
//
// Every data packet is kept until the receiver acknowledges it. When a data channel breaks,
// the sender opens a new one with the same id (once per loss) and writes the unacknowledged
// packets again on the live channels; the receiver applies a packet it already has only once.
// A round ends only once every packet is acknowledged, so a resend never lands behind the
// round's SYNC. A stream file has nobody to acknowledge or to resend to: a packet is released
// once the file took it, and a broken channel fails the migration.
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { TransportError } from '../errors.js';
import type { FailureLatch } from '../migration/failure-latch.js';
import type { StatsTracker } from '../migration/stats.js';
import type { SentPacket } from '../pool/send-task.js';
import { isLoopbackPeer, type TokenBucket } from '../transport/index.js';
import type { LinkOutage } from './link-outage.js';
import { SendChannel } from './send-channel.js';

/** A channel with this much unsent data is full: wait for it to drain before giving it more. */
export const CHANNEL_HIGH_WATER = 8 << 20;
/**
 * The most packet bytes written and not yet acknowledged, per channel of the session: a new
 * packet waits while the channels hold that much. Without it, what sits in the socket buffers
 * of a link that has silently stopped (the sender's, and every hop's) is bounded only by
 * their sizes, and all of it is sent again after the outage. 16 MiB per channel is twice
 * CHANNEL_HIGH_WATER: a link that moves data keeps acknowledging well within it.
 */
export const SEND_WINDOW_PER_CHANNEL = 16 << 20;

/** Options of {@link SendChannels.open}. */
export interface SendChannelsOptions {
  /** multifd-channels: how many to open, with ids 0..count - 1. */
  count: number;
  /** The session id of the hello, carried by every channel init. */
  sessionId: Uint8Array;
  /** Opens one connection to the receiver. */
  connect: () => Promise<Duplex>;
  /** The migration's first failure: every wait here gives up at it. */
  failure: FailureLatch;
  /** Counts channels lost and reconnected and packets resent. */
  stats: StatsTracker;
  /** False for a stream file: nothing is acknowledged, and a broken channel fails the migration. */
  awaitReceiver: boolean;
  /** Replace a broken channel with a new connection. */
  reconnect: boolean;
  /**
   * How long the sender goes on through an outage, redialling, before it fails
   * (`ERR_LINK_DOWN`). A lost channel is redialled with a pause of 50 ms doubling to 1 s, and
   * only while the control connection is up: a resumed receiver drops the data connections
   * it had, so one opened before the resume would be lost again.
   */
  reconnectTimeoutMs: number;
  /** The link's outages: this side reports the data channels' part. */
  outage: LinkOutage;
  /**
   * Told when the last live channel is lost, before any redial: a session that resumes takes
   * the whole link back through its control connection first, so that redials do not write
   * resends into connections a dead link accepts and resets.
   */
  allLost?: () => void;
  /** max-bandwidth across all channels, when there is one. */
  bucket?: TokenBucket;
  /** The next sequence number of the session (SYNC packets take one each). */
  nextSequence: () => number;
  /** True once the migration has ended: a channel that opens then is closed, one that breaks then lost nothing. */
  isFinished: () => boolean;
}

/** A data packet written but not acknowledged yet: kept to be written again if its channel breaks. */
interface Unacked {
  packet: SentPacket;
  channel: SendChannel;
  /** Called once the receiver acknowledged it. */
  release: () => void;
}

/**
 * The data channels of one migration (see the file comment).
 *
 * The memory they hold (docs/data-path.md, "Memory a sender holds"): a channel whose socket
 * has {@link CHANNEL_HIGH_WATER} (8 MiB) or more queued is full, and its next writer waits for
 * the drain, so a channel queues under 8 MiB plus one packet per writer that passed that check
 * while it filled: the send tasks in flight (2 × pool threads) each write one packet at a
 * time, and a broken channel's resends are one more writer. (A writer whose channel broke
 * while it waited goes to the least queued live one without waiting again.) With 2 threads and
 * 512 KiB of pages per packet (at most 576 KiB on the wire with `none` or `zstd`) that is
 * under 10.3 MiB a channel. The queue holds views, not copies; so does the table of packets
 * kept until the receiver acknowledges them, and what those views pin stays pinned until then:
 * the send task's result buffer (back to the pool once all its packets are acknowledged) and a
 * file source's window (refilled only then).
 */
export class SendChannels {
  /** Every channel opened, lost ones included, in the order they opened. */
  private readonly channels: SendChannel[] = [];
  /**
   * The channels a packet may go to, in the order they opened: a channel leaves at its loss,
   * unless that came once the migration no longer needed it (finished, or settled).
   */
  private readonly live = new Set<SendChannel>();
  private readonly unacked = new Map<number, Unacked>();
  /** The bytes of the packets in `unacked`, and the writers waiting for them to fall below the window. */
  private unackedBytes = 0;
  private windowWaiters: Array<() => void> = [];
  /** Wakes acknowledgedAll() when the last unacknowledged packet is acknowledged. */
  private allAcked: (() => void) | undefined;
  /** Writers waiting for a live channel while every channel is lost and a replacement opens. */
  private readonly channelWaiters: Array<() => void> = [];
  private lastSyncedRound = 0;
  /** Every channel opened so far went to a loopback address. */
  private allLoopback = true;
  /**
   * When the receiver last acknowledged a packet, or when a packet was written with none
   * outstanding: the start of the silence {@link silentForMs} measures.
   */
  private heardAt = 0;
  /** Channels the receiver acknowledged something on: a redial after their loss starts without a pause. */
  private readonly proven = new WeakSet<SendChannel>();
  /** Per channel id: the pause before its next redial, while redials fail or die young. */
  private readonly redialPause = new Map<number, number>();
  /** Every packet is acknowledged and no more will be written: a channel closing loses nothing. */
  private settled = false;

  private constructor(private readonly options: SendChannelsOptions) {}

  /** Opens channels 0..count - 1, one after another. */
  static async open(options: SendChannelsOptions): Promise<SendChannels> {
    const channels = new SendChannels(options);
    for (let id = 0; id < options.count; id++) await channels.openChannel(id);
    return channels;
  }

  /** Bytes written over every channel, lost ones included. */
  get bytesWritten(): number {
    return this.channels.reduce((n, c) => n + c.bytesWritten, 0);
  }

  /** Writes that waited for a full channel to drain: the link (or the receiver) pushed back. */
  drainWaits = 0;

  /**
   * True when every channel opened so far is a TCP connection to a loopback address: then no
   * link lies between the two ends, and pushback comes from the receiver.
   */
  get loopback(): boolean {
    return this.channels.length > 0 && this.allLoopback;
  }

  /**
   * Writes a data packet on the least queued live channel, its parts corked into one writev.
   * `release` runs once the receiver acknowledged it (for a stream file: once the file took
   * it); until then it is kept, to be written again if its channel breaks. A new packet first
   * waits for room in the send window ({@link SEND_WINDOW_PER_CHANNEL}); a resend (`resent`)
   * is in it already.
   */
  async write(packet: SentPacket, release: () => void, resent = false): Promise<void> {
    const { failure, bucket, awaitReceiver, count } = this.options;
    while (awaitReceiver && !resent && this.unackedBytes >= SEND_WINDOW_PER_CHANNEL * count) {
      await failure.race(new Promise<void>((resolve) => this.windowWaiters.push(resolve)));
    }
    let channel = await this.leastQueued();
    if (channel.queuedBytes >= CHANNEL_HIGH_WATER) {
      this.drainWaits++;
      // A channel that breaks during the wait is lost, not this packet: its loss handler
      // replaces it and resends what it held, and this packet goes to a live one below.
      await failure.race(channel.drained()).catch(() => failure.check());
    }
    if (bucket) await failure.race(bucket.acquire(packet.byteLength));
    failure.check();
    if (!this.live.has(channel)) channel = await this.leastQueued();
    // A resend whose first copy was acknowledged while it waited is not needed any more.
    if (resent) {
      if (!this.unacked.has(packet.sequence)) return;
      this.options.stats.packetsResent++;
      this.options.stats.resentBytes += packet.byteLength;
    }
    if (this.unacked.size === 0) this.heardAt = performance.now();
    if (awaitReceiver) {
      if (!resent) this.unackedBytes += packet.byteLength;
      this.unacked.set(packet.sequence, { packet, channel, release });
    }
    channel.writePacket(packet, awaitReceiver ? undefined : release);
  }

  /** Resolves once the receiver acknowledged every packet written so far. */
  async acknowledgedAll(): Promise<void> {
    const { failure, awaitReceiver } = this.options;
    while (awaitReceiver && this.unacked.size > 0) await failure.race(new Promise<void>((resolve) => (this.allAcked = resolve)));
  }

  /**
   * Ends `round` on the data channels: a SYNC packet on every live one. Call it only once every
   * packet is acknowledged, so a broken channel's resends cannot land behind a SYNC. A channel
   * opened later to replace a broken one starts with this SYNC.
   */
  sync(round: number): void {
    for (const channel of this.live) channel.writeSync(round, this.options.nextSequence());
    this.lastSyncedRound = round;
  }

  /**
   * Every packet is acknowledged and no more will be written: a data channel closing from now
   * on, as the receiver closes them once it has reported, loses nothing.
   */
  settle(): void {
    this.settled = true;
  }

  /**
   * How long the receiver has acknowledged nothing while packets wait for its acks (0 when
   * none wait): a link that drops packets silently never resets a connection, and this is how
   * the sender notices.
   */
  silentForMs(): number {
    return this.unacked.size === 0 ? 0 : performance.now() - this.heardAt;
  }

  /** Destroys every live channel's connection: each is then lost, resent and redialled as usual. */
  dropAll(): void {
    for (const channel of this.live) channel.socket.destroy();
  }

  /** Ends every channel and resolves once their writes reached the file (a stream file's end). */
  async end(): Promise<void> {
    await Promise.all(this.channels.map((channel) => channel.end()));
  }

  /** Opens data channel `id`: its init, then (when it replaces a broken one) the SYNC of the last round ended. */
  private async openChannel(id: number): Promise<void> {
    const { failure, isFinished, sessionId, nextSequence } = this.options;
    const socket = await failure.race(this.options.connect());
    if (isFinished()) {
      socket.destroy();
      throw new TransportError('ERR_CHANNEL_CLOSED', `data channel ${id} opened after the migration ended`);
    }
    const channel = new SendChannel(id, socket, {
      sessionId,
      failure,
      onAcks: (sequences) => {
        this.proven.add(channel);
        this.heardAt = performance.now();
        this.options.outage.restored('data');
        this.acknowledge(sequences);
      },
      onLost: (lost) => this.channelLost(lost),
      lastSync: this.lastSyncedRound > 0 ? { round: this.lastSyncedRound, sequence: nextSequence() } : undefined,
    });
    this.channels.push(channel);
    this.live.add(channel);
    // Read at the open: a socket that closed has no remote address left to tell.
    this.allLoopback &&= isLoopbackPeer(socket);
    this.channelWaiters.splice(0).forEach((resume) => resume());
  }

  /** The live channel with the least data queued, once there is one. */
  private async leastQueued(): Promise<SendChannel> {
    for (;;) {
      let best: SendChannel | undefined;
      for (const c of this.live) if (!best || c.queuedBytes < best.queuedBytes) best = c;
      if (best) return best;
      await this.options.failure.race(new Promise<void>((resolve) => this.channelWaiters.push(resolve)));
    }
  }

  private acknowledge(sequences: number[]): void {
    for (const sequence of sequences) {
      const entry = this.unacked.get(sequence);
      if (!entry) continue; // a late second ack of a resent packet
      this.unacked.delete(sequence);
      this.unackedBytes -= entry.packet.byteLength;
      entry.release();
    }
    this.windowWaiters.splice(0).forEach((wake) => wake());
    if (this.unacked.size === 0) this.allAcked?.();
  }

  /** A broken data channel: write its unacknowledged packets again, and replace it if allowed. */
  private channelLost(channel: SendChannel): void {
    const { failure, stats } = this.options;
    if (this.options.isFinished() || this.settled) return;
    this.live.delete(channel);
    stats.channelsLost++;
    if (!this.options.awaitReceiver) {
      failure.fail(new TransportError('ERR_CHANNEL_CLOSED', `data channel ${channel.id} closed before the migration completed`));
      return;
    }
    if (this.live.size === 0) {
      this.options.outage.lost('data');
      this.options.allLost?.();
    }
    // After the other losses of the same moment are known (a link that resets every connection
    // reports them one by one): resending on a channel that is about to be reported lost too
    // would send the same packets twice.
    setImmediate(() => this.resend(channel).catch((error: Error) => failure.fail(error)));
    this.redial(channel).catch((error: Error) => failure.fail(error));
  }

  /** Writes the packets `lost` carried and the receiver did not acknowledge on the live channels (once there is one). */
  private async resend(lost: SendChannel): Promise<void> {
    for (const entry of this.unacked.values()) {
      if (entry.channel === lost) await this.write(entry.packet, entry.release, true);
    }
  }

  /**
   * Opens a channel with `lost`'s id again, until one opens, pausing between attempts (50 ms
   * doubling to 1 s; a channel that died before the receiver acknowledged anything on it
   * counts as a failed attempt), once the control connection is up. Fails the migration once
   * no channel has been live through reconnectTimeoutMs of outage; without `reconnect`, as
   * soon as none is live.
   */
  private async redial(lost: SendChannel): Promise<void> {
    const { failure, isFinished, reconnect, reconnectTimeoutMs, stats, outage } = this.options;
    let pause = this.proven.has(lost) ? 0 : (this.redialPause.get(lost.id) ?? REDIAL_FIRST_PAUSE_MS);
    for (;;) {
      if (isFinished() || this.settled || failure.error) return;
      if (!reconnect) {
        if (this.live.size === 0) throw new TransportError('ERR_CHANNEL_CLOSED', `every data channel broke (${stats.channelsLost} lost), and reconnecting is off`);
        return;
      }
      if (this.live.size === 0 && outage.downForMs() >= reconnectTimeoutMs) {
        throw linkDown(outage.downForMs(), `every data channel was lost (${stats.channelsLost} lost) and none could be opened again`, reconnectTimeoutMs);
      }
      // Not keeping the process alive: a migration that ends meanwhile leaves no timer behind.
      if (pause > 0) await failure.race(sleep(pause, undefined, { ref: false })).catch(() => undefined);
      await failure.race(outage.controlUp()).catch(() => undefined);
      this.redialPause.set(lost.id, (pause = Math.min(REDIAL_MAX_PAUSE_MS, Math.max(REDIAL_FIRST_PAUSE_MS, 2 * pause))));
      try {
        await this.openChannel(lost.id);
        stats.channelsReconnected++;
        return;
      } catch {
        // Not yet: the pause doubles, up to REDIAL_MAX_PAUSE_MS.
      }
    }
  }
}

/** A redial's first pause, and the longest. */
const REDIAL_FIRST_PAUSE_MS = 50;
const REDIAL_MAX_PAUSE_MS = 1000;

/** `ERR_LINK_DOWN`: an outage of `downMs` outlasted the reconnect timeout; `what` says what could not be had back. */
export function linkDown(downMs: number, what: string, timeoutMs: number): TransportError {
  return new TransportError('ERR_LINK_DOWN', `the link was down for ${(downMs / 1000).toFixed(1)} s: ${what} within the reconnect timeout (${timeoutMs} ms)`, { context: { downMs: Math.round(downMs), timeoutMs } });
}
