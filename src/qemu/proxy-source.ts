// The proxy beside the source QEMU (docs/qemu-proxy.md): QEMU migrates to it (`migrate
// tcp:...`); it tells QEMU's connections apart by their first 4 bytes, carries the main channel
// as ordered bytes on the link control connection, and parses every multifd channel: its init
// goes over verbatim, each packet's pages go through the worker pool (SIMD zero scan, the link
// codec) into multifd's own packets, one packet frame per QEMU packet, on the least-queued link
// data connection, held until the destination proxy credits it (link-sender.ts).
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { getCodec } from '../codecs/registry.js';
import type { Codec, CodecId } from '../codecs/types.js';
import { WorkerPool } from '../pool/pool.js';
import type { SendResult } from '../pool/send-task.js';
import { TransportError } from '../errors.js';
import { connect, DEFAULT_CONNECT_TIMEOUT_MS, parseEndpoint, TokenBucket, type TlsCredentials } from '../transport/index.js';
import { encodeJsonFrame, encodeLinkFrame, encodePacketFrame, LinkFrame, LinkFrameReader, linkError, linkFrameName, parseChannelCount, parseJsonBody, type LinkFrameItem } from './link-frames.js';
import { connectionKindOf, encodeQemuInit, qemuPageCount, qemuProtocolError, type QemuInit, type QemuPacketHeader } from './multifd-format.js';
import { LinkSender } from './link-sender.js';
import { encodePacketFrameFields } from './packet-frame.js';
import { PageSlots } from './page-slots.js';
import { QemuChannelPump } from './qemu-channel-pump.js';
import { RamBlockTableReader, type RamBlockTable } from './ram-blocks.js';
import {
  CHANNEL_WINDOW_PACKETS,
  closedEarly,
  initialStats,
  listenFor,
  peerError,
  ProxyLatch,
  proxyHandle,
  relayMainFromLink,
  relayMainToLink,
  writeCounted,
  type ProxyHandle,
  type ProxyHello,
  type ProxyStats,
} from './proxy-common.js';

/** Options of {@link proxyFromQemu}. */
export interface ProxyFromQemuOptions {
  /** Where the source QEMU migrates to: `tcp:127.0.0.1:5555` (port 0: any free port, see `address`). */
  fromQemu: string;
  /** The destination proxy's link endpoint. */
  to: string;
  /** QEMU's multifd-channels (default 2); a channel id at or above it is refused. */
  qemuChannels?: number;
  /** Link data connections (default: qemuChannels). */
  linkChannels?: number;
  /** Link codec (default zstd) and level (the codec's default). */
  codec?: CodecId;
  level?: number;
  /** The QEMUs' target page size (default 4096). */
  pageSize?: number;
  /** Worker threads for the zero scan and the codec (default: the pool's, available cores). */
  threads?: number;
  /** TLS on the link. */
  tls?: TlsCredentials;
  /** Link connect timeout (default 10 s). */
  connectTimeoutMs?: number;
  /** Bytes per second of packet frames over all link data connections (QEMU's max-bandwidth); default unlimited. */
  maxBandwidth?: number;
}

/** The session the source proxy announces, with what it needs of the codec and the packets. */
interface SourceSettings {
  hello: ProxyHello;
  codec: Codec;
  pagesPerPacket: number;
}

/**
 * Starts the source proxy: listens for the source QEMU and connects the link. The handle's
 * `done` resolves when QEMU's main channel closed both ways and every multifd channel it
 * opened closed with all its packets written to the destination QEMU.
 * @throws TransportError when it cannot listen or reach the destination proxy; RangeError
 * for options out of range.
 */
export async function proxyFromQemu(options: ProxyFromQemuOptions): Promise<ProxyHandle> {
  const startedAt = Date.now();
  const settings = sourceSettings(options);
  const latch = new ProxyLatch('source');
  // The link first: a proxy that cannot reach its peer should fail before QEMU starts.
  const link = await connectLink(latch, options, settings.hello.linkChannels);
  const proxy = new SourceProxy(settings, latch, link, options);
  proxy.greet();
  // QEMU is let in once the destination proxy accepted the session (and reached its QEMU,
  // which its own connect timeout bounds): a peer that never answers fails the start.
  await proxy.accepted(2 * (options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS));
  const address = await listenFor(latch, 'QEMU listener', options.fromQemu, { onConnection: (socket) => proxy.onQemuConnection(socket) });
  return proxyHandle(latch, () => proxy.stats, startedAt, address);
}

/** The options, checked, as the session's hello. */
function sourceSettings(options: ProxyFromQemuOptions): SourceSettings {
  const pageSize = options.pageSize ?? 4096;
  const pagesPerPacket = qemuPageCount(pageSize);
  const qemuChannels = options.qemuChannels ?? 2;
  const linkChannels = options.linkChannels ?? qemuChannels;
  if (!Number.isInteger(qemuChannels) || qemuChannels < 1 || qemuChannels > 255) throw new RangeError(`qemuChannels must be 1..255, got ${qemuChannels}`);
  if (!Number.isInteger(linkChannels) || linkChannels < 1 || linkChannels > 255) throw new RangeError(`linkChannels must be 1..255, got ${linkChannels}`);
  const codec = getCodec(options.codec ?? 'zstd');
  const level = options.level ?? codec.info.levels?.default;
  const session = randomBytes(16).toString('hex');
  return { hello: { session, qemuChannels, linkChannels, pageSize, codec: codec.info.id, level }, codec, pagesPerPacket };
}

/** The link's control connection and its data connections, all tracked by the latch. */
interface Link {
  control: Socket;
  data: Socket[];
}

/** Connects the control connection, then each data connection; a failed one fails the proxy and is thrown. */
async function connectLink(latch: ProxyLatch, options: ProxyFromQemuOptions, linkChannels: number): Promise<Link> {
  const to = parseEndpoint(options.to);
  const connectOptions = { tls: options.tls, timeoutMs: options.connectTimeoutMs };
  const control = await connect(to, connectOptions);
  latch.track(control, 'link control', 'control');
  latch.control = control;
  const data: Socket[] = [];
  try {
    for (let k = 0; k < linkChannels; k++) {
      const socket = await connect(to, connectOptions);
      latch.track(socket, `link data ${k}`, 'data');
      data.push(socket);
    }
  } catch (error) {
    latch.fail('link', error);
    throw latch.failure;
  }
  return { control, data };
}

/** The source proxy's session: the link it holds, QEMU's main channel, and QEMU's multifd channels by id. */
class SourceProxy {
  readonly stats: ProxyStats;
  readonly slots: PageSlots;
  private readonly control: Socket;
  private readonly data: Socket[];
  private readonly pool: WorkerPool;
  private readonly bucket: TokenBucket | undefined;
  private linkSender: LinkSender | undefined;
  private readonly channels = new Map<number, QemuChannelPump>();
  private main: Socket | undefined;
  /** The source QEMU's RAM blocks, read from its main channel's head. */
  ramBlocks: RamBlockTable | undefined;
  private mainEndedBySource = false;
  private mainEndedByPeer = false;
  private helloOk = false;
  private resolveAccepted!: () => void;
  private readonly sessionAccepted = new Promise<void>((resolve) => (this.resolveAccepted = resolve));

  constructor(
    readonly settings: SourceSettings,
    readonly latch: ProxyLatch,
    link: Link,
    private readonly options: ProxyFromQemuOptions,
  ) {
    const { hello, codec, pagesPerPacket } = settings;
    this.stats = initialStats('source', hello.qemuChannels, hello.linkChannels, codec.info.id, hello.level);
    this.control = link.control;
    this.data = link.data;
    this.pool = new WorkerPool({ threads: options.threads });
    latch.onEnd(() => void this.pool.close());
    this.slots = new PageSlots(hello.qemuChannels * CHANNEL_WINDOW_PACKETS, pagesPerPacket * hello.pageSize);
    this.bucket = options.maxBandwidth ? new TokenBucket({ bytesPerSecond: options.maxBandwidth }) : undefined;
  }

  /** Sends the hello and listens on the link. */
  greet(): void {
    this.sendControl(encodeJsonFrame(LinkFrame.hello, this.settings.hello));
    const reader = new LinkFrameReader('control');
    this.control.on('data', (chunk: Buffer) => {
      if (this.latch.over) return;
      this.stats.wireBytes += chunk.byteLength;
      try {
        reader.push(chunk);
        for (let item = reader.next(); item; item = reader.next()) this.onControlFrame(item);
      } catch (error) {
        this.latch.fail('link control', error);
      }
    });
    this.control.on('close', () => this.latch.fail('link control', closedEarly('link control connection')));
  }

  /** Resolves once the destination proxy accepted the session; throws the proxy's failure, or a timeout after `timeoutMs`. */
  async accepted(timeoutMs: number): Promise<void> {
    const timer = setTimeout(() => this.latch.fail('link control', new TransportError('ERR_LINK_TIMEOUT', `no answer to the hello within ${timeoutMs} ms`)), timeoutMs);
    await Promise.race([this.sessionAccepted, this.latch.done]).catch(() => {});
    clearTimeout(timer);
    if (this.latch.failure) throw this.latch.failure;
  }

  sendControl(frame: Uint8Array): void {
    writeCounted(this.control, frame, this.stats);
  }

  private onControlFrame(item: LinkFrameItem): void {
    switch (item.type) {
      case LinkFrame.helloOk:
        return this.onHelloOk(item);
      case LinkFrame.main:
        if (!this.main) throw linkError('ERR_LINK_FIELD', 'control', 'main bytes', 'none before the source QEMU connects', `${item.body.byteLength} bytes`);
        this.stats.returnBytes += item.body.byteLength;
        return relayMainFromLink(this.main, this.control, item.body);
      case LinkFrame.mainEnd:
        this.mainEndedByPeer = true;
        this.main?.end();
        return this.checkDone();
      case LinkFrame.credit:
        return this.onCredit(item);
      case LinkFrame.error:
        throw peerError('source', parseJsonBody(item, 'control'));
      default:
        throw linkError('ERR_LINK_TYPE', 'control', 'frame type', 'helloOk, main, mainEnd, credit or error', linkFrameName(item.type));
    }
  }

  private onHelloOk(item: LinkFrameItem): void {
    const { session } = this.settings.hello;
    const body = parseJsonBody(item, 'control');
    if (body.session !== session) throw linkError('ERR_LINK_FIELD', 'control', 'helloOk session', session, String(body.session));
    this.helloOk = true;
    this.stats.status = 'active';
    // The data connections introduce themselves once the destination proxy holds the session.
    this.data.forEach((socket, k) => this.introduce(socket, k));
    this.linkSender = new LinkSender({ latch: this.latch, stats: this.stats, connections: this.data, redial: (k) => this.redial(k), bucket: this.bucket });
    this.resolveAccepted();
  }

  private introduce(socket: Socket, k: number): void {
    writeCounted(socket, encodeJsonFrame(LinkFrame.dataHello, { session: this.settings.hello.session, linkChannel: k }), this.stats, k);
  }

  /** Link data connection k again, after a loss: connected, tracked and introduced. */
  private async redial(k: number): Promise<Socket> {
    const socket = await connect(parseEndpoint(this.options.to), { tls: this.options.tls, timeoutMs: this.options.connectTimeoutMs });
    this.latch.track(socket, `link data ${k}`, 'data');
    this.introduce(socket, k);
    return socket;
  }

  /** The destination proxy wrote a QEMU channel's packets up to `count` to its QEMU: that channel's window opens. */
  private onCredit(item: LinkFrameItem): void {
    const { channel, count } = parseChannelCount(item, 'control');
    const pump = this.channels.get(channel);
    if (!pump || count > pump.read || count < pump.credited) throw linkError('ERR_LINK_FIELD', 'control', `credit for QEMU channel ${channel}`, `${pump?.credited ?? 0} to ${pump?.read ?? 0}`, count);
    this.linkSender!.credit(channel, count);
    pump.credit(count);
    this.checkDone();
  }

  /** Ends the session once both directions of the main channel ended and every QEMU channel ended with all its packets credited. */
  checkDone(): void {
    if (this.latch.over || !this.helloOk || !this.mainEndedBySource || !this.mainEndedByPeer) return;
    for (const pump of this.channels.values()) if (!pump.ended || pump.credited < pump.read) return;
    this.stats.status = 'completed';
    this.control.removeAllListeners('close');
    this.sendControl(encodeLinkFrame(LinkFrame.bye));
    this.control.end();
    this.linkSender!.end();
    // The destination proxy closes the link once it has everything: the end of control says so.
    this.control.once('close', () => this.latch.finish());
  }

  /** Tells a QEMU connection apart by its first 4 bytes, whatever its accept order. */
  onQemuConnection(socket: Socket): void {
    if (this.latch.over) return void socket.destroy();
    this.latch.track(socket, 'a QEMU connection');
    // QEMU's end of its main channel must not end the return path: each direction ends on its own.
    socket.allowHalfOpen = true;
    let head = Buffer.alloc(0);
    const sniff = (chunk: Buffer): void => {
      head = Buffer.concat([head, chunk]);
      if (head.byteLength < 4) return;
      socket.off('data', sniff);
      const kind = connectionKindOf(head);
      if (kind === 'main') this.onMain(socket, head);
      else if (kind === 'multifd') new QemuChannelPump(this, socket).start(head);
      else this.latch.fail('a QEMU connection', qemuProtocolError('ERR_QEMU_MAGIC', {}, 'first 4 bytes', 'QEVM (main) or 0x11223344 (multifd)', head.subarray(0, 4).toString('hex')));
    };
    socket.on('data', sniff);
    // A reset, or a close without an end, while the migration runs.
    socket.on('close', () => {
      if (!this.latch.over && !socket.readableEnded) this.latch.fail('a QEMU connection', closedEarly('a QEMU connection'));
    });
  }

  /** QEMU's main channel: its bytes go to the link in order, and the link's come back to it. */
  private onMain(socket: Socket, first: Buffer): void {
    if (this.main) {
      this.latch.fail('QEMU main channel', qemuProtocolError('ERR_QEMU_FIELD', {}, 'connection', 'one main channel', 'a second one (QEVM)'));
      return;
    }
    this.main = socket;
    const blocks = new RamBlockTableReader({ pageSize: this.settings.hello.pageSize });
    const forward = (chunk: Buffer): void => {
      if (this.latch.over) return;
      this.stats.mainBytes += chunk.byteLength;
      relayMainToLink(socket, this.control, chunk, this.stats);
      if (!this.ramBlocks) this.learnBlocks(blocks, () => blocks.push(chunk));
    };
    socket.on('data', forward);
    socket.on('end', () => {
      if (this.latch.over) return;
      if (!this.ramBlocks) this.learnBlocks(blocks, () => blocks.end());
      this.mainEndedBySource = true;
      this.sendControl(encodeLinkFrame(LinkFrame.mainEnd));
      this.checkDone();
    });
    forward(first);
    if (this.mainEndedByPeer) socket.end();
  }

  /**
   * Feeds the main channel's head to its reader (`step`); once the RAM block table is in, the
   * packets that waited for it go on. What the reader refuses fails the proxy.
   */
  private learnBlocks(reader: RamBlockTableReader, step: () => void): void {
    try {
      step();
    } catch (error) {
      return this.latch.fail('QEMU main channel', error);
    }
    if (!reader.table) return;
    this.ramBlocks = reader.table;
    for (const pump of this.channels.values()) pump.blocksKnown();
  }

  /** A QEMU multifd channel's init: the channel takes its id, and the init goes over verbatim. */
  openChannel(pump: QemuChannelPump, init: QemuInit): void {
    const id = init.channelId;
    if (this.channels.has(id)) throw qemuProtocolError('ERR_QEMU_FIELD', { channel: id }, 'id', 'a channel id not in use', `${id} again`);
    this.channels.set(id, pump);
    this.sendControl(encodeLinkFrame(LinkFrame.init, encodeQemuInit(init)));
  }

  /**
   * One QEMU packet through the pool into a packet frame on the link. Its pages are in page
   * slot `slot` (none without pages), which the frame's parts may view: the slot, and the
   * pool's result, are freed when the packet is credited.
   */
  async carry(channel: number, ordinal: number, header: QemuPacketHeader, slot: number | undefined): Promise<void> {
    const { codec, pagesPerPacket, hello } = this.settings;
    let result: SendResult | undefined;
    const release = (): void => {
      if (slot !== undefined) this.slots.give(slot);
      if (result) this.pool.recycle(result.buffer);
    };
    try {
      if (slot !== undefined) {
        result = await this.pool.send({
          codecWireId: codec.info.wireId,
          level: hello.level,
          pageSize: hello.pageSize,
          pagesPerPacket,
          memory: this.slots.memory,
          byteOffset: this.slots.byteOffset(slot),
          blockIndex: 0,
          firstPage: 0,
          pageCount: header.normalPages,
          round: 0,
          sequenceBase: ordinal,
          zeroPageDetection: 'multifd',
          hashChunks: false,
          stable: true,
        });
      }
    } catch (error) {
      release();
      throw error;
    }
    if (this.latch.over) return;
    const packets = result?.packets ?? [];
    const parts = encodePacketFrame(encodePacketFrameFields(channel, ordinal, header, packets.map((p) => p.byteLength)), packets.flatMap((p) => p.parts));
    this.stats.packets++;
    this.stats.pages += header.normalPages;
    this.stats.zeroPages += result?.zeroPages ?? 0;
    this.stats.qemuZeroPages += header.zeroPages;
    await this.linkSender!.send({ channel, ordinal, parts, byteLength: parts.reduce((n, part) => n + part.byteLength, 0), release });
  }
}
