// One instance per thread of each Emscripten-built C codec module (wasm/c/*.c), with the
// memory contract of hash-wasm: the module owns two scratch buffers (input, output), reserved
// once at the largest size any encoder or decoder of this thread needs and never per packet.
// Any call may grow the module's memory (a library allocating its context), so byte views
// are re-derived after every call through `bytes()`, never kept across one.
import { CodecError } from '../errors.js';
import { compiledModule, type WasmModuleName } from './load.js';

/** Negative return codes shared by every C entry point (wasm/README.md). */
const RESULT_CODES: Record<number, string> = {
  [-1]: 'ERR_CODEC_NOMEM',
  [-2]: 'ERR_CODEC_CORRUPT',
  [-3]: 'ERR_CODEC_SIZE_MISMATCH',
  [-4]: 'ERR_CODEC_TRAILING_DATA',
  [-5]: 'ERR_CODEC_OUTPUT_TOO_SMALL',
  [-6]: 'ERR_CODEC_LEVEL_RANGE',
  [-7]: 'ERR_CODEC_FORMAT',
};

interface CommonExports {
  memory: WebAssembly.Memory;
  /** Emscripten's start-up for a module without main (static constructors); called once. */
  _initialize(): void;
  mf_reserve(inCapacity: number, outCapacity: number): number;
  mf_in(): number;
  mf_out(): number;
  mf_version(): number;
  mf_error_detail(): number;
}

/** A C codec module instance with its scratch buffers. */
export class CModule<E = unknown> {
  readonly exports: CommonExports & E;
  readonly version: string;
  private inCapacity = 0;
  private outCapacity = 0;
  private view: Uint8Array;

  constructor(name: WasmModuleName) {
    const module = compiledModule(name);
    const instance = new WebAssembly.Instance(module, stubImports(module, name));
    this.exports = instance.exports as unknown as CommonExports & E;
    this.exports._initialize();
    this.view = new Uint8Array(this.exports.memory.buffer);
    this.version = this.cString(this.exports.mf_version());
  }

  /** Makes the scratch buffers at least this large (grows only; called at encoder/decoder setup). */
  reserve(inCapacity: number, outCapacity: number): void {
    if (inCapacity <= this.inCapacity && outCapacity <= this.outCapacity) return;
    const nextIn = Math.max(inCapacity, this.inCapacity);
    const nextOut = Math.max(outCapacity, this.outCapacity);
    if (this.exports.mf_reserve(nextIn, nextOut) !== 0) {
      throw new CodecError('ERR_CODEC_NOMEM', `${this.version}: cannot reserve ${nextIn} + ${nextOut} scratch bytes`);
    }
    this.inCapacity = nextIn;
    this.outCapacity = nextOut;
  }

  /** The module's whole memory as bytes, current after any growth. */
  bytes(): Uint8Array {
    if (this.view.buffer !== this.exports.memory.buffer) this.view = new Uint8Array(this.exports.memory.buffer);
    return this.view;
  }

  /** The input scratch buffer (first `byteLength` bytes). */
  input(byteLength: number): Uint8Array {
    const start = this.exports.mf_in();
    return this.bytes().subarray(start, start + byteLength);
  }

  /** The output scratch buffer (first `byteLength` bytes). */
  output(byteLength: number): Uint8Array {
    const start = this.exports.mf_out();
    return this.bytes().subarray(start, start + byteLength);
  }

  /**
   * Turns a negative C result into a CodecError naming the codec, what was being done, the
   * library's own error text and, for decoders, the expected size.
   */
  check(result: number, codec: string, action: 'encode' | 'decode', expectedBytes?: number): number {
    if (result >= 0) return result;
    const code = RESULT_CODES[result] ?? 'ERR_CODEC_CORRUPT';
    const detail = this.cString(this.exports.mf_error_detail());
    const expected = expectedBytes === undefined ? '' : ` (expected ${expectedBytes} bytes)`;
    throw new CodecError(code, `${codec} ${action} failed: ${detail || code}${expected}`);
  }

  private cString(pointer: number): string {
    const bytes = this.bytes();
    let end = pointer;
    while (bytes[end] !== 0) end++;
    return new TextDecoder().decode(bytes.subarray(pointer, end));
  }
}

/**
 * Emscripten's standalone modules may import a few WASI functions (proc_exit on abort, …).
 * Codecs never do I/O, so each import becomes a function that traps with a CodecError.
 */
function stubImports(module: WebAssembly.Module, name: string): WebAssembly.Imports {
  const imports: Record<string, Record<string, () => never>> = {};
  for (const entry of WebAssembly.Module.imports(module)) {
    if (entry.kind !== 'function') throw new Error(`${name}.wasm imports a ${entry.kind}: ${entry.module}.${entry.name}`);
    (imports[entry.module] ??= {})[entry.name] = () => {
      throw new CodecError('ERR_WASM_TRAP', `${name}.wasm called ${entry.module}.${entry.name}`);
    };
  }
  return imports;
}

const instances = new Map<WasmModuleName, CModule>();

/** This thread's instance of a C codec module (instantiated once). */
export function cModule<E>(name: WasmModuleName): CModule<E> {
  let instance = instances.get(name);
  if (!instance) {
    instance = new CModule(name);
    instances.set(name, instance);
  }
  return instance as CModule<E>;
}

/** Memory size in bytes of each C module instantiated in this thread (tests watch it for leaks). */
export function cModuleMemoryBytes(): Record<string, number> {
  return Object.fromEntries([...instances].map(([name, m]) => [name, m.exports.memory.buffer.byteLength]));
}
