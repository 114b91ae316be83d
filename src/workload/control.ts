// What a guest handle and its worker share: the worker's start-up data and a few words of
// shared memory. Commands go one way (main → worker), the acknowledgement and counters the
// other; every access is an Atomics operation, and the worker sleeps in Atomics.wait on the
// command word so a notify there wakes it at once.
import type { GuestMemoryDescriptor } from '../memory/guest-memory.js';
import type { SharedDirtyBitmaps } from '../migration/dirty/explicit-log.js';

/** What the guest worker is started with (its `workerData`). */
export interface GuestWorkerData {
  memory: GuestMemoryDescriptor;
  /** The control block, see {@link createControl}. */
  control: SharedArrayBuffer;
  /** Pages to write per second; 0 writes nothing (the idle guest). */
  pagesPerSecond: number;
  zeroFraction: number;
  seed: number;
  dirty?: SharedDirtyBitmaps;
}

/** The writer's timeslice: QEMU's cpu-throttle works in 10 ms slices, and so does the guest. */
export const SLICE_MS = 10;

/** Int32 slots of the control array. */
export const Slot = {
  /** What the worker should do: a {@link Command}. */
  Command: 0,
  /** How many pauses were asked for; bumped by the main thread before it stores Pause. */
  PauseRequests: 1,
  /** The last pause request the worker saw while paused: the acknowledgement pause() waits for. */
  PauseAck: 2,
  /** What the worker is doing: a {@link WorkerState}. */
  State: 3,
  /** Throttle percentage, 0..99. */
  Throttle: 4,
} as const;

/** Commands in {@link Slot}.Command. */
export const Command = { Run: 0, Pause: 1, Stop: 2 } as const;

/** States in {@link Slot}.State. */
export const WorkerState = { Starting: 0, Running: 1, Paused: 2, Stopped: 3 } as const;

/** BigInt64 slots of the counters array (64-bit: 25 600 pages/s overflows int32 within a day). */
export const Counter = { PagesWritten: 0, PagesZeroed: 1 } as const;

const CONTROL_SLOTS = 5;
const COUNTERS = 2;

/** The shared words: `control` and `counters` are views of one SharedArrayBuffer. */
export interface GuestControl {
  control: Int32Array;
  counters: BigInt64Array;
}

/** A fresh control block: command Run, state Starting, throttle 0, counters 0. */
export function createControl(): SharedArrayBuffer {
  // Counters first: BigInt64Array needs 8-byte alignment.
  return new SharedArrayBuffer(8 * COUNTERS + 4 * CONTROL_SLOTS);
}

/** The views of a control block made by {@link createControl}, on either thread. */
export function controlViews(buffer: SharedArrayBuffer): GuestControl {
  return {
    counters: new BigInt64Array(buffer, 0, COUNTERS),
    control: new Int32Array(buffer, 8 * COUNTERS, CONTROL_SLOTS),
  };
}
