// What a benchmark run produces: the rows (printed as a table or as NDJSON) and a results file
// that also records the machine, because "WASM vs native" figures mean nothing without it.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, loadavg, release } from 'node:os';
import { join } from 'node:path';
import { listCodecs } from '../src/codecs/registry.js';
import { wasmDistDir, wasmVariant } from '../src/wasm/load.js';
import { packageRoot } from '../src/wasm/load.js';

/** One codec at one level on one dataset, against its baseline. Speeds are decimal MB/s. */
export interface CodecRow {
  readonly suite: 'codecs';
  readonly codec: string;
  /** null for codecs without levels. */
  readonly level: number | null;
  readonly data: string;
  readonly compressMBps: number;
  readonly decompressMBps: number;
  /** Sample bytes / payload bytes. */
  readonly ratio: number;
  readonly baseline: { readonly name: string; readonly compressMBps: number | null; readonly decompressMBps: number | null };
}

/** One zero-scan implementation against the native C scan, in decimal GB/s. */
export interface ZeroScanRow {
  readonly suite: 'zero-scan';
  readonly impl: 'wasm-simd' | 'wasm-scalar' | 'js';
  readonly GBps: number;
  readonly baselineGBps: number | null;
}

/** A row of any suite, as printed one per line with `--json`. */
export type BenchRow = CodecRow | ZeroScanRow;

/** A target checked at the end of a run. `ratio` is null when ours or the baseline was not measured. */
export interface TargetResult {
  readonly label: string;
  readonly ratio: number | null;
  readonly min: number;
  readonly pass: boolean;
}

/** What a benchmark ran on; enough to tell two results files' machines apart. */
export interface MachineInfo {
  readonly cpu: string;
  readonly cpuFlags: readonly string[];
  readonly cores: number;
  readonly loadAverage: readonly number[];
  readonly kernel: string;
  readonly node: string;
  readonly v8: string;
  readonly wasmVariant: string;
  /** sha256 of each committed artifact in wasm/dist/manifest.json: which build was measured. */
  readonly wasmArtifacts: Readonly<Record<string, string>>;
  /** Each codec's backend in this thread, e.g. "zstd 1.5.4, simd build". */
  readonly codecBackends: Readonly<Record<string, string>>;
  readonly date: string;
  /** HEAD's sha, `-dirty` when the tree has changes; null outside a git checkout. */
  readonly git: string | null;
  readonly tools: Readonly<Record<string, string | null>>;
}

/** This machine, now. */
export function machineInfo(): MachineInfo {
  const cpuinfo = readFileSync('/proc/cpuinfo', 'utf8');
  return {
    cpu: /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1] ?? 'unknown',
    cpuFlags: ['avx2', 'avx512f', 'sse4_2'].filter((flag) => new RegExp(`^flags\\s*:.*\\b${flag}\\b`, 'm').test(cpuinfo)),
    cores: availableParallelism(),
    loadAverage: loadavg(),
    kernel: release(),
    node: process.version,
    v8: process.versions.v8,
    wasmVariant: wasmVariant(),
    wasmArtifacts: wasmArtifacts(),
    codecBackends: Object.fromEntries(listCodecs().map(({ id, backend }) => [id, `${backend.name}: ${backend.reason}`])),
    date: new Date().toISOString(),
    git: gitRevision(),
    tools: Object.fromEntries(['zstd', 'lz4', 'gcc'].map((tool) => [tool, toolVersion(tool)])),
  };
}

/** Writes `benchmarks/results/<suite>-<ISO date>.json` (colons made file-name safe) and returns its path. */
export function writeResults(suite: string, results: Record<string, unknown>): string {
  const dir = join(packageRoot(), 'benchmarks', 'results');
  mkdirSync(dir, { recursive: true });
  const path = join(dir, `${suite}-${new Date().toISOString().replace(/:/g, '-')}.json`);
  writeFileSync(path, JSON.stringify(results, null, 2) + '\n');
  return path;
}

function wasmArtifacts(): Record<string, string> {
  const manifest = JSON.parse(readFileSync(join(wasmDistDir(), 'manifest.json'), 'utf8')) as { artifacts: Array<{ file: string; sha256: string }> };
  return Object.fromEntries(manifest.artifacts.map(({ file, sha256 }) => [file, sha256]));
}

function gitRevision(): string | null {
  const result = spawnSync('git', ['rev-parse', 'HEAD'], { cwd: packageRoot(), encoding: 'utf8' });
  if (result.status !== 0) return null;
  const dirty = spawnSync('git', ['status', '--porcelain'], { cwd: packageRoot(), encoding: 'utf8' }).stdout.trim() !== '';
  return result.stdout.trim() + (dirty ? '-dirty' : '');
}

function toolVersion(tool: string): string | null {
  const result = spawnSync(tool, ['--version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) return null;
  return `${result.stdout}${result.stderr}`.split('\n')[0]!.trim();
}
