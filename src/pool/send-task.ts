// The sender's unit of work, run on a pool worker: one window of guest pages, read in place
// from a shared memory. The worker finds the zero pages (zero-page-detection=multifd), hashes
// every other page's 4 KiB units once (those hashes seal each packet's checksum and make the
// window's checksum chunks), cuts the window into packets of at most `pagesPerPacket` normal
// pages and compresses each packet's normal pages straight into the result buffer.
//
// A `none` packet of a stable source (pages that cannot change before the receiver has them)
// carries no payload in the result: the main thread writes the header followed by views of
// the pages themselves, so its bytes go from guest memory to the socket with no copy. Pages
// of a running guest may change at any moment, so there the worker first copies them into a
// snapshot and hashes and encodes the snapshot: what is sent is what was hashed.
//
// Everything goes back in one transferred ArrayBuffer: piscina moves only a top-level
// transferable, and one buffer per task keeps the hand-off to a single transfer.
import { none } from '../codecs/none.js';
import { codecByWireId } from '../codecs/registry.js';
import type { PacketDecoder, PacketEncoder } from '../codecs/types.js';
import { CHECKSUM_CHUNK_BYTES, HASH_UNIT_BYTES, chunkHashOfUnits, fillZeroUnitHashes, unitHashes } from '../memory/checksum.js';
import { appendPage, extendsLastRun, packetHeaderBytes, runsPageCount, writePacket, writePacketHeader, type PacketHeader, type PageRun } from '../wire/index.js';
import { scanZeroPages } from '../wasm/zero-scan.js';
import type { SampleCodec, SendTask } from './protocol.js';

// A send result buffer: u32 bytes used | u32 packet count | u32 chunk count | u32 normal pages |
// u32 zero pages | u32 payload bytes | u32 normal pages compressed on an accelerator | u32
// normal pages sent raw because the codec did not shrink them | f64 ms the task took on the
// worker | f64 ms of it in the codec's encode | u32 sample encodings | u32 sample bytes |
// chunk count × u64 chunk hash | sample encodings × (u32 bytes out, u32 0, f64 encode ms, f64
// decode ms) | then per
// packet: u32 bytes in the result | u32 page spans written from the source | spans × (u32 byte
// offset in the task's memory, u32 bytes) | the packet's bytes in the result (its header, and
// its payload unless the spans carry it).
const RESULT_HEAD = 56;
const SAMPLE_ENTRY = 24;

/**
 * Normal pages a task encodes again with each codec `SendTask.sample` names: one packet's
 * worth of them is enough to rank the codecs on these very pages, and little enough to cost
 * about a percent of the work when taken every few dozen tasks.
 */
export const SAMPLE_PAGES = 64;
const SAMPLE_RUNS = 2;

/** A packet as read back on the main thread: the byte views to write, in order. */
export interface SentPacket {
  /** The packet's header (and payload, when it is in the result), then views of source pages. */
  parts: Uint8Array[];
  /** Bytes over all parts. */
  byteLength: number;
  /** The packet's sequence number. */
  sequence: number;
}

/** What a send task produced, as read back on the main thread from its result buffer. */
export interface SendResult {
  /** The buffer holding everything: hand it back (WorkerPool.recycle) once the packets are written. */
  buffer: ArrayBuffer;
  /** The packets, in page order. */
  packets: SentPacket[];
  /** The checksum of each checksum chunk the window covers (empty when the task did not hash). */
  chunkHashes: bigint[];
  /** Pages sent with payload, and as zero runs. */
  normalPages: number;
  zeroPages: number;
  /** Payload bytes of all packets (the rest of their bytes are headers). */
  payloadBytes: number;
  /** Normal pages an accelerator compressed (the rest were compressed in software). */
  hardwarePages: number;
  /** Normal pages sent raw as `none` because the codec did not shrink their packet (`rawIfLarger`). */
  rawPages: number;
  /** Milliseconds the task took on its worker, start to end. */
  workerMs: number;
  /** Of those, the milliseconds in the codec's encode (the rest: zero scan, hashes, headers, samples). */
  encodeMs: number;
  /** One per codec the task's `sample` named, in order (empty without one): the same pages encoded by each. */
  sampleEncodings: SampleEncoding[];
  /** The raw bytes of the pages sampled (SAMPLE_PAGES pages or fewer; 0 without a sample). */
  sampleBytes: number;
}

/** The task's sample, encoded by one codec and decoded again. */
export interface SampleEncoding {
  wireBytes: number;
  ms: number;
  decodeMs: number;
}

interface PacketDraft {
  normalRuns: PageRun[];
  zeroRuns: PageRun[];
  /** Task-relative indices of the normal pages, in payload order. */
  normalPages: number[];
}

/** Zero runs per packet: the wire format allows 4096; a window rarely needs more than a few. */
const MAX_ZERO_RUNS = 4096;

/** Worker-local: the unit hashes of a task, and the snapshot of a running guest's pages. */
let hashes = new Uint32Array(0);
let packetHashes = new Uint32Array(0);
let snapshot: WebAssembly.Memory | undefined;
/** Worker-local: where samples are encoded and decoded, and the coders whose first sample was taken. */
let sampleScratch = new Uint8Array(0);
let sampleOut = new Uint8Array(0);
const warmedCoders = new WeakSet<object>();

/** Cuts the listed pages into packet drafts: zero pages into zero runs, the rest into normal runs. */
function draftPackets(task: SendTask, runs: readonly PageRun[], isZero: Uint8Array): PacketDraft[] {
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
        if (draft.normalPages.length === task.pagesPerPacket) flush();
        appendPage(draft.normalRuns, page);
        draft.normalPages.push(i);
      }
    }
  }
  flush();
  return drafts;
}

/**
 * Where the worker reads the task's pages: the source memory itself, or for a running guest a
 * snapshot of the listed pages at the same task-relative offsets.
 */
function pageMemory(task: SendTask, runs: readonly PageRun[]): { memory: WebAssembly.Memory; byteOffset: number } {
  if (task.stable) return { memory: task.memory, byteOffset: task.byteOffset };
  const bytes = task.pageCount * task.pageSize;
  if (!snapshot || snapshot.buffer.byteLength < bytes) snapshot = new WebAssembly.Memory({ initial: Math.ceil(bytes / 65536), maximum: 65536, shared: true });
  const into = new Uint8Array(snapshot.buffer);
  for (const run of runs) {
    const at = run.first * task.pageSize;
    into.set(new Uint8Array(task.memory.buffer, task.byteOffset + at, run.count * task.pageSize), at);
  }
  return { memory: snapshot, byteOffset: 0 };
}

/** The worker's encoder for codec `wireId` at `level` and decoder for `wireId`, with the task's other settings. */
export interface CoderLookup {
  encoderFor(wireId: number, level: number | undefined): PacketEncoder;
  decoderFor(wireId: number): PacketDecoder;
}

/** The task's pages as the worker reads them, and whether zero-page detection found each zero. */
interface TaskPages {
  memory: WebAssembly.Memory;
  byteOffset: number;
  pageSize: number;
  isZero: Uint8Array;
}

/**
 * Encodes one window into packets. Pages come from `task.runs` (window-relative) or the whole
 * window; with detection `multifd` zero pages become zero runs and cost no payload.
 */
export function runSendTask(task: SendTask, coders: CoderLookup): ArrayBuffer {
  const startedAt = performance.now();
  const { pageSize, pageCount } = task;
  const runs = task.runs ?? [{ first: 0, count: pageCount }];
  const pages = scanAndHash(task, runs);
  const drafts = draftPackets(task, runs, pages.isZero);
  const encoder = coders.encoderFor(task.codecWireId, task.level);
  const inPlace = task.stable && codecByWireId(task.codecWireId)?.info.payloadIsPages === true;
  const samples = task.sample ?? [];

  const chunkCount = task.hashChunks ? Math.ceil((pageCount * pageSize) / CHECKSUM_CHUNK_BYTES) : 0;
  const samplesAt = RESULT_HEAD + 8 * chunkCount;
  const packetsAt = samplesAt + SAMPLE_ENTRY * samples.length;
  let capacity = packetsAt;
  for (const d of drafts) {
    capacity += 8 + 8 * d.normalRuns.length + packetHeaderBytes(d.normalRuns, d.zeroRuns) + (inPlace ? 0 : encoder.payloadBound(d.normalPages.length));
  }
  // Reusing a buffer the main thread is done with spares the page faults of fresh memory.
  const result = task.spare && task.spare.byteLength >= capacity ? task.spare : new ArrayBuffer(capacity);
  const view = new DataView(result);
  writeChunkHashes(view, chunkCount, pageCount * pageSize);
  const hardwarePagesBefore = encoder.hardwarePages ?? 0;
  const written = writePackets(task, drafts, pages, { encoder, inPlace, result, at: packetsAt });
  const sampleBytes = writeSampleEncodings(view, samplesAt, samples, drafts, pages, coders);
  view.setUint32(0, written.end);
  view.setUint32(4, drafts.length);
  view.setUint32(8, chunkCount);
  view.setUint32(12, drafts.reduce((n, d) => n + d.normalPages.length, 0));
  view.setUint32(16, drafts.reduce((n, d) => n + runsPageCount(d.zeroRuns), 0));
  view.setUint32(20, written.payloadBytes);
  view.setUint32(24, (encoder.hardwarePages ?? 0) - hardwarePagesBefore);
  view.setUint32(28, written.rawPages);
  view.setFloat64(32, performance.now() - startedAt);
  view.setFloat64(40, written.encodeMs);
  view.setUint32(48, samples.length);
  view.setUint32(52, sampleBytes);
  return result;
}

/**
 * Scans the listed pages for zero pages (detection `multifd`) and hashes their 4 KiB units into
 * `hashes`. Only the listed pages: a dirty round's task may span a block sparsely.
 */
function scanAndHash(task: SendTask, runs: readonly PageRun[]): TaskPages {
  const { pageSize, pageCount } = task;
  const unitsPerPage = pageSize / HASH_UNIT_BYTES;
  const pages = { ...pageMemory(task, runs), pageSize, isZero: new Uint8Array(pageCount) };
  if (hashes.length < 2 * pageCount * unitsPerPage) hashes = new Uint32Array(2 * pageCount * unitsPerPage);
  // A task that hashes chunks but lists its pages left out the zero pages the main thread found
  // (zero-page-detection=legacy): they hash as zero.
  if (task.hashChunks && task.runs) fillZeroUnitHashes(hashes, 0, pageCount * unitsPerPage);
  for (const run of runs) {
    if (task.zeroPageDetection === 'multifd') scanZeroPages(pages.memory, pages.byteOffset + run.first * pageSize, pageSize, run.count, pages.isZero.subarray(run.first, run.first + run.count));
    hashRun(pages, run, pages.isZero, pageSize);
  }
  return pages;
}

/** The checksum of each 1 MiB chunk of the task's `bytes`, from the unit hashes, at RESULT_HEAD. */
function writeChunkHashes(view: DataView, chunkCount: number, bytes: number): void {
  for (let c = 0; c < chunkCount; c++) {
    const firstUnit = (c * CHECKSUM_CHUNK_BYTES) / HASH_UNIT_BYTES;
    const units = Math.min(CHECKSUM_CHUNK_BYTES, bytes - c * CHECKSUM_CHUNK_BYTES) / HASH_UNIT_BYTES;
    view.setBigUint64(RESULT_HEAD + 8 * c, chunkHashOfUnits(hashes.subarray(2 * firstUnit, 2 * (firstUnit + units))));
  }
}

/** The page views of a draft's normal pages (task-relative indices) in the worker's page memory. */
function pageViews(pages: TaskPages, normalPages: readonly number[]): Uint8Array[] {
  return normalPages.map((i) => new Uint8Array(pages.memory.buffer, pages.byteOffset + i * pages.pageSize, pages.pageSize));
}

/** Writes each draft as a packet into `into.result` from `into.at`; returns where they end and what they hold. */
function writePackets(task: SendTask, drafts: readonly PacketDraft[], pages: TaskPages, into: { encoder: PacketEncoder; inPlace: boolean; result: ArrayBuffer; at: number }) {
  const { encoder, inPlace, result } = into;
  const { pageSize } = task;
  const bytes = new Uint8Array(result);
  const view = new DataView(result);
  const unitsPerPage = pageSize / HASH_UNIT_BYTES;
  let at = into.at;
  let payloadBytes = 0;
  let rawPages = 0;
  let encodeMs = 0;
  drafts.forEach((d, index) => {
    const sealed = gatherHashes(d.normalPages, unitsPerPage);
    const header: PacketHeader = {
      codecWireId: task.codecWireId,
      flags: 0,
      blockIndex: task.blockIndex,
      round: task.round,
      sequence: task.sequenceBase + index,
      normalRuns: d.normalRuns,
      zeroRuns: d.zeroRuns,
      payloadLength: d.normalPages.length * pageSize,
    };
    const spans = inPlace ? d.normalRuns.length : 0;
    const packetAt = at + 8 + 8 * spans;
    let length: number;
    if (inPlace) {
      d.normalRuns.forEach((run, s) => {
        view.setUint32(at + 8 + 8 * s, task.byteOffset + (run.first - task.firstPage) * pageSize);
        view.setUint32(at + 12 + 8 * s, run.count * pageSize);
      });
      length = writePacketHeader(bytes.subarray(packetAt), header, sealed);
    } else {
      const headerBytes = packetHeaderBytes(d.normalRuns, d.zeroRuns);
      const views = pageViews(pages, d.normalPages);
      const encodeStart = performance.now();
      header.payloadLength = views.length ? encoder.encode(views, bytes.subarray(packetAt + headerBytes)) : 0;
      if (task.rawIfLarger && rawInstead(header, views, bytes.subarray(packetAt + headerBytes))) rawPages += views.length;
      encodeMs += performance.now() - encodeStart;
      length = writePacket(bytes.subarray(packetAt), header, header.payloadLength, sealed);
    }
    payloadBytes += header.payloadLength;
    view.setUint32(at, length);
    view.setUint32(at + 4, spans);
    at = packetAt + length;
  });
  return { end: at, payloadBytes, rawPages, encodeMs };
}

/**
 * Encodes up to SAMPLE_PAGES normal pages of the task's fullest packet with each codec of
 * `samples` into scratch memory, decodes them again, and writes (bytes out, encode ms, decode
 * ms) per codec at `at` (zeros when the task has no normal page). Each time is the least of
 * SAMPLE_RUNS: on shared cores a single call of a few ms is often stretched by a preemption.
 * A coder's first sample in this worker is preceded by an untimed call: the first call of some
 * codecs sets up their working memory. Returns the raw bytes sampled.
 */
function writeSampleEncodings(view: DataView, at: number, samples: readonly SampleCodec[], drafts: readonly PacketDraft[], pages: TaskPages, coders: CoderLookup): number {
  const fullest = drafts.reduce<PacketDraft | undefined>((a, b) => (b.normalPages.length > (a?.normalPages.length ?? 0) ? b : a), undefined);
  const views = fullest ? pageViews(pages, fullest.normalPages.slice(0, SAMPLE_PAGES)) : [];
  if (sampleOut.byteLength < views.length * pages.pageSize) sampleOut = new Uint8Array(views.length * pages.pageSize);
  const outPages = views.map((_, k) => sampleOut.subarray(k * pages.pageSize, (k + 1) * pages.pageSize));
  samples.forEach((setting, i) => {
    const entry = at + SAMPLE_ENTRY * i;
    if (!views.length) return [0, 8, 16].forEach((field) => view.setFloat64(entry + field, 0));
    const encoder = coders.encoderFor(setting.codecWireId, setting.level);
    const bound = encoder.payloadBound(views.length);
    if (sampleScratch.length < bound) sampleScratch = new Uint8Array(bound);
    const encode = bestTime(encoder, () => encoder.encode(views, sampleScratch));
    const decoder = coders.decoderFor(setting.codecWireId);
    const decode = bestTime(decoder, () => decoder.decode(sampleScratch.subarray(0, encode.result), outPages));
    view.setUint32(entry, encode.result);
    view.setUint32(entry + 4, 0);
    view.setFloat64(entry + 8, encode.ms);
    view.setFloat64(entry + 16, decode.ms);
  });
  return samples.length ? views.length * pages.pageSize : 0;
}

/** The least time of SAMPLE_RUNS calls of `call`, after an untimed one on `coder`'s first use; and what the last call returned. */
function bestTime<T>(coder: object, call: () => T): { ms: number; result: T } {
  if (!warmedCoders.has(coder)) call();
  warmedCoders.add(coder);
  let ms = Infinity;
  let result!: T;
  for (let run = 0; run < SAMPLE_RUNS; run++) {
    const start = performance.now();
    result = call();
    ms = Math.min(ms, performance.now() - start);
  }
  return { ms, result };
}

/**
 * A packet its codec did not shrink, rewritten as `none`: the pages raw in `payload`, where the
 * encoded bytes were (every codec's bound covers the raw pages). Returns whether it was.
 */
function rawInstead(header: PacketHeader, pages: readonly Uint8Array[], payload: Uint8Array): boolean {
  const raw = pages.reduce((n, page) => n + page.byteLength, 0);
  if (raw === 0 || header.codecWireId === none.info.wireId || header.payloadLength < raw) return false;
  let at = 0;
  for (const page of pages) {
    payload.set(page, at);
    at += page.byteLength;
  }
  header.codecWireId = none.info.wireId;
  header.payloadLength = raw;
  return true;
}

/** Hashes the units of a run's non-zero pages into `hashes` (task-relative); zero pages get the zero unit's hash. */
function hashRun(pages: { memory: WebAssembly.Memory; byteOffset: number }, run: PageRun, isZero: Uint8Array, pageSize: number): void {
  const unitsPerPage = pageSize / HASH_UNIT_BYTES;
  for (let i = run.first, end = run.first + run.count; i < end; ) {
    const zero = isZero[i] === 1;
    let j = i + 1;
    while (j < end && (isZero[j] === 1) === zero) j++;
    if (zero) fillZeroUnitHashes(hashes, i * unitsPerPage, (j - i) * unitsPerPage);
    else unitHashes(pages.memory, pages.byteOffset + i * pageSize, (j - i) * pageSize, hashes, 2 * i * unitsPerPage);
    i = j;
  }
}

/** The unit hashes of a packet's normal pages (task-relative indices), in payload order. */
function gatherHashes(normalPages: readonly number[], unitsPerPage: number): Uint32Array {
  const needed = 2 * normalPages.length * unitsPerPage;
  if (packetHashes.length < needed) packetHashes = new Uint32Array(needed);
  normalPages.forEach((page, k) => packetHashes.set(hashes.subarray(2 * page * unitsPerPage, 2 * (page + 1) * unitsPerPage), 2 * k * unitsPerPage));
  return packetHashes.subarray(0, needed);
}

/** Reads a send task's result buffer (main thread): the packets and chunk hashes. `memory` is the task's source memory. */
export function readSendResult(result: ArrayBuffer, memory: WebAssembly.Memory): SendResult {
  const view = new DataView(result);
  const used = view.getUint32(0);
  const packetCount = view.getUint32(4);
  const chunkCount = view.getUint32(8);
  const chunkHashes: bigint[] = [];
  for (let c = 0; c < chunkCount; c++) chunkHashes.push(view.getBigUint64(RESULT_HEAD + 8 * c));
  const samplesAt = RESULT_HEAD + 8 * chunkCount;
  const sampleEncodings: SampleEncoding[] = [];
  for (let i = 0; i < view.getUint32(48); i++) {
    const entry = samplesAt + SAMPLE_ENTRY * i;
    sampleEncodings.push({ wireBytes: view.getUint32(entry), ms: view.getFloat64(entry + 8), decodeMs: view.getFloat64(entry + 16) });
  }
  const packets: SentPacket[] = [];
  let at = samplesAt + SAMPLE_ENTRY * sampleEncodings.length;
  for (let p = 0; p < packetCount; p++) {
    const length = view.getUint32(at);
    const spans = view.getUint32(at + 4);
    const packetAt = at + 8 + 8 * spans;
    const parts = [new Uint8Array(result, packetAt, length)];
    let byteLength = length;
    for (let s = 0; s < spans; s++) {
      const span = new Uint8Array(memory.buffer, view.getUint32(at + 8 + 8 * s), view.getUint32(at + 12 + 8 * s));
      parts.push(span);
      byteLength += span.byteLength;
    }
    packets.push({ parts, byteLength, sequence: Number(view.getBigUint64(packetAt + 16)) });
    at = packetAt + length;
  }
  if (at !== used) throw new Error(`send result: packets end at ${at}, expected ${used}`);
  return {
    buffer: result,
    packets,
    chunkHashes,
    normalPages: view.getUint32(12),
    zeroPages: view.getUint32(16),
    payloadBytes: view.getUint32(20),
    hardwarePages: view.getUint32(24), rawPages: view.getUint32(28),
    workerMs: view.getFloat64(32),
    encodeMs: view.getFloat64(40),
    sampleEncodings,
    sampleBytes: view.getUint32(52),
  };
}
