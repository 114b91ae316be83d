// The receiver's unit of work, run on a pool worker: one packet whose header the main thread
// has validated. Nothing reaches guest memory before the packet's checksum matches and its
// payload decoded to exactly the right size (the decoders validate into their own scratch
// first). Zero pages follow QEMU's receive bitmap rule: a page never written in this migration
// is still zero in fresh memory (or a sparse file) and is left alone; one written before is
// cleared, because a page can go normal → zero between rounds.
import { writeSync } from 'node:fs';
import type { PacketDecoder } from '../codecs/types.js';
import { CodecError } from '../errors.js';
import { CHECKSUM_CHUNK_BYTES } from '../memory/checksum.js';
import { verifyPacketChecksum, type PageRun } from '../wire/index.js';
import type { BlockTarget, ReceiveTask } from './protocol.js';

let fileScratch = new Uint8Array(0);
let zeroPage = new Uint8Array(0);

/** Sets bit `index`; returns whether it was set before. Atomic: neighbouring pages may be on other workers. */
function setBit(bits: Int32Array, index: number): boolean {
  const bit = 1 << (index & 31);
  return (Atomics.or(bits, index >>> 5, bit) & bit) !== 0;
}

/**
 * Marks the checksum chunks holding pages `first .. first + count - 1` as written: a chunk
 * never written stays all zero in fresh memory, so the image checksum need not read it.
 */
function markWritten(chunks: ChunkMarks, first: number, count: number, pageSize: number): void {
  const firstChunk = Math.floor((first * pageSize) / CHECKSUM_CHUNK_BYTES);
  const lastChunk = Math.floor(((first + count) * pageSize - 1) / CHECKSUM_CHUNK_BYTES);
  for (let chunk = firstChunk; chunk <= lastChunk; chunk++) {
    setBit(chunks.writtenChunks, chunk);
    setBit(chunks.staleChunks, chunk);
  }
}

/** The chunk bitmaps a write updates (see ReceiveTask). */
export type ChunkMarks = Pick<ReceiveTask, 'writtenChunks' | 'staleChunks'>;

function writeFilePages(target: { fd: number; byteOffset: number }, page: number, bytes: Uint8Array, pageSize: number): void {
  let done = 0;
  while (done < bytes.byteLength) {
    done += writeSync(target.fd, bytes, done, bytes.byteLength - done, target.byteOffset + page * pageSize + done);
  }
}

/** Applies one packet to its block target. */
export function runReceiveTask(task: ReceiveTask, decoder: PacketDecoder): void {
  const { header, pageSize, target, received } = task;
  const bytes = new Uint8Array(task.packet, 0, task.packetBytes);
  verifyPacketChecksum(bytes, task.channel, task.ordinal);
  const payload = bytes.subarray(bytes.byteLength - header.payloadLength);

  const normalPages = header.normalRuns.reduce((n, r) => n + r.count, 0);
  const decode = (pages: Uint8Array[]) => {
    try {
      const before = decoder.hardwarePages ?? 0;
      decoder.decode(payload, pages);
      if (task.hardwarePages) Atomics.add(task.hardwarePages, 0, (decoder.hardwarePages ?? 0) - before);
    } catch (error) {
      if (!(error instanceof CodecError)) throw error;
      // Name where it happened, as every receiver error does.
      throw new CodecError(error.code, `channel ${task.channel}, packet ${task.ordinal}: ${error.message}`, {
        cause: error,
        context: { channel: task.channel, packet: task.ordinal, field: 'payload', expected: `${normalPages * pageSize} bytes of pages`, got: error.message },
      });
    }
  };
  if ('memory' in target) {
    decode(pageViews(target.memory.buffer, header.normalRuns, pageSize));
  } else {
    if (fileScratch.byteLength < normalPages * pageSize) fileScratch = new Uint8Array(normalPages * pageSize);
    const scratch = fileScratch.subarray(0, normalPages * pageSize);
    decode(Array.from({ length: normalPages }, (_, i) => scratch.subarray(i * pageSize, (i + 1) * pageSize)));
    let at = 0;
    for (const run of header.normalRuns) {
      writeFilePages(target, run.first, scratch.subarray(at, at + run.count * pageSize), pageSize);
      at += run.count * pageSize;
    }
  }
  for (const run of header.normalRuns) {
    for (let p = run.first; p < run.first + run.count; p++) setBit(received, p);
    markWritten(task, run.first, run.count, pageSize);
  }
  for (const run of header.zeroRuns) applyZeroRun(target, received, task, run, pageSize);
}

function pageViews(buffer: ArrayBufferLike, runs: readonly PageRun[], pageSize: number): Uint8Array[] {
  const views: Uint8Array[] = [];
  for (const run of runs) {
    for (let p = run.first; p < run.first + run.count; p++) views.push(new Uint8Array(buffer, p * pageSize, pageSize));
  }
  return views;
}

/** Applies one zero run under the receive-bitmap rule (also used for legacy zero pages on the main thread). */
export function applyZeroRun(target: BlockTarget, received: Int32Array, chunks: ChunkMarks, run: PageRun, pageSize: number): void {
  for (let p = run.first; p < run.first + run.count; p++) {
    if (!setBit(received, p)) continue;
    markWritten(chunks, p, 1, pageSize);
    if ('memory' in target) {
      new Uint8Array(target.memory.buffer, p * pageSize, pageSize).fill(0);
    } else {
      if (zeroPage.byteLength !== pageSize) zeroPage = new Uint8Array(pageSize);
      writeFilePages(target, p, zeroPage, pageSize);
    }
  }
}
