// Node's backpressure contract, once: write() returns false when the stream's buffer is past
// its highWaterMark, and the writer should wait for 'drain'. Channels write packet after
// packet, so the helper returns undefined when no wait is needed: the hot path then costs no
// promise and no listener per write.
import type { Writable } from 'node:stream';
import { TransportError } from '../errors.js';

function closedError(): TransportError {
  return new TransportError('ERR_CLOSED', 'the connection closed while data was still to be written');
}

/**
 * Resolves at the stream's next 'drain' (at once if it needs none); rejects with
 * TransportError `ERR_CLOSED` (the stream's error as `cause`, if any) if it errors or closes
 * first.
 */
export function drained(stream: Writable): Promise<void> {
  if (stream.destroyed || stream.writableEnded) return Promise.reject(closedError());
  if (!stream.writableNeedDrain) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const settle = (error?: Error | null): void => {
      stream.off('drain', onDrain);
      stream.off('error', onError);
      stream.off('close', onClose);
      if (error === undefined) resolve();
      else reject(new TransportError('ERR_CLOSED', closedError().message, { cause: error ?? undefined }));
    };
    const onDrain = (): void => settle();
    const onError = (error: Error): void => settle(error);
    const onClose = (): void => settle(stream.errored);
    stream.on('drain', onDrain);
    stream.on('error', onError);
    stream.on('close', onClose);
  });
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
