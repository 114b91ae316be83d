// One QEMU multifd channel on the source proxy: its reader parses what QEMU writes, and each
// packet goes to the proxy with at most CHANNEL_WINDOW_PACKETS of them read and not yet
// credited by the destination proxy, so a slow channel stops its own socket and nobody else.
import type { Socket } from 'node:net';
import { QemuChannelReader } from './channel-reader.js';
import { encodeChannelCount, LinkFrame } from './link-frames.js';
import { qemuProtocolError, type QemuInit, type QemuPacketHeader } from './multifd-format.js';
import type { QemuChannelItem } from './channel-reader.js';
import { checkPacketAgainstBlocks, type RamBlockTable } from './ram-blocks.js';
import type { PageSlots } from './page-slots.js';
import { CHANNEL_WINDOW_PACKETS, type ProxyLatch, type ProxyStats } from './proxy-common.js';

/** What a pump needs of its proxy (the source proxy's session). */
export interface ChannelPumpOwner {
  readonly stats: ProxyStats;
  readonly latch: ProxyLatch;
  /** Where packets' pages are read into: a slot per packet until it is credited. */
  readonly slots: PageSlots;
  readonly settings: { readonly hello: { readonly pageSize: number; readonly qemuChannels: number } };
  /** The source QEMU's RAM blocks, once its main channel listed them. */
  readonly ramBlocks: RamBlockTable | undefined;
  /** The channel's init was read: register the pump under its id and send the init on. */
  openChannel(pump: QemuChannelPump, init: QemuInit): void;
  /** Carries packet `ordinal` of QEMU channel `id`, its pages in `slot` (none without pages), to the destination proxy. */
  carry(id: number, ordinal: number, header: QemuPacketHeader, slot: number | undefined): Promise<void>;
  sendControl(frame: Uint8Array): void;
  /** A channel ended: the migration may be over. */
  checkDone(): void;
}

/**
 * One QEMU multifd channel: parses what QEMU writes and hands each packet to the proxy, with
 * at most CHANNEL_WINDOW_PACKETS of them read and not yet credited by the destination proxy.
 */
export class QemuChannelPump {
  private readonly reader: QemuChannelReader;
  /** The channel's id, once its init was read. */
  private id: number | undefined;
  private eof = false;
  /** The slot the packet being read fills. */
  private slot: number | undefined;
  /** A packet read before the RAM block table it must be checked against. */
  private early: QemuChannelItem | undefined;
  /** Packets read from QEMU so far (the next ordinal). */
  read = 0;
  /** Packets the destination proxy has written to its QEMU. */
  credited = 0;
  /** The source QEMU closed the channel. */
  ended = false;

  constructor(
    private readonly proxy: ChannelPumpOwner,
    private readonly socket: Socket,
  ) {
    const { pageSize, qemuChannels } = proxy.settings.hello;
    this.reader = new QemuChannelReader({ pageSize, channels: qemuChannels, pagesInto: (byteLength) => this.pagesInto(byteLength) });
  }

  /** Takes the connection's first bytes (read to tell it apart) and then the rest. */
  start(first: Buffer): void {
    this.socket.on('data', (chunk: Buffer) => this.push(chunk));
    this.socket.on('end', () => {
      this.eof = true;
      this.guard(() => this.drain());
    });
    this.push(first);
  }

  /** A slot for the next packet's pages (taken only while the window has room: see drain). */
  private pagesInto(byteLength: number): Uint8Array {
    if (byteLength === 0) return new Uint8Array(0);
    this.slot = this.proxy.slots.take();
    return this.proxy.slots.view(this.slot, byteLength);
  }

  /** The RAM block table is known: a packet that waited for it goes on. */
  blocksKnown(): void {
    this.guard(() => this.drain());
  }

  credit(count: number): void {
    this.credited = count;
    this.guard(() => this.drain());
  }

  private push(chunk: Buffer): void {
    this.proxy.stats.qemuMultifdBytes += chunk.byteLength;
    this.guard(() => {
      this.reader.push(chunk);
      this.drain();
    });
  }

  /** Runs a step unless the proxy is over; its error fails the proxy, naming the channel. */
  private guard(step: () => void): void {
    if (this.proxy.latch.over) return;
    try {
      step();
    } catch (error) {
      this.proxy.latch.fail(`QEMU multifd channel ${this.reader.channelId ?? '(before its init)'}`, error);
    }
  }

  /**
   * Hands over what the reader holds while the channel's window has room. A full window
   * stops both this loop and the socket; a credit calls it again. The reader then holds at
   * most one socket chunk beyond one packet. A packet with pages is checked against the RAM
   * block table (an unknown block or a page past its block's end is refused, and nothing of
   * it leaves the proxy); one that comes before the table waits for it, and the channel with it.
   */
  private drain(): void {
    while (this.read - this.credited < CHANNEL_WINDOW_PACKETS) {
      const item = this.early ?? this.reader.next();
      this.early = undefined;
      if (!item) {
        if (this.eof) this.end();
        else this.socket.resume();
        return;
      }
      if (item.kind === 'init') {
        this.proxy.openChannel(this, item.init);
        this.id = item.init.channelId;
        continue;
      }
      const id = this.id!;
      const { header } = item;
      if (header.normalPages + header.zeroPages > 0) {
        const table = this.proxy.ramBlocks;
        if (!table) {
          this.early = item;
          break;
        }
        checkPacketAgainstBlocks(header, table, this.proxy.settings.hello.pageSize, { channel: id, packet: this.read });
      }
      const ordinal = this.read++;
      const slot = this.slot;
      this.slot = undefined;
      this.proxy.carry(id, ordinal, header, slot).catch((error) => this.proxy.latch.fail(`QEMU multifd channel ${id}, packet ${ordinal}`, error));
    }
    this.socket.pause();
  }

  private end(): void {
    this.reader.end();
    if (this.id === undefined) throw qemuProtocolError('ERR_QEMU_TRUNCATED', {}, 'init', '64 bytes', 'a channel closed before its init');
    if (this.ended) return;
    this.ended = true;
    this.proxy.sendControl(encodeChannelCount(LinkFrame.channelEnd, this.id, this.read));
    this.proxy.checkDone();
  }
}
