// What both proxies share: their statistics, the bounds that keep their memory finite, the
// session hello, and the failure latch that closes every connection of a proxy at its first
// error, so each QEMU sees its migration fail instead of waiting on a half-dead proxy.
import type { Socket } from 'node:net';
import { MultifdError, TransportError } from '../errors.js';
import { listen, parseEndpoint, type ListenOptions } from '../transport/index.js';
import { encodeJsonFrame, encodeLinkFrame, LinkFrame } from './link-frames.js';

/** Which proxy: beside the source QEMU, or beside the destination QEMU. */
export type ProxySide = 'source' | 'destination';

/**
 * QEMU packets of one QEMU channel the link may hold at once: read from the source QEMU and
 * not yet written to the destination QEMU. At 512 KiB per packet, 8 packets bound each
 * channel to 4 MiB on either proxy; the destination proxy credits each packet back once its
 * bytes are in the destination QEMU's socket, and the source proxy stops reading a QEMU
 * channel whose window is full. Channels never wait for one another, as in QEMU.
 */
export const CHANNEL_WINDOW_PACKETS = 8;

/**
 * Bytes of QEMU's main channel a proxy lets queue on a socket before it stops reading the
 * other side: the link control connection (source QEMU → link) or a QEMU's main socket
 * (link → QEMU). Above it the reader pauses until the socket drains.
 */
export const MAIN_QUEUE_BYTES = 4 * 1024 * 1024;

/** Main-channel bytes per link frame: a read from QEMU is split into frames of at most this. */
export const MAIN_FRAME_BYTES = 256 * 1024;

/** A proxy's counters, live while it runs (QEMU's names where they apply). */
export interface ProxyStats {
  side: ProxySide;
  status: 'setup' | 'active' | 'completed' | 'failed';
  /** QEMU multifd channels (--qemu-channels) and link data connections (--multifd-channels). */
  qemuChannels: number;
  linkChannels: number;
  /** The link codec and its level. */
  codec: string;
  level?: number;
  /** QEMU packets carried (SYNC-only ones too). */
  packets: number;
  /** QEMU's normal pages carried (QEMU's `normal`). */
  pages: number;
  /** Of those, pages the SIMD scan found all zero: zero runs on the link, no payload (QEMU's `duplicate`). */
  zeroPages: number;
  /** Pages QEMU itself listed as zero (QEMU 9.0+ `zero_pages`; 0 from 7.2). */
  qemuZeroPages: number;
  /** Bytes of QEMU's multifd channels (inits, headers, pages): read by the source proxy, written by the destination proxy. */
  qemuMultifdBytes: number;
  /** Bytes of QEMU's main channel towards the destination, and back (the return path). */
  mainBytes: number;
  returnBytes: number;
  /** Bytes on the link, all connections, frames included. */
  wireBytes: number;
  /** Of those, per link data connection. */
  linkChannelBytes: number[];
  /** Link data connections lost (each dialled again by the source proxy). */
  linkLosses: number;
  /** Packet frames sent again after a loss (source), or received again and dropped (destination). */
  resentPackets: number;
  /** Their bytes. */
  resentBytes: number;
  /** qemuMultifdBytes / bytes of the link data connections (1 when nothing moved). */
  ratio: number;
  /** Milliseconds since the proxy started. */
  elapsedMs: number;
}

/** Stats at their start. */
export function initialStats(side: ProxySide, qemuChannels: number, linkChannels: number, codec: string, level: number | undefined): ProxyStats {
  return {
    side,
    status: 'setup',
    qemuChannels,
    linkChannels,
    codec,
    level,
    packets: 0,
    pages: 0,
    zeroPages: 0,
    qemuZeroPages: 0,
    qemuMultifdBytes: 0,
    mainBytes: 0,
    returnBytes: 0,
    wireBytes: 0,
    linkChannelBytes: new Array<number>(linkChannels).fill(0),
    linkLosses: 0,
    resentPackets: 0,
    resentBytes: 0,
    ratio: 1,
    elapsedMs: 0,
  };
}

/** Refreshes the derived fields. */
export function refreshStats(stats: ProxyStats, startedAt: number): ProxyStats {
  const data = stats.linkChannelBytes.reduce((a, b) => a + b, 0);
  stats.ratio = data > 0 ? stats.qemuMultifdBytes / data : 1;
  stats.elapsedMs = Date.now() - startedAt;
  return stats;
}

/** How long a failed proxy keeps its link connections for the peer to read its error (a bound, not a wait: the peer closing ends it). */
export const LINK_LINGER_MS = 5000;

/** What a running proxy gives its caller. */
export interface ProxyHandle {
  /** Live counters (refreshed on each read of the getter). */
  readonly stats: ProxyStats;
  /** Where it listens (its real port), when it listens. */
  readonly address?: string;
  /** Resolves when the migration's connections all closed in order; rejects with the first error, naming the side and the channel. */
  readonly done: Promise<ProxyStats>;
  /** Closes every connection at once (each QEMU sees its migration fail unless it completed) and waits for `done` to settle. */
  close(): Promise<void>;
}

/** The session as the source proxy announces it in its hello. */
export interface ProxyHello {
  session: string;
  qemuChannels: number;
  linkChannels: number;
  pageSize: number;
  codec: string;
  level?: number;
}

/**
 * The first error of a proxy, with its side and place in the message ("source proxy, QEMU
 * multifd channel 1: ..."), keeping the original's code and context (and the original as
 * `cause`). An error that already names a proxy side is kept as it is.
 */
export function sideError(side: ProxySide, where: string, error: unknown): MultifdError {
  const prefix = `${side} proxy`;
  if (error instanceof MultifdError && error.message.startsWith(`${prefix}`)) return error;
  const message = error instanceof Error ? error.message : String(error);
  // A socket's own error (ECONNRESET, EPIPE) is a connection lost: ERR_CLOSED, the system code
  // kept as `reason`; another error keeps its ERR_ code (RangeError's ERR_OUT_OF_RANGE).
  const own = (error as NodeJS.ErrnoException)?.code;
  const code = error instanceof MultifdError ? error.code : typeof own === 'string' && own.startsWith('ERR_') ? own : typeof own === 'string' ? 'ERR_CLOSED' : 'ERR_PROXY';
  const context = error instanceof MultifdError ? { ...error.context, side, where } : { side, where, reason: (error as NodeJS.ErrnoException)?.code };
  const Kind = error instanceof MultifdError ? (error.constructor as new (...args: ConstructorParameters<typeof MultifdError>) => MultifdError) : TransportError;
  return new Kind(code, `${prefix}, ${where}: ${message}`, { cause: error, context });
}

/**
 * Every connection a proxy holds, closed together on its first error. `fail` is idempotent:
 * the first error wins, is sent to the peer proxy on the control connection (best effort) and
 * rejects `done`; every socket is destroyed, so both QEMUs see their connections close.
 */
export class ProxyLatch {
  readonly sockets = new Set<Socket>();
  private readonly linkSockets = new Set<Socket>();
  failure: MultifdError | undefined;
  finished = false;
  control: Socket | undefined;
  private readonly cleanups: Array<() => void> = [];
  readonly done: Promise<void>;
  private resolveDone!: () => void;
  private rejectDone!: (error: MultifdError) => void;

  constructor(private readonly side: ProxySide) {
    this.done = new Promise<void>((resolve, reject) => {
      this.resolveDone = resolve;
      this.rejectDone = reject;
    });
    // The caller may only look at `done` later; the rejection is theirs then, not unhandled.
    this.done.catch(() => {});
  }

  /**
   * Tracks a socket: destroyed on failure or close; its errors fail the proxy naming `where`,
   * but for a link data connection, whose loss its owner handles. Link sockets outlive a
   * failure until the control connection closed (see `fail`).
   */
  track(socket: Socket, where: string, link?: 'control' | 'data'): void {
    this.sockets.add(socket);
    if (link) this.linkSockets.add(socket);
    if (link !== 'data') socket.on('error', (error) => this.fail(where, error));
    socket.on('close', () => this.sockets.delete(socket));
  }

  /** Runs at the end whatever happens (timers, listeners, the pool). */
  onEnd(cleanup: () => void): void {
    this.cleanups.push(cleanup);
  }

  get over(): boolean {
    return this.finished || this.failure !== undefined;
  }

  /**
   * The QEMU sockets close at once. The peer proxy is told why on the control connection, which
   * is then ended; the link connections stay open until the control connection closes (the
   * peer read the error and failed too) or {@link LINK_LINGER_MS} passed, so the peer learns
   * the reason rather than seeing a link connection drop first.
   */
  fail(where: string, error: unknown): void {
    if (this.over) return;
    this.failure = sideError(this.side, where, error);
    const control = this.control;
    const lingering = control !== undefined && !control.destroyed && !control.writableEnded;
    if (lingering) control.end(encodeJsonFrame(LinkFrame.error, { side: this.side, code: this.failure.code, message: this.failure.message }));
    this.closeAll(lingering ? this.linkSockets : undefined);
    if (lingering) {
      const closeLink = (): void => {
        clearTimeout(timer);
        for (const socket of this.linkSockets) socket.destroy();
      };
      const timer = setTimeout(closeLink, LINK_LINGER_MS);
      control.once('close', closeLink);
    }
    this.rejectDone(this.failure);
  }

  /** The migration is over on this proxy: close what is left and resolve `done`. */
  finish(): void {
    if (this.over) return;
    this.finished = true;
    this.closeAll();
    this.resolveDone();
  }

  private closeAll(spare?: Set<Socket>): void {
    for (const cleanup of this.cleanups.splice(0)) {
      try {
        cleanup();
      } catch {
        // closing is best effort
      }
    }
    for (const socket of this.sockets) if (!spare?.has(socket)) socket.destroy();
  }
}

/** The error a proxy fails with when its peer reported one on the link. */
export function peerError(side: ProxySide, body: Record<string, unknown>): TransportError {
  const peer = side === 'source' ? 'destination' : 'source';
  return new TransportError('ERR_PROXY_PEER', `the ${peer} proxy failed: ${String(body.message ?? 'no reason given')}`, {
    context: { peerCode: String(body.code ?? '') },
  });
}

/** The error for a connection that closed before the migration was over. */
export function closedEarly(what: string): TransportError {
  return new TransportError('ERR_CLOSED', `${what} closed before the migration was over`, { context: { connection: what } });
}

/** Writes `frame`, counting its bytes into `counter`. Returns whether the socket wants a drain. */
export function writeCounted(socket: Socket, frame: Uint8Array, stats: ProxyStats, linkChannel?: number, callback?: () => void): boolean {
  stats.wireBytes += frame.byteLength;
  if (linkChannel !== undefined) stats.linkChannelBytes[linkChannel]! += frame.byteLength;
  return socket.write(frame, callback ? (error) => !error && callback() : undefined);
}

/**
 * Carries a read of QEMU's main channel onto the link control connection, in frames of at most
 * {@link MAIN_FRAME_BYTES}; past {@link MAIN_QUEUE_BYTES} queued there, the QEMU socket pauses
 * until the control connection drains.
 */
export function relayMainToLink(main: Socket, control: Socket, chunk: Buffer, stats: ProxyStats): void {
  for (let at = 0; at < chunk.byteLength; at += MAIN_FRAME_BYTES) writeCounted(control, encodeLinkFrame(LinkFrame.main, chunk.subarray(at, at + MAIN_FRAME_BYTES)), stats);
  if (control.writableLength > MAIN_QUEUE_BYTES) {
    main.pause();
    control.once('drain', () => main.resume());
  }
}

/**
 * Writes main-channel bytes from the link to a QEMU's main socket; past {@link MAIN_QUEUE_BYTES}
 * queued there, the control connection pauses until the QEMU socket drains.
 */
export function relayMainFromLink(main: Socket, control: Socket, body: Uint8Array): void {
  if (!main.write(body) && main.writableLength > MAIN_QUEUE_BYTES) {
    control.pause();
    main.once('drain', () => control.resume());
  }
}

/**
 * Listens on `endpoint` for a proxy: the listener closes when the proxy ends, and a failure to
 * listen fails the proxy (naming `where`) and is thrown. Returns the address.
 */
export async function listenFor(latch: ProxyLatch, where: string, endpoint: string, options: ListenOptions): Promise<string> {
  try {
    const listener = await listen(parseEndpoint(endpoint), options);
    latch.onEnd(() => void listener.close());
    return listener.address;
  } catch (error) {
    latch.fail(where, error);
    throw latch.failure;
  }
}

/** The handle of a running proxy: `stats()` gives its current counters. */
export function proxyHandle(latch: ProxyLatch, stats: () => ProxyStats, startedAt: number, address: string): ProxyHandle {
  const done = latch.done.then(
    () => refreshStats(stats(), startedAt),
    (error: unknown) => {
      stats().status = 'failed';
      refreshStats(stats(), startedAt);
      throw error;
    },
  );
  done.catch(() => {});
  return {
    get stats() {
      return refreshStats(stats(), startedAt);
    },
    address,
    done,
    async close() {
      latch.fail('close', closedEarly('the proxy was closed and'));
      await done.catch(() => {});
    },
  };
}
