// The guest's vCPU: a worker thread that writes into the shared guest memory while the main
// thread migrates it. It runs in 10 ms timeslices like a throttled vCPU: write one slice's
// worth of pages, then sleep for the rest of the slice plus the throttle's share. Sleeping is
// Atomics.wait on the command word, so pause and stop wake it at once instead of polling.
import { workerData } from 'node:worker_threads';
import { GuestMemory } from '../memory/guest-memory.js';
import { attachExplicitDirtyLog } from '../migration/dirty/explicit-log.js';
import { seededRandom } from './page-content.js';
import { Command, Counter, SLICE_MS, Slot, WorkerState, controlViews, type GuestWorkerData } from './control.js';

/** 64-bit words a normal write changes in its page: "a few", as a program updating records. */
const WORDS_PER_WRITE = 4;

const data = workerData as GuestWorkerData;
const memory = GuestMemory.fromDescriptor(data.memory);
const { control, counters } = controlViews(data.control);
const dirty = data.dirty ? attachExplicitDirtyLog(data.dirty) : undefined;
const words = memory.blocks.map((block) => new Uint32Array(block.memory.buffer, 0, block.byteLength / 4));
const wordsPerPage = memory.pageSize / 4;

const random = seededRandom(data.seed);

/** A random 32-bit word: `random()` is a u32 over 2^32, so this is exact. */
function randomU32(): number {
  return random() * 2 ** 32;
}

/** A random integer from 0 to `bound - 1` (bound up to 2^32). */
function randomBelow(bound: number): number {
  return Math.floor(random() * bound);
}

/**
 * Writes one random page and marks it after the write (the explicit log's rule). Returns
 * whether it zeroed the page rather than writing numbers into it.
 */
function writeRandomPage(): boolean {
  let page = randomBelow(memory.totalPages);
  let blockIndex = 0;
  while (page >= memory.blocks[blockIndex]!.pageCount) page -= memory.blocks[blockIndex++]!.pageCount;
  const zero = random() < data.zeroFraction;
  if (zero) {
    memory.blocks[blockIndex]!.page(page).fill(0);
  } else {
    const block = words[blockIndex]!;
    const base = page * wordsPerPage;
    for (let i = 0; i < WORDS_PER_WRITE; i++) {
      const at = base + 2 * randomBelow(wordsPerPage / 2);
      block[at] = randomU32();
      block[at + 1] = randomU32();
    }
  }
  dirty?.markDirty(blockIndex, page);
  return zero;
}

const pagesPerSlice = (data.pagesPerSecond * SLICE_MS) / 1000;
// Fractions of a page carried from slice to slice, so 150 pages/s is 1.5 per slice on average.
let owed = 0;

for (;;) {
  // The request count is read before the command: a Pause seen after it belongs to that
  // request or a later one, never to a pause the main thread has since resumed (see pause()).
  const request = Atomics.load(control, Slot.PauseRequests);
  const command = Atomics.load(control, Slot.Command);
  if (command === Command.Stop) break;
  if (command === Command.Pause) {
    Atomics.store(control, Slot.State, WorkerState.Paused);
    Atomics.store(control, Slot.PauseAck, request);
    Atomics.notify(control, Slot.PauseAck);
    Atomics.wait(control, Slot.Command, Command.Pause);
    continue;
  }
  if (Atomics.load(control, Slot.State) !== WorkerState.Running) {
    Atomics.store(control, Slot.State, WorkerState.Running);
    Atomics.notify(control, Slot.State);
  }
  if (pagesPerSlice === 0) {
    Atomics.wait(control, Slot.Command, Command.Run);
    continue;
  }
  const sliceStart = performance.now();
  owed += pagesPerSlice;
  const pages = Math.floor(owed);
  owed -= pages;
  let zeroed = 0;
  for (let i = 0; i < pages; i++) if (writeRandomPage()) zeroed++;
  Atomics.add(counters, Counter.PagesWritten, BigInt(pages));
  if (zeroed > 0) Atomics.add(counters, Counter.PagesZeroed, BigInt(zeroed));
  // cpu-throttle: after each slice of running, sleep pct/(100 − pct) slices. The sleep is
  // added even when the writes overran their slice, as QEMU's vCPU sleeps however long it ran.
  const throttle = Atomics.load(control, Slot.Throttle);
  const sleepMs = Math.max(0, SLICE_MS - (performance.now() - sliceStart)) + (throttle * SLICE_MS) / (100 - throttle);
  if (sleepMs > 0) Atomics.wait(control, Slot.Command, Command.Run, sleepMs);
}
Atomics.store(control, Slot.State, WorkerState.Stopped);
Atomics.notify(control, Slot.State);
