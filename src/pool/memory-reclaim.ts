// Shared memories in workers are freed only by a garbage collection in each worker that ever
// held them. Every task brings the guest or destination memory it works on as a new wrapper of
// a shared WebAssembly.Memory (with a kernel instance bound to it); once the task is done both
// are garbage, but they pin the whole memory, and a pool worker allocates too little for V8 to
// collect on its own. In a process that runs migration after migration (a daemon, the soak
// test), every memory a worker ever touched stayed resident: RSS grew by the size of each
// migrated guest. So the main thread numbers each memory it sends, and a worker collects once
// the memories it has newly seen since its last collection add up to RECLAIM_BYTES: a stream
// of fresh memories is freed every RECLAIM_BYTES, while tasks on one memory cost nothing.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

/** Bytes of newly seen memories after which a worker collects. */
export const RECLAIM_BYTES = 256 << 20;
/** Memories a worker remembers as seen (the ones in use stay in this window). */
const SEEN_WINDOW = 64;

const ids = new WeakMap<WebAssembly.Memory, number>();
let nextId = 1;

/** Main thread: a number naming `memory` for the workers, the same for every task on it. */
export function memoryId(memory: WebAssembly.Memory): number {
  let id = ids.get(memory);
  if (id === undefined) ids.set(memory, (id = nextId++));
  return id;
}

/** Worker side: counts memories as tasks bring them and collects garbage when enough are new. */
export class MemoryReclaimer {
  private readonly seen = new Set<number>();
  private newBytes = 0;

  /** `collect` runs a full garbage collection (default: V8's gc(), exposed on first use). */
  constructor(private collect?: () => void) {}

  /** Notes that a task used memory `id` of `byteLength` bytes; collects garbage when due. */
  note(id: number, byteLength: number): void {
    if (this.seen.has(id)) return;
    this.seen.add(id);
    if (this.seen.size > SEEN_WINDOW) this.seen.delete(this.seen.values().next().value!);
    this.newBytes += byteLength;
    if (this.newBytes < RECLAIM_BYTES) return;
    this.newBytes = 0;
    this.collector()();
  }

  // Node exposes gc() only behind this V8 flag; a fresh context created after setting it has it.
  private collector(): () => void {
    if (!this.collect) {
      setFlagsFromString('--expose-gc');
      this.collect = runInNewContext('gc') as () => void;
    }
    return this.collect;
  }
}
