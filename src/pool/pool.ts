// The worker pool (piscina), `threads` workers independent of the channel count. The main
// thread compiles every WebAssembly module once and hands the compiled modules to the workers
// in workerData; guest memory is shared, packets go to workers and results come back in
// transfer lists, never cloned. Codec work is synchronous, so workers block on Atomics
// between tasks (piscina's default 'sync' mode) and start no timers or sockets.
//
// Sockets stay on the main threads (DESIGN §2 asks to decide by measurement): a profile of
// the receiver named garbage per socket read, per-packet task cloning and chunk copies as its
// main thread's costs, each fixed where it was, after which that thread was 74 % idle during a
// 1 GiB transfer (docs/data-path.md, "Where the I/O runs, and why").
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { deserializeError } from '../errors.js';
import { exportModules, packageRoot } from '../wasm/load.js';
import { memoryId } from './memory-reclaim.js';
import { MISSING_SESSION, taskMemory, type ChecksumTask, type PoolTask, type PostedTask, type ReceiveSession, type SendTask, type StagedPacket, type TaskResult, type WorkerReport } from './protocol.js';
import { readSendResult, type SendResult } from './send-task.js';

/** Pool options. */
export interface PoolOptions {
  /** Worker threads; default: available cores. */
  threads?: number;
}

/** The worker entry: the TypeScript source under tsx (tests), the bundled file otherwise. */
function workerFile(): string {
  return import.meta.url.endsWith('.ts')
    ? join(packageRoot(), 'src', 'pool', 'worker.ts')
    : join(packageRoot(), 'dist', 'pool', 'worker.js');
}

/** Runs page work on worker threads. */
export class WorkerPool {
  readonly threads: number;
  private readonly piscina: Piscina;
  private readonly spares: ArrayBuffer[] = [];

  constructor(options: PoolOptions = {}) {
    this.threads = options.threads ?? availableParallelism();
    this.piscina = new Piscina({
      filename: workerFile(),
      minThreads: this.threads,
      maxThreads: this.threads,
      idleTimeout: Infinity,
      workerData: exportModules(),
    });
  }

  /**
   * Encodes one window of pages into packets (see SendTask). Give the result's buffer back
   * with {@link recycle} once its packets are acknowledged: a later task reuses it. Packets of
   * a stable source may be views of `task.memory`, which must not change until then.
   */
  async send(task: Omit<SendTask, 'op' | 'spare'>): Promise<SendResult> {
    const spare = this.spares.pop();
    const result = await this.run({ op: 'send', ...task, spare }, spare ? [spare] : undefined);
    return readSendResult(result as ArrayBuffer, task.memory);
  }

  /** Hands back a send result's buffer for reuse (keeps a few; drops the rest). */
  recycle(buffer: ArrayBuffer): void {
    if (this.spares.length < 2 * this.threads) this.spares.push(buffer);
  }

  /**
   * Decodes, verifies and applies packets of `session` in order, read in place from its
   * staging memory. The task names the session; a worker that does not hold it yet asks for
   * it, and gets it once (so the session's memories are not cloned into a worker per task).
   */
  async receive(session: ReceiveSession, packets: StagedPacket[]): Promise<void> {
    const result = await this.run({ op: 'receive', session: session.key, packets });
    if (result === MISSING_SESSION) await this.run({ op: 'receive', session: session.key, packets, full: session });
  }

  /** The checksum of each 1 MiB chunk of a range of a shared memory. */
  async checksumChunks(task: Omit<ChecksumTask, 'op'>): Promise<BigUint64Array> {
    return new BigUint64Array((await this.run({ op: 'checksum', ...task })) as ArrayBuffer);
  }

  /** What one worker holds (compilations it did, C module memory sizes). */
  async inspect(): Promise<WorkerReport> {
    return (await this.run({ op: 'inspect' })) as WorkerReport;
  }

  /** Stops every worker. */
  async close(): Promise<void> {
    await this.piscina.destroy();
  }

  private async run(task: PoolTask, transferList?: ArrayBuffer[]): Promise<TaskResult> {
    const memory = taskMemory(task);
    const posted: PostedTask = memory ? { ...task, memoryId: memoryId(memory) } : task;
    const result = (await this.piscina.run(posted, transferList ? { transferList } : undefined)) as TaskResult;
    if (result && typeof result === 'object' && 'error' in result) throw deserializeError(result.error);
    return result;
  }
}
