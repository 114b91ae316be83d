// Finds, compiles and caches the committed WebAssembly artifacts (wasm/dist/). Each module is
// compiled at most once per process: the main thread compiles, and worker threads adopt the
// compiled WebAssembly.Module objects handed over in workerData (see `adoptModules`), so a
// pool of N workers costs one compilation, not N. SIMD builds are used unless the runtime
// lacks SIMD or MULTIFD_NO_WASM_SIMD=1 forces the scalar builds.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The artifacts in wasm/dist/: AssemblyScript page kernels and the Emscripten C codecs. */
export type WasmModuleName = 'kernels' | 'zstd' | 'lz4' | 'deflate';

/** Which build of the artifacts this thread runs. */
export type WasmVariant = 'simd' | 'scalar';

const MODULE_NAMES: readonly WasmModuleName[] = ['kernels', 'zstd', 'lz4', 'deflate'];

// The smallest module that uses a v128 instruction (i8x16.splat of an i32 constant).
const SIMD_PROBE = new Uint8Array([
  0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 8, 1, 6, 0, 65, 0, 253, 15, 11,
]);

let variant: WasmVariant | undefined;
const modules = new Map<WasmModuleName, WebAssembly.Module>();
let compilations = 0;

/** `scalar` when MULTIFD_NO_WASM_SIMD=1 or the runtime cannot compile SIMD, else `simd`. */
export function wasmVariant(): WasmVariant {
  variant ??=
    process.env.MULTIFD_NO_WASM_SIMD === '1' || !WebAssembly.validate(SIMD_PROBE) ? 'scalar' : 'simd';
  return variant;
}

let root: string | undefined;

/**
 * The package's root folder (the one holding wasm/dist/manifest.json), found by walking up from
 * this file, so it works from the sources (src/wasm/) and from the bundle (dist/).
 */
export function packageRoot(): string {
  if (root) return root;
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'wasm', 'dist', 'manifest.json'))) {
    const parent = dirname(dir);
    if (parent === dir) throw new Error('multifd: wasm/dist/manifest.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return (root = dir);
}

/** Absolute path of the committed artifacts, wasm/dist/. */
export function wasmDistDir(): string {
  return join(packageRoot(), 'wasm', 'dist');
}

/** File name of an artifact in the given variant, e.g. `zstd.simd.wasm`. */
export function wasmFileName(name: WasmModuleName, which: WasmVariant = wasmVariant()): string {
  return which === 'simd' ? `${name}.simd.wasm` : `${name}.wasm`;
}

/** The compiled module for `name` in this thread's variant, compiling it on first use. */
export function compiledModule(name: WasmModuleName): WebAssembly.Module {
  let module = modules.get(name);
  if (!module) {
    module = new WebAssembly.Module(readFileSync(join(wasmDistDir(), wasmFileName(name))));
    compilations++;
    modules.set(name, module);
  }
  return module;
}

/** Every module compiled, for handing to worker threads through workerData. */
export function exportModules(): { variant: WasmVariant; modules: Record<WasmModuleName, WebAssembly.Module> } {
  const all = {} as Record<WasmModuleName, WebAssembly.Module>;
  for (const name of MODULE_NAMES) all[name] = compiledModule(name);
  return { variant: wasmVariant(), modules: all };
}

/** In a worker: use modules compiled by the main thread instead of compiling again. */
export function adoptModules(shared: ReturnType<typeof exportModules>): void {
  variant = shared.variant;
  for (const name of MODULE_NAMES) modules.set(name, shared.modules[name]);
}

/** How many modules this thread compiled itself (tests check that workers compile none). */
export function compilationCount(): number {
  return compilations;
}
