// A receiver behind a real TCP listener on 127.0.0.1, for tests that need the kernel in the
// loop (backpressure, connection floods): it counts the connections the server still holds,
// and its `connect` plugs into rawSession so a hand-driven sender speaks over TCP.
import { createConnection, createServer, type AddressInfo, type Socket } from 'node:net';
import type { Test } from 'uvu';
import type { MigrationReceiver } from '../../src/migration/receiver.js';
import type { RawConnect } from './raw-sender.js';

/** A TCP listener handing every connection to one receiver; see {@link tcpFront}. */
export interface TcpFront {
  /** `tcp:127.0.0.1:PORT`, for `connect(parseEndpoint(...))`. */
  endpoint: string;
  /** Hands later connections to `receiver`. */
  serve(receiver: MigrationReceiver): void;
  /** Serves `receiver` and opens a connection to it: a RawConnect for rawSession. */
  connect: RawConnect;
  /** Opens a raw connection (errors ignored: the receiver may refuse it). */
  open(): Socket;
  /** Server-side connections neither closed nor destroyed by the receiver: what it holds. */
  held(): number;
  /** Destroys every connection and stops listening. */
  close(): Promise<void>;
}

/** Listens on 127.0.0.1 (a free port) and hands connections to the receiver it serves. */
export async function tcpFront(): Promise<TcpFront> {
  let receiver: MigrationReceiver | undefined;
  const accepted = new Set<Socket>();
  const opened = new Set<Socket>();
  const server = createServer({ noDelay: true }, (socket) => {
    accepted.add(socket);
    socket.on('close', () => accepted.delete(socket));
    socket.on('error', () => {});
    if (receiver) receiver.accept(socket);
    else socket.destroy();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  const open = (): Socket => {
    const socket = createConnection({ host: '127.0.0.1', port, noDelay: true });
    socket.on('error', () => {});
    opened.add(socket);
    socket.on('close', () => opened.delete(socket));
    return socket;
  };
  return {
    endpoint: `tcp:127.0.0.1:${port}`,
    serve: (r) => void (receiver = r),
    connect: (r) => {
      receiver = r;
      return open();
    },
    open,
    held: () => [...accepted].filter((socket) => !socket.destroyed).length,
    async close() {
      for (const socket of [...opened, ...accepted]) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** A fresh {@link tcpFront} for each test of `test`, closed after it; the getter is valid inside tests. */
export function useTcpFront(test: Test): () => TcpFront {
  let front: TcpFront | undefined;
  test.before.each(async () => {
    front = await tcpFront();
  });
  test.after.each(async () => {
    await front?.close();
  });
  return () => front!;
}
