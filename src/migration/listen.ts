// Convenience for the common case: listen on an endpoint and receive one migration there.
import { listen as listenOn, parseEndpoint, type TlsCredentials } from '../transport/index.js';
import { TransportError } from '../errors.js';
import { MigrationReceiver, type ReceiveOptions, type ReceiveResult } from './receiver.js';

/** A receiver waiting on an endpoint. */
export interface Listening {
  /** The endpoint with its real port, e.g. `tcp:127.0.0.1:40123`. */
  address: string;
  /** Settles when the migration completed or failed; the listener is closed either way. */
  result: Promise<ReceiveResult>;
  /** Stops listening (a migration under way goes on). */
  close(): Promise<void>;
  /** The receiver, e.g. for the connections it refused. */
  receiver: MigrationReceiver;
}

/**
 * Listens on `endpoint` (`tcp:HOST:PORT` or `unix:PATH`) and receives one migration.
 * @example
 * const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (memory = m)) });
 * await migrate({ source, connect: () => connect(parseEndpoint(receiver.address)) });
 * await receiver.result;
 */
export async function listen(endpoint: string, options: ReceiveOptions & { tls?: TlsCredentials }): Promise<Listening> {
  const parsed = parseEndpoint(endpoint);
  if (parsed.kind === 'file') throw new TransportError('ERR_ENDPOINT', `cannot listen on ${endpoint}: use a FileMuxReader for stream files`);
  const receiver = new MigrationReceiver(options);
  const server = await listenOn(parsed, {
    onConnection: (socket) => receiver.accept(socket),
    tls: options.tls,
    handshakeTimeoutMs: options.handshakeTimeoutMs,
    onRefused: (error) => receiver.refuse(error),
  });
  const result = receiver.result.finally(() => server.close());
  result.catch(() => {}); // the caller observes `result`; closing must not raise an unhandled rejection
  return { address: server.address, result, close: () => server.close(), receiver };
}
