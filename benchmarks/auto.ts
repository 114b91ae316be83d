// `multifd bench auto`: `--multifd-compression auto` beside every static method it chooses
// among (none, lz4, zstd-1, zstd-2, zstd-3), on the corpus and the real VM image, over links
// unlimited, 10 Gbit/s, 1 Gbit/s and 100 Mbit/s (max-bandwidth), 2 channels and 2 worker
// threads; the sender in this process, the receiver in a child process (benchmarks/peer.ts).
// In each cell (dataset × link) the methods alternate run by run and each keeps the median of
// its runs by total time; the target: auto ≤ 1.05× the best static method's time, per cell.
// Two more cells change half way (once half the guest bytes are sent): max-bandwidth lowered
// from unlimited to 1 Gbit/s (MigrationControl), and at 1 Gbit/s a CPU-bound neighbour process
// starting (where compression wins until the workers lose a core); there auto must beat every
// static method.
import { spawn, type ChildProcess } from 'node:child_process';
import type { CodecId } from '../src/codecs/types.js';
import { MigrationControl } from '../src/migration/migration-control.js';
import type { MigrationStats } from '../src/migration/stats.js';
import { fillMemoryFromFile } from '../src/cli/demo-content.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { guestMemorySource } from '../src/migration/source.js';
import { WorkerPool } from '../src/pool/pool.js';
import { sharedDataFile } from './data.js';
import { BenchPeer } from './peer.js';
import { machineInfo, writeResults } from './results.js';
import { formatTable } from './table.js';
import { median, round } from './timing.js';

/** Options of `multifd bench auto`. */
export interface AutoBenchOptions {
  readonly json: boolean;
  /** Corpus memory in MiB (default 1024; 64 with `quick`); the VM image is 512 MiB, or less when this is. */
  readonly sizeMiB?: number;
  readonly quick?: boolean;
  /** Runs per method and cell, the median kept (default 3; 1 with `quick`). */
  readonly repeat?: number;
  /** Link labels to run (default all of LINKS). */
  readonly links?: string[];
}

/** One method in one cell: the median run of its repeats. */
export interface AutoRow {
  suite: 'auto';
  data: string;
  link: string;
  method: string;
  totalTimeMs: number;
  runsMs: number[];
  wireBytes: number;
  ratio: number;
  sendCpuPct: number;
  /** auto only: guest bytes per choice, and the last choice's reason. */
  choices?: Record<string, number>;
  reason?: string;
}

/** A cell's verdict. */
export interface AutoTarget {
  data: string;
  link: string;
  best: string;
  ratio: number;
  /** The ratio allowed: 1.05, or 1 (strictly faster) where conditions change half way. */
  max: number;
  pass: boolean;
}

/** What happens half way through a run: nothing, the link drops to 1 Gbit/s, or a CPU-bound neighbour starts. */
type HalfWay = 'none' | 'limit' | 'neighbour';

export const LINKS: ReadonlyArray<{ label: string; bytesPerSecond: number; halfWay: HalfWay }> = [
  { label: 'unlimited', bytesPerSecond: 0, halfWay: 'none' },
  { label: '10 Gbit/s', bytesPerSecond: 1_250_000_000, halfWay: 'none' },
  { label: '1 Gbit/s', bytesPerSecond: 125_000_000, halfWay: 'none' },
  { label: '100 Mbit/s', bytesPerSecond: 12_500_000, halfWay: 'none' },
  { label: 'unlimited, 1 Gbit/s from half way', bytesPerSecond: 0, halfWay: 'limit' },
  { label: '1 Gbit/s, a CPU-bound neighbour from half way', bytesPerSecond: 125_000_000, halfWay: 'neighbour' },
];

const METHODS: ReadonlyArray<{ label: string; codec: CodecId | 'auto'; level?: number }> = [
  { label: 'none', codec: 'none' },
  { label: 'lz4', codec: 'lz4' },
  { label: 'zstd-1', codec: 'zstd', level: 1 },
  { label: 'zstd-2', codec: 'zstd', level: 2 },
  { label: 'zstd-3', codec: 'zstd', level: 3 },
  { label: 'auto', codec: 'auto' },
];

const CHANNELS = 2;
const THREADS = 2;
/** auto's time over the best static method's, per cell. */
const TARGET = 1.05;

/** The memories: the corpus at `bytes`, and the VM image as it is (its first `bytes` when smaller). */
function datasets(bytes: number, notes: string[]): Array<{ name: string; memory: GuestMemory }> {
  const sets: Array<{ name: string; memory: GuestMemory }> = [];
  for (const [name, file, size] of [['corpus', 'corpus-mix', bytes], ['vm-512m-t0', 'vm-512m-t0', Math.min(bytes, 512 << 20)]] as const) {
    const path = sharedDataFile(file);
    if (!path) {
      notes.push(`${file} not found: its rows are missing`);
      continue;
    }
    const memory = GuestMemory.create({ byteLength: size });
    fillMemoryFromFile(memory, path);
    sets.push({ name, memory });
  }
  return sets;
}

/** Runs the suite; prints a table (or NDJSON with `json`) and writes benchmarks/results/auto-*.json. */
export async function runAutoBench(options: AutoBenchOptions): Promise<AutoRow[]> {
  const quick = Boolean(options.quick);
  const sizeMiB = options.sizeMiB ?? (quick ? 64 : 1024);
  const repeat = options.repeat ?? (quick ? 1 : 3);
  const links = LINKS.filter((l) => !options.links || options.links.includes(l.label));
  const notes: string[] = [];
  const sets = datasets(sizeMiB << 20, notes);
  const peer = new BenchPeer();
  const pool = new WorkerPool({ threads: THREADS });
  const rows: AutoRow[] = [];
  try {
    // Warm-up, not recorded: JIT, WASM compilation in every worker, the receiver's first faults.
    if (sets[0]) await peer.migrate(THREADS, { source: guestMemorySource(sets[0].memory), channels: CHANNELS, pool, codec: 'auto' });
    for (const { name, memory } of sets) {
      for (const link of links) {
        const runs = new Map<string, AutoRow[]>(METHODS.map((m) => [m.label, []]));
        for (let run = 0; run < repeat; run++) {
          // The order turns each run, so no method always follows the same one.
          const order = METHODS.map((_, i) => METHODS[(i + run) % METHODS.length]!);
          for (const method of order) {
            if (!options.json) process.stderr.write(`\r\x1b[K${name} ${link.label} ${method.label} run ${run + 1}/${repeat}`);
            const halfWay = new HalfWayChange(link.halfWay);
            const { stats } = await peer
              .migrate(THREADS, { source: guestMemorySource(memory), channels: CHANNELS, pool, codec: method.codec, level: method.level, maxBandwidth: link.bytesPerSecond, control: halfWay.control, onProgress: (s) => halfWay.check(s), progressIntervalMs: 50 })
              .finally(() => halfWay.end());
            runs.get(method.label)!.push({
              suite: 'auto',
              data: name,
              link: link.label,
              method: method.label,
              totalTimeMs: stats['total-time'],
              runsMs: [],
              wireBytes: stats.transferred,
              ratio: round(stats['compression-ratio'], 2),
              sendCpuPct: stats['send-cpu-percent'],
              ...(stats.auto ? { choices: Object.fromEntries(Object.entries(stats.auto.choices).map(([k, c]) => [k, c['guest-bytes']])), reason: stats.auto.reason } : {}),
            });
          }
        }
        for (const method of METHODS) rows.push(medianRun(runs.get(method.label)!));
      }
    }
  } finally {
    await pool.close();
    await peer.close();
  }
  if (!options.json) process.stderr.write('\r\x1b[K');
  const targets = autoTargets(rows);
  if (options.json) for (const row of rows) console.log(JSON.stringify(row));
  else console.log([autoTable(rows), '', ...targets.map((t) => `${t.pass ? 'PASS' : 'MISS'}  ${t.data}, ${t.link}: auto ${t.ratio.toFixed(2)}× ${t.best} (the best static; target ${t.max > 1 ? `≤ ${t.max}×` : '< 1×'})`), ...(notes.length ? ['', 'notes:', ...notes.map((n) => `- ${n}`)] : [])].join('\n'));
  const file = writeResults('auto', { machine: machineInfo(), sizeMiB, repeat, channels: CHANNELS, threads: THREADS, rows, targets, notes });
  if (!options.json) console.log(`\nresults: ${file}`);
  return rows;
}

/** The change a run undergoes once half its guest bytes are sent. */
class HalfWayChange {
  readonly control = new MigrationControl();
  private done = false;
  private neighbour: ChildProcess | undefined;

  constructor(private readonly kind: HalfWay) {}

  check(stats: MigrationStats): void {
    if (this.done || this.kind === 'none' || stats.remaining > stats.total / 2) return;
    this.done = true;
    if (this.kind === 'limit') this.control.setMaxBandwidth(125_000_000);
    else this.neighbour = spawn(process.execPath, ['-e', 'for (;;) {}'], { stdio: 'ignore' });
  }

  end(): void {
    this.neighbour?.kill('SIGKILL');
  }
}

/** The run with the median total time; every run's time kept in `runsMs`. */
function medianRun(runs: readonly AutoRow[]): AutoRow {
  const totalTimeMs = median(runs.map((r) => r.totalTimeMs));
  return { ...runs.find((r) => r.totalTimeMs === totalTimeMs)!, runsMs: runs.map((r) => r.totalTimeMs) };
}

/** Per cell: auto against the fastest static method. */
export function autoTargets(rows: readonly AutoRow[]): AutoTarget[] {
  const cells = [...new Set(rows.map((r) => `${r.data}\u0000${r.link}`))];
  return cells.flatMap((cell) => {
    const [data, link] = cell.split('\u0000') as [string, string];
    const inCell = rows.filter((r) => r.data === data && r.link === link);
    const auto = inCell.find((r) => r.method === 'auto');
    const statics = inCell.filter((r) => r.method !== 'auto');
    if (!auto || statics.length === 0) return [];
    const best = statics.reduce((a, b) => (b.totalTimeMs < a.totalTimeMs ? b : a));
    const ratio = round(auto.totalTimeMs / best.totalTimeMs, 2);
    // Where the conditions change half way, auto must beat every static method.
    const max = link.includes('half way') ? 1 : TARGET;
    return [{ data, link, best: best.method, ratio, max, pass: max > 1 ? ratio <= max : auto.totalTimeMs < best.totalTimeMs }];
  });
}

/** One line per method and cell: times in ms, auto's guest bytes per choice in MiB. */
export function autoTable(rows: readonly AutoRow[]): string {
  const mib = (bytes: number) => (bytes / 2 ** 20).toFixed(0);
  return formatTable(
    ['data', 'link', 'method', 'total ms', 'runs ms', 'wire MB', 'ratio', 'send cpu %', 'auto: MiB per choice'],
    rows.map((r) => [
      r.data,
      r.link,
      r.method,
      String(r.totalTimeMs),
      r.runsMs.join(' '),
      (r.wireBytes / 1e6).toFixed(1),
      r.ratio.toFixed(2),
      r.sendCpuPct.toFixed(0),
      r.choices ? Object.entries(r.choices).map(([k, v]) => `${k} ${mib(v)}`).join(', ') : '',
    ]),
    'lllrlrrrl',
  );
}
