// Builds the fake vendor libraries (this folder's C files) for tests and `bench hw`: gcc and
// Debian's zlib (zlib1g-dev), the real sonames, into a temporary folder, never shipped. Each
// variant is its own file because a vendor library keeps process-wide state (QATzip's first
// qzInit, UADK's wd_comp_init2_) and the dynamic loader loads one file once: a test that needs
// a fresh library asks for a fresh variant.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { addonFailure, nativeAddon, type HardwareVendor } from '../../src/native/addon.js';
import { packageRoot } from '../../src/wasm/load.js';

// From the package root, not this file: the bench bundles this module into dist/cli/.
const here = join(packageRoot(), 'native', 'test-fakes');
const FAKES: Record<HardwareVendor, { source: string; soname: string; flags: string[] }> = {
  qatzip: { source: 'fake-qatzip.c', soname: 'libqatzip.so.3', flags: [] },
  qpl: { source: 'fake-qpl.c', soname: 'libqpl.so.1', flags: [] },
  uadk: { source: 'fake-uadk.c', soname: 'libwd_comp.so.2', flags: [`-Wl,--version-script=${join(here, 'fake-uadk.map')}`] },
};

/** Why the shim cannot run on the fakes here (shim not built, no gcc, no zlib headers), or undefined. */
export function fakesUnavailable(): string | undefined {
  if (!nativeAddon()) return addonFailure();
  if (spawnSync('gcc', ['--version']).status !== 0) return 'gcc is not installed';
  const probe = spawnSync('gcc', ['-E', '-x', 'c', '-'], { input: '#include <zlib.h>\n' });
  if (probe.status !== 0) return 'zlib headers are missing (apt-get install zlib1g-dev)';
  return undefined;
}

let root: string | undefined;

/** The temporary folder of this process's fakes, removed at exit. */
function fakesRoot(): string {
  if (!root) {
    root = mkdtempSync(join(tmpdir(), 'multifd-fakes-'));
    const dir = root;
    process.once('exit', () => rmSync(dir, { recursive: true, force: true }));
  }
  return root;
}

/**
 * The path of a fake library, built on first request. `variant` names an independent copy;
 * `omitSymbol` builds one that lacks that exported function.
 * @throws Error with gcc's output when the build fails.
 */
export function fakeLibrary(vendor: HardwareVendor, variant = 'default', omitSymbol?: string): string {
  const fake = FAKES[vendor];
  const dir = join(fakesRoot(), `${vendor}-${variant}`);
  const path = join(dir, fake.soname);
  if (existsSync(path)) return path;
  mkdirSync(dir, { recursive: true });
  // Renaming the function keeps the code compiling and takes its name out of the exports.
  const omit = omitSymbol ? [`-D${omitSymbol}=omitted_${omitSymbol}`] : [];
  const args = ['-shared', '-fPIC', '-O2', '-Wall', '-Wextra', '-Werror', `-Wl,-soname,${fake.soname}`, ...fake.flags, ...omit, '-o', path, join(here, fake.source), '-lz'];
  const run = spawnSync('gcc', args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`gcc ${args.join(' ')} failed:\n${run.stderr}`);
  return path;
}

/**
 * The path of a test program built from this folder's `<name>.c` (e.g. `qpl-decode`), built on
 * first request into the same temporary folder as the fake libraries.
 * @throws Error with gcc's output when the build fails.
 */
export function fakeProgram(name: string): string {
  const path = join(fakesRoot(), name);
  if (existsSync(path)) return path;
  const args = ['-O2', '-Wall', '-Wextra', '-Werror', '-o', path, join(here, `${name}.c`), '-ldl'];
  const run = spawnSync('gcc', args, { encoding: 'utf8' });
  if (run.status !== 0) throw new Error(`gcc ${args.join(' ')} failed:\n${run.stderr}`);
  return path;
}

/**
 * Runs `run` with environment variables set (the fakes' FAKE_* knobs, MULTIFD_* settings) and
 * puts back what was there once it returns or, for a promise, settles. The fakes read their
 * knobs from the process environment at each call, so a knob set here reaches calls made on
 * worker threads too.
 */
export function withKnobs<T>(knobs: Record<string, string>, run: () => T): T {
  const before = Object.fromEntries(Object.keys(knobs).map((k) => [k, process.env[k]]));
  const restore = () => {
    for (const [k, v] of Object.entries(before)) {
      if (v === undefined) delete process.env[k];
      else process.env[k] = v;
    }
  };
  Object.assign(process.env, knobs);
  let result: T;
  try {
    result = run();
  } catch (error) {
    restore();
    throw error;
  }
  if (result instanceof Promise) return result.finally(restore) as T;
  restore();
  return result;
}
