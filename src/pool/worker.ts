// Pool worker entry (piscina). It adopts the WebAssembly modules compiled by the main thread
// (workerData), so a worker instantiates but never compiles, and keeps one encoder or decoder
// per codec setting for its whole life: the C modules' scratch areas are sized once.
import { workerData } from 'node:worker_threads';
import { move } from 'piscina';
import { codecByWireId } from '../codecs/registry.js';
import type { PacketDecoder, PacketEncoder } from '../codecs/types.js';
import { CodecError, MultifdError } from '../errors.js';
import { chunkChecksumsOf } from '../memory/checksum.js';
import { cModuleMemoryBytes } from '../wasm/c-module.js';
import { adoptModules, compilationCount, type exportModules } from '../wasm/load.js';
import { MemoryReclaimer } from './memory-reclaim.js';
import { MISSING_SESSION, taskMemory, type CodecSetting, type PoolTask, type PostedTask, type ReceiveSession, type TaskResult } from './protocol.js';
import { runReceiveTask } from './receive-task.js';
import { runSendTask } from './send-task.js';

adoptModules(workerData as ReturnType<typeof exportModules>);

const reclaimer = new MemoryReclaimer();
const encoders = new Map<string, PacketEncoder>();
/** The receiving session this worker applies packets for (the latest it was sent: it pins its memories). */
let session: ReceiveSession | undefined;
const decoders = new Map<string, PacketDecoder>();

function codecOf(wireId: number) {
  const codec = codecByWireId(wireId);
  if (!codec) throw new CodecError('ERR_CODEC_UNKNOWN', `no codec has wire id ${wireId}`);
  return codec;
}

/** The cache key of a setting's coder for codec `wireId` at `level` (the setting's own by default). */
function settingKey(s: CodecSetting, wireId = s.codecWireId, level = s.level): string {
  return `${wireId}/${level ?? ''}/${s.pageSize}/${s.pagesPerPacket}/${s.accelerator?.policy ?? ''}/${s.accelerator?.library ?? ''}`;
}

/** The encoder of a setting for codec `wireId` at `level` (the setting's own, or a sample's). */
function encoderFor(s: CodecSetting, wireId: number, level: number | undefined): PacketEncoder {
  const key = settingKey(s, wireId, level);
  let encoder = encoders.get(key);
  if (!encoder) {
    encoder = codecOf(wireId).createEncoder({ pageSize: s.pageSize, maxPages: s.pagesPerPacket, level, accelerator: s.accelerator });
    encoders.set(key, encoder);
  }
  return encoder;
}

/** The decoder of a session's packets of codec `wireId` (the session's own, or with `auto` the one each packet names). */
function decoderFor(s: CodecSetting, wireId: number): PacketDecoder {
  // Decoders need no level: one per codec, whatever level the packets were made at.
  const key = settingKey(s, wireId, undefined);
  let decoder = decoders.get(key);
  if (!decoder) {
    decoder = codecOf(wireId).createDecoder({ pageSize: s.pageSize, maxPages: s.pagesPerPacket, accelerator: s.accelerator });
    decoders.set(key, decoder);
  }
  return decoder;
}

function run(task: PoolTask): TaskResult {
  switch (task.op) {
    case 'send':
      return move(runSendTask(task, { encoderFor: (wireId, level) => encoderFor(task, wireId, level), decoderFor: (wireId) => decoderFor(task, wireId) })) as ArrayBuffer;
    case 'receive': {
      if (task.full) session = task.full;
      if (session?.key !== task.session) return MISSING_SESSION;
      const held = session;
      for (const packet of task.packets) runReceiveTask(held, packet, (wireId) => decoderFor(held, wireId));
      return null;
    }
    case 'checksum':
      return move(chunkChecksumsOf(task.memory, task.byteOffset, task.byteLength).buffer) as ArrayBuffer;
    case 'inspect':
      return { compilations: compilationCount(), wasmMemoryBytes: cModuleMemoryBytes() };
  }
}

/** The last few memories tasks brought, by the main thread's number: see {@link sameMemory}. */
const recentMemories = new Map<number, WebAssembly.Memory>();
const RECENT_MEMORIES = 4;

/**
 * The wrapper this worker already holds for memory `id`, else `memory` (now held). Every task
 * brings its memory as a new wrapper, and the page kernels are instantiated per wrapper: one
 * instance per memory keeps their calls monomorphic, where a fresh instance per task cost an
 * instantiation and left the kernel calls on V8's generic JS-to-WASM path. Only a few are
 * held, so that memories no task uses any more can still be collected (memory-reclaim.ts).
 */
function sameMemory(id: number, memory: WebAssembly.Memory): WebAssembly.Memory {
  const held = recentMemories.get(id);
  if (held) return held;
  recentMemories.set(id, memory);
  if (recentMemories.size > RECENT_MEMORIES) recentMemories.delete(recentMemories.keys().next().value!);
  return memory;
}

/** Runs one task; MultifdErrors come back as data so their class, code and details survive. */
export default function handle(task: PostedTask): TaskResult {
  const memory = taskMemory(task);
  if (memory && task.memoryId !== undefined) {
    reclaimer.note(task.memoryId, memory.buffer.byteLength);
    if (task.op === 'send' || task.op === 'checksum') task.memory = sameMemory(task.memoryId, task.memory);
  }
  try {
    return run(task);
  } catch (error) {
    if (error instanceof MultifdError) return { error: error.toJSON() };
    throw error;
  }
}
