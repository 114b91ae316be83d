// The proxy beside the destination QEMU (docs/qemu-proxy.md): it listens for the source proxy's
// link, and for the session connects to the destination QEMU as the source QEMU would have:
// the main channel first, its connect complete before any other (QEMU 7.2 takes its first
// accepted connection for the main channel), then one connection per multifd channel, each
// starting with the source QEMU's own init. Packet frames arrive on K link data connections in
// any order, and again after a lost link data connection (a frame it already has is dropped);
// each QEMU channel's packets are put back in order by their ordinal and written as QEMU
// packets again, each credited back to the source proxy once in the QEMU socket.
import type { Socket } from 'node:net';
import { getCodec } from '../codecs/registry.js';
import { ended } from '../transport/backpressure.js';
import { connect, parseEndpoint, type Endpoint, type TlsCredentials } from '../transport/index.js';
import { encodeChannelCount, encodeJsonFrame, encodeLinkFrame, LinkFrame, LinkFrameReader, linkError, linkFrameName, parseChannelCount, parseJsonBody, type LinkFrameItem } from './link-frames.js';
import { encodeQemuPacketHeader, parseQemuInit, qemuPacketHeaderBytes, qemuPageCount, QEMU_FLAG_SYNC, QEMU_INIT_BYTES, type QemuPacketHeader } from './multifd-format.js';
import { PacketFrameDecoder } from './packet-frame.js';
import { PageSlots } from './page-slots.js';
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

/** Options of {@link proxyToQemu}. */
export interface ProxyToQemuOptions {
  /** Where the source proxy connects: `tcp:0.0.0.0:4444` (port 0: any free port, see `address`). */
  listen: string;
  /** The destination QEMU's incoming endpoint (`migrate-incoming tcp:...`). */
  toQemu: string;
  /** TLS on the link. */
  tls?: TlsCredentials;
  /** Connect timeout towards the destination QEMU (default 10 s). */
  connectTimeoutMs?: number;
}

/** A packet decoded and verified, waiting for its turn: its pages are in a page slot. */
interface ReadyPacket {
  header: QemuPacketHeader;
  /** The slot holding its normal pages; none without pages. */
  slot: number | undefined;
}

interface ChannelState {
  id: number;
  socket: Socket | undefined;
  /** Packets that arrived ahead of their turn, by ordinal. */
  waiting: Map<number, ReadyPacket>;
  /** The next ordinal to write. */
  next: number;
  /** Packets whose bytes are in the QEMU socket (credited back). */
  written: number;
  /** Packets the source QEMU sent in all, once its channel ended. */
  total: number | undefined;
  /** Packets with pages or a SYNC handed to the socket whose write has not completed. */
  owed: number;
}

/**
 * Whether the destination QEMU needs a packet: one with pages or a SYNC. QEMU 7.2 may send an
 * empty packet after the last SYNC, which its destination, done by then, closes the channel
 * without reading; losing such a packet to a closed channel loses nothing.
 */
function needed(header: QemuPacketHeader): boolean {
  return header.normalPages > 0 || header.zeroPages > 0 || (header.flags & QEMU_FLAG_SYNC) !== 0;
}

/** What a link connection is, from its first frame: the control connection or data connection k. */
type LinkRole = { kind: 'control' } | { kind: 'data'; k: number };

/**
 * Starts the destination proxy: listens for one source proxy's session and serves it. The
 * handle's `done` resolves once the source proxy said the migration is over and every QEMU
 * connection was written in full.
 * @throws TransportError when it cannot listen.
 */
export async function proxyToQemu(options: ProxyToQemuOptions): Promise<ProxyHandle> {
  const startedAt = Date.now();
  const proxy = new DestinationProxy(options);
  const address = await listenFor(proxy.latch, 'link listener', options.listen, {
    tls: options.tls,
    onConnection: (socket) => proxy.onLinkConnection(socket),
    onRefused: (error) => proxy.latch.fail('link', error),
  });
  return proxyHandle(proxy.latch, () => proxy.stats, startedAt, address);
}

/**
 * The destination proxy's session: the link connections as they introduce themselves, the
 * destination QEMU's main channel, and its multifd channels by id, each put back in order.
 */
class DestinationProxy {
  readonly latch = new ProxyLatch('destination');
  /** Sized by the hello; until then, empty. */
  stats: ProxyStats = initialStats('destination', 0, 0, '', undefined);
  private readonly toQemu: Endpoint;
  private readonly qemuConnect: { timeoutMs?: number };
  private hello: ProxyHello | undefined;
  private control: Socket | undefined;
  private readonly data = new Map<number, Socket>();
  private main: Socket | undefined;
  private mainEndedByPeer = false;
  private mainEndedByQemu = false;
  private readonly channels = new Map<number, ChannelState>();
  private decoder: PacketFrameDecoder | undefined;
  private slots: PageSlots | undefined;
  /** Control frames are handled one at a time, in order: a multifd channel's connect waits for main's. */
  private controlQueue: Promise<void> = Promise.resolve();

  constructor(options: ProxyToQemuOptions) {
    this.toQemu = parseEndpoint(options.toQemu);
    this.qemuConnect = { timeoutMs: options.connectTimeoutMs };
  }

  onLinkConnection(socket: Socket): void {
    if (this.latch.over) return void socket.destroy();
    this.latch.track(socket, 'link connection', 'data');
    // Errors name the connection by its role: the reader knows it only as a link connection.
    const reader = new LinkFrameReader('connection');
    let role: LinkRole | undefined;
    socket.on('data', (chunk: Buffer) => {
      if (this.latch.over) return;
      this.stats.wireBytes += chunk.byteLength;
      try {
        const known = role;
        if (known?.kind === 'data') this.stats.linkChannelBytes[known.k]! += chunk.byteLength;
        reader.push(chunk);
        for (let item = reader.next(); item; item = reader.next()) {
          const first = !role;
          if (!role) role = this.identify(socket, item);
          if (role.kind === 'control') this.queueControlFrame(item);
          else if (!first) this.onPacket(item, role.k);
        }
        // The chunk that carried a data connection's hello counts for it too.
        if (!known && role?.kind === 'data') this.stats.linkChannelBytes[role.k]! += chunk.byteLength;
      } catch (error) {
        this.latch.fail((error as { where?: string }).where ?? linkWhere(role), error);
      }
    });
    // A data connection's loss is the source proxy's to mend: it resends on the others and dials again.
    // A connection that never said what it is holds nothing either.
    socket.on('error', (error) => role?.kind === 'control' && this.latch.fail('link control', error));
    socket.on('close', () => {
      if (this.latch.over || !role) return;
      if (role.kind === 'control') return this.latch.fail('link control', closedEarly('link control connection'));
      if (this.data.get(role.k) !== socket) return;
      this.data.delete(role.k);
      this.stats.linkLosses++;
    });
  }

  /** Which link connection this is, from its first frame; a second session is refused. */
  private identify(socket: Socket, item: LinkFrameItem): LinkRole {
    if (item.type === LinkFrame.hello) {
      if (this.control) throw linkError('ERR_LINK_FIELD', 'connection', 'hello', 'one session', 'a second');
      this.control = socket;
      this.latch.control = socket;
      return { kind: 'control' };
    }
    if (item.type !== LinkFrame.dataHello) throw linkError('ERR_LINK_TYPE', 'connection', 'first frame', 'hello or dataHello', linkFrameName(item.type));
    const body = parseJsonBody(item, 'connection');
    const k = body.linkChannel;
    const hello = this.hello;
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 254) throw linkError('ERR_LINK_FIELD', 'connection', 'dataHello linkChannel', 'a link channel', String(k));
    if (!hello || body.session !== hello.session) throw linkError('ERR_LINK_FIELD', 'connection', 'dataHello session', hello?.session ?? 'a hello first', String(body.session));
    if (k >= hello.linkChannels) throw linkError('ERR_LINK_FIELD', 'connection', 'dataHello linkChannel', `< ${hello.linkChannels}`, k);
    // The source proxy dials a link channel again when it lost it, perhaps before this side
    // saw the loss: the new connection replaces the old one.
    const old = this.data.get(k);
    this.data.set(k, socket);
    if (old) {
      this.stats.linkLosses++;
      old.destroy();
    }
    return { kind: 'data', k };
  }

  private queueControlFrame(item: LinkFrameItem): void {
    this.controlQueue = this.controlQueue
      .then(() => (this.latch.over ? undefined : this.onControlFrame(item)))
      .catch((error: { where?: string }) => this.latch.fail(error?.where ?? 'link control', error));
  }

  private async onControlFrame(item: LinkFrameItem): Promise<void> {
    if (!this.hello) return this.onHello(item);
    switch (item.type) {
      case LinkFrame.main:
        if (this.mainEndedByPeer) throw linkError('ERR_LINK_FIELD', 'control', 'main bytes', 'none after mainEnd', `${item.body.byteLength} bytes`);
        this.stats.mainBytes += item.body.byteLength;
        return relayMainFromLink(this.main!, this.control!, item.body);
      case LinkFrame.mainEnd:
        this.mainEndedByPeer = true;
        this.main!.end();
        return;
      case LinkFrame.init:
        return this.onInit(item, this.hello);
      case LinkFrame.channelEnd:
        return this.onChannelEnd(item);
      case LinkFrame.bye:
        return this.onBye();
      case LinkFrame.error:
        throw peerError('destination', parseJsonBody(item, 'control'));
      default:
        throw linkError('ERR_LINK_TYPE', 'control', 'frame type', 'main, mainEnd, init, channelEnd, bye or error', linkFrameName(item.type));
    }
  }

  /** The session's hello: size the stats, connect the destination QEMU's main channel, accept. */
  private async onHello(item: LinkFrameItem): Promise<void> {
    if (item.type !== LinkFrame.hello) throw linkError('ERR_LINK_TYPE', 'control', 'first frame', 'hello', linkFrameName(item.type));
    const hello = checkHello(parseJsonBody(item, 'control'));
    this.hello = hello;
    this.stats = initialStats('destination', hello.qemuChannels, hello.linkChannels, hello.codec, hello.level);
    this.decoder = new PacketFrameDecoder(hello.pageSize, 'data');
    this.slots = new PageSlots(hello.qemuChannels * CHANNEL_WINDOW_PACKETS, qemuPageCount(hello.pageSize) * hello.pageSize);
    // QEMU 7.2 takes the first connection it accepts for its main channel.
    const main = await this.connectQemu('QEMU main channel');
    if (!main) return;
    this.main = main;
    // Each direction of the main channel ends on its own (see proxy-source.ts).
    main.allowHalfOpen = true;
    main.on('data', (chunk: Buffer) => {
      if (this.latch.over) return;
      this.stats.returnBytes += chunk.byteLength;
      relayMainToLink(main, this.control!, chunk, this.stats);
    });
    main.on('end', () => {
      if (this.latch.over) return;
      this.mainEndedByQemu = true;
      this.sendControl(encodeLinkFrame(LinkFrame.mainEnd));
    });
    this.stats.status = 'active';
    this.sendControl(encodeJsonFrame(LinkFrame.helloOk, { session: hello.session }));
  }

  /** A connection to the destination QEMU, tracked as `where`; undefined when the proxy ended meanwhile. */
  private async connectQemu(where: string): Promise<Socket | undefined> {
    const socket = await connect(this.toQemu, this.qemuConnect).catch((error: unknown) => {
      throw Object.assign(error as Error, { where });
    });
    if (this.latch.over) return void socket.destroy();
    this.latch.track(socket, where);
    return socket;
  }

  /** A source QEMU channel's init: connect its channel to the destination QEMU and write the init verbatim. */
  private async onInit(item: LinkFrameItem, hello: ProxyHello): Promise<void> {
    if (item.body.byteLength !== QEMU_INIT_BYTES) throw linkError('ERR_LINK_FIELD', 'control', 'init', `${QEMU_INIT_BYTES} bytes`, item.body.byteLength);
    const init = parseQemuInit(item.body, hello.qemuChannels);
    const state = this.channel(init.channelId);
    if (state.socket) throw linkError('ERR_LINK_FIELD', 'control', 'init', `one for QEMU channel ${init.channelId}`, 'a second');
    const where = `QEMU multifd channel ${init.channelId}`;
    const socket = await this.connectQemu(where);
    if (!socket) return;
    // QEMU 7.2 never writes on a multifd channel; it closes it when its migration is over.
    socket.on('data', () => {});
    socket.on('close', () => {
      const pending = state.owed > 0 || [...state.waiting.values()].some((packet) => needed(packet.header));
      if (!this.latch.over && pending) this.latch.fail(where, closedEarly(`${where} (the destination QEMU)`));
    });
    state.socket = socket;
    this.stats.qemuMultifdBytes += item.body.byteLength;
    socket.write(item.body);
    this.flush(state);
  }

  private onChannelEnd(item: LinkFrameItem): void {
    const { channel: id, count } = parseChannelCount(item, 'control');
    const state = this.channel(id);
    if (state.total !== undefined || count < state.next) throw linkError('ERR_LINK_FIELD', 'control', `channelEnd of QEMU channel ${id}`, `one, at least ${state.next}`, count);
    state.total = count;
    this.flush(state);
  }

  private async onBye(): Promise<void> {
    const channels = [...this.channels.values()];
    const complete = this.mainEndedByPeer && this.mainEndedByQemu && channels.every((c) => c.total !== undefined && c.written === c.total);
    if (!complete) throw linkError('ERR_LINK_FIELD', 'control', 'bye', 'after every QEMU packet and the main channel', 'before');
    this.stats.status = 'completed';
    // Whatever the destination QEMU has not taken yet is in its sockets: end them, then close.
    // A QEMU that closed a connection itself (it had everything) is not waited for.
    await Promise.all([this.main, ...channels.map((c) => c.socket)].map((s) => (s ? ended(s).catch(() => {}) : undefined)));
    this.latch.finish();
  }

  private sendControl(frame: Uint8Array): void {
    writeCounted(this.control!, frame, this.stats);
  }

  private channel(id: number): ChannelState {
    if (!this.hello || id >= this.hello.qemuChannels) throw linkError('ERR_LINK_FIELD', 'control', 'QEMU channel', `< ${this.hello?.qemuChannels ?? 0}`, id);
    let state = this.channels.get(id);
    if (!state) {
      state = { id, socket: undefined, waiting: new Map(), next: 0, written: 0, total: undefined, owed: 0 };
      this.channels.set(id, state);
    }
    return state;
  }

  /**
   * A packet frame from link data connection k: a packet it already has (sent again after a
   * lost connection) is dropped; another is checked against its channel's window, decoded
   * into a page slot, and written in its turn.
   */
  private onPacket(item: LinkFrameItem, k: number): void {
    if (item.type !== LinkFrame.packet) throw linkError('ERR_LINK_TYPE', `data ${k}`, 'frame type', 'packet', linkFrameName(item.type));
    const fields = this.decoder!.readFields(item);
    const { ordinal, header } = fields;
    const state = this.channel(fields.channel);
    if (ordinal < state.next || state.waiting.has(ordinal)) {
      this.stats.resentPackets++;
      this.stats.resentBytes += item.body.byteLength;
      return;
    }
    if (ordinal >= state.written + CHANNEL_WINDOW_PACKETS) throw linkError('ERR_LINK_FIELD', `data ${k}`, `QEMU channel ${fields.channel} packet ordinal`, `${state.next} to ${state.written + CHANNEL_WINDOW_PACKETS - 1}`, ordinal);
    if (state.total !== undefined && ordinal >= state.total) throw linkError('ERR_LINK_FIELD', `data ${k}`, `QEMU channel ${fields.channel} packet ordinal`, `< ${state.total} (its end)`, ordinal);
    const slots = this.slots!;
    const slot = header.normalPages > 0 ? slots.take() : undefined;
    try {
      this.stats.zeroPages += this.decoder!.decodePages(fields, item, slots.memory, slots.byteOffset(slot ?? 0));
    } catch (error) {
      if (slot !== undefined) slots.give(slot);
      throw error;
    }
    this.stats.packets++;
    this.stats.pages += header.normalPages;
    this.stats.qemuZeroPages += header.zeroPages;
    state.waiting.set(ordinal, { header, slot });
    this.flush(state);
  }

  /** Writes every packet of `state` that is next in its order, then ends the channel when all are written. */
  private flush(state: ChannelState): void {
    const socket = state.socket;
    if (!socket || !this.hello) return;
    const where = `QEMU multifd channel ${state.id}`;
    for (let packet = state.waiting.get(state.next); packet; packet = state.waiting.get(state.next)) {
      state.waiting.delete(state.next);
      state.next++;
      // The destination QEMU closed the channel (it may, once it had everything): only a packet it does not need may be left.
      if (socket.destroyed && needed(packet.header)) throw Object.assign(closedEarly(`${where} (the destination QEMU)`), { where });
      this.writePacket(socket, state, packet, where);
    }
    if (state.total !== undefined && state.written === state.total && state.next === state.total) socket.end();
  }

  /** Writes one packet to the destination QEMU and credits it to the source proxy once written (its slot then free). */
  private writePacket(socket: Socket, state: ChannelState, { header, slot }: ReadyPacket, where: string): void {
    const counted = needed(header);
    const credit = (): void => {
      if (slot !== undefined) this.slots!.give(slot);
      state.written++;
      this.sendControl(encodeChannelCount(LinkFrame.credit, state.id, state.written));
      if (state.written === state.total) socket.end();
    };
    if (socket.destroyed) return credit();
    const bytes = encodeQemuPacketHeader(header, this.hello!.pageSize);
    const pages = this.slots!.view(slot ?? 0, slot === undefined ? 0 : header.normalPages * this.hello!.pageSize);
    this.stats.qemuMultifdBytes += bytes.byteLength + pages.byteLength;
    if (counted) state.owed++;
    socket.cork();
    socket.write(bytes);
    socket.write(pages, (error) => {
      if (counted) state.owed--;
      if (this.latch.over) return;
      if (error && counted) return this.latch.fail(where, closedEarly(`${where} (the destination QEMU)`));
      credit();
    });
    socket.uncork();
  }

}

/** A link connection's name in errors. */
function linkWhere(role: LinkRole | undefined): string {
  return role?.kind === 'data' ? `link data ${role.k}` : 'link control';
}

/** The source proxy's hello, checked: what this proxy can serve. */
function checkHello(body: Record<string, unknown>): ProxyHello {
  const int = (name: string, min: number, max: number): number => {
    const value = body[name];
    if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) throw linkError('ERR_LINK_FIELD', 'control', `hello ${name}`, `${min} to ${max}`, String(value));
    return value;
  };
  const qemuChannels = int('qemuChannels', 1, 255);
  const linkChannels = int('linkChannels', 1, 255);
  const pageSize = int('pageSize', 4096, 65536);
  qemuPacketHeaderBytes(pageSize);
  if (typeof body.session !== 'string' || !/^[0-9a-f]{32}$/.test(body.session)) throw linkError('ERR_LINK_FIELD', 'control', 'hello session', '32 hex digits', String(body.session));
  const codec = getCodec(String(body.codec)).info.id;
  const level = body.level === undefined ? undefined : int('level', -1000, 1000);
  return { session: body.session, qemuChannels, linkChannels, pageSize, codec, level };
}
