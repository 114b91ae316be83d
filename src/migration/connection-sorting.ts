// How the receiver sorts the connections it is handed. Each is pending (counted against
// maxPendingConnections and under its own deadline: src/migration/pending-connections.ts)
// until it is accepted or refused. Its first four bytes tell control (MFDC) from data (MFDD),
// as QEMU ≥ 8.0 peeks the magic; a TLS ClientHello at a receiver without TLS is refused in
// words. A data connection's 32-byte init is checked in form at once (a malformed one is
// refused), then against the session: its session id, and a fresh channel id below the hello's
// channel count. One that came before the session is open waits for it, paused and still
// pending; a replacement for a channel id whose connection the receiver is not reading waits
// until that connection is read again (if it ended by then, the replacement takes its place).
import type { Duplex } from 'node:stream';
import { protocolError, TransportError, type MultifdError } from '../errors.js';
import { checkChannelInit, CONTROL_MAGIC, DATA_MAGIC, readChannelInit, type ChannelInit } from '../wire/index.js';
import type { Hello } from './destination.js';
import { PendingConnections, type PendingConnection } from './pending-connections.js';

/** Bytes of a data channel's init (its magic included). */
export const DATA_INIT_BYTES = 32;
/** First two bytes of a TLS handshake record (content type 22, major version 3): a ClientHello. */
const TLS_HANDSHAKE_RECORD = 0x1603;

/** What the sorting tells the receiver, and asks it. */
export interface SortingEvents {
  /** `bytes` arrived on a connection not yet sorted. */
  arrived(bytes: number): void;
  /** Keep `socket` to close with the migration. */
  track(socket: Duplex): void;
  /** The control connection, with the bytes read from it so far (its magic first). */
  control(socket: Duplex, head: Uint8Array): void;
  /** A later control connection once the session exists, still pending: it must resume the session or be refused. */
  resume(pending: PendingConnection, head: Uint8Array): void;
  /** A data connection whose init passed against the session: channel `id`; `head` holds the init and what followed it. */
  data(socket: Duplex, id: number, head: Uint8Array): void;
  /** The channel ids whose connection is live, and whether the one holding `id` is not being read. */
  channels(): { live: Set<number>; blocked(id: number): boolean };
  /** Fails the migration (a wrong magic before the session exists). */
  fail(error: MultifdError): void;
}

/** Options of {@link ConnectionSorting}. */
export interface SortingOptions {
  maxPending: number;
  connectionTimeoutMs: number;
  /** Records a connection refused without failing the migration. */
  refuse(error: MultifdError): void;
}

/** See the file comment. */
export class ConnectionSorting {
  private readonly pending: PendingConnections;
  private controlTaken = false;
  /** Set once the hello is read: a wrong magic no longer fails the migration. */
  private hello: Hello | undefined;
  /** Set once the hello is acknowledged (its destination built): data channels start from then on. */
  private open = false;

  constructor(
    private readonly options: SortingOptions,
    private readonly events: SortingEvents,
  ) {
    this.pending = new PendingConnections({ max: options.maxPending, timeoutMs: options.connectionTimeoutMs, refuse: options.refuse });
  }

  /** Sorts a new connection (see the file comment). */
  accept(socket: Duplex): void {
    const pending = this.pending.admit(socket);
    if (!pending) return;
    this.events.track(socket);
    // Until it is known, a connection's failure is its own; a known one reports elsewhere.
    socket.on('error', () => {});
    let head: Uint8Array = new Uint8Array(0);
    const onData = (chunk: Buffer) => {
      this.events.arrived(chunk.byteLength);
      head = concat(head, chunk);
      if (head.byteLength < 4) return;
      socket.off('data', onData);
      this.sortByMagic(pending, head);
    };
    socket.on('data', onData);
  }

  /** The hello is read (its limits checked): from now on a stray connection cannot fail the migration. */
  helloRead(hello: Hello): void {
    this.hello = hello;
  }

  /** The session is open: data connections that waited for the hello are checked now. */
  opened(): void {
    this.open = true;
    this.pending.release('hello');
  }

  /** Channel `id`'s connection is gone: a replacement waiting for it is checked now. */
  released(id: number): void {
    this.pending.release({ channel: id });
  }

  /** Destroys every connection still pending (the migration is over). */
  closeAll(): void {
    this.pending.closeAll();
  }

  private sortByMagic(pending: PendingConnection, head: Uint8Array): void {
    const magic = new DataView(head.buffer, head.byteOffset).getUint32(0);
    if (magic >>> 16 === TLS_HANDSHAKE_RECORD) {
      // A TLS ClientHello at a receiver without TLS: a configuration mismatch, not an
      // attack. Say so in words and keep waiting for a sender that speaks plainly.
      return pending.refuse(new TransportError('ERR_TLS_HANDSHAKE', 'the sender uses TLS but this receiver does not: give both ends the same --tls-* options', { context: { got: `0x${magic.toString(16)}` } }));
    }
    if (magic === CONTROL_MAGIC && !this.controlTaken) {
      this.controlTaken = true;
      pending.accept();
      return this.events.control(pending.socket, head);
    }
    if (magic === CONTROL_MAGIC && this.open) return this.events.resume(pending, head);
    if (magic === DATA_MAGIC) return this.readInit(pending, head);
    // A second control connection, or one that speaks something else: dropped. Before the
    // session exists a wrong magic fails fast (a misconfigured sender hears why); once it
    // exists, a stray connection must not be able to end the migration.
    const error = protocolError('ERR_CONNECTION_MAGIC', { channel: 'control', field: 'magic', expected: magic === CONTROL_MAGIC ? 'one control connection' : 'MFDC or MFDD', got: `0x${magic.toString(16)}` });
    if (magic !== CONTROL_MAGIC && !this.hello) {
      pending.close();
      this.events.fail(error);
    } else {
      pending.refuse(error);
    }
  }

  /**
   * Reads a data connection's init. What needs no hello is checked as soon as its 32 bytes are
   * in, so a malformed init is refused at once; one that came before the session is open waits
   * for it, paused and still pending (so counted and under its deadline).
   */
  private readInit(pending: PendingConnection, head: Uint8Array): void {
    const { socket } = pending;
    let bytes = head;
    const onData = (chunk: Buffer) => {
      if (chunk.byteLength) this.events.arrived(chunk.byteLength);
      bytes = concat(bytes, chunk);
      if (bytes.byteLength < DATA_INIT_BYTES) return;
      socket.off('data', onData);
      socket.pause();
      let init: ChannelInit;
      try {
        init = readChannelInit(bytes);
      } catch (error) {
        return pending.refuse(error as MultifdError);
      }
      if (this.open) return this.checkInit(pending, init, bytes);
      const timeoutMs = this.options.connectionTimeoutMs;
      pending.park('hello', () => this.checkInit(pending, init, bytes), () =>
        new TransportError('ERR_CONNECTION_TIMEOUT', `data channel ${init.channelId}'s connection came before the hello and waited for it more than ${timeoutMs} ms`, { context: { channel: init.channelId, timeoutMs } }),
      );
    };
    socket.on('data', onData);
    if (bytes.byteLength >= DATA_INIT_BYTES) onData(Buffer.alloc(0));
  }

  /** Checks a well-formed init against the session, and hands its channel over if it passes. */
  private checkInit(pending: PendingConnection, init: ChannelInit, bytes: Uint8Array): void {
    const hello = this.hello!;
    const channels = this.events.channels();
    let id: number;
    try {
      id = checkChannelInit(init, { sessionId: hello.sessionId, channels: hello.channels, taken: channels.live });
    } catch (error) {
      // A replacement for a channel the receiver is not reading (paused at the barrier or
      // behind its workers) cannot be told from a duplicate until that connection is read
      // again: if it has ended by then, the replacement takes its place. It waits, pending.
      const reason = { channel: init.channelId };
      if ((error as MultifdError).code === 'ERR_CHANNEL_DUPLICATE' && channels.blocked(init.channelId) && !this.pending.waiting(reason)) {
        return pending.park(reason, () => this.checkInit(pending, init, bytes), () => error as MultifdError);
      }
      return pending.refuse(error as MultifdError);
    }
    pending.accept();
    this.events.data(pending.socket, id, bytes);
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.byteLength === 0) return b;
  const out = new Uint8Array(a.byteLength + b.byteLength);
  out.set(a);
  out.set(b, a.byteLength);
  return out;
}
