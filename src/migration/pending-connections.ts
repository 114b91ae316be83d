// Connections a receiver has accepted from the network but not yet let into the migration.
// Each one counts against maxPendingConnections and runs against its own deadline until the
// receiver accepts or refuses it, whatever it waits for: its first bytes, the hello (a data
// channel that came before it), or the end of the connection that still holds its channel id.
// So however many connections a peer opens, and whatever it sends on them, the receiver holds
// at most maxPendingConnections it has not vetted, each for at most connectionTimeoutMs.
import type { Duplex } from 'node:stream';
import { TransportError, type MultifdError } from '../errors.js';

/** What a parked connection waits for: the hello, or the end of the connection holding a channel id. */
export type ParkedFor = 'hello' | { channel: number };

/** Options of {@link PendingConnections}. */
export interface PendingConnectionsOptions {
  /** Connections held at once; more are refused at once (`ERR_TOO_MANY_CONNECTIONS`). */
  max: number;
  /** How long each may stay pending. */
  timeoutMs: number;
  /** Records a refusal (the receiver's `refuse`). */
  refuse(error: MultifdError): void;
}

/** The receiver's pending connections; see the file comment. */
export class PendingConnections {
  private readonly held = new Set<PendingConnection>();

  constructor(private readonly options: PendingConnectionsOptions) {}

  /**
   * Takes `socket` in as pending, or refuses it (destroyed, TransportError
   * `ERR_TOO_MANY_CONNECTIONS`) when `max` are pending already.
   */
  admit(socket: Duplex): PendingConnection | undefined {
    const { max, timeoutMs } = this.options;
    if (this.held.size >= max) {
      socket.destroy();
      this.options.refuse(new TransportError('ERR_TOO_MANY_CONNECTIONS', `more than ${max} connections waiting to be accepted`, { context: { expected: `<= ${max}`, got: max + 1 } }));
      return undefined;
    }
    const connection = new PendingConnection(socket, timeoutMs, this.options.refuse, () => this.held.delete(connection));
    this.held.add(connection);
    return connection;
  }

  /** Resumes every connection parked for `reason` (each is then accepted, refused or parked again). */
  release(reason: ParkedFor): void {
    for (const connection of [...this.held]) {
      if (connection.parked && sameReason(connection.parked.for, reason)) connection.unpark();
    }
  }

  /** Whether a connection is parked for `reason`. */
  waiting(reason: ParkedFor): boolean {
    return [...this.held].some((connection) => connection.parked && sameReason(connection.parked.for, reason));
  }

  /** Destroys every pending connection (the migration is over). */
  closeAll(): void {
    for (const connection of [...this.held]) connection.close();
  }
}

/** One connection not yet accepted; see {@link PendingConnections}. */
export class PendingConnection {
  /** Set while it waits for something; `resume` is run when that came. */
  parked: { for: ParkedFor; resume: () => void } | undefined;
  private readonly deadline: NodeJS.Timeout;
  private timeoutError: () => MultifdError;
  private done = false;

  constructor(
    readonly socket: Duplex,
    timeoutMs: number,
    private readonly record: (error: MultifdError) => void,
    private readonly settled: () => void,
  ) {
    this.timeoutError = () => new TransportError('ERR_CONNECTION_TIMEOUT', `a connection did not identify itself within ${timeoutMs} ms`, { context: { timeoutMs } });
    this.deadline = setTimeout(() => this.refuse(this.timeoutError()), timeoutMs);
    // A peer that closes stops counting at once (a paused socket may only tell at its deadline).
    socket.once('close', () => this.settle());
  }

  /** It is part of the migration now: no longer counted, no deadline. */
  accept(): void {
    this.settle();
  }

  /** Refused: destroyed, and `error` recorded. */
  refuse(error: MultifdError): void {
    if (this.done) return;
    this.close();
    this.record(error);
  }

  /** Destroyed without a record (the receiver reports it some other way, or is done). */
  close(): void {
    this.settle();
    this.socket.destroy();
  }

  /**
   * Waits for `reason`, still counted and under its deadline, which then refuses it with
   * `timeoutError()`. Its socket is paused meanwhile: what it sends waits in its buffers.
   */
  park(reason: ParkedFor, resume: () => void, timeoutError: () => MultifdError): void {
    this.socket.pause();
    this.parked = { for: reason, resume };
    this.timeoutError = timeoutError;
  }

  /** Runs what waited; the connection stays pending until that accepts or refuses it. */
  unpark(): void {
    const parked = this.parked;
    this.parked = undefined;
    if (parked && !this.done) parked.resume();
  }

  private settle(): void {
    if (this.done) return;
    this.done = true;
    this.parked = undefined;
    clearTimeout(this.deadline);
    this.settled();
  }
}

function sameReason(a: ParkedFor, b: ParkedFor): boolean {
  return a === 'hello' || b === 'hello' ? a === b : a.channel === b.channel;
}
