// The worker pool (piscina). The main thread compiles every WebAssembly module once and hands
// the compiled modules to the workers in workerData; page buffers go to workers and results
// come back in transfer lists, never cloned. Codec work is synchronous, so workers block on
// Atomics between tasks (piscina's default 'sync' mode) and start no timers or sockets.
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { Piscina } from 'piscina';
import { deserializeError } from '../errors.js';
import { exportModules, packageRoot } from '../wasm/load.js';
import type { CodecSetting, PoolTask, TaskResult, WorkerReport } from './protocol.js';

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

/** Runs codec tasks on worker threads. */
export class CodecPool {
  private readonly piscina: Piscina;

  constructor(options: PoolOptions = {}) {
    const threads = options.threads ?? availableParallelism();
    this.piscina = new Piscina({
      filename: workerFile(),
      minThreads: threads,
      maxThreads: threads,
      workerData: exportModules(),
    });
  }

  /**
   * Compresses contiguous pages on a worker. `pages` is transferred: the caller's buffer is
   * detached afterwards.
   */
  async encode(setting: CodecSetting, pages: Uint8Array): Promise<Uint8Array> {
    const buffer = ownedBuffer(pages);
    return this.run({ op: 'encode', ...setting, pages: buffer }, [buffer]);
  }

  /** Decompresses a payload (transferred) into `pageCount` contiguous pages on a worker. */
  async decode(setting: CodecSetting, payload: Uint8Array, pageCount: number): Promise<Uint8Array> {
    const buffer = ownedBuffer(payload);
    return this.run({ op: 'decode', ...setting, payload: buffer, pageCount }, [buffer]);
  }

  /** What one worker holds (compilations it did, C module memory sizes). */
  async inspect(): Promise<WorkerReport> {
    return (await this.piscina.run({ op: 'inspect' } satisfies PoolTask)) as WorkerReport;
  }

  /** Stops every worker. */
  async close(): Promise<void> {
    await this.piscina.destroy();
  }

  private async run(task: PoolTask, transferList: ArrayBuffer[]): Promise<Uint8Array> {
    const result = (await this.piscina.run(task, { transferList })) as TaskResult;
    if (result instanceof ArrayBuffer) return new Uint8Array(result);
    throw deserializeError(result.error);
  }
}

/**
 * The ArrayBuffer behind `bytes` when `bytes` covers all of it, else a copy: transferring a
 * view of a larger buffer (or of Node's shared Buffer pool) would detach, or silently clone,
 * more than the caller gave.
 */
function ownedBuffer(bytes: Uint8Array): ArrayBuffer {
  if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && bytes.buffer instanceof ArrayBuffer) {
    return bytes.buffer;
  }
  return bytes.slice().buffer;
}
