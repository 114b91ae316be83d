// A recorded guest: the pages it wrote, step by step, with what it wrote into them. Replaying
// a trace writes those bytes into memory and marks them, so a migration can be tested against
// a real guest's dirty pattern and real page contents (the vm-512m snapshots) without a VM,
// and the destination can be checked byte for byte against the last snapshot.
import { stat } from 'node:fs/promises';
import { MultifdError, outOfRange } from '../../errors.js';
import { readFileWindows } from '../../memory/file-windows.js';
import { MAX_BLOCK_BYTES, type GuestMemory } from '../../memory/guest-memory.js';
import { checkPageSize } from '../../pages.js';
import { checkRuns, runsPageCount, type PageRun } from '../../wire/page-runs.js';
import type { DirtyBitmaps, DirtyLog } from './dirty-log.js';
import { ExplicitDirtyLog } from './explicit-log.js';

/** One recorded step: pages of one block and their new content. */
export interface TraceStep {
  blockIndex: number;
  /** The pages written, ascending and disjoint. */
  runs: PageRun[];
  /** The new content of those pages, in run order: `runsPageCount(runs) × pageSize` bytes. */
  bytes: Uint8Array;
}

/** A recorded sequence of writes, replayed by {@link TraceDirtyLog}. */
export interface Trace {
  pageSize: number;
  steps: TraceStep[];
}

/**
 * Replays a {@link Trace} into guest memory, one step per {@link applyNext}, and reports the
 * pages it wrote at each sync, like a guest whose writes were recorded. Each step is written
 * first and marked after, as the explicit log's rule asks.
 */
export class TraceDirtyLog implements DirtyLog {
  private readonly marks: ExplicitDirtyLog;
  private applied = 0;

  /**
   * @throws RangeError (`ERR_OUT_OF_RANGE`) when the trace's page size differs from the
   * memory's, or a step names a block that does not exist, runs outside its block, or carries
   * the wrong number of bytes.
   */
  constructor(
    private readonly memory: GuestMemory,
    private readonly trace: Trace,
  ) {
    if (trace.pageSize !== memory.pageSize) throw outOfRange('trace.pageSize', `the memory's page size ${memory.pageSize}`, trace.pageSize);
    trace.steps.forEach((step, i) => checkStep(memory, step, `trace.steps[${i}]`));
    this.marks = new ExplicitDirtyLog(memory);
  }

  /** Steps not applied yet. */
  get remainingSteps(): number {
    return this.trace.steps.length - this.applied;
  }

  /** Writes the next step's pages into the memory and marks them; false once the trace is exhausted. */
  applyNext(): boolean {
    const step = this.trace.steps[this.applied];
    if (!step) return false;
    const { pageSize } = this.memory;
    const view = this.memory.blocks[step.blockIndex]!.bytes();
    let at = 0;
    for (const run of step.runs) {
      const length = run.count * pageSize;
      view.set(step.bytes.subarray(at, at + length), run.first * pageSize);
      at += length;
      this.marks.markRange(step.blockIndex, run.first, run.count);
    }
    this.applied++;
    return true;
  }

  /** Starts tracking; steps applied before it are round 1's business. */
  start(): Promise<void> {
    return this.marks.start();
  }

  /**
   * The pages written by the steps applied since start() or the previous sync.
   * @throws MultifdError (`ERR_DIRTY_LOG_STATE`) before start() or after stop().
   */
  sync(): Promise<DirtyBitmaps> {
    return this.marks.sync();
  }

  /** Stops tracking. */
  stop(): void {
    this.marks.stop();
  }
}

function checkStep(memory: GuestMemory, step: TraceStep, label: string): void {
  const block = memory.blocks[step.blockIndex];
  if (!block) throw outOfRange(`${label}.blockIndex`, `an integer from 0 to ${memory.blocks.length - 1}`, step.blockIndex);
  checkRuns(step.runs, `${label}.runs`, block.pageCount, (_fault, field, expected, got) => outOfRange(field, String(expected), got));
  const bytes = runsPageCount(step.runs) * memory.pageSize;
  if (step.bytes.byteLength !== bytes) throw outOfRange(`${label}.bytes.byteLength`, `${bytes} (its pages × page size)`, step.bytes.byteLength);
}

/** Options of {@link traceFromSnapshots}. */
export interface SnapshotTraceOptions {
  /** Bytes of each snapshot held at once: a multiple of 1 MiB; default 64 MiB (two are held). */
  windowBytes?: number;
}

/**
 * A trace from successive raw snapshots of one block's memory (equal sizes, a multiple of
 * `pageSize`): step k holds the pages where snapshot k+1 differs from snapshot k, with
 * snapshot k+1's bytes, all in block 0. Replayed onto memory holding the first snapshot, it
 * leaves the last one.
 *
 * Each pair is compared window by window, one window of each file at a time, so a pair of
 * 512 MiB snapshots costs two 64 MiB windows plus the changed pages, not a gigabyte.
 * @throws MultifdError (`ERR_TRACE_SNAPSHOT`) when the snapshots differ in size, are empty,
 * are not whole pages or exceed one block ({@link MAX_BLOCK_BYTES}).
 */
export async function traceFromSnapshots(paths: readonly string[], pageSize: number, options: SnapshotTraceOptions = {}): Promise<Trace> {
  checkPageSize(pageSize);
  const sizes = await Promise.all(paths.map(async (path) => (await stat(path)).size));
  const byteLength = sizes[0] ?? 0;
  sizes.forEach((size, i) => {
    if (size !== byteLength || size === 0 || size % pageSize !== 0 || size > MAX_BLOCK_BYTES) {
      throw new MultifdError(
        'ERR_TRACE_SNAPSHOT',
        `${paths[i]}: ${size} bytes; snapshots must all be ${byteLength} bytes, a positive multiple of the page size ${pageSize} up to ${MAX_BLOCK_BYTES}`,
        { context: { path: paths[i], expected: byteLength, got: size } },
      );
    }
  });
  const steps: TraceStep[] = [];
  for (let k = 0; k + 1 < paths.length; k++) {
    steps.push(await diffSnapshots(paths[k]!, paths[k + 1]!, byteLength, pageSize, options.windowBytes));
  }
  return { pageSize, steps };
}

async function diffSnapshots(before: string, after: string, byteLength: number, pageSize: number, windowBytes?: number): Promise<TraceStep> {
  // ringSize 1: no read-ahead, so exactly one window of each file is held at a time.
  const range = { byteLength, ringSize: 1, ...(windowBytes === undefined ? {} : { windowBytes }) };
  const olds = readFileWindows(before, range);
  const news = readFileWindows(after, range);
  const runs: PageRun[] = [];
  const changed: Uint8Array[] = [];
  try {
    for (;;) {
      const [old, now] = await Promise.all([olds.next(), news.next()]);
      if (old.done || now.done) break;
      const a = Buffer.from(old.value.memory.buffer, 0, old.value.byteLength);
      const b = Buffer.from(now.value.memory.buffer, 0, now.value.byteLength);
      const firstPage = old.value.fileOffset / pageSize;
      const pages: Buffer[] = [];
      for (let offset = 0; offset < a.byteLength; offset += pageSize) {
        // Buffer#compare takes ranges, so no view is made for the pages that match.
        if (a.compare(b, offset, offset + pageSize, offset, offset + pageSize) === 0) continue;
        const page = firstPage + offset / pageSize;
        const last = runs[runs.length - 1];
        if (last && last.first + last.count === page) last.count++;
        else runs.push({ first: page, count: 1 });
        pages.push(b.subarray(offset, offset + pageSize));
      }
      // Copied out before the windows go back to their rings to be refilled.
      if (pages.length > 0) changed.push(Buffer.concat(pages));
      old.value.release();
      now.value.release();
    }
  } finally {
    await Promise.all([olds.return(undefined), news.return(undefined)]);
  }
  // Handed out as a plain Uint8Array: a Buffer's slice() is a view, not the copy it is on
  // every other Uint8Array.
  const bytes = Buffer.concat(changed);
  return { blockIndex: 0, runs, bytes: new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength) };
}
