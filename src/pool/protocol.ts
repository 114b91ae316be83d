// Messages between the main thread and pool workers. Buffers travel in transfer lists (never
// cloned), and errors travel as plain objects because structured clone drops an error's class
// and `code` (piscina#141): the worker returns `{ error }`, the main thread rebuilds it.
import type { SerializedError } from '../errors.js';
import type { CodecId } from '../codecs/types.js';

/** Codec settings a task names; the worker keeps one encoder/decoder per distinct setting. */
export interface CodecSetting {
  codec: CodecId;
  pageSize: number;
  maxPages: number;
  level?: number;
}

/** Compress `pageCount` pages laid out contiguously in `pages` (transferred to the worker). */
export interface EncodeTask extends CodecSetting {
  op: 'encode';
  pages: ArrayBuffer;
}

/** Decompress `payload` (transferred) into `pageCount` contiguous pages. */
export interface DecodeTask extends CodecSetting {
  op: 'decode';
  payload: ArrayBuffer;
  pageCount: number;
}

/** Report what the worker holds: compilations it did itself and each C module's memory size. */
export interface InspectTask {
  op: 'inspect';
}

export type PoolTask = EncodeTask | DecodeTask | InspectTask;

/** What `inspect` returns. */
export interface WorkerReport {
  compilations: number;
  wasmMemoryBytes: Record<string, number>;
}

/** A task's result: the bytes produced (transferred back) or a serialised MultifdError. */
export type TaskResult = ArrayBuffer | { error: SerializedError };
