// Pool worker entry (piscina). It adopts the WebAssembly modules compiled by the main thread
// (workerData), so a worker instantiates but never compiles, and keeps one encoder or decoder
// per codec setting for its whole life: the C modules' scratch areas are sized once.
import { workerData } from 'node:worker_threads';
import { move } from 'piscina';
import { getCodec } from '../codecs/registry.js';
import type { PacketDecoder, PacketEncoder } from '../codecs/types.js';
import { MultifdError } from '../errors.js';
import { cModuleMemoryBytes } from '../wasm/c-module.js';
import { adoptModules, compilationCount, type exportModules } from '../wasm/load.js';
import type { CodecSetting, PoolTask, TaskResult, WorkerReport } from './protocol.js';

adoptModules(workerData as ReturnType<typeof exportModules>);

const encoders = new Map<string, PacketEncoder>();
const decoders = new Map<string, PacketDecoder>();

function settingKey(s: CodecSetting): string {
  return `${s.codec}/${s.level ?? ''}/${s.pageSize}/${s.maxPages}`;
}

function pageViews(buffer: ArrayBuffer, pageSize: number, pageCount: number): Uint8Array[] {
  return Array.from({ length: pageCount }, (_, i) => new Uint8Array(buffer, i * pageSize, pageSize));
}

function run(task: PoolTask): ArrayBuffer | WorkerReport {
  switch (task.op) {
    case 'encode': {
      const key = settingKey(task);
      let encoder = encoders.get(key);
      if (!encoder) encoders.set(key, (encoder = getCodec(task.codec).createEncoder(task)));
      const pageCount = task.pages.byteLength / task.pageSize;
      // Unpooled: a pooled Buffer's ArrayBuffer would be cloned, not transferred.
      const out = new Uint8Array(new ArrayBuffer(encoder.payloadBound(pageCount)));
      const bytes = encoder.encode(pageViews(task.pages, task.pageSize, pageCount), out);
      return out.buffer.slice(0, bytes);
    }
    case 'decode': {
      const key = settingKey(task);
      let decoder = decoders.get(key);
      if (!decoder) decoders.set(key, (decoder = getCodec(task.codec).createDecoder(task)));
      const pages = new ArrayBuffer(task.pageCount * task.pageSize);
      decoder.decode(new Uint8Array(task.payload), pageViews(pages, task.pageSize, task.pageCount));
      return pages;
    }
    case 'inspect':
      return { compilations: compilationCount(), wasmMemoryBytes: cModuleMemoryBytes() };
  }
}

/** Runs one task; MultifdErrors come back as data so their class and code survive. */
export default function handle(task: PoolTask): TaskResult | WorkerReport {
  try {
    const result = run(task);
    return result instanceof ArrayBuffer ? (move(result) as ArrayBuffer) : result;
  } catch (error) {
    if (error instanceof MultifdError) return { error: error.toJSON() };
    throw error;
  }
}
