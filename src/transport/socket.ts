// TCP and unix-domain connections. A channel is a plain net.Socket: a Duplex with Node's own
// backpressure, so the same channel code runs over sockets, files and in-memory pairs.
import { lstat, unlink } from 'node:fs/promises';
import { createConnection, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TransportError } from '../errors.js';
import { formatEndpoint, type Endpoint, type TcpEndpoint, type UnixEndpoint } from './endpoint.js';
import { createTlsServer, startTlsClient, type TlsCredentials } from './tls.js';

/** Default time `connect` waits for a connection. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** A listening socket; see {@link listen}. */
export interface Listener {
  /** The endpoint as text, with the real port when port 0 was asked for: `tcp:127.0.0.1:40123`. */
  readonly address: string;
  /**
   * Stops accepting connections (a unix socket's path is removed). Connections already handed
   * to `onConnection` stay open: they belong to whoever took them.
   */
  close(): Promise<void>;
}

/** Options of {@link listen}. */
export interface ListenOptions {
  /** Called with each accepted connection (TCP ones have Nagle's algorithm off); with TLS, once its handshake succeeded. */
  onConnection(socket: Socket): void;
  /** TLS on every connection; absent: plain TCP or unix. */
  tls?: TlsCredentials;
  /** With TLS: how long a peer has to complete the handshake (default 30 s). */
  handshakeTimeoutMs?: number;
  /** With TLS: a peer that failed the handshake (wrong key, untrusted certificate, no TLS, too slow). */
  onRefused?(error: TransportError): void;
}

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** How long to wait for the connection (and the TLS handshake); default 10 s. */
  timeoutMs?: number;
  /** TLS credentials; absent: plain TCP or unix. */
  tls?: TlsCredentials;
}

function socketEndpoint(endpoint: Endpoint, what: string): TcpEndpoint | UnixEndpoint {
  if (endpoint.kind === 'file') {
    throw new TransportError('ERR_ENDPOINT', `cannot ${what} ${formatEndpoint(endpoint)}: file endpoints are opened with FileMuxWriter and FileMuxReader`, {
      context: { endpoint: formatEndpoint(endpoint) },
    });
  }
  return endpoint;
}

// A unix socket file outlives a crashed listener and makes the next listen fail with
// EADDRINUSE. Remove it only if it is a socket nobody answers on: never a regular file, and
// never a socket another live listener owns.
async function removeStaleSocket(path: string): Promise<void> {
  const stats = await lstat(path).catch(() => undefined);
  if (!stats?.isSocket()) return;
  const live = await new Promise<boolean>((resolve) => {
    const probe = createConnection({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (!live) await unlink(path).catch(() => {});
}

/** Why listen() failed, in words: the system code alone (EADDRINUSE) tells a user little. */
const LISTEN_REASONS: Record<string, string> = {
  EADDRINUSE: 'the address is already in use (is another receiver running? choose another port, or port 0 for any free one)',
  EACCES: 'permission denied (ports below 1024 need privileges; a unix socket needs a writable folder)',
  EADDRNOTAVAIL: 'the host is not an address of this machine',
  ENOTFOUND: 'the host name does not resolve',
  EAI_AGAIN: 'the host name does not resolve (DNS is not answering)',
  ENOENT: 'the folder of the socket does not exist',
};

function listenError(text: string, cause: unknown): TransportError {
  const code = (cause as NodeJS.ErrnoException).code ?? String(cause);
  const reason = LISTEN_REASONS[code];
  return new TransportError('ERR_LISTEN', `cannot listen on ${text}: ${reason ? `${reason} (${code})` : code}`, { cause, context: { endpoint: text, reason: code } });
}

/**
 * Listens on a TCP or unix endpoint and hands every accepted connection to `onConnection`.
 * A stale unix socket file (one nobody accepts on) is removed first.
 * @throws TransportError `ERR_LISTEN` (the system error as `cause`: EADDRINUSE, EACCES, …),
 * or `ERR_ENDPOINT` for a file endpoint.
 */
export async function listen(endpoint: Endpoint, options: ListenOptions): Promise<Listener> {
  const target = socketEndpoint(endpoint, 'listen on');
  const text = formatEndpoint(target);
  if (target.kind === 'unix') await removeStaleSocket(target.path);
  const accepted = (socket: Socket) => {
    if (target.kind === 'tcp') socket.setNoDelay(true);
    options.onConnection(socket);
  };
  const server: Server = options.tls
    ? createTlsServer(options.tls, options.handshakeTimeoutMs ?? 30_000, accepted, (error) => options.onRefused?.(error))
    : createServer({ noDelay: true }, accepted);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error) => reject(listenError(text, error)));
    if (target.kind === 'tcp') server.listen(target.port, target.host, resolve);
    else server.listen(target.path, resolve);
  });
  // After a successful listen the server reports nothing we could act on; keep a listener so
  // a late error cannot crash the process as an unhandled 'error' event.
  server.on('error', () => {});
  const address = target.kind === 'tcp' ? `tcp:${target.host}:${(server.address() as AddressInfo).port}` : text;
  return {
    address,
    close: () =>
      new Promise<void>((resolve) => {
        // server.close() stops accepting at once but its callback waits for every accepted
        // connection to end; ours do not belong to the listener, so resolve on the next turn.
        server.close();
        setImmediate(resolve);
      }),
  };
}

/**
 * Connects to a TCP or unix endpoint. TCP sockets have Nagle's algorithm off (packets are
 * written whole; delaying their tails only adds latency).
 * With `options.tls` it resolves once the TLS handshake verified the receiver.
 * @throws TransportError `ERR_CONNECT` naming the endpoint, with the system error (ECONNREFUSED,
 * ENOENT, …) as `cause`, or after `timeoutMs`; `ERR_ENDPOINT` for a file endpoint;
 * `ERR_TLS_HANDSHAKE` when TLS fails.
 */
export async function connect(endpoint: Endpoint, options: ConnectOptions = {}): Promise<Socket> {
  const socket = await connectPlain(endpoint, options);
  if (!options.tls) return socket;
  const host = endpoint.kind === 'tcp' ? endpoint.host : 'localhost';
  return startTlsClient(socket, options.tls, host, formatEndpoint(endpoint), options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS);
}

/** Why connect() failed, in words, keeping the system code in view. */
const CONNECT_REASONS: Record<string, string> = {
  ECONNREFUSED: 'nothing is listening there (ECONNREFUSED): start the receiver first, and check the host and port',
  ENOENT: 'no socket at that path (ENOENT): start the receiver first',
  ENOTFOUND: 'the host name does not resolve (ENOTFOUND)',
  EHOSTUNREACH: 'the host cannot be reached (EHOSTUNREACH)',
  ENETUNREACH: 'the network cannot be reached (ENETUNREACH)',
};

async function connectPlain(endpoint: Endpoint, options: ConnectOptions): Promise<Socket> {
  const target = socketEndpoint(endpoint, 'connect to');
  const text = formatEndpoint(target);
  const timeoutMs = options.timeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS;
  return new Promise((resolve, reject) => {
    const socket = target.kind === 'tcp' ? createConnection({ host: target.host, port: target.port, noDelay: true }) : createConnection({ path: target.path });
    const fail = (why: string, cause?: unknown): void => {
      clearTimeout(timer);
      socket.destroy();
      reject(new TransportError('ERR_CONNECT', `cannot connect to ${text}: ${why}`, { cause, context: { endpoint: text, timeoutMs } }));
    };
    const timer = setTimeout(() => fail(`timed out after ${timeoutMs} ms`), timeoutMs);
    const onError = (error: NodeJS.ErrnoException): void => fail(CONNECT_REASONS[error.code ?? ''] ?? error.code ?? error.message, error);
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

/**
 * Whether `stream` is a TCP connection whose peer has a loopback address (127.0.0.0/8, ::1,
 * or 127.x mapped into IPv6): both ends on this host, no link between them.
 */
export function isLoopbackPeer(stream: Duplex): boolean {
  const address = (stream as Partial<Socket>).remoteAddress;
  return address !== undefined && (address === '::1' || /^(::ffff:)?127\./.test(address));
}
