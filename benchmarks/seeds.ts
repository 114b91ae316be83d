// `multifd bench seeds`: the tables of the QEMU patch series this project follows
// (reference/seed-experiments.md), on this machine and its data, with QEMU itself measured
// beside us in the same run when qemu-system-x86_64 is installed:
// - side by side: the same 1 GiB of corpus-filled memory and the real VM image, moved by QEMU
//   and by us with none, zstd-1 and zlib-1 at 1, 2 and 4 channels, the two alternating run by
//   run, the median of `repeat` runs each (zlib-1: one run);
// - the same cells through the built CLI, file to file, in the same alternation: `multifd
//   receive` and `multifd send` as two processes, start-up included (benchmarks/cli-file.ts);
// - the zero-page experiment (§3): all-zero memory, zero pages found on the main thread
//   (legacy) vs on the multifd threads with 1, 2 and 4 threads;
// - the matrix (§4, §5): methods × channels (1, 2, 4, 8, 16) × link (unlimited, 10 Gbit/s,
//   1 Gbit/s through max-bandwidth) on corpus-filled memory an eighth of that size.
// Ours: the sender in this process, the receiver in a child process (benchmarks/peer.ts), so
// each side's CPU is its own, as QEMU's two processes' are.
import { loadavg } from 'node:os';
import { basename } from 'node:path';
import { listCodecs } from '../src/codecs/registry.js';
import type { CodecId } from '../src/codecs/types.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { guestMemorySource } from '../src/migration/source.js';
import type { ZeroPageDetection } from '../src/wire/index.js';
import { WorkerPool } from '../src/pool/pool.js';
import { fillMemoryFromFile } from '../src/cli/demo-content.js';
import { cliFileCheck, cliFileMigrate } from './cli-file.js';
import { memoryImage, type MemoryImage } from './images.js';
import { BenchPeer } from './peer.js';
import { qemuMigrate, qemuVersion, type QemuMethod } from './qemu.js';
import { latestResults, reportPathFor, writeReport, type SeedsResults } from './report-html.js';
import { machineInfo, writeResults } from './results.js';
import { comparisons, seedTables, seedTargets, type SeedRow } from './seeds-tables.js';
import { median, round } from './timing.js';

/** Options of `multifd bench seeds`. */
export interface SeedsBenchOptions {
  readonly json: boolean;
  /** Memory of the side-by-side and zero-page runs in MiB (default 1024; 64 with `quick`); the matrix uses an eighth. */
  readonly sizeMiB?: number;
  /** One channel count, one link, one run each: a smoke run. */
  readonly quick?: boolean;
  /** Channel counts (default 1, 2, 4, 8, 16 for the matrix; 1, 2, 4 side by side). */
  readonly channels?: readonly number[];
  /** Methods by id (default none, zlib, zstd, qatzip, qpl, uadk). */
  readonly codecs?: readonly string[];
  /** Runs per side-by-side cell of none and zstd-1, the median kept (default 3; 1 with `quick`). */
  readonly repeat?: number;
  /** Leave QEMU out even when it is installed. */
  readonly noQemu?: boolean;
}

/** A method as the tables name it: QEMU's method name, and the level where it has one. */
interface Method {
  readonly codec: CodecId;
  readonly level?: number;
  readonly label: string;
}

const METHODS: readonly Method[] = [
  { codec: 'none', label: 'none' },
  { codec: 'zlib', level: 1, label: 'zlib-1' },
  { codec: 'zstd', level: 1, label: 'zstd-1' },
  { codec: 'qatzip', level: 1, label: 'qatzip-1' },
  { codec: 'qpl', label: 'qpl' },
  { codec: 'uadk', label: 'uadk' },
];
const QEMU_METHODS: ReadonlySet<CodecId> = new Set(['none', 'zlib', 'zstd']);
const LINKS = [
  { label: 'unlimited', maxBandwidth: 0 },
  { label: '10 Gbit/s', maxBandwidth: 1_250_000_000 },
  { label: '1 Gbit/s', maxBandwidth: 125_000_000 },
] as const;
/** Worker threads per side outside the zero-page experiment: the machine's two cores. */
const THREADS = 2;
const GIB = 2 ** 30;
/** Memory of the unrecorded warm-up migrations. */
const WARM_UP_BYTES = 32 << 20;

/** One cell to measure, for ours and (where QEMU has the method) QEMU. */
interface Cell {
  experiment: SeedRow['experiment'];
  image: MemoryImage;
  method: Method;
  channels: number;
  threads: number;
  link: (typeof LINKS)[number];
  zeroPageDetection: ZeroPageDetection;
  withQemu: boolean;
  /** Also run through the built CLI, file to file (side-by-side cells). */
  withCli: boolean;
}

/** Runs the suite; prints tables (or NDJSON with `json`) and writes benchmarks/results/seeds-*.json. */
export async function runSeedsBench(options: SeedsBenchOptions): Promise<SeedRow[]> {
  const quick = Boolean(options.quick);
  const sizeMiB = Math.round(options.sizeMiB ?? (quick ? 64 : 1024));
  const matrixMiB = Math.max(8, Math.round(sizeMiB / 8));
  const repeat = options.repeat ?? (quick ? 1 : 3);
  const notes: string[] = [];
  const qemu = options.noQemu ? null : qemuVersion();
  if (!qemu) notes.push(options.noQemu ? 'QEMU left out (--no-qemu)' : 'qemu-system-x86_64 not found: no QEMU rows (npm run setup:qemu installs Debian\'s QEMU 7.2)');
  const cliCheck = cliFileCheck();
  notes.push(...cliCheck.notes);
  const cells = planCells(options, sizeMiB, matrixMiB, repeat, { qemu: qemu !== null, cli: cliCheck.available }, notes);
  const zero = cells.find(({ cell }) => cell.experiment === 'zero-page')!.cell.image;

  const machine = machineInfo();
  const peer = new BenchPeer();
  const pools = new Map<number, WorkerPool>();
  const warmed = new Set<string>();
  const warmUp = GuestMemory.create({ byteLength: WARM_UP_BYTES });
  fillMemoryFromFile(warmUp, (memoryImage('corpus', WARM_UP_BYTES) ?? zero).path);
  const memories = new Map<string, GuestMemory>();
  const rows: SeedRow[] = [];
  const progress = (text: string) => options.json || process.stderr.write(`\r\x1b[K${text}`);
  try {
    for (const [index, { cell, runs }] of cells.entries()) {
      progress(`[${index + 1}/${cells.length}] ${cell.experiment} ${cell.image.content} ${cell.method.label} ${cell.channels} ch ${cell.link.label}`);
      let memory = memories.get(cell.image.path);
      if (!memory) {
        memory = GuestMemory.create({ byteLength: cell.image.bytes });
        fillMemoryFromFile(memory, cell.image.path);
        memories.set(cell.image.path, memory);
      }
      const pool = await warmPool(pools, warmed, cell.threads, cell.method, peer, warmUp);
      if (cell.withQemu && !warmed.has(cell.image.path)) {
        // QEMU's warm-up, not recorded either: the first QEMU process to map a freshly written
        // image pays for it once (1 GiB of corpus: 5.4 s, then 0.38 s on the next run), as our
        // side paid when it filled its memory from the file before any timing.
        warmed.add(cell.image.path);
        await qemuMigrate({ image: cell.image.path, bytes: cell.image.bytes, channels: 2, method: 'none', level: 1, maxBandwidth: 0 }).catch((error: Error) => notes.push(`QEMU warm-up failed on ${cell.image.content}: ${error.message}`));
      }
      const ours: SeedRow[] = [];
      const cli: SeedRow[] = [];
      const theirs: SeedRow[] = [];
      // Alternate who goes first, so a neighbour's burst or the machine warming up does not
      // always land on the same side; the CLI runs between the two, after ours in memory one
      // run and before it the next.
      for (let run = 0; run < runs; run++) {
        const order = run % 2 === 0 ? ['ours', 'cli', 'qemu'] : ['qemu', 'cli', 'ours'];
        for (const side of order) {
          if (side === 'ours') ours.push(await oursRow(peer, pool, memory, cell));
          else if (side === 'cli') {
            if (cell.withCli) cli.push(await cliRow(cell));
          } else if (cell.withQemu) {
            // QEMU is the reference, not the subject: a failed QEMU run is tried once more with
            // new processes (a loaded machine once made 7.2's QMP parser reject a well-formed
            // command), then left out with the reason in the notes instead of ending the run.
            const where = `${cell.experiment} ${cell.image.content} ${cell.method.label} ${cell.channels} ch ${cell.link.label}`;
            const row = await qemuRow(cell, qemu!).catch((error: Error) => {
              notes.push(`QEMU failed once (${where}), tried again: ${error.message}`);
              return qemuRow(cell, qemu!).catch((again: Error) => void notes.push(`QEMU failed twice (${where}), no row: ${again.message}`));
            });
            if (row) theirs.push(row);
          }
        }
      }
      const measured = [ours, cli, theirs].filter((runs) => runs.length).map(medianRun);
      rows.push(...measured);
      if (options.json) for (const row of measured) console.log(JSON.stringify(row));
    }
  } finally {
    for (const pool of pools.values()) await pool.close();
    await peer.close();
  }
  progress('');
  const compared = comparisons(rows);
  const targets = seedTargets(compared);
  if (!options.json) console.log(seedTables(rows, compared, targets) + (notes.length ? `\n\nnotes:\n${notes.map((n) => `- ${n}`).join('\n')}` : ''));
  const results: SeedsResults = { machine: { ...machine, qemu, loadAverageEnd: loadavg() }, sizeMiB, matrixMiB, repeat, threadsPerSide: THREADS, rows, comparisons: compared, targets, notes };
  const file = writeResults('seeds', { ...results });
  const report = writeReport(reportPathFor(file), { seeds: { file: basename(file), results }, others: latestResults().others });
  if (!options.json) console.log(`\nresults: ${file}\nreport: ${report}`);
  return rows;
}

/** Every cell of the run, in order, with its number of runs; notes what is missing. */
function planCells(options: SeedsBenchOptions, sizeMiB: number, matrixMiB: number, repeat: number, available: { qemu: boolean; cli: boolean }, notes: string[]): Array<{ cell: Cell; runs: number }> {
  const quick = Boolean(options.quick);
  const methods = selectMethods(options.codecs);
  const sideChannels = options.channels ?? (quick ? [2] : [1, 2, 4]);
  const matrixChannels = options.channels ?? (quick ? [2] : [1, 2, 4, 8, 16]);
  const links = quick ? LINKS.filter((l) => l.label !== '10 Gbit/s') : LINKS;

  const cells: Array<{ cell: Cell; runs: number }> = [];
  // QEMU 7.2 finds zero pages only on its migration thread: its all-zero rows stand beside our
  // multifd-detection rows, and our legacy row has no QEMU twin of its own.
  const add = (cell: Omit<Cell, 'withQemu' | 'withCli'>, runs: number) =>
    cells.push({
      cell: {
        ...cell,
        withQemu: available.qemu && QEMU_METHODS.has(cell.method.codec) && cell.zeroPageDetection !== 'legacy',
        withCli: available.cli && cell.experiment === 'side-by-side',
      },
      runs,
    });
  const unlimited = LINKS[0];
  for (const content of quick ? (['corpus'] as const) : (['corpus', 'vm-512m-t0'] as const)) {
    const image = memoryImage(content, sizeMiB * 2 ** 20);
    if (!image) {
      notes.push(`${content}: shared data not found, its rows are missing`);
      continue;
    }
    for (const method of methods.filter((m) => QEMU_METHODS.has(m.codec))) {
      // zlib-1 runs once: QEMU 7.2 takes 10 s or more per GiB with it here, and the targets are
      // on none and zstd-1.
      const runs = method.codec === 'zlib' ? 1 : repeat;
      for (const channels of sideChannels) add({ experiment: 'side-by-side', image, method, channels, threads: THREADS, link: unlimited, zeroPageDetection: 'multifd' }, runs);
    }
  }
  const zero = memoryImage('all-zero', sizeMiB * 2 ** 20)!;
  const none = METHODS[0]!;
  add({ experiment: 'zero-page', image: zero, method: none, channels: 4, threads: THREADS, link: unlimited, zeroPageDetection: 'legacy' }, repeat);
  for (const threads of quick ? [2] : [1, 2, 4]) add({ experiment: 'zero-page', image: zero, method: none, channels: threads, threads, link: unlimited, zeroPageDetection: 'multifd' }, repeat);
  const matrixImage = memoryImage('corpus', matrixMiB * 2 ** 20);
  if (matrixImage) {
    for (const link of links) {
      for (const method of methods) {
        for (const channels of matrixChannels) add({ experiment: 'matrix', image: matrixImage, method, channels, threads: THREADS, link, zeroPageDetection: 'multifd' }, 1);
      }
    }
  }
  return cells;
}

function selectMethods(ids: readonly string[] | undefined): Method[] {
  if (!ids) return [...METHODS];
  return ids.map((id) => {
    const method = METHODS.find((m) => m.codec === id || m.label === id);
    if (!method) throw new RangeError(`seeds: unknown method "${id}" (methods: ${METHODS.map((m) => m.codec).join(', ')})`);
    return method;
  });
}

/**
 * The pool of `threads` workers, warmed up for `method` by one unrecorded migration of a small
 * memory: JIT and WASM compilation in every worker on both sides, the receiver's first page
 * faults. QEMU's codecs are native code that needs none of that.
 */
async function warmPool(pools: Map<number, WorkerPool>, warmed: Set<string>, threads: number, method: Method, peer: BenchPeer, warmUp: GuestMemory): Promise<WorkerPool> {
  let pool = pools.get(threads);
  if (!pool) pools.set(threads, (pool = new WorkerPool({ threads })));
  if (!warmed.has(`${threads}|${method.label}`)) {
    warmed.add(`${threads}|${method.label}`);
    await peer.migrate(threads, { source: guestMemorySource(warmUp), codec: method.codec, level: method.level, channels: 2, pool });
  }
  return pool;
}

/** The row of the run with the median total time; every run's time kept in `runsMs`. */
function medianRun(runs: readonly SeedRow[]): SeedRow {
  const totalTimeMs = median(runs.map((r) => r.totalTimeMs));
  return { ...runs.find((r) => r.totalTimeMs === totalTimeMs)!, runsMs: runs.map((r) => r.totalTimeMs) };
}

function backendOf(codec: CodecId): string {
  const { backend } = listCodecs().find((c) => c.id === codec)!;
  const hardware = codec === 'qatzip' || codec === 'qpl' || codec === 'uadk';
  return hardware && backend.name !== 'native-hw' ? `software path (${backend.name}), no accelerator here` : `${backend.name}: ${backend.reason}`;
}

async function oursRow(peer: BenchPeer, pool: WorkerPool, memory: GuestMemory, cell: Cell): Promise<SeedRow> {
  const { stats, recvCpuMicros } = await peer.migrate(cell.threads, {
    source: guestMemorySource(memory),
    codec: cell.method.codec,
    level: cell.method.level,
    channels: cell.channels,
    maxBandwidth: cell.link.maxBandwidth,
    zeroPageDetection: cell.zeroPageDetection,
    pool,
  });
  const totalMs = stats['total-time'];
  const sendCpuSeconds = (stats['send-cpu-percent'] / 100) * (totalMs / 1000);
  return row(cell, {
    impl: 'multifd',
    backend: backendOf(cell.method.codec),
    threads: cell.threads,
    totalTimeMs: totalMs,
    endToEndMs: totalMs,
    wireBytes: stats.transferred,
    sendCpuSeconds,
    recvCpuSeconds: recvCpuMicros / 1e6,
  });
}

/** The cell through the built CLI, file to file: the same image file ours filled its memory from. */
async function cliRow(cell: Cell): Promise<SeedRow> {
  const run = await cliFileMigrate({
    image: cell.image.path,
    bytes: cell.image.bytes,
    codec: cell.method.codec,
    level: cell.method.level,
    channels: cell.channels,
    threads: cell.threads,
    zeroPageDetection: cell.zeroPageDetection,
    maxBandwidth: cell.link.maxBandwidth,
  });
  return row(cell, {
    experiment: 'cli-file',
    impl: 'multifd',
    backend: `${backendOf(cell.method.codec)}; multifd receive + multifd send, file to file`,
    threads: cell.threads,
    totalTimeMs: run.wallMs,
    endToEndMs: run.wallMs,
    wireBytes: null,
    sendCpuSeconds: run.sendCpuSeconds,
    recvCpuSeconds: run.recvCpuSeconds,
  });
}

async function qemuRow(cell: Cell, version: string): Promise<SeedRow> {
  const result = await qemuMigrate({
    image: cell.image.path,
    bytes: cell.image.bytes,
    channels: cell.channels,
    method: cell.method.codec as QemuMethod,
    level: cell.method.level ?? 1,
    maxBandwidth: cell.link.maxBandwidth,
  });
  return row(cell, {
    impl: 'qemu',
    backend: `${version.replace(/^QEMU emulator version (\S+).*/, 'QEMU $1')}, a thread per channel`,
    threads: null,
    totalTimeMs: result.totalTimeMs,
    endToEndMs: result.endToEndMs,
    wireBytes: null,
    sendCpuSeconds: result.sendCpuSeconds,
    recvCpuSeconds: result.recvCpuSeconds,
    zeroPageDetection: 'legacy',
  });
}

function row(
  cell: Cell,
  measured: Pick<SeedRow, 'impl' | 'backend' | 'threads' | 'totalTimeMs' | 'endToEndMs' | 'wireBytes'> & {
    sendCpuSeconds: number | null;
    recvCpuSeconds: number | null;
    experiment?: SeedRow['experiment'];
    zeroPageDetection?: ZeroPageDetection;
  },
): SeedRow {
  const bytes = cell.image.bytes;
  const seconds = measured.endToEndMs / 1000;
  const { sendCpuSeconds: send, recvCpuSeconds: recv } = measured;
  return {
    suite: 'seeds',
    experiment: measured.experiment ?? cell.experiment,
    impl: measured.impl,
    data: cell.image.content,
    method: cell.method.label,
    backend: measured.backend,
    channels: cell.channels,
    threads: measured.threads,
    link: cell.link.label,
    zeroPageDetection: measured.zeroPageDetection ?? cell.zeroPageDetection,
    bytes,
    totalTimeMs: measured.totalTimeMs,
    endToEndMs: measured.endToEndMs,
    mbps: round((bytes * 8) / 1e3 / measured.totalTimeMs, 0),
    pagesPerSec: Math.round(bytes / 4096 / (measured.totalTimeMs / 1000)),
    wireBytes: measured.wireBytes,
    sendCpuPct: send === null ? null : round((send / seconds) * 100, 1),
    recvCpuPct: recv === null ? null : round((recv / seconds) * 100, 1),
    cpuSecondsPerGiB: send === null || recv === null ? null : round((send + recv) / (bytes / GIB), 3),
    runsMs: [measured.totalTimeMs],
  };
}
