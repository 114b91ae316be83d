// One data connection of a migration, seen from the sender. It starts with the channel init
// (the session id and the channel's id; docs/wire-format.md §3), then carries packets, each
// written as one writev of its parts, and the SYNC packet that ends each round; the receiver
// answers on the same connection with acks of the packets it applied.
//
// A channel keeps no packet of its own: its socket's queue holds views of the packets' buffers
// until the kernel takes them, and what must be kept for a resend is kept by SendChannels,
// which also caps the queue (CHANNEL_HIGH_WATER).
import type { Duplex, Writable } from 'node:stream';
import { TransportError } from '../errors.js';
import type { FailureLatch } from '../migration/failure-latch.js';
import type { SentPacket } from '../pool/send-task.js';
import { drained, ended } from '../transport/backpressure.js';
import { AckReader, encodeChannelInit, encodeSyncPacket } from '../wire/index.js';

/** Options of a {@link SendChannel}. */
export interface SendChannelOptions {
  /** The session id of the hello, carried by the channel init. */
  sessionId: Uint8Array;
  /** Latches a malformed ack stream: the receiver's acks can no longer be trusted. */
  failure: FailureLatch;
  /** Each batch of acknowledged sequence numbers, in the order the receiver sent them. */
  onAcks: (sequences: number[]) => void;
  /** Called once, at the connection's first error or close (a broken connection emits both). */
  onLost: (channel: SendChannel) => void;
  /**
   * When the channel replaces a broken one: the SYNC of the last round ended, written right
   * after the init so the receiver's barrier for that round counts the new channel too.
   */
  lastSync?: { round: number; sequence: number };
}

/** One data channel of a sender: its socket, init, packet framing, acks and loss. */
export class SendChannel {
  /** Bytes written so far: the init, packets and SYNCs. */
  bytesWritten = 0;
  private lossReported = false;

  constructor(
    readonly id: number,
    readonly socket: Duplex,
    options: SendChannelOptions,
  ) {
    const acks = new AckReader(id);
    socket.on('data', (chunk: Buffer) => {
      try {
        acks.push(chunk);
        for (let batch = acks.next(); batch; batch = acks.next()) options.onAcks(batch);
      } catch (error) {
        options.failure.fail(error as Error);
      }
    });
    const lost = () => {
      if (this.lossReported) return;
      this.lossReported = true;
      options.onLost(this);
    };
    socket.on('error', lost);
    socket.on('close', lost);
    this.writeFrame(encodeChannelInit({ sessionId: options.sessionId, channelId: id }));
    if (options.lastSync) this.writeSync(options.lastSync.round, options.lastSync.sequence);
  }

  /** Bytes written to the socket that it has not handed to the kernel yet. */
  get queuedBytes(): number {
    return this.socket.writableLength;
  }

  /**
   * Resolves at the socket's next 'drain' (at once if it needs none).
   * @throws TransportError `ERR_CLOSED` if the connection closes first.
   */
  drained(): Promise<void> {
    return drained(this.socket);
  }

  /**
   * Writes a packet, its parts corked into one writev. `written` runs once the socket has
   * handed the last part on (for a stream file: once the file took the packet). The parts are
   * views, not copies: their bytes must not change until then.
   */
  writePacket(packet: SentPacket, written?: () => void): void {
    const { socket } = this;
    const last = packet.parts.length - 1;
    socket.cork();
    packet.parts.forEach((part, i) => socket.write(part, i === last ? written : undefined));
    socket.uncork();
    this.bytesWritten += packet.byteLength;
  }

  /** Writes the SYNC packet that ends `round` on this channel. */
  writeSync(round: number, sequence: number): void {
    this.writeFrame(encodeSyncPacket(round, sequence));
  }

  /**
   * Ends the channel and resolves once its writes reached the file (see {@link writesReachedFile}).
   * @throws TransportError naming the channel when they did not.
   */
  end(): Promise<void> {
    return writesReachedFile(this.socket, `data channel ${this.id}`);
  }

  private writeFrame(bytes: Uint8Array): void {
    this.socket.write(bytes);
    this.bytesWritten += bytes.byteLength;
  }
}

/**
 * Ends `stream`, a connection into a migration stream file, and resolves once every write
 * handed to it reached the file. Nobody confirms a stream file, so it is complete only then,
 * not when its writes are merely queued.
 * @throws TransportError (the code of the failure) whose message names the connection
 * (`name`) and the file's own error.
 */
export function writesReachedFile(stream: Writable, name: string): Promise<void> {
  return ended(stream).catch((error: TransportError) => {
    throw new TransportError(error.code, `${name}: the last writes did not reach the file: ${((error.cause as Error | undefined) ?? error).message}`, { cause: error.cause });
  });
}
