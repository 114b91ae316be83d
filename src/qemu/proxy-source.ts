// The proxy beside the source QEMU (docs/qemu-proxy.md): QEMU migrates to it (`migrate
// tcp:...`); it tells QEMU's connections apart by their first 4 bytes, carries the main channel
// as ordered bytes on the link control connection, and parses every multifd channel: its init
// goes over verbatim, each packet's pages go through the worker pool (SIMD zero scan, the link
// codec) into multifd's own packets, one packet frame per QEMU packet, on the least-queued link
// data connection.
import { randomBytes } from 'node:crypto';
import type { Socket } from 'node:net';
import { getCodec } from '../codecs/registry.js';
import type { CodecId } from '../codecs/types.js';
import { WorkerPool } from '../pool/pool.js';
import { TransportError } from '../errors.js';
import { connect, DEFAULT_CONNECT_TIMEOUT_MS, parseEndpoint, TokenBucket, type TlsCredentials } from '../transport/index.js';
import { QemuChannelReader } from './channel-reader.js';
import { encodeChannelCount, encodeJsonFrame, encodeLinkFrame, LinkFrame, LinkFrameReader, linkError, linkFrameName, parseChannelCount, parseJsonBody, type LinkFrameItem } from './link-frames.js';
import { connectionKindOf, encodeQemuInit, qemuPageCount, qemuProtocolError, type QemuPacketHeader } from './multifd-format.js';
import { encodePacketFrameBody } from './packet-frame.js';
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

interface ChannelState {
  id: number;
  socket: Socket;
  /** Hands over more of the channel's packets (after a credit opened its window). */
  drain: () => void;
  /** Packets read from QEMU so far (the next ordinal). */
  read: number;
  /** Packets the destination proxy has written to its QEMU. */
  credited: number;
  /** The source QEMU closed the channel. */
  ended: boolean;
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
  const pageSize = options.pageSize ?? 4096;
  const pagesPerPacket = qemuPageCount(pageSize);
  const qemuChannels = options.qemuChannels ?? 2;
  const linkChannels = options.linkChannels ?? qemuChannels;
  if (!Number.isInteger(qemuChannels) || qemuChannels < 1 || qemuChannels > 255) throw new RangeError(`qemuChannels must be 1..255, got ${qemuChannels}`);
  if (!Number.isInteger(linkChannels) || linkChannels < 1 || linkChannels > 255) throw new RangeError(`linkChannels must be 1..255, got ${linkChannels}`);
  const codec = getCodec(options.codec ?? 'zstd');
  const level = options.level ?? codec.info.levels?.default;
  const stats = initialStats('source', qemuChannels, linkChannels, codec.info.id, level);
  const latch = new ProxyLatch('source');
  const session = randomBytes(16).toString('hex');

  // The link first: a proxy that cannot reach its peer should fail before QEMU starts.
  const to = parseEndpoint(options.to);
  const connectOptions = { tls: options.tls, timeoutMs: options.connectTimeoutMs };
  const control = await connect(to, connectOptions);
  latch.track(control, 'link control', true);
  latch.control = control;
  const data: Socket[] = [];
  try {
    for (let k = 0; k < linkChannels; k++) {
      const socket = await connect(to, connectOptions);
      latch.track(socket, `link data ${k}`, true);
      data.push(socket);
    }
  } catch (error) {
    latch.fail('link', error);
    throw latch.failure;
  }
  const hello: ProxyHello = { session, qemuChannels, linkChannels, pageSize, codec: codec.info.id, level };
  writeCounted(control, encodeJsonFrame(LinkFrame.hello, hello), stats);
  data.forEach((socket, k) => {
    // Nothing comes back on a data connection; its end before ours is a failure.
    socket.on('data', () => latch.fail(`link data ${k}`, linkError('ERR_LINK_FIELD', `data ${k}`, 'bytes', 'none towards the source proxy', 'some')));
    socket.on('close', () => latch.fail(`link data ${k}`, closedEarly(`link data connection ${k}`)));
  });

  const pool = new WorkerPool({ threads: options.threads });
  latch.onEnd(() => void pool.close());
  // One 512 KiB slot per packet in the pool's hands: the pool reads pages from shared memory.
  const slotCount = qemuChannels * CHANNEL_WINDOW_PACKETS;
  const slotBytes = pagesPerPacket * pageSize;
  const memory = new WebAssembly.Memory({ initial: Math.ceil((slotCount * slotBytes) / 65536), maximum: Math.ceil((slotCount * slotBytes) / 65536), shared: true });
  const freeSlots = Array.from({ length: slotCount }, (_, i) => i);

  let main: Socket | undefined;
  let mainEndedBySource = false;
  let mainEndedByPeer = false;
  let helloOk = false;
  let accepted!: () => void;
  const sessionAccepted = new Promise<void>((resolve) => (accepted = resolve));
  const channels = new Map<number, ChannelState>();

  const checkDone = (): void => {
    if (latch.over || !helloOk || !mainEndedBySource || !mainEndedByPeer) return;
    for (const c of channels.values()) if (!c.ended || c.credited < c.read) return;
    stats.status = 'completed';
    control.removeAllListeners('close');
    data.forEach((socket) => socket.removeAllListeners('close'));
    writeCounted(control, encodeLinkFrame(LinkFrame.bye), stats);
    control.end();
    data.forEach((socket) => socket.end());
    // The destination proxy closes the link once it has everything: the end of control says so.
    control.once('close', () => latch.finish());
  };

  // The link control connection, from the destination proxy.
  const controlReader = new LinkFrameReader('control');
  control.on('data', (chunk: Buffer) => {
    if (latch.over) return;
    stats.wireBytes += chunk.byteLength;
    try {
      controlReader.push(chunk);
      for (let item = controlReader.next(); item; item = controlReader.next()) onControlFrame(item);
    } catch (error) {
      latch.fail('link control', error);
    }
  });
  control.on('close', () => latch.fail('link control', closedEarly('link control connection')));

  function onControlFrame(item: LinkFrameItem): void {
    switch (item.type) {
      case LinkFrame.helloOk: {
        const body = parseJsonBody(item, 'control');
        if (body.session !== session) throw linkError('ERR_LINK_FIELD', 'control', 'helloOk session', session, String(body.session));
        helloOk = true;
        stats.status = 'active';
        // The data connections introduce themselves once the destination proxy holds the session.
        data.forEach((socket, k) => writeCounted(socket, encodeJsonFrame(LinkFrame.dataHello, { session, linkChannel: k }), stats, k));
        accepted();
        return;
      }
      case LinkFrame.main:
        if (!main) throw linkError('ERR_LINK_FIELD', 'control', 'main bytes', 'none before the source QEMU connects', `${item.body.byteLength} bytes`);
        stats.returnBytes += item.body.byteLength;
        if (!main.write(item.body) && main.writableLength > MAIN_QUEUE_BYTES) {
          control.pause();
          main.once('drain', () => control.resume());
        }
        return;
      case LinkFrame.mainEnd:
        mainEndedByPeer = true;
        main?.end();
        checkDone();
        return;
      case LinkFrame.credit: {
        const { channel, count } = parseChannelCount(item, 'control');
        const state = channels.get(channel);
        if (!state || count > state.read || count < state.credited) throw linkError('ERR_LINK_FIELD', 'control', `credit for QEMU channel ${channel}`, `${state?.credited ?? 0} to ${state?.read ?? 0}`, count);
        state.credited = count;
        state.drain();
        checkDone();
        return;
      }
      case LinkFrame.error:
        throw peerError('source', parseJsonBody(item, 'control'));
      default:
        throw linkError('ERR_LINK_TYPE', 'control', 'frame type', 'helloOk, main, mainEnd, credit or error', linkFrameName(item.type));
    }
  }

  /**
   * The least-queued link data connection takes the next frame (as SendChannels choose); ties,
   * the usual case on a link faster than QEMU, go round-robin from the last one used.
   */
  let last = 0;
  const sendFrame = (frame: Uint8Array): void => {
    let best = (last + 1) % data.length;
    for (let i = 2; i <= data.length; i++) {
      const k = (last + i) % data.length;
      if (data[k]!.writableLength < data[best]!.writableLength) best = k;
    }
    last = best;
    writeCounted(data[best]!, frame, stats, best);
  };

  const bucket = options.maxBandwidth ? new TokenBucket({ bytesPerSecond: options.maxBandwidth }) : undefined;
  // Each QEMU channel has at most CHANNEL_WINDOW_PACKETS packets in flight, so a slot is always free.
  const takeSlot = (): number => {
    const slot = freeSlots.pop();
    if (slot === undefined) throw new Error('source proxy: no free page slot, although every channel keeps to its window');
    return slot;
  };
  const giveSlot = (slot: number): void => void freeSlots.push(slot);

  /** One QEMU packet through the pool into a packet frame on the link. */
  const carry = async (channel: number, ordinal: number, header: QemuPacketHeader, pages: Uint8Array): Promise<void> => {
    let slot: number | undefined = takeSlot();
    try {
      const byteOffset = slot * slotBytes;
      new Uint8Array(memory.buffer, byteOffset, pages.byteLength).set(pages);
      const result = await pool.send({
        codecWireId: codec.info.wireId,
        level,
        pageSize,
        pagesPerPacket,
        memory,
        byteOffset,
        blockIndex: 0,
        firstPage: 0,
        pageCount: header.normalPages,
        round: 0,
        sequenceBase: ordinal,
        zeroPageDetection: 'multifd',
        hashChunks: false,
        stable: true,
      });
      if (latch.over) return;
      // The frame copies the packets (and any page views of the slot) before the slot is reused.
      const body = encodePacketFrameBody(channel, ordinal, header, result.packets.map((p) => p.parts));
      pool.recycle(result.buffer);
      stats.packets++;
      stats.pages += header.normalPages;
      stats.zeroPages += result.zeroPages;
      stats.qemuZeroPages += header.zeroPages;
      giveSlot(slot);
      slot = undefined;
      const frame = encodeLinkFrame(LinkFrame.packet, body);
      if (bucket) await bucket.acquire(frame.byteLength);
      if (!latch.over) sendFrame(frame);
    } finally {
      if (slot !== undefined) giveSlot(slot);
    }
  };

  const onMultifd = (socket: Socket, first: Buffer): void => {
    const reader = new QemuChannelReader({ pageSize, channels: qemuChannels });
    let state: ChannelState | undefined;
    let eof = false;
    const where = () => `QEMU multifd channel ${reader.channelId ?? '(before its init)'}`;
    const windowFull = () => state !== undefined && state.read - state.credited >= CHANNEL_WINDOW_PACKETS;
    /**
     * Hands over what the reader holds while the channel's window has room. A full window
     * stops both this loop and the socket; a credit calls it again. The reader then holds at
     * most one socket chunk beyond one packet.
     */
    const drain = (): void => {
      while (!windowFull()) {
        const item = reader.next();
        if (!item) {
          if (eof) end();
          else socket.resume();
          return;
        }
        if (item.kind === 'init') {
          const id = item.init.channelId;
          if (channels.has(id)) throw qemuProtocolError('ERR_QEMU_FIELD', { channel: id }, 'id', 'a channel id not in use', `${id} again`);
          state = { id, socket, read: 0, credited: 0, ended: false, drain: guard(drain) };
          channels.set(id, state);
          writeCounted(control, encodeLinkFrame(LinkFrame.init, encodeQemuInit(item.init)), stats);
          continue;
        }
        const s = state!;
        const ordinal = s.read++;
        carry(s.id, ordinal, item.header, item.pages).catch((error) => latch.fail(`QEMU multifd channel ${s.id}, packet ${ordinal}`, error));
      }
      socket.pause();
    };
    const end = (): void => {
      reader.end();
      if (!state) throw qemuProtocolError('ERR_QEMU_TRUNCATED', {}, 'init', '64 bytes', 'a channel closed before its init');
      if (state.ended) return;
      state.ended = true;
      writeCounted(control, encodeChannelCount(LinkFrame.channelEnd, state.id, state.read), stats);
      checkDone();
    };
    const guard = (step: () => void) => (): void => {
      if (latch.over) return;
      try {
        step();
      } catch (error) {
        latch.fail(where(), error);
      }
    };
    socket.on('data', (chunk: Buffer) => {
      stats.qemuMultifdBytes += chunk.byteLength;
      guard(() => {
        reader.push(chunk);
        drain();
      })();
    });
    socket.on('end', () => {
      eof = true;
      guard(drain)();
    });
    stats.qemuMultifdBytes += first.byteLength;
    guard(() => {
      reader.push(first);
      drain();
    })();
  };

  const onMain = (socket: Socket, first: Buffer): void => {
    if (main) {
      latch.fail('QEMU main channel', qemuProtocolError('ERR_QEMU_FIELD', {}, 'connection', 'one main channel', 'a second one (QEVM)'));
      return;
    }
    main = socket;
    const forward = (chunk: Buffer): void => {
      if (latch.over) return;
      stats.mainBytes += chunk.byteLength;
      for (let at = 0; at < chunk.byteLength; at += MAIN_FRAME_BYTES) writeCounted(control, encodeLinkFrame(LinkFrame.main, chunk.subarray(at, at + MAIN_FRAME_BYTES)), stats);
      if (control.writableLength > MAIN_QUEUE_BYTES) {
        socket.pause();
        control.once('drain', () => socket.resume());
      }
    };
    socket.on('data', forward);
    socket.on('end', () => {
      if (latch.over) return;
      mainEndedBySource = true;
      writeCounted(control, encodeLinkFrame(LinkFrame.mainEnd), stats);
      checkDone();
    });
    forward(first);
    if (mainEndedByPeer) socket.end();
  };

  // QEMU is let in once the destination proxy accepted the session (and reached its QEMU,
  // which its own connect timeout bounds): a peer that never answers fails the start.
  const helloTimeoutMs = 2 * (options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
  const helloTimer = setTimeout(() => latch.fail('link control', new TransportError('ERR_LINK_TIMEOUT', `no answer to the hello within ${helloTimeoutMs} ms`)), helloTimeoutMs);
  await Promise.race([sessionAccepted, latch.done]).catch(() => {});
  clearTimeout(helloTimer);
  if (latch.failure) throw latch.failure;
  // Every QEMU connection is told apart by its first 4 bytes, whatever its accept order.
  const address = await listenFor(latch, 'QEMU listener', options.fromQemu, {
    onConnection(socket) {
      if (latch.over) return void socket.destroy();
      latch.track(socket, 'a QEMU connection');
      // QEMU's end of its main channel must not end the return path: each direction ends on its own.
      socket.allowHalfOpen = true;
      let head = Buffer.alloc(0);
      const sniff = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        if (head.byteLength < 4) return;
        socket.off('data', sniff);
        const kind = connectionKindOf(head);
        if (kind === 'main') onMain(socket, head);
        else if (kind === 'multifd') onMultifd(socket, head);
        else latch.fail('a QEMU connection', qemuProtocolError('ERR_QEMU_MAGIC', {}, 'first 4 bytes', 'QEVM (main) or 0x11223344 (multifd)', head.subarray(0, 4).toString('hex')));
      };
      socket.on('data', sniff);
      // A reset, or a close without an end, while the migration runs.
      socket.on('close', () => {
        if (!latch.over && !socket.readableEnded) latch.fail('a QEMU connection', closedEarly('a QEMU connection'));
      });
    },
  });
  return proxyHandle(latch, () => stats, startedAt, address);
}
