// The source proxy's link data connections (docs/qemu-proxy.md, "Losing a link connection").
// Every packet frame is held until the destination proxy credits its packet (it wrote the
// packet to its QEMU), so a lost data connection loses nothing: the frames last sent on it go
// out again on the others, and the connection is dialled again in the background. The
// destination proxy drops a frame it already has. Frames take the least-queued connection.
import type { Socket } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';
import type { TokenBucket } from '../transport/token-bucket.js';
import { linkError } from './link-frames.js';
import { closedEarly, type ProxyLatch, type ProxyStats } from './proxy-common.js';

/** How long the source proxy keeps dialling a lost link data connection before it fails. */
export const LINK_REDIAL_TIMEOUT_MS = 10_000;
/** The first pause between two dials of a lost link data connection; it doubles up to 1 s. */
const FIRST_REDIAL_PAUSE_MS = 50;

/** A packet frame, held from its first write until its packet is credited. */
export interface HeldFrame {
  channel: number;
  ordinal: number;
  /** The frame's bytes, in order (views: of the page slot, of the pool's result). */
  parts: Uint8Array[];
  byteLength: number;
  /** Frees what the parts view, once the packet is credited. */
  release(): void;
}

/** What a link sender needs of its proxy. */
export interface LinkSenderOptions {
  latch: ProxyLatch;
  stats: ProxyStats;
  /** The data connections, already introduced to the destination proxy. */
  connections: Socket[];
  /** Dials link data connection `k` again and introduces it; rejects when it cannot. */
  redial: (k: number) => Promise<Socket>;
  bucket?: TokenBucket;
}

/** The link data connections of a source proxy: frames out, held until credited, resent when a connection is lost. */
export class LinkSender {
  private readonly live: Array<Socket | undefined>;
  /** Frames not yet credited, by QEMU channel then ordinal, with the connection each went on last. */
  private readonly held = new Map<number, Map<number, { frame: HeldFrame; link: number }>>();
  /** Frames waiting for any connection to come back. */
  private readonly stranded: HeldFrame[] = [];
  private lastLink = 0;
  private ending = false;

  constructor(private readonly options: LinkSenderOptions) {
    this.live = [...options.connections];
    this.live.forEach((socket, k) => this.watch(socket!, k));
  }

  /** Holds `frame` and writes it once the bandwidth limit lets it. */
  async send(frame: HeldFrame): Promise<void> {
    let channel = this.held.get(frame.channel);
    if (!channel) this.held.set(frame.channel, (channel = new Map()));
    channel.set(frame.ordinal, { frame, link: -1 });
    if (this.options.bucket) await this.options.bucket.acquire(frame.byteLength);
    if (!this.options.latch.over) this.write(frame);
  }

  /** The destination proxy wrote QEMU channel `channel`'s packets below `count`: their frames are freed. */
  credit(channel: number, count: number): void {
    const frames = this.held.get(channel);
    if (!frames) return;
    for (const [ordinal, { frame }] of frames) {
      if (ordinal >= count) continue;
      frames.delete(ordinal);
      frame.release();
    }
  }

  /** The migration is over: a connection's end is no longer a loss; each is ended. */
  end(): void {
    this.ending = true;
    for (const socket of this.live) socket?.end();
  }

  /** The least-queued live connection takes the frame (ties round-robin from the last one used). */
  private write(frame: HeldFrame): void {
    const k = this.pick();
    if (k === undefined) return void this.stranded.push(frame);
    const socket = this.live[k]!;
    this.held.get(frame.channel)!.get(frame.ordinal)!.link = k;
    const { stats } = this.options;
    stats.wireBytes += frame.byteLength;
    stats.linkChannelBytes[k]! += frame.byteLength;
    socket.cork();
    for (const part of frame.parts) socket.write(part);
    socket.uncork();
  }

  private pick(): number | undefined {
    let best: number | undefined;
    for (let i = 1; i <= this.live.length; i++) {
      const k = (this.lastLink + i) % this.live.length;
      const socket = this.live[k];
      if (socket && (best === undefined || socket.writableLength < this.live[best]!.writableLength)) best = k;
    }
    if (best !== undefined) this.lastLink = best;
    return best;
  }

  private watch(socket: Socket, k: number): void {
    const { latch } = this.options;
    // Nothing comes back on a data connection.
    socket.on('data', () => latch.fail(`link data ${k}`, linkError('ERR_LINK_FIELD', `data ${k}`, 'bytes', 'none towards the source proxy', 'some')));
    socket.on('error', () => {}); // its close follows: a loss, handled there
    socket.on('close', () => this.lost(k, socket));
  }

  /** Connection k is gone: what it last carried and is not credited goes out again on the others, and k is dialled again. */
  private lost(k: number, socket: Socket): void {
    if (this.ending || this.options.latch.over || this.live[k] !== socket) return;
    this.live[k] = undefined;
    const { stats } = this.options;
    stats.linkLosses++;
    for (const frames of this.held.values()) {
      for (const entry of frames.values()) {
        if (entry.link !== k) continue;
        stats.resentPackets++;
        stats.resentBytes += entry.frame.byteLength;
        this.options.bucket?.take(entry.frame.byteLength);
        this.write(entry.frame);
      }
    }
    void this.redial(k);
  }

  /** Dials connection k again with a growing pause, for at most {@link LINK_REDIAL_TIMEOUT_MS}. */
  private async redial(k: number): Promise<void> {
    const { latch } = this.options;
    const deadline = Date.now() + LINK_REDIAL_TIMEOUT_MS;
    for (let pause = FIRST_REDIAL_PAUSE_MS; !latch.over; pause = Math.min(2 * pause, 1000)) {
      try {
        const socket = await this.options.redial(k);
        if (latch.over || this.ending) return void socket.destroy();
        this.live[k] = socket;
        this.watch(socket, k);
        for (const frame of this.stranded.splice(0)) this.write(frame);
        return;
      } catch (error) {
        if (Date.now() + pause > deadline) return latch.fail(`link data ${k}`, Object.assign(closedEarly(`link data connection ${k}`), { cause: error }));
        await sleep(pause);
      }
    }
  }
}
