// Fake QEMU peers for the proxy tests, built from src/qemu/multifd-format.ts: a source that
// connects a main channel and multifd channels and writes 7.2-shaped packets, and a
// destination that accepts connections and records them in accept order.
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { QemuChannelReader, type QemuChannelItem } from '../../../src/qemu/channel-reader.js';
import { encodeQemuInit, encodeQemuPacketHeader, QEMU_FLAG_SYNC, type QemuPacketHeader } from '../../../src/qemu/multifd-format.js';

export const PAGE = 4096;
export const UUID = Uint8Array.from({ length: 16 }, (_, i) => 0xa0 + i);

/** Deterministic pseudo-random bytes. */
export function randomish(length: number, seed: number): Uint8Array {
  const out = new Uint8Array(length);
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    out[i] = x & 0xff;
  }
  return out;
}

/** `parts` back to back in one buffer. */
export function concat(parts: readonly Uint8Array[]): Uint8Array {
  return new Uint8Array(Buffer.concat(parts));
}

/** A QEMU packet: header and pages. */
export interface FakePacket {
  header: QemuPacketHeader;
  pages: Uint8Array;
}

/**
 * 7.2-shaped packets for channel `channel`: full 128-page packets of "pc.ram" with zero pages
 * among normal pages, random pages and repeated patterns, SYNC riding on the last data packet
 * of each round, and an empty packet after it (7.2's stale next_packet_size kept).
 */
export function fakePackets(channel: number, rounds: number, perRound: number): FakePacket[] {
  const packets: FakePacket[] = [];
  let packetNum = channel;
  for (let round = 0; round < rounds; round++) {
    for (let p = 0; p < perRound; p++) {
      const normalPages = p === 0 ? 128 : 1 + ((p * 37 + channel * 11) % 128);
      const pages = new Uint8Array(normalPages * PAGE);
      for (let i = 0; i < normalPages; i++) {
        const kind = (i + p + round) % 4;
        const page = pages.subarray(i * PAGE, (i + 1) * PAGE);
        if (kind === 1) page.set(randomish(PAGE, 1000 * channel + 100 * round + 10 * p + i));
        else if (kind === 2) page.fill((i * 7 + p) & 0xff);
        else if (kind === 3) page[PAGE - 1] = 1; // almost zero: must not be taken for a zero page
        // kind 0: a zero page among normal pages
      }
      const sync = p === perRound - 1;
      const base = (channel * 100_000 + round * 1000 + p * 128) * PAGE;
      packets.push({
        header: {
          flags: sync ? QEMU_FLAG_SYNC : 0,
          sync,
          pagesAlloc: 128,
          normalPages,
          zeroPages: 0,
          nextPacketSize: normalPages * PAGE,
          packetNum: BigInt(packetNum),
          ramBlock: 'pc.ram',
          normalOffsets: Array.from({ length: normalPages }, (_, i) => base + i * PAGE),
          zeroOffsets: [],
        },
        pages,
      });
      packetNum += 4;
    }
    // 7.2 after a SYNC ridden on data: an empty packet with the previous size left in it.
    const last = packets[packets.length - 1]!.header;
    packets.push({
      header: { flags: 0, sync: false, pagesAlloc: 128, normalPages: 0, zeroPages: 0, nextPacketSize: last.nextPacketSize, packetNum: BigInt(packetNum), ramBlock: 'pc.ram', normalOffsets: [], zeroOffsets: [] },
      pages: new Uint8Array(0),
    });
    packetNum += 4;
  }
  return packets;
}

/** A packet's bytes on a QEMU channel. */
export function packetBytes(packet: FakePacket): Uint8Array {
  const header = encodeQemuPacketHeader(packet.header, PAGE);
  const out = new Uint8Array(header.byteLength + packet.pages.byteLength);
  out.set(header);
  out.set(packet.pages, header.byteLength);
  return out;
}

/** Connects to `address` (tcp:HOST:PORT). */
export function connectTo(address: string): Promise<Socket> {
  const [, host, port] = /^tcp:(.+):(\d+)$/.exec(address)!;
  return new Promise((resolve, reject) => {
    const socket = createConnection({ host, port: Number(port) }, () => resolve(socket));
    socket.once('error', reject);
  });
}

/** Everything a socket receives until it ends or closes; never rejects. */
export function collect(socket: Socket): Promise<{ bytes: Uint8Array; error?: Error }> {
  const chunks: Buffer[] = [];
  socket.on('data', (chunk: Buffer) => chunks.push(chunk));
  return new Promise((resolve) => {
    let error: Error | undefined;
    socket.on('error', (e) => (error = e));
    socket.on('close', () => resolve({ bytes: Buffer.concat(chunks), error }));
  });
}

/** A fake destination QEMU: accepts connections and records them in accept order. */
export class FakeDestination {
  readonly accepted: Socket[] = [];
  readonly received: Array<Promise<{ bytes: Uint8Array; error?: Error }>> = [];
  private server!: Server;
  address = '';

  async start(): Promise<void> {
    this.server = createServer((socket) => {
      this.accepted.push(socket);
      this.received.push(collect(socket));
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.address = `tcp:127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  async close(): Promise<void> {
    for (const socket of this.accepted) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

/** Parses what a destination QEMU's multifd channel received: the init's bytes and the packets. */
export function parseChannel(bytes: Uint8Array): { init: Uint8Array; items: QemuChannelItem[] } {
  const reader = new QemuChannelReader({ pageSize: PAGE });
  reader.push(bytes);
  const items: QemuChannelItem[] = [];
  for (let item = reader.next(); item; item = reader.next()) items.push(item);
  reader.end();
  return { init: bytes.subarray(0, 64), items };
}

/** The init bytes of channel `id`. */
export function initBytes(id: number): Uint8Array {
  return encodeQemuInit({ uuid: UUID, channelId: id });
}

/**
 * A TCP relay standing for the network between the proxies: `cut()` destroys every connection
 * through it, `cutConnection(n)` the n-th it accepted (0: the link control connection).
 */
export class Relay {
  private readonly sockets = new Set<Socket>();
  /** Each accepted connection's two sockets, in accept order. */
  readonly connections: Array<[Socket, Socket]> = [];
  private server!: Server;
  address = '';

  /** `alter`, when given, may change the bytes of connection n towards the target (0: the link control connection). */
  constructor(
    private target: string,
    private readonly alter?: (bytes: Buffer, n: number, offset: number) => Buffer,
  ) {}

  /** Listens; `target` (tcp:host:port) replaces the one given to the constructor. */
  async start(target = this.target): Promise<void> {
    this.target = target;
    const [, host, port] = /^tcp:(.+):(\d+)$/.exec(this.target)!;
    this.server = createServer((inbound) => {
      const outbound = createConnection({ host, port: Number(port) });
      this.connections.push([inbound, outbound]);
      for (const s of [inbound, outbound]) {
        this.sockets.add(s);
        s.on('error', () => {});
        s.on('close', () => this.sockets.delete(s));
      }
      if (this.alter) {
        const n = this.connections.length - 1;
        let offset = 0;
        inbound.on('data', (chunk: Buffer) => {
          outbound.write(this.alter!(chunk, n, offset));
          offset += chunk.byteLength;
        });
        inbound.on('end', () => outbound.end());
      } else {
        inbound.pipe(outbound);
      }
      outbound.pipe(inbound);
    });
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.address = `tcp:127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Destroys the n-th connection the relay accepted, both ways, as a reset on the network would. */
  cutConnection(n: number): void {
    for (const s of this.connections[n]!) s.destroy();
  }

  /** Destroys every connection through the relay. */
  cut(): void {
    for (const s of this.sockets) s.destroy();
  }

  async close(): Promise<void> {
    this.cut();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}
