// What the codec benchmark compresses: evenly spaced 512 KiB packets sampled from the shared
// test data (the mixed corpus and a real VM memory image, DESIGN §9), or generated pages when
// neither file is present. Each sample is also written to benchmarks/.cache/ so the zstd and
// lz4 command-line baselines read exactly the bytes our codecs see.
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readSync, renameSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../src/wasm/load.js';
import { makePages } from '../src/workload/page-content.js';

/** Bytes per packet: QEMU's MULTIFD_PACKET_SIZE, 128 pages of 4 KiB. */
export const PACKET_BYTES = 512 * 1024;
export const PAGE_BYTES = 4096;

/** One input of the codec suite. */
export interface Dataset {
  /** Short name for the `data` column: `corpus-mix`, `vm-512m-t0` or `generated`. */
  readonly name: string;
  /** Where the bytes came from, for the notes under the table. */
  readonly description: string;
  /** The sampled packets, back to back (a multiple of PACKET_BYTES). */
  readonly sample: Uint8Array;
  /** The same bytes on disk, for the command-line baselines. */
  readonly samplePath: string;
}

/** A compressed file in the shared data folder and how to decompress it. */
interface Source {
  readonly name: string;
  readonly file: string;
  readonly raw: string;
  readonly zstdArgs: readonly string[];
  readonly what: string;
  /** A zstd patch against this earlier snapshot (decompressed first, then `--patch-from` it). */
  readonly patchFrom?: SharedDataName;
}

/** The shared files the benchmarks, tests and the demo can use. */
export type SharedDataName = 'corpus-mix' | 'vm-512m-t0' | 'vm-512m-t1' | 'vm-512m-t2';

const SOURCES: readonly Source[] = [
  { name: 'corpus-mix', file: 'corpus-mix.bin.zst', raw: 'corpus-mix.bin', zstdArgs: [], what: 'Silesia-like mixed corpus' },
  // t0 was compressed with --long=27; the decoder needs the matching window.
  { name: 'vm-512m-t0', file: 'vm-512m-t0.raw.zst', raw: 'vm-512m-t0.raw', zstdArgs: ['--long=27'], what: 'guest RAM of a 512 MiB Linux VM' },
];

/** The later snapshots, as patches against the one before (data/README.md). */
const PATCHES: readonly Source[] = [
  { name: 'vm-512m-t1', file: 'vm-512m-t1.patch.zst', raw: 'vm-512m-t1.raw', zstdArgs: ['--long=27'], what: 'the same RAM 5 s later', patchFrom: 'vm-512m-t0' },
  { name: 'vm-512m-t2', file: 'vm-512m-t2.patch.zst', raw: 'vm-512m-t2.raw', zstdArgs: ['--long=27'], what: 'the same RAM 10 s later', patchFrom: 'vm-512m-t1' },
];

/** benchmarks/.cache/ (git-ignored), created on demand. */
export function cacheDir(): string {
  const dir = join(packageRoot(), 'benchmarks', '.cache');
  mkdirSync(dir, { recursive: true });
  return dir;
}

/** `$MULTIFD_DATA_DIR`, else `<root>/../shared/data`. */
export function dataDir(): string {
  return process.env.MULTIFD_DATA_DIR ?? join(packageRoot(), '..', 'shared', 'data');
}

/**
 * The datasets for one run, each sampled down to `sampleBytes` (rounded down to whole
 * packets, at least one). Falls back to generated pages, with a note saying so, when no
 * shared data file is present. `notes` collects what the reader should know.
 */
export function loadDatasets(sampleBytes: number, notes: string[]): Dataset[] {
  const packets = Math.max(1, Math.floor(sampleBytes / PACKET_BYTES));
  const datasets: Dataset[] = [];
  for (const source of SOURCES) {
    const compressed = join(dataDir(), source.file);
    if (!existsSync(compressed)) {
      notes.push(`${source.name}: ${compressed} not found, skipped`);
      continue;
    }
    const raw = decompressOnce(compressed, source);
    const { sample, fileBytes } = samplePackets(raw, packets);
    datasets.push(saveSample(source.name, sample, `${source.what}, ${describeSample(sample, fileBytes)}`));
  }
  if (datasets.length === 0) {
    notes.push(`no shared data in ${dataDir()} (set MULTIFD_DATA_DIR): measured on GENERATED pages, not real data`);
    const pages = makePages('mixed', (packets * PACKET_BYTES) / PAGE_BYTES, PAGE_BYTES, 2024);
    const sample = new Uint8Array(pages[0]!.buffer);
    datasets.push(saveSample('generated', sample, 'seeded generated pages cycling zero, random, text and half-text'));
  }
  return datasets;
}

/**
 * Decompresses a shared file into the cache once; later runs reuse it while it is at least as
 * new as the compressed file (zstd gives its output the input's mtime). Goes through a
 * temporary name so an interrupted run never leaves a truncated file that looks finished.
 */
function decompressOnce(compressed: string, source: Source): string {
  const raw = join(cacheDir(), source.raw);
  if (existsSync(raw) && statSync(raw).mtimeMs >= statSync(compressed).mtimeMs) return raw;
  const partial = raw + '.partial';
  rmSync(partial, { force: true });
  const patchArgs = source.patchFrom ? [`--patch-from=${sharedDataFile(source.patchFrom)}`] : [];
  const result = spawnSync('zstd', ['-q', '-d', ...source.zstdArgs, ...patchArgs, compressed, '-o', partial], { encoding: 'utf8' });
  if (result.error || result.status !== 0) {
    throw new Error(`benchmarks: cannot decompress ${compressed} with zstd: ${result.error?.message ?? result.stderr.trim()}`);
  }
  renameSync(partial, raw);
  return raw;
}

/**
 * Reads `packets` packets spread evenly over the whole file, so every part of it (each corpus
 * category, low and high guest RAM) is represented, not just the first megabytes.
 */
export function samplePackets(path: string, packets: number): { sample: Uint8Array; fileBytes: number } {
  const fd = openSync(path, 'r');
  try {
    const fileBytes = fstatSync(fd).size;
    const available = Math.floor(fileBytes / PACKET_BYTES);
    if (available === 0) throw new Error(`benchmarks: ${path} is smaller than one packet`);
    const count = Math.min(packets, available);
    const sample = new Uint8Array(count * PACKET_BYTES);
    for (let i = 0; i < count; i++) {
      const packet = Math.floor((i * available) / count);
      readSync(fd, sample, i * PACKET_BYTES, PACKET_BYTES, packet * PACKET_BYTES);
    }
    return { sample, fileBytes };
  } finally {
    closeSync(fd);
  }
}

function describeSample(sample: Uint8Array, fileBytes: number): string {
  const mib = (bytes: number) => `${+(bytes / 2 ** 20).toFixed(1)} MiB`;
  if (sample.byteLength >= fileBytes - (fileBytes % PACKET_BYTES)) return `whole file (${mib(sample.byteLength)})`;
  return `${sample.byteLength / PACKET_BYTES} packets of 512 KiB evenly spaced over ${mib(fileBytes)} (${mib(sample.byteLength)})`;
}

function saveSample(name: string, sample: Uint8Array, description: string): Dataset {
  const samplePath = join(cacheDir(), `${name}-sample-${+(sample.byteLength / 2 ** 20).toFixed(2)}.bin`);
  writeFileSync(samplePath, sample);
  return { name, description, sample, samplePath };
}

/**
 * The decompressed file of a shared dataset, decompressed into the cache on first use, or
 * undefined when the compressed file is not there. The demo and the migration benchmark fill
 * guest memory from it.
 * @throws Error when the file is there but zstd cannot decompress it.
 */
export function sharedDataFile(name: SharedDataName): string | undefined {
  const source = [...SOURCES, ...PATCHES].find((s) => s.name === name)!;
  const compressed = join(dataDir(), source.file);
  return existsSync(compressed) ? decompressOnce(compressed, source) : undefined;
}
