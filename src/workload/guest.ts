/// <reference lib="es2024.sharedmemory" />
// The demo guest: a workload on its own worker thread writing into a GuestMemory while it is
// migrated, so a live migration has something to chase. This is the main thread's handle; it
// steers the worker through a few shared words (see control.ts) rather than messages, so a
// pause takes effect within one timeslice even while the main thread is busy, and the
// worker's acknowledgement means no write happens after it.
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Worker } from 'node:worker_threads';
import { MultifdError, outOfRange } from '../errors.js';
import type { GuestMemory } from '../memory/guest-memory.js';
import type { ExplicitDirtyLog } from '../migration/dirty/explicit-log.js';
import { startWorker } from '../pool/start-worker.js';
import { packageRoot } from '../wasm/load.js';
import { Command, Counter, Slot, WorkerState, controlViews, createControl, type GuestControl, type GuestWorkerData } from './control.js';

/** What the guest does. */
export type GuestMode = 'random-writer' | 'idle';

/** Options of {@link startGuest}. */
export interface GuestOptions {
  memory: GuestMemory;
  mode: GuestMode;
  /** Pages dirtied per second (random-writer), default 25 600 (100 MiB/s of 4 KiB pages). */
  dirtyPagesPerSecond?: number;
  /** Fraction of writes that zero a whole page instead of writing random numbers, so pages go normal → zero → normal (default 0.05). */
  zeroFraction?: number;
  /** Seed of the writer's page and number choices; default 1. */
  seed?: number;
  /** Marks every page it writes, after writing it. */
  dirtyLog?: ExplicitDirtyLog;
}

/** A running guest workload; call {@link Guest.stop} when done, or its thread keeps the process alive. */
export interface Guest {
  /** Stops all writes; resolves once the worker has acknowledged (no write happens after that). */
  pause(): Promise<void>;
  /** Lets a paused guest write again. */
  resume(): void;
  /**
   * Auto-converge's throttle: the writer sleeps pct/(100−pct) × 10 ms per 10 ms timeslice
   * (QEMU's cpu-throttle), 0..99; it applies from the next timeslice.
   */
  setThrottle(percent: number): void;
  /** Pages written so far (zeroed ones included), updated once per timeslice. */
  readonly pagesWritten: number;
  /** Of {@link pagesWritten}, the pages that were zeroed. */
  readonly pagesZeroed: number;
  /** Stops writing for good and ends the worker thread; later calls do nothing. */
  stop(): Promise<void>;
}

/** Default dirty rate: 100 MiB/s of 4 KiB pages. */
export const DEFAULT_DIRTY_PAGES_PER_SECOND = 25_600;

/** Default share of writes that zero their page. */
export const DEFAULT_ZERO_FRACTION = 0.05;

/**
 * Starts a guest workload on a worker thread; resolves once the worker runs.
 * @throws RangeError (`ERR_OUT_OF_RANGE`) for a bad mode, rate, zero fraction or seed, or a
 * dirty log made for other memory; MultifdError (`ERR_GUEST_FAILED`) if the worker fails to start.
 */
export async function startGuest(options: GuestOptions): Promise<Guest> {
  const data = workerData(options);
  const guest = new WorkerGuest(startGuestWorker(data), controlViews(data.control));
  if (!(await guest.started())) {
    await guest.stop();
    throw guest.failed();
  }
  return guest;
}

function workerData(options: GuestOptions): GuestWorkerData {
  const { memory, mode, dirtyLog } = options;
  const { dirtyPagesPerSecond = DEFAULT_DIRTY_PAGES_PER_SECOND, zeroFraction = DEFAULT_ZERO_FRACTION, seed = 1 } = options;
  if (mode !== 'random-writer' && mode !== 'idle') throw outOfRange('mode', "'random-writer' or 'idle'", mode);
  if (!Number.isFinite(dirtyPagesPerSecond) || dirtyPagesPerSecond < 0) {
    throw outOfRange('dirtyPagesPerSecond', 'a finite number >= 0', dirtyPagesPerSecond);
  }
  if (!(zeroFraction >= 0 && zeroFraction <= 1)) throw outOfRange('zeroFraction', 'a number from 0 to 1', zeroFraction);
  if (!Number.isInteger(seed)) throw outOfRange('seed', 'an integer', seed);
  const dirty = dirtyLog?.shared();
  const pageCounts = memory.blocks.map((block) => block.pageCount);
  if (dirty && dirty.pageCounts.join() !== pageCounts.join()) {
    throw outOfRange('dirtyLog', `a log of this memory's blocks (${pageCounts.join(', ')} pages)`, dirty.pageCounts.join(', '));
  }
  return {
    memory: memory.describe(),
    control: createControl(),
    pagesPerSecond: mode === 'idle' ? 0 : dirtyPagesPerSecond,
    zeroFraction,
    seed,
    ...(dirty ? { dirty } : {}),
  };
}

/** The worker entry: the TypeScript source under tsx (tests), the bundled file otherwise. */
function startGuestWorker(workerData: GuestWorkerData): Worker {
  const entry = import.meta.url.endsWith('.ts')
    ? new URL('./guest-worker.ts', import.meta.url)
    : pathToFileURL(join(packageRoot(), 'dist', 'workload', 'guest-worker.js'));
  return startWorker(entry, { workerData });
}

class WorkerGuest implements Guest {
  private readonly control: Int32Array;
  private readonly counters: BigInt64Array;
  private failure: Error | undefined;
  private exited = false;
  // Settles when the worker thread ends: a crashed worker never notifies, and a pending
  // Atomics.waitAsync does not keep the event loop alive, so waits race against this.
  private readonly exit: Promise<void>;
  private stopping: Promise<void> | undefined;

  constructor(
    private readonly worker: Worker,
    views: GuestControl,
  ) {
    this.control = views.control;
    this.counters = views.counters;
    worker.on('error', (error) => (this.failure ??= error));
    this.exit = new Promise((resolve) => worker.once('exit', () => resolve(void (this.exited = true))));
  }

  get pagesWritten(): number {
    return Number(Atomics.load(this.counters, Counter.PagesWritten));
  }

  get pagesZeroed(): number {
    return Number(Atomics.load(this.counters, Counter.PagesZeroed));
  }

  /** Resolves true once the worker left its starting state, false if it died first. */
  started(): Promise<boolean> {
    return this.until(Slot.State, (state) => state !== WorkerState.Starting);
  }

  async pause(): Promise<void> {
    this.checkRunning();
    // Numbered requests: the worker acknowledges the number it read *before* it saw Pause,
    // so an acknowledgement is never one left over from a pause that was since resumed.
    const request = Atomics.add(this.control, Slot.PauseRequests, 1) + 1;
    this.command(Command.Pause);
    if (!(await this.until(Slot.PauseAck, (ack) => ack >= request))) throw this.failed();
  }

  resume(): void {
    this.checkRunning();
    this.command(Command.Run);
  }

  setThrottle(percent: number): void {
    if (!Number.isInteger(percent) || percent < 0 || percent > 99) throw outOfRange('percent', 'an integer from 0 to 99', percent);
    this.checkRunning();
    Atomics.store(this.control, Slot.Throttle, percent);
  }

  stop(): Promise<void> {
    this.stopping ??= (async () => {
      this.command(Command.Stop);
      // Wait for the worker to leave its loop, so no write is cut in half, then end the
      // thread for good (the tsx loader it may hold would otherwise keep it alive).
      await this.until(Slot.State, (state) => state === WorkerState.Stopped);
      await this.worker.terminate();
    })();
    return this.stopping;
  }

  /** The error for a guest whose worker failed or exited. */
  failed(): MultifdError {
    const reason = this.failure ? this.failure.message : 'the worker exited';
    return new MultifdError('ERR_GUEST_FAILED', `guest worker failed: ${reason}`, { cause: this.failure });
  }

  private command(command: number): void {
    Atomics.store(this.control, Slot.Command, command);
    Atomics.notify(this.control, Slot.Command);
  }

  private checkRunning(): void {
    if (this.stopping) throw new MultifdError('ERR_GUEST_STOPPED', 'the guest was stopped');
    if (this.failure || this.exited) throw this.failed();
  }

  /** Waits until the shared word `slot` satisfies `reached`: true, or false if the worker died first. */
  private async until(slot: number, reached: (value: number) => boolean): Promise<boolean> {
    for (;;) {
      const value = Atomics.load(this.control, slot);
      if (reached(value)) return true;
      if (this.failure || this.exited) return false;
      const wait = Atomics.waitAsync(this.control, slot, value);
      if (wait.async) await Promise.race([wait.value, this.exit]);
    }
  }
}
