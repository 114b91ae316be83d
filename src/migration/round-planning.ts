// What a round sends, worked out on the main thread: the checksum chunk bookkeeping, the
// tasks of a dirty round, legacy zero-page detection, the stale chunks to re-hash once the
// workload is paused, and (verify) the whole source hashed afresh. Pure functions over page
// runs and bitmaps (plus the pool for hashing).
import { CHECKSUM_CHUNK_BYTES } from '../memory/checksum.js';
import type { WorkerPool } from '../pool/pool.js';
import { appendPage, type PageRun } from '../wire/index.js';
import { scanZeroPages } from '../wasm/zero-scan.js';
import { bitmapRuns, type DirtyBitmaps } from './dirty/index.js';
import type { FailureLatch } from './failure-latch.js';
import { forEachWindow, type PageSource, type SourceWindow } from './source.js';

/** Index of each block's first checksum chunk in the image's chunk list. */
export function chunkBases(source: PageSource): number[] {
  let next = 0;
  return source.blocks.map((b) => {
    const base = next;
    next += Math.ceil(b.byteLength / CHECKSUM_CHUNK_BYTES);
    return base;
  });
}

/**
 * zero-page-detection=legacy: the main thread finds the zero pages among the task's pages, as
 * QEMU's migration thread does; they travel on the control channel (block page indices) and
 * the task sends the rest (task-relative runs).
 */
export function legacyZeroPageSplit(window: SourceWindow, first: number, pageCount: number, runs: readonly PageRun[] | undefined, pageSize: number) {
  const isZero = new Uint8Array(pageCount);
  scanZeroPages(window.memory, window.byteOffset + first * pageSize, pageSize, pageCount, isZero);
  const zeroRuns: PageRun[] = [];
  const normalRuns: PageRun[] = [];
  let zeroPages = 0;
  for (const run of runs ?? [{ first: 0, count: pageCount }]) {
    for (let i = run.first; i < run.first + run.count; i++) {
      if (isZero[i]) {
        appendPage(zeroRuns, window.firstPage + first + i);
        zeroPages++;
      } else {
        appendPage(normalRuns, i);
      }
    }
  }
  return { zeroRuns, normalRuns, zeroPages };
}

/**
 * Groups a block's dirty runs into tasks of at most `pagesPerTask` dirty pages each, however
 * far apart (task-relative runs): a sparse dirty set then costs a few tasks, not one per
 * stretch of memory it touches.
 */
export function tasksOfRuns(runs: readonly PageRun[], pagesPerTask: number): Array<{ first: number; pageCount: number; runs: PageRun[] }> {
  const tasks: Array<{ first: number; pageCount: number; runs: PageRun[] }> = [];
  let task: { first: number; pageCount: number; runs: PageRun[]; pages: number } | undefined;
  for (const run of runs) {
    let page = run.first;
    const end = run.first + run.count;
    while (page < end) {
      if (!task || task.pages === pagesPerTask) {
        task = { first: page, pageCount: 0, runs: [], pages: 0 };
        tasks.push(task);
      }
      const take = Math.min(end - page, pagesPerTask - task.pages);
      task.runs.push({ first: page - task.first, count: take });
      task.pages += take;
      task.pageCount = page + take - task.first;
      page += take;
    }
  }
  return tasks.map(({ first, pageCount, runs: taskRuns }) => ({ first, pageCount, runs: taskRuns }));
}

/** A | B, block by block. */
export function mergeBitmaps(a: DirtyBitmaps, b: DirtyBitmaps): DirtyBitmaps {
  return a.map((words, i) => words.map((w, j) => w | b[i]![j]!));
}

/** Marks the checksum chunks holding dirty pages: their hashes from round 1 no longer hold. */
export function markStale(stale: Set<number>, bitmaps: DirtyBitmaps, source: PageSource, pageSize: number, blockChunkBase: number[]): void {
  const pagesPerChunk = CHECKSUM_CHUNK_BYTES / pageSize;
  bitmaps.forEach((bitmap, blockIndex) => {
    for (const run of bitmapRuns(bitmap, source.blocks[blockIndex]!.byteLength / pageSize)) {
      const firstChunk = Math.floor(run.first / pagesPerChunk);
      const lastChunk = Math.floor((run.first + run.count - 1) / pagesPerChunk);
      for (let c = firstChunk; c <= lastChunk; c++) stale.add(blockChunkBase[blockIndex]! + c);
    }
  });
}

/** Re-hashes the stale chunks (the workload is paused, so the bytes hold still). */
export async function rehashStale(pool: WorkerPool, source: PageSource, stale: Set<number>, chunkHashes: bigint[], blockChunkBase: number[]): Promise<void> {
  const guest = source.guest!;
  await Promise.all(
    [...stale].map(async (chunk) => {
      let blockIndex = blockChunkBase.length - 1;
      while (blockChunkBase[blockIndex]! > chunk) blockIndex--;
      const block = guest.blocks[blockIndex]!;
      const byteOffset = (chunk - blockChunkBase[blockIndex]!) * CHECKSUM_CHUNK_BYTES;
      const byteLength = Math.min(CHECKSUM_CHUNK_BYTES, block.byteLength - byteOffset);
      const [hash] = await pool.checksumChunks({ memory: block.memory, byteOffset, byteLength });
      chunkHashes[chunk] = hash!;
    }),
  );
}

/**
 * Every chunk hash of the source, hashed afresh (verify): window by window (a file source is
 * read again), each window's chunks hashed on the pool in spans of `spanBytes` (a multiple of
 * the chunk size) and its memory released once they are done.
 */
export async function hashSource(pool: WorkerPool, source: PageSource, failure: FailureLatch, blockChunkBase: number[], spanBytes: number): Promise<bigint[]> {
  const hashes: bigint[] = [];
  await forEachWindow(source, failure, async (window) => {
    const byteLength = window.pageCount * source.pageSize;
    const firstChunk = blockChunkBase[window.blockIndex]! + (window.firstPage * source.pageSize) / CHECKSUM_CHUNK_BYTES;
    const spans: Promise<void>[] = [];
    for (let at = 0; at < byteLength; at += spanBytes) {
      const hashing = pool.checksumChunks({ memory: window.memory, byteOffset: window.byteOffset + at, byteLength: Math.min(spanBytes, byteLength - at) });
      spans.push(hashing.then((chunks) => chunks.forEach((hash, i) => (hashes[firstChunk + at / CHECKSUM_CHUNK_BYTES + i] = hash))));
    }
    try {
      await Promise.all(spans);
    } finally {
      // Refilled only once no worker reads it any more, failed or not.
      await Promise.allSettled(spans);
      window.release();
    }
  });
  return hashes;
}
