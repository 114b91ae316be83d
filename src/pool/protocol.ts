// Messages between the main thread and pool workers. Guest memory travels as shared
// WebAssembly.Memory objects (the worker sees the same bytes), packets and results travel in
// transfer lists (never cloned), and errors travel as plain objects because structured clone
// drops an error's class and `code` (piscina#141): the worker returns `{ error }`, the main
// thread rebuilds it.
import type { AcceleratorOptions } from '../codecs/types.js';
import type { SerializedError } from '../errors.js';
import type { PageRun, ZeroPageDetection } from '../wire/index.js';

/** Codec settings a task names; a worker keeps one encoder or decoder per distinct setting. */
export interface CodecSetting {
  codecWireId: number;
  level?: number;
  pageSize: number;
  pagesPerPacket: number;
  /** The codec's own accelerator options (CodecOptions.accelerator). */
  accelerator?: AcceleratorOptions;
}

/**
 * Turn one window of guest pages into packets. The window's page `i` (block page
 * `firstPage + i`) lies at `memory` offset `byteOffset + i × pageSize`.
 */
export interface SendTask extends CodecSetting {
  op: 'send';
  memory: WebAssembly.Memory;
  byteOffset: number;
  blockIndex: number;
  firstPage: number;
  pageCount: number;
  /** Window-relative runs of pages to send; all pages when absent. */
  runs?: PageRun[];
  round: number;
  /** The first packet's sequence number; the task uses consecutive numbers from it. */
  sequenceBase: number;
  /** `multifd` scans for zero pages here; `none` and `legacy` send every listed page as normal. */
  zeroPageDetection: ZeroPageDetection;
  /** Also hash the window's 1 MiB checksum chunks (the window starts on a chunk boundary). */
  hashChunks: boolean;
  /**
   * The pages cannot change until the receiver has acknowledged them (a still source, a paused
   * guest, a file window held until then): read in place, and `none` pages are sent from the
   * source memory itself. False for a running guest: the worker snapshots the pages first.
   */
  stable: boolean;
  /** A result buffer the main thread is done with, for the worker to reuse (transferred). */
  spare?: ArrayBuffer;
  /**
   * A packet the codec does not shrink goes as `none` (its pages raw) instead: for senders
   * whose receiver takes any codec per packet (`auto`).
   */
  rawIfLarger?: boolean;
  /**
   * Also encode a sample of the task's pages (send-task.ts SAMPLE_PAGES) with each of these
   * codecs, timed, into scratch memory: for `auto` to rank its candidates on the same pages.
   */
  sample?: SampleCodec[];
}

/** A codec a send task's sample is encoded with (the task's other settings apply). */
export interface SampleCodec {
  codecWireId: number;
  level?: number;
}

/** Where a receiver writes one block: a shared memory, or a file descriptor (same process). */
export type BlockTarget = { memory: WebAssembly.Memory } | { fd: number; byteOffset: number };

/**
 * What every packet of one receiving session shares: sent to a worker once, with the first
 * packet it applies for the session, and kept there (a worker keeps the latest session only).
 */
export interface ReceiveSession extends CodecSetting {
  /** Names the session for the workers (unique in the process). */
  key: number;
  /** The receiver's staging memory, where packets are assembled and read in place. */
  staging: WebAssembly.Memory;
  /** Per block of the hello: where its pages go. */
  targets: BlockTarget[];
  /** Per block: one bit per page, set once the page was received in this migration. */
  received: Int32Array[];
  /** Per block: 2 u32 (low, high) per 4 KiB unit, the hash of what is applied there. */
  unitHashes: Uint32Array[];
  /** Per block: one bit per 1 MiB checksum chunk, set when a page of it changed since the receiver last hashed it. */
  staleChunks: Int32Array[];
  /** One counter: normal pages decompressed on an accelerator, added to atomically. */
  hardwarePages?: Int32Array;
}

/** Where one packet (already header-validated on the main thread) lies in the staging memory, and where it came from. */
export interface StagedPacket {
  byteOffset: number;
  packetBytes: number;
  channel: number;
  /** The packet's ordinal on its channel, for error details. */
  ordinal: number;
}

/** Decode, verify and apply packets of a session, in order. */
export interface ReceiveTask {
  op: 'receive';
  session: number;
  packets: StagedPacket[];
  /** The session itself, for a worker that does not hold it yet (see {@link MISSING_SESSION}). */
  full?: ReceiveSession;
}

/** A receive task's answer from a worker that does not hold the task's session: send it again with `full`. */
export const MISSING_SESSION = 'missing-session';

/** The checksums of the 1 MiB chunks of `byteLength` bytes of a shared memory. */
export interface ChecksumTask {
  op: 'checksum';
  memory: WebAssembly.Memory;
  byteOffset: number;
  byteLength: number;
}

/** Report what the worker holds: compilations it did itself and each C module's memory size. */
export interface InspectTask {
  op: 'inspect';
}

export type PoolTask = SendTask | ReceiveTask | ChecksumTask | InspectTask;

/** A task as posted: with the number of the shared memory it uses (see memory-reclaim.ts). */
export type PostedTask = PoolTask & { memoryId?: number };

/** The shared memory a task reads or writes, if any. */
export function taskMemory(task: PoolTask): WebAssembly.Memory | undefined {
  switch (task.op) {
    case 'send':
    case 'checksum':
      return task.memory;
    case 'receive': {
      const target = task.full?.targets[0];
      return target && 'memory' in target ? target.memory : undefined;
    }
    case 'inspect':
      return undefined;
  }
}

/** What `inspect` returns. */
export interface WorkerReport {
  compilations: number;
  wasmMemoryBytes: Record<string, number>;
}

/** A task's result: bytes produced (transferred back), nothing, a request for the session, or a serialised MultifdError. */
export type TaskResult = ArrayBuffer | WorkerReport | null | typeof MISSING_SESSION | { error: SerializedError };
