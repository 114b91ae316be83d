// Node's backpressure contract, once: write() returns false when the stream's buffer is past
// its highWaterMark, and the writer should wait for 'drain'. Channels write packet after
// packet, so the helper returns undefined when no wait is needed: the hot path then costs no
// promise and no listener per write.
import type { Writable } from 'node:stream';
import { TransportError } from '../errors.js';

function closedError(cause?: Error | null): TransportError {
  return new TransportError('ERR_CLOSED', 'the connection closed while data was still to be written', { cause: cause ?? undefined });
}

/** Resolves at the stream's `event`; rejects with `ERR_CLOSED` if it errors, or closes before `event`, first. */
function eventOrClose(stream: Writable, event: 'drain' | 'finish'): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    const settle = (error?: Error | null): void => {
      stream.off(event, onEvent);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (error === undefined) resolve();
      else reject(closedError(error));
    };
    const onEvent = (): void => settle();
    const onError = (error: Error): void => settle(error);
    // 'finish' comes before 'close' on a stream that finished; a close without it lost data.
    const onClose = (): void => settle(event === 'finish' && stream.writableFinished ? undefined : stream.errored);
    stream.on(event, onEvent);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
}

// The drain wait in progress per stream. Every writer that finds a stream full waits for the
// same 'drain': one set of listeners however many writers wait (dozens of send tasks may share
// a channel), not one set each and a MaxListenersExceededWarning past ten.
const pendingDrains = new WeakMap<Writable, Promise<void>>();

/**
 * Resolves at the stream's next 'drain' (at once if it needs none); rejects with
 * TransportError `ERR_CLOSED` (the stream's error as `cause`, if any) if it errors or closes
 * first. Callers waiting at the same time share one promise and one set of listeners.
 */
export function drained(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.reject(closedError());
  if (!stream.writableNeedDrain) return Promise.resolve();
  let wait = pendingDrains.get(stream);
  if (!wait) {
    wait = eventOrClose(stream, 'drain');
    pendingDrains.set(stream, wait);
    const forget = (): void => void pendingDrains.delete(stream);
    wait.then(forget, forget);
  }
  return wait;
}

/**
 * Ends the stream (unless it is ended already) and resolves at its 'finish': every write
 * handed to it is done, each write's callback has run (for a migration file's channel: its
 * records are in the file stream). Rejects with TransportError `ERR_CLOSED` (the stream's
 * error as `cause`, if any) if it errors or closes first.
 */
export function ended(stream: Writable): Promise<void> {
  if (stream.writableFinished) return Promise.resolve();
  if (stream.destroyed) return Promise.reject(closedError(stream.errored));
  const wait = eventOrClose(stream, 'finish');
  if (!stream.writableEnded) stream.end();
  return wait;
}

/**
 * Writes `bytes` and returns undefined when the stream can take more at once, or a promise
 * of its next 'drain' when the caller should wait (see {@link drained}).
 *
 * The stream keeps a reference to `bytes` until they are flushed, so do not change them
 * afterwards: a view of guest memory that is written to again must be copied first.
 * @example
 * const wait = writeWithBackpressure(socket, packet);
 * if (wait) await wait;
 */
export function writeWithBackpressure(stream: Writable, bytes: Uint8Array): Promise<void> | undefined {
  if (stream.destroyed || stream.writableEnded) return Promise.reject(closedError());
  return stream.write(bytes) ? undefined : drained(stream);
}
