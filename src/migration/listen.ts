// Convenience for the common case: listen on an endpoint and receive one migration there. The
// result settles only once a failed migration left nothing behind.
import type { Socket } from 'node:net';
import { listen as listenOn, parseEndpoint, type TlsCredentials } from '../transport/index.js';
import { TransportError } from '../errors.js';
import { trackDestination } from './destination.js';
import { MigrationReceiver, type ReceiveOptions, type ReceiveResult } from './receiver.js';

/** A receiver waiting on an endpoint. */
export interface Listening {
  /** The endpoint with its real port, e.g. `tcp:127.0.0.1:40123`. */
  address: string;
  /**
   * Settles when the migration completed or failed; the listener is closed either way, and
   * after a failure the destination is aborted (no `.partial` image is left).
   */
  result: Promise<ReceiveResult>;
  /** Stops listening (a migration under way goes on). */
  close(): Promise<void>;
  /** The receiver, e.g. for the connections it refused. */
  receiver: MigrationReceiver;
}

/**
 * Listens on `endpoint` (`tcp:HOST:PORT` or `unix:PATH`) and receives one migration. The
 * socket is bound before the receiver exists, so a port in use or an address this host does
 * not have fails here, at once, with nothing left running.
 * @throws TransportError `ERR_LISTEN` (in words, the system error as `cause`), `ERR_ENDPOINT`.
 * @example
 * const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (memory = m)) });
 * await migrate({ source, connect: () => connect(parseEndpoint(receiver.address)) });
 * await receiver.result;
 */
export async function listen(endpoint: string, options: ReceiveOptions & { tls?: TlsCredentials }): Promise<Listening> {
  const parsed = parseEndpoint(endpoint);
  if (parsed.kind === 'file') throw new TransportError('ERR_ENDPOINT', `cannot listen on ${endpoint}: use receiveFile() for a stream file`);
  // Connections cannot arrive before the receiver below exists (they come on a later turn of
  // the event loop than the one listen() resolves on), but nothing is lost if one does.
  let receiver: MigrationReceiver | undefined;
  const early: Array<(receiver: MigrationReceiver) => void> = [];
  const server = await listenOn(parsed, {
    onConnection: (socket: Socket) => (receiver ? receiver.accept(socket) : early.push((r) => r.accept(socket))),
    tls: options.tls,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    onRefused: (error) => (receiver ? receiver.refuse(error) : early.push((r) => r.refuse(error))),
  });
  const destination = trackDestination(options.destination);
  try {
    receiver = new MigrationReceiver({ ...options, destination: destination.factory });
  } catch (error) {
    await server.close();
    throw error;
  }
  for (const hand of early.splice(0)) hand(receiver);
  const result = settleClean(receiver.result, destination.abort).finally(() => server.close());
  result.catch(() => {}); // the caller observes `result`; closing must not raise an unhandled rejection
  return { address: server.address, result, close: () => server.close(), receiver };
}

/** `result`, but a failure settles only after `cleanup` (a late destination's abort) ran. */
function settleClean<T>(result: Promise<T>, cleanup: () => Promise<void>): Promise<T> {
  return result.catch(async (error: unknown) => {
    await cleanup().catch(() => {});
    throw error;
  });
}
