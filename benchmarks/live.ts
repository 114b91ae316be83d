// `multifd bench live`: the shape of the seed experiment's table (reference/seed-experiments.md
// §1): an idle guest and a guest writing random numbers into its RAM, migrated live with
// compression off, zlib level 1 and zstd-1, at unlimited bandwidth and at 1 Gbit/s; then the
// real VM's dirty trace replayed while its memory migrates. The receiver runs in a child process.
import type { CodecId } from '../src/codecs/types.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { ExplicitDirtyLog, TraceDirtyLog, traceFromSnapshots } from '../src/migration/dirty/index.js';
import type { LiveOptions } from '../src/migration/sender.js';
import { guestMemorySource } from '../src/migration/source.js';
import type { MigrationStats } from '../src/migration/stats.js';
import { WorkerPool } from '../src/pool/pool.js';
import { startGuest, type GuestMode } from '../src/workload/index.js';
import { fillFromCorpus, fillMemoryFromFile } from '../src/cli/demo-content.js';
import { sharedDataFile } from './data.js';
import { BenchPeer } from './peer.js';
import { machineInfo, writeResults } from './results.js';
import { formatTable } from './table.js';

/** Options of `multifd bench live`. */
export interface LiveBenchOptions {
  readonly json: boolean;
  /** Guest memory in MiB (default 512; 128 with `quick`). */
  readonly sizeMiB?: number;
  readonly quick?: boolean;
}

/** One live migration, as printed with --json (stats keep QEMU's names). */
export interface LiveRow {
  suite: 'live';
  guest: string;
  codec: string;
  link: string;
  status: string;
  'total-time': number;
  downtime: number | null;
  transferred: number;
  mbps: number;
  'dirty-sync-count': number;
  'dirty-pages-rate': number | null;
  'expected-downtime': number | null;
  'setup-time': number;
  remaining: number;
}

/** Pages per second the random writer dirties: 20 MiB/s of 4 KiB pages, below a 1 Gbit/s link. */
const DIRTY_PAGES_PER_SECOND = 5000;
const ONE_GBIT = 125_000_000;
const CODECS: ReadonlyArray<{ codec: CodecId; level?: number; label: string }> = [
  { codec: 'none', label: 'none' },
  { codec: 'zlib', level: 1, label: 'zlib-1' },
  { codec: 'zstd', level: 1, label: 'zstd-1' },
];
const LINKS = [
  { label: 'unlimited', maxBandwidth: 0 },
  { label: '1 Gbit/s', maxBandwidth: ONE_GBIT },
];

function row(guest: string, codec: string, link: string, stats: MigrationStats): LiveRow {
  return {
    suite: 'live',
    guest,
    codec,
    link,
    status: stats.status,
    'total-time': stats['total-time'],
    downtime: stats.downtime ?? null,
    transferred: stats.transferred,
    mbps: stats.mbps,
    'dirty-sync-count': stats['dirty-sync-count'],
    'dirty-pages-rate': stats['dirty-pages-rate'] ?? null,
    'expected-downtime': stats['expected-downtime'] ?? null,
    'setup-time': stats['setup-time'],
    remaining: stats.remaining,
  };
}

/** Runs the suite; prints a table (or NDJSON) and writes benchmarks/results/. */
export async function runLiveBench(options: LiveBenchOptions): Promise<LiveRow[]> {
  const sizeMiB = options.sizeMiB ?? (options.quick ? 128 : 512);
  const notes: string[] = [`random writer: ${DIRTY_PAGES_PER_SECOND} pages/s; downtime-limit 300 ms; 2 channels; 2 threads per side`];
  const peer = new BenchPeer();
  const pool = new WorkerPool({ threads: 2 });
  const rows: LiveRow[] = [];
  const progress = (text: string) => options.json || process.stderr.write(`\r\x1b[K${text}`);
  try {
    for (const mode of ['idle', 'random-writer'] as GuestMode[]) {
      for (const { codec, level, label } of CODECS) {
        for (const link of options.quick ? LINKS.slice(0, 1) : LINKS) {
          progress(`${mode} ${label} ${link.label}`);
          const memory = GuestMemory.create({ byteLength: sizeMiB << 20 });
          fillFromCorpus(memory);
          const dirtyLog = new ExplicitDirtyLog(memory);
          const guest = await startGuest({ memory, mode, dirtyLog, dirtyPagesPerSecond: DIRTY_PAGES_PER_SECOND });
          try {
            const stats = await liveRun(peer, pool, memory, { codec, level, maxBandwidth: link.maxBandwidth }, { dirtyLog, pause: () => guest.pause(), throttle: (p) => guest.setThrottle(p) });
            rows.push(row(mode, label, link.label, stats));
          } finally {
            await guest.stop();
          }
        }
      }
    }
    const trace = await vmTraceRow(peer, pool, notes, progress);
    if (trace) rows.push(trace);
  } finally {
    await pool.close();
    await peer.close();
  }
  progress('');
  if (options.json) for (const r of rows) console.log(JSON.stringify(r));
  else console.log(liveTable(rows) + `\n\nnotes:\n${notes.map((n) => `- ${n}`).join('\n')}`);
  const file = writeResults('live', { machine: machineInfo(), sizeMiB, rows, notes });
  if (!options.json) console.log(`\nresults: ${file}`);
  return rows;
}

async function liveRun(peer: BenchPeer, pool: WorkerPool, memory: GuestMemory, settings: { codec: CodecId; level?: number; maxBandwidth: number }, live: LiveOptions): Promise<MigrationStats> {
  const { stats } = await peer.migrate(2, { source: guestMemorySource(memory), pool, channels: 2, ...settings, live });
  return stats;
}

/**
 * The real VM's memory (t0) migrated while its recorded writes (t0 → t1 → t2) are replayed,
 * one snapshot interval per second: the trace's pages arrive as a guest's writes would.
 */
async function vmTraceRow(peer: BenchPeer, pool: WorkerPool, notes: string[], progress: (text: string) => void): Promise<LiveRow | undefined> {
  const snapshots = (['vm-512m-t0', 'vm-512m-t1', 'vm-512m-t2'] as const).map((name) => sharedDataFile(name));
  if (snapshots.some((path) => !path)) {
    notes.push('VM snapshots not found: no trace-replay row');
    return undefined;
  }
  progress('vm trace replay zstd-1');
  const memory = GuestMemory.create({ byteLength: 512 << 20 });
  fillMemoryFromFile(memory, snapshots[0]!);
  const log = new TraceDirtyLog(memory, await traceFromSnapshots(snapshots as string[], 4096));
  const player = setInterval(() => log.applyNext() || clearInterval(player), 1000);
  try {
    const stats = await liveRun(peer, pool, memory, { codec: 'zstd', level: 1, maxBandwidth: 0 }, { dirtyLog: log, pause: async () => clearInterval(player) });
    notes.push('vm-trace: the VM image t0 migrated while the recorded writes t0 → t1 → t2 are replayed, one step per second');
    return row('vm-trace', 'zstd-1', 'unlimited', stats);
  } finally {
    clearInterval(player);
  }
}

function liveTable(rows: readonly LiveRow[]): string {
  const header = ['guest', 'codec', 'link', 'total ms', 'downtime ms', 'transferred kB', 'mbps', 'rounds', 'dirty pages/s'];
  const body = rows.map((r) => [
    r.guest,
    r.codec,
    r.link,
    String(r['total-time']),
    String(r.downtime ?? '-'),
    String(Math.round(r.transferred / 1024)),
    r.mbps.toFixed(0),
    String(r['dirty-sync-count']),
    String(r['dirty-pages-rate'] ?? '-'),
  ]);
  return formatTable(header, body, 'lllrrrrrr');
}
