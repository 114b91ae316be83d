// The proxy beside the destination QEMU (docs/qemu-proxy.md): it listens for the source proxy's
// link, and for the session connects to the destination QEMU as the source QEMU would have:
// the main channel first, its connect complete before any other (QEMU 7.2 takes its first
// accepted connection for the main channel), then one connection per multifd channel, each
// starting with the source QEMU's own init. Packet frames arrive on K link data connections in
// any order; each QEMU channel's packets are put back in order by their ordinal and written as
// QEMU packets again, each credited back to the source proxy once in the QEMU socket.
import type { Socket } from 'node:net';
import { getCodec } from '../codecs/registry.js';
import { ended } from '../transport/backpressure.js';
import { connect, parseEndpoint, type TlsCredentials } from '../transport/index.js';
import { encodeChannelCount, encodeJsonFrame, encodeLinkFrame, LinkFrame, LinkFrameReader, linkError, linkFrameName, parseChannelCount, parseJsonBody, type LinkFrameItem } from './link-frames.js';
import { encodeQemuPacketHeader, parseQemuInit, qemuPacketHeaderBytes, QEMU_INIT_BYTES } from './multifd-format.js';
import { PacketFrameDecoder, type CarriedPacket } from './packet-frame.js';
import {
  CHANNEL_WINDOW_PACKETS,
  closedEarly,
  initialStats,
  listenFor,
  MAIN_FRAME_BYTES,
  MAIN_QUEUE_BYTES,
  peerError,
  ProxyLatch,
  proxyHandle,
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

interface ChannelState {
  id: number;
  socket: Socket | undefined;
  /** Packets that arrived ahead of their turn, by ordinal. */
  waiting: Map<number, CarriedPacket>;
  /** The next ordinal to write. */
  next: number;
  /** Packets whose bytes are in the QEMU socket (credited back). */
  written: number;
  /** Packets the source QEMU sent in all, once its channel ended. */
  total: number | undefined;
}

/**
 * Starts the destination proxy: listens for one source proxy's session and serves it. The
 * handle's `done` resolves once the source proxy said the migration is over and every QEMU
 * connection was written in full.
 * @throws TransportError when it cannot listen.
 */
export async function proxyToQemu(options: ProxyToQemuOptions): Promise<ProxyHandle> {
  const startedAt = Date.now();
  const latch = new ProxyLatch('destination');
  let stats: ProxyStats = initialStats('destination', 0, 0, '', undefined);
  const toQemu = parseEndpoint(options.toQemu);
  const qemuConnect = { timeoutMs: options.connectTimeoutMs };

  let hello: ProxyHello | undefined;
  let control: Socket | undefined;
  const data = new Map<number, Socket>();
  let main: Socket | undefined;
  let mainEndedByPeer = false;
  let mainEndedByQemu = false;
  const channels = new Map<number, ChannelState>();
  let decoder: PacketFrameDecoder | undefined;
  /** Control frames are handled one at a time, in order: a multifd channel's connect waits for main's. */
  let controlQueue: Promise<void> = Promise.resolve();

  const channel = (id: number): ChannelState => {
    if (!hello || id >= hello.qemuChannels) throw linkError('ERR_LINK_FIELD', 'control', 'QEMU channel', `< ${hello?.qemuChannels ?? 0}`, id);
    let state = channels.get(id);
    if (!state) {
      state = { id, socket: undefined, waiting: new Map(), next: 0, written: 0, total: undefined };
      channels.set(id, state);
    }
    return state;
  };

  /** Writes every packet of `state` that is next in its order, then ends the channel when all are written. */
  const flush = (state: ChannelState): void => {
    const socket = state.socket;
    if (!socket || !hello) return;
    const where = `QEMU multifd channel ${state.id}`;
    // The destination QEMU closed the channel (it may, once it had everything): a packet more is a failure.
    if (socket.destroyed && state.waiting.size > 0) throw Object.assign(closedEarly(`${where} (the destination QEMU)`), { where });
    for (let packet = state.waiting.get(state.next); packet; packet = state.waiting.get(state.next)) {
      state.waiting.delete(state.next);
      state.next++;
      const header = encodeQemuPacketHeader(packet.header, hello.pageSize);
      stats.qemuMultifdBytes += header.byteLength + packet.pages.byteLength;
      socket.write(header);
      socket.write(packet.pages, (error) => {
        if (error) return latch.fail(where, closedEarly(`${where} (the destination QEMU)`));
        if (latch.over) return;
        state.written++;
        writeCounted(control!, encodeChannelCount(LinkFrame.credit, state.id, state.written), stats);
        if (state.written === state.total) socket.end();
      });
    }
    if (state.total !== undefined && state.written === state.total && state.next === state.total) socket.end();
  };

  const onPacket = (item: LinkFrameItem, k: number): void => {
    if (item.type !== LinkFrame.packet) throw linkError('ERR_LINK_TYPE', `data ${k}`, 'frame type', 'packet', linkFrameName(item.type));
    const packet = decoder!.decode(item.body);
    const state = channel(packet.channel);
    if (packet.ordinal < state.next || state.waiting.has(packet.ordinal) || packet.ordinal >= state.written + CHANNEL_WINDOW_PACKETS) {
      throw linkError('ERR_LINK_FIELD', `data ${k}`, `QEMU channel ${packet.channel} packet ordinal`, `${state.next} to ${state.written + CHANNEL_WINDOW_PACKETS - 1}, not seen before`, packet.ordinal);
    }
    if (state.total !== undefined && packet.ordinal >= state.total) throw linkError('ERR_LINK_FIELD', `data ${k}`, `QEMU channel ${packet.channel} packet ordinal`, `< ${state.total} (its end)`, packet.ordinal);
    stats.packets++;
    stats.pages += packet.header.normalPages;
    stats.zeroPages += packet.zeroPages;
    stats.qemuZeroPages += packet.header.zeroPages;
    state.waiting.set(packet.ordinal, packet);
    flush(state);
  };

  async function onControlFrame(item: LinkFrameItem): Promise<void> {
    if (!hello) {
      if (item.type !== LinkFrame.hello) throw linkError('ERR_LINK_TYPE', 'control', 'first frame', 'hello', linkFrameName(item.type));
      hello = checkHello(parseJsonBody(item, 'control'));
      stats = initialStats('destination', hello.qemuChannels, hello.linkChannels, hello.codec, hello.level);
      decoder = new PacketFrameDecoder(hello.pageSize, 'data');
      // QEMU 7.2 takes the first connection it accepts for its main channel.
      main = await connect(toQemu, qemuConnect).catch((error: unknown) => {
        throw Object.assign(error as Error, { where: 'QEMU main channel' });
      });
      if (latch.over) return void main.destroy();
      latch.track(main, 'QEMU main channel');
      // Each direction of the main channel ends on its own (see proxy-source.ts).
      main.allowHalfOpen = true;
      main.on('data', (chunk: Buffer) => {
        if (latch.over) return;
        stats.returnBytes += chunk.byteLength;
        for (let at = 0; at < chunk.byteLength; at += MAIN_FRAME_BYTES) writeCounted(control!, encodeLinkFrame(LinkFrame.main, chunk.subarray(at, at + MAIN_FRAME_BYTES)), stats);
        if (control!.writableLength > MAIN_QUEUE_BYTES) {
          main!.pause();
          control!.once('drain', () => main!.resume());
        }
      });
      main.on('end', () => {
        if (latch.over) return;
        mainEndedByQemu = true;
        writeCounted(control!, encodeLinkFrame(LinkFrame.mainEnd), stats);
      });
      stats.status = 'active';
      writeCounted(control!, encodeJsonFrame(LinkFrame.helloOk, { session: hello.session }), stats);
      return;
    }
    switch (item.type) {
      case LinkFrame.main:
        if (mainEndedByPeer) throw linkError('ERR_LINK_FIELD', 'control', 'main bytes', 'none after mainEnd', `${item.body.byteLength} bytes`);
        stats.mainBytes += item.body.byteLength;
        if (!main!.write(item.body) && main!.writableLength > MAIN_QUEUE_BYTES) {
          control!.pause();
          main!.once('drain', () => control!.resume());
        }
        return;
      case LinkFrame.mainEnd:
        mainEndedByPeer = true;
        main!.end();
        return;
      case LinkFrame.init: {
        if (item.body.byteLength !== QEMU_INIT_BYTES) throw linkError('ERR_LINK_FIELD', 'control', 'init', `${QEMU_INIT_BYTES} bytes`, item.body.byteLength);
        const init = parseQemuInit(item.body, hello.qemuChannels);
        const state = channel(init.channelId);
        if (state.socket) throw linkError('ERR_LINK_FIELD', 'control', 'init', `one for QEMU channel ${init.channelId}`, 'a second');
        const where = `QEMU multifd channel ${init.channelId}`;
        const socket = await connect(toQemu, qemuConnect).catch((error: unknown) => {
          throw Object.assign(error as Error, { where });
        });
        if (latch.over) return void socket.destroy();
        latch.track(socket, where);
        // QEMU 7.2 never writes on a multifd channel; it closes it when its migration is over.
        socket.on('data', () => {});
        socket.on('close', () => {
          const pending = state.waiting.size > 0 || state.written < state.next;
          if (!latch.over && pending) latch.fail(where, closedEarly(`${where} (the destination QEMU)`));
        });
        state.socket = socket;
        stats.qemuMultifdBytes += item.body.byteLength;
        socket.write(item.body);
        flush(state);
        return;
      }
      case LinkFrame.channelEnd: {
        const { channel: id, count } = parseChannelCount(item, 'control');
        const state = channel(id);
        if (state.total !== undefined || count < state.next) throw linkError('ERR_LINK_FIELD', 'control', `channelEnd of QEMU channel ${id}`, `one, at least ${state.next}`, count);
        state.total = count;
        flush(state);
        return;
      }
      case LinkFrame.bye: {
        const complete = mainEndedByPeer && mainEndedByQemu && [...channels.values()].every((c) => c.total !== undefined && c.written === c.total);
        if (!complete) throw linkError('ERR_LINK_FIELD', 'control', 'bye', 'after every QEMU packet and the main channel', 'before');
        stats.status = 'completed';
        // Whatever the destination QEMU has not taken yet is in its sockets: end them, then close.
        // A QEMU that closed a connection itself (it had everything) is not waited for.
        await Promise.all([main, ...[...channels.values()].map((c) => c.socket)].map((s) => (s ? ended(s).catch(() => {}) : undefined)));
        latch.finish();
        return;
      }
      case LinkFrame.error:
        throw peerError('destination', parseJsonBody(item, 'control'));
      default:
        throw linkError('ERR_LINK_TYPE', 'control', 'frame type', 'main, mainEnd, init, channelEnd, bye or error', linkFrameName(item.type));
    }
  }

  const onLinkConnection = (socket: Socket): void => {
    if (latch.over) return void socket.destroy();
    latch.track(socket, 'link connection', true);
    // Errors name the connection by its role: the reader knows it only as a link connection.
    const reader = new LinkFrameReader('connection');
    let role: { kind: 'control' } | { kind: 'data'; k: number } | undefined;
    socket.on('data', (chunk: Buffer) => {
      if (latch.over) return;
      stats.wireBytes += chunk.byteLength;
      try {
        const known = role;
        if (known?.kind === 'data') stats.linkChannelBytes[known.k]! += chunk.byteLength;
        reader.push(chunk);
        for (let item = reader.next(); item; item = reader.next()) {
          const first = !role;
          if (!role) role = identify(socket, item);
          if (role.kind === 'control') {
            const frame = item;
            controlQueue = controlQueue.then(() => (latch.over ? undefined : onControlFrame(frame))).catch((error: { where?: string }) => latch.fail(error?.where ?? 'link control', error));
          } else if (!first) onPacket(item, role.k);
        }
        // The chunk that carried a data connection's hello counts for it too.
        if (!known && role?.kind === 'data') stats.linkChannelBytes[role.k]! += chunk.byteLength;
      } catch (error) {
        latch.fail((error as { where?: string }).where ?? (role?.kind === 'data' ? `link data ${role.k}` : 'link control'), error);
      }
    });
    socket.on('close', () => {
      if (latch.over) return;
      latch.fail(role?.kind === 'data' ? `link data ${role.k}` : 'link control', closedEarly(role?.kind === 'data' ? `link data connection ${role.k}` : 'link control connection'));
    });
  };

  /** Which link connection this is, from its first frame; a second session is refused. */
  const identify = (socket: Socket, item: LinkFrameItem): { kind: 'control' } | { kind: 'data'; k: number } => {
    if (item.type === LinkFrame.hello) {
      if (control) throw linkError('ERR_LINK_FIELD', 'connection', 'hello', 'one session', 'a second');
      control = socket;
      latch.control = socket;
      return { kind: 'control' };
    }
    if (item.type !== LinkFrame.dataHello) throw linkError('ERR_LINK_TYPE', 'connection', 'first frame', 'hello or dataHello', linkFrameName(item.type));
    const body = parseJsonBody(item, 'connection');
    const k = body.linkChannel;
    // The data hello may come before the control hello: the session is checked against it when both are in.
    if (typeof k !== 'number' || !Number.isInteger(k) || k < 0 || k > 254 || data.has(k)) throw linkError('ERR_LINK_FIELD', 'connection', 'dataHello linkChannel', 'a new link channel', String(k));
    if (!hello || body.session !== hello.session) throw linkError('ERR_LINK_FIELD', 'connection', 'dataHello session', hello?.session ?? 'a hello first', String(body.session));
    if (k >= hello.linkChannels) throw linkError('ERR_LINK_FIELD', 'connection', 'dataHello linkChannel', `< ${hello.linkChannels}`, k);
    data.set(k, socket);
    return { kind: 'data', k };
  };

  const address = await listenFor(latch, 'link listener', options.listen, { tls: options.tls, onConnection: onLinkConnection, onRefused: (error) => latch.fail('link', error) });
  return proxyHandle(latch, () => stats, startedAt, address);
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
