// The control connection of a session that may outlive it. Either side sends and reads
// control messages here as on one connection, while underneath the connection may be lost and
// replaced by a resumed one (src/migration/resume-secret.ts proves who resumes).
//
// Messages after the handshake are numbered by their order. Each side counts what it has
// read, and keeps what it has sent until it knows the peer has it; a resume tells each side
// the other's count, and what the peer missed is sent again, in order, before anything new.
// What arrived on a lost connection but was not read yet is dropped with it: the peer's count
// of what was read says it must come again. A reader waiting when the connection is lost
// waits on for its replacement; whoever owns the session decides whether one may come, and
// fails the migration when not (the `lost` callback).
import { TransportError, protocolError } from '../errors.js';
import { encodeControl, type ControlMessage } from '../wire/index.js';

/** How long a connection ended with an error frame may take to send it. */
const ERROR_LINGER_MS = 1000;
import type { ControlChannel } from './control-channel.js';

/** One side's control connection, resumable; see the file comment. */
export class SessionControl {
  /** Control messages read from the peer in this session. */
  received = 0;
  /** Messages sent that the peer may not have: the first is message number confirmed + 1. */
  private readonly unconfirmed: ControlMessage[] = [];
  private confirmed = 0;
  /** Set by startNumbering(); until then nothing is kept (a session that cannot resume needs nothing again). */
  private keep = false;
  /** Control bytes written on connections replaced since. */
  private bytesBefore = 0;
  private replacedWaiters: Array<() => void> = [];

  /** `lost` is told when the current connection closes (an end after the migration included: the owner tells them apart). */
  constructor(
    private channel: ControlChannel,
    private readonly lost: () => void,
  ) {
    this.watch(channel);
  }

  /** Control bytes written so far, over every connection. */
  get bytesWritten(): number {
    return this.bytesBefore + this.channel.bytesWritten;
  }

  /**
   * Sends `message`, and keeps it until the peer is known to have it. Resolves once the
   * connection took it, or at once when the connection is lost: it goes again after a resume.
   */
  async send(message: ControlMessage): Promise<void> {
    if (this.keep) this.unconfirmed.push(message);
    await this.channel.send(message).catch(ignoreLoss);
  }

  /**
   * The next message from the peer, across resumes.
   * @throws what ControlChannel.next throws, except, once numbering started, the connection's
   * loss: that waits for a resumed connection (the owner fails the migration when none comes).
   */
  async next(timeoutMs = 0): Promise<ControlMessage> {
    for (;;) {
      const channel = this.channel;
      try {
        const message = await channel.next(timeoutMs);
        this.received++;
        return message;
      } catch (error) {
        // Only a session that can be resumed waits for its next connection.
        if (!this.keep || (error as { code?: string }).code !== 'ERR_CONTROL_CLOSED') throw error;
        if (channel === this.channel) await new Promise<void>((resolve) => this.replacedWaiters.push(resolve));
      }
    }
  }

  /** Messages sent so far in this session. */
  get sent(): number {
    return this.confirmed + this.unconfirmed.length;
  }

  /**
   * The handshake is done and both ends agreed to resume: from here on messages are numbered
   * and kept until confirmed. The hello and hello-ack are not: a session is resumed only once
   * both are through.
   */
  startNumbering(): void {
    this.keep = true;
    this.received = 0;
  }

  /** The peer has read `count` messages: those need not be kept any more. */
  confirm(count: number): void {
    while (this.confirmed < count && this.unconfirmed.length > 0) {
      this.unconfirmed.shift();
      this.confirmed++;
    }
  }

  /**
   * Continues the session on `channel`, a resumed connection whose peer has read
   * `peerReceived` messages: the old connection is destroyed, and what the peer missed is
   * written again before anything sent from now on.
   * @throws ProtocolError `ERR_RESUME_COUNT` for a count this side never sent.
   */
  replace(channel: ControlChannel, peerReceived: number): void {
    const { sent } = this;
    if (!Number.isSafeInteger(peerReceived) || peerReceived < this.confirmed || peerReceived > sent) {
      throw protocolError('ERR_RESUME_COUNT', { channel: 'control', field: 'received', expected: `${this.confirmed} to ${sent}`, got: peerReceived });
    }
    this.confirm(peerReceived);
    const old = this.channel;
    this.bytesBefore += old.bytesWritten;
    this.channel = channel;
    this.watch(channel);
    old.socket.destroy();
    // Queued in order now, before any later send can be: a socket writes in call order.
    for (const message of this.unconfirmed) void channel.send(message).catch(ignoreLoss);
    this.replacedWaiters.splice(0).forEach((wake) => wake());
  }

  /** Destroys the current connection (its loss is reported as any other). */
  drop(): void {
    this.channel.socket.destroy();
  }

  /**
   * Sends an error frame and ends the connection, giving the write a moment to leave before
   * the socket is destroyed. Returns the socket it ends (undefined when it was gone already).
   */
  endWithError(code: string, message: string): ControlChannel['socket'] | undefined {
    const { socket } = this.channel;
    if (socket.destroyed || socket.writableEnded) return undefined;
    socket.end(encodeControl({ type: 'error', code, message }));
    setTimeout(() => socket.destroy(), ERROR_LINGER_MS).unref();
    return socket;
  }

  /** Ends the current connection (after pending writes). */
  close(): void {
    this.channel.close();
  }

  /** The current connection's socket. */
  get socket(): ControlChannel['socket'] {
    return this.channel.socket;
  }

  /**
   * Resolves once the peer ends a connection cleanly: it is done with the session. A
   * connection lost without an end is waited past, for its replacement.
   */
  async peerEnded(): Promise<void> {
    for (;;) {
      const { socket } = this.channel;
      const ended = socket.readableEnded || (await new Promise<boolean>((resolve) => {
        if (socket.destroyed) return resolve(false);
        socket.once('end', () => resolve(true));
        socket.once('close', () => resolve(socket.readableEnded));
      }));
      if (ended) return;
      if (socket === this.channel.socket) await new Promise<void>((resolve) => this.replacedWaiters.push(resolve));
    }
  }

  private watch(channel: ControlChannel): void {
    channel.socket.once('close', () => {
      if (channel === this.channel) this.lost();
    });
  }
}

/** A write cut short by the connection's loss is no error here (the message is kept); anything else is. */
function ignoreLoss(error: Error): void {
  if (!(error instanceof TransportError)) throw error;
}
