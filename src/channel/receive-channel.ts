// One data channel on the receiver: its connection, the packet reader that assembles its
// packets in staging slots, the round it last synced, the packets it has in workers, the acks
// it owes, and whether its socket is being read. A plain TCP connection is read straight into
// the slot of the packet being assembled (src/transport/direct-read.ts); any other (TLS, a
// test's in-memory pair) hands over chunks that the reader copies there. What the receiver
// does with the packets (the round barrier, the workers) is the session's business
// (src/migration/receiver.ts); the channel only says when it has bytes to parse and when it is
// lost.
import type { Duplex } from 'node:stream';
import { detachForDirectRead } from '../transport/direct-read.js';
import { encodeAcks, type PacketReader, type ParsedPacket } from '../wire/index.js';

/** What a receive channel tells its session. */
export interface ReceiveChannelEvents {
  /** `bytes` arrived on the channel's connection (counted whether or not it is still live). */
  arrived(bytes: number): void;
  /** The reader took new bytes (or `parse` failed): parse what is complete and adjust the flow. */
  readable(channel: ReceiveChannel, parse: () => void): void;
  /** The connection ended or broke: from now on nothing it sends is read. Told once. */
  lost(channel: ReceiveChannel): void;
  /** The channel's connection moved to another socket object (see direct-read): track `to` instead of `from`. */
  moved(from: Duplex, to: Duplex): void;
}

/** A data channel the receiver accepted into the session; see the file comment. */
export class ReceiveChannel {
  /** Packets seen on this channel (the ordinal errors name). */
  ordinal = 0;
  /** The last round whose SYNC arrived on this channel. */
  syncedRound = 0;
  /** Its packets in workers or waiting for one. */
  inFlight = 0;
  /** Set once the connection ended or broke: from then on no barrier waits for it. */
  lost = false;
  /** The connection, read paused or flowing (see {@link setBlocked}). */
  socket: Duplex;
  /** Applied packets not yet acknowledged on this channel. */
  private acks: number[] = [];
  /**
   * Set until start() has moved the connection to its direct reader: an ack written before
   * would go to the socket the connection is taken from, and be lost with it.
   */
  private starting = true;

  /** A channel on `socket`, whose first bytes were `head`: the channel init, `initBytes` long, and whatever followed it. */
  constructor(
    readonly id: number,
    socket: Duplex,
    readonly reader: PacketReader,
    private readonly head: Uint8Array,
    private readonly initBytes: number,
    private readonly events: ReceiveChannelEvents,
  ) {
    this.socket = socket;
  }

  /**
   * Starts reading (once the session knows the channel): the bytes that came with the init
   * first. The socket is read once the session's flow control says so ({@link setBlocked}).
   */
  start(): void {
    const { reader } = this;
    const detached = detachForDirectRead(this.socket);
    // A chunked socket is paused: its listener may come first. A direct socket's first read
    // lands where the bytes that came with the init leave the reader, so those go first.
    if (!detached) this.socket.on('data', (chunk: Buffer) => this.took(chunk.byteLength, () => reader.push(chunk)));
    this.events.readable(this, () => {
      for (const chunk of [this.head.subarray(this.initBytes), ...(detached?.buffered ?? [])]) reader.push(chunk);
    });
    if (detached) {
      const from = this.socket;
      this.socket = detached.attach({ buffer: () => reader.landing(), read: (n) => this.took(n, () => reader.landed(n)) });
      this.events.moved(from, this.socket);
    }
    this.starting = false;
    // Acks owed for packets that came with the init (a resend of one already applied is
    // acknowledged at once) go out on the connection as it is read from now on.
    this.flushAcks();
    const lost = () => {
      if (this.lost) return;
      this.lost = true;
      this.acks = [];
      this.events.lost(this);
    };
    this.socket.on('error', lost);
    this.socket.on('end', lost);
    this.socket.on('close', lost);
  }

  /** The next complete packet and its ordinal on this channel, or undefined until more bytes come. */
  next(): { packet: ParsedPacket; ordinal: number } | undefined {
    const packet = this.reader.next();
    return packet && { packet, ordinal: this.ordinal++ };
  }

  /** Bytes the reader holds that no packet has taken yet. */
  get bufferedBytes(): number {
    return this.reader.bufferedBytes;
  }

  /**
   * Reads the socket, or stops reading it (TCP's flow control then slows the sender). The
   * socket a direct read took the connection from is destroyed: nothing to do there.
   */
  setBlocked(blocked: boolean): void {
    if (this.socket.destroyed) return;
    if (blocked) this.socket.pause();
    else if (this.socket.isPaused()) this.socket.resume();
  }

  /** Whether the socket is not being read (a replacement for its id must wait to tell). */
  get blocked(): boolean {
    return this.socket.isPaused();
  }

  /** Owes an ack of `sequence`; it goes out with the next {@link flushAcks}. Returns false when the channel is lost. */
  owe(sequence: number): boolean {
    if (this.lost) return false;
    this.acks.push(sequence);
    return true;
  }

  /** Writes the acks owed, in one frame (once started: see start()). */
  flushAcks(): void {
    if (this.starting) return;
    if (!this.lost && this.acks.length > 0) this.socket.write(encodeAcks(this.acks));
    this.acks = [];
  }

  private took(bytes: number, step: () => void): void {
    this.events.arrived(bytes);
    if (!this.lost) this.events.readable(this, step);
  }
}
