// Reading a TCP connection straight into buffers the reader chooses. Node's `onread` option
// makes libuv read into a caller's buffer instead of allocating one per read (a 64 KiB
// ArrayBuffer each time, garbage for V8 to collect, whose bytes a receiver then copied into
// its packet): with it the kernel copies a packet's bytes into the receiver's staging slot,
// in reads as large as the slot's remainder. `onread` is only an option of a socket being
// constructed, and a server hands out sockets already constructed; so an accepted socket's
// handle is moved into a new Socket built with `onread` (the constructor takes a handle, as
// Node's own cluster and child-process code does). Only plain TCP qualifies: a TLS socket's
// bytes must pass through its decryption, and other Duplex streams have no handle.
import { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket } from 'node:tls';

/**
 * Where a direct reader's bytes go. The buffer of a read is asked for after the previous read
 * was taken (and once when the socket is built), so whatever it names must stay the place for
 * the next bytes until they come: the reader may not move on in between other than by them.
 */
export interface DirectRead {
  /** The buffer the next read fills (never empty). */
  buffer(): Uint8Array;
  /** `n` bytes were read into the last buffer. */
  read(n: number): void;
}

/** The parts of an accepted socket's handle that the move relies on. */
interface StreamHandle {
  useUserBuffer?: unknown;
}

/** An accepted socket's internals that the move hands over: its handle, and its server's connection count. */
type AcceptedSocket = Socket & { _handle: StreamHandle | null; _server: unknown };

/** A connection taken from its socket: the bytes that socket had read, and the move itself. */
export interface DetachedConnection {
  /** What the old socket had read and not handed out: take these first. */
  buffered: Uint8Array[];
  /**
   * Builds the socket that reads into `target` (paused: `resume()` it). Its first buffer is
   * asked for here, so the reader must have taken `buffered` before.
   */
  attach(target: DirectRead): Socket;
}

/**
 * Takes a paused, plainly accepted TCP (or Unix) socket's connection from it, or returns
 * undefined when `socket` cannot read directly (TLS, not a net.Socket, no handle). Once it
 * returned a connection the old socket must not be used again.
 */
export function detachForDirectRead(socket: Duplex): DetachedConnection | undefined {
  if (!(socket instanceof Socket) || socket instanceof TLSSocket || socket.destroyed) return undefined;
  const old = socket as AcceptedSocket;
  const handle = old._handle;
  if (!handle || typeof handle.useUserBuffer !== 'function') return undefined;
  const buffered: Uint8Array[] = [];
  for (let chunk: Buffer | null; (chunk = old.read() as Buffer | null) !== null; ) buffered.push(chunk);
  old.removeAllListeners();
  // The handle, and the place in its server's connection count, belong to the new socket
  // from now on: the old one is destroyed without them, closing nothing and counting nothing.
  const server = old._server;
  old._handle = null;
  old._server = null;
  old.destroy();
  return {
    buffered,
    attach(target) {
      const adopted = new Socket({
        handle,
        readable: true,
        writable: true,
        onread: {
          buffer: () => target.buffer(),
          callback: (n: number) => {
            target.read(n);
            return true;
          },
        },
      } as ConstructorParameters<typeof Socket>[0]) as AcceptedSocket;
      adopted._server = server;
      adopted.pause();
      return adopted;
    },
  };
}
