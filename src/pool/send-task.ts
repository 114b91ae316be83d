// The sender's unit of work, run on a pool worker: one window of guest pages, read in place
// from a shared memory. The worker finds the zero pages (zero-page-detection=multifd), cuts
// the window into packets of at most `pagesPerPacket` normal pages, compresses each packet's
// normal pages straight into the packet buffer, and hashes the window's checksum chunks while
// the bytes are hot. Everything goes back in one transferred ArrayBuffer: piscina moves only
// a top-level transferable, and one buffer per task keeps the hand-off to a single transfer.
import type { PacketEncoder } from '../codecs/types.js';
import { CHECKSUM_CHUNK_BYTES, zeroChunkChecksum } from '../memory/checksum.js';
import { hashBytes } from '../wasm/kernels.js';
import { appendPage, extendsLastRun, packetHeaderBytes, runsPageCount, writePacket, type PacketHeader, type PageRun } from '../wire/index.js';
import { scanZeroPages } from '../zero/scan.js';
import type { SendTask } from './protocol.js';

// A send result buffer: u32 bytes used | u32 packet count | u32 chunk count | u32 normal pages |
// u32 zero pages | u32 payload bytes | u32 normal pages compressed on an accelerator |
// chunk count × u64 chunk hash | packet count × u32 packet length | the packets.
const RESULT_HEAD = 28;

/** What a send task produced, as read back on the main thread from its result buffer. */
export interface SendResult {
  /** The buffer holding everything: hand it back (WorkerPool.recycle) once the packets are written. */
  buffer: ArrayBuffer;
  /** The packets, each a view into the result buffer, in page order. */
  packets: Uint8Array[];
  /** XXH64 of each checksum chunk the window covers (empty when the task did not hash). */
  chunkHashes: bigint[];
  /** Pages sent with payload, and as zero runs. */
  normalPages: number;
  zeroPages: number;
  /** Payload bytes of all packets (the rest of their bytes are headers). */
  payloadBytes: number;
  /** Normal pages an accelerator compressed (the rest were compressed in software). */
  hardwarePages: number;
}

interface PacketDraft {
  normalRuns: PageRun[];
  zeroRuns: PageRun[];
  normalPages: Uint8Array[];
}

/** Zero runs per packet: the wire format allows 4096; a window rarely needs more than a few. */
const MAX_ZERO_RUNS = 4096;

/**
 * Encodes one window into packets. Pages come from `task.runs` (window-relative) or the whole
 * window; with detection `multifd` zero pages become zero runs and cost no payload.
 */
export function runSendTask(task: SendTask, encoder: PacketEncoder): ArrayBuffer {
  const { memory, byteOffset, pageSize, pageCount, pagesPerPacket } = task;
  const runs = task.runs ?? [{ first: 0, count: pageCount }];
  const isZero = new Uint8Array(pageCount);
  // Only the listed pages are scanned: a dirty round's task may span a whole block sparsely.
  if (task.zeroPageDetection === 'multifd') {
    for (const run of runs) scanZeroPages(memory, byteOffset + run.first * pageSize, pageSize, run.count, isZero.subarray(run.first, run.first + run.count));
  }

  const drafts: PacketDraft[] = [];
  let draft: PacketDraft = { normalRuns: [], zeroRuns: [], normalPages: [] };
  const flush = () => {
    if (draft.normalRuns.length || draft.zeroRuns.length) drafts.push(draft);
    draft = { normalRuns: [], zeroRuns: [], normalPages: [] };
  };
  for (const run of runs) {
    for (let i = run.first; i < run.first + run.count; i++) {
      const page = task.firstPage + i;
      if (isZero[i]) {
        if (draft.zeroRuns.length === MAX_ZERO_RUNS && !extendsLastRun(draft.zeroRuns, page)) flush();
        appendPage(draft.zeroRuns, page);
      } else {
        if (draft.normalPages.length === pagesPerPacket) flush();
        appendPage(draft.normalRuns, page);
        draft.normalPages.push(new Uint8Array(memory.buffer, byteOffset + i * pageSize, pageSize));
      }
    }
  }
  flush();

  const chunkCount = task.hashChunks ? Math.ceil((pageCount * pageSize) / CHECKSUM_CHUNK_BYTES) : 0;
  const lengthsAt = RESULT_HEAD + 8 * chunkCount;
  let capacity = lengthsAt + 4 * drafts.length;
  for (const d of drafts) capacity += packetHeaderBytes(d.normalRuns, d.zeroRuns) + encoder.payloadBound(d.normalPages.length);
  // Reusing a buffer the main thread is done with spares the page faults of fresh memory,
  // which cost more than the copy of `none` pages into it.
  const result = task.spare && task.spare.byteLength >= capacity ? task.spare : new ArrayBuffer(capacity);
  const bytes = new Uint8Array(result);
  const view = new DataView(result);

  hashChunks(task, chunkCount, view, task.zeroPageDetection === 'multifd' && !task.runs ? isZero : undefined);
  let at = lengthsAt + 4 * drafts.length;
  let payloadBytes = 0;
  const hardwarePagesBefore = encoder.hardwarePages ?? 0;
  drafts.forEach((d, index) => {
    const headerBytes = packetHeaderBytes(d.normalRuns, d.zeroRuns);
    const payloadLength = d.normalPages.length
      ? encoder.encode(d.normalPages, bytes.subarray(at + headerBytes, capacity))
      : 0;
    const header: PacketHeader = {
      codecWireId: task.codecWireId,
      flags: 0,
      blockIndex: task.blockIndex,
      round: task.round,
      sequence: task.sequenceBase + index,
      normalRuns: d.normalRuns,
      zeroRuns: d.zeroRuns,
      payloadLength,
    };
    payloadBytes += payloadLength;
    const length = writePacket(bytes.subarray(at), header, payloadLength);
    view.setUint32(lengthsAt + 4 * index, length);
    at += length;
  });
  view.setUint32(0, at);
  view.setUint32(4, drafts.length);
  view.setUint32(8, chunkCount);
  view.setUint32(12, drafts.reduce((n, d) => n + d.normalPages.length, 0));
  view.setUint32(16, drafts.reduce((n, d) => n + runsPageCount(d.zeroRuns), 0));
  view.setUint32(20, payloadBytes);
  view.setUint32(24, (encoder.hardwarePages ?? 0) - hardwarePagesBefore);
  return result;
}

/**
 * XXH64 of each checksum chunk of the window (windows start on chunk boundaries), into the
 * result. A chunk whose pages the zero scan found all zero is not read again: its hash is the
 * zero chunk's.
 */
function hashChunks(task: SendTask, chunkCount: number, view: DataView, isZero: Uint8Array | undefined): void {
  const windowBytes = task.pageCount * task.pageSize;
  const pagesPerChunk = CHECKSUM_CHUNK_BYTES / task.pageSize;
  for (let c = 0; c < chunkCount; c++) {
    const start = c * CHECKSUM_CHUNK_BYTES;
    const length = Math.min(CHECKSUM_CHUNK_BYTES, windowBytes - start);
    const zero = isZero?.subarray(c * pagesPerChunk, c * pagesPerChunk + length / task.pageSize).every((z) => z === 1);
    view.setBigUint64(RESULT_HEAD + 8 * c, zero ? zeroChunkChecksum(length) : hashBytes(task.memory, task.byteOffset + start, length));
  }
}

/** Reads a send task's result buffer (main thread): the packets and chunk hashes. */
export function readSendResult(result: ArrayBuffer): SendResult {
  const view = new DataView(result);
  const used = view.getUint32(0);
  const packetCount = view.getUint32(4);
  const chunkCount = view.getUint32(8);
  const chunkHashes: bigint[] = [];
  for (let c = 0; c < chunkCount; c++) chunkHashes.push(view.getBigUint64(RESULT_HEAD + 8 * c));
  const lengthsAt = RESULT_HEAD + 8 * chunkCount;
  const packets: Uint8Array[] = [];
  let at = lengthsAt + 4 * packetCount;
  for (let p = 0; p < packetCount; p++) {
    const length = view.getUint32(lengthsAt + 4 * p);
    packets.push(new Uint8Array(result, at, length));
    at += length;
  }
  if (at !== used) throw new Error(`send result: packets end at ${at}, expected ${used}`);
  return { buffer: result, packets, chunkHashes, normalPages: view.getUint32(12), zeroPages: view.getUint32(16), payloadBytes: view.getUint32(20), hardwarePages: view.getUint32(24) };
}
