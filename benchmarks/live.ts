// `multifd bench live`: the shape of the seed experiment's table (reference/seed-experiments.md
// §1): an idle guest and a guest writing random numbers into its RAM, migrated live with
// compression off, zlib level 1 and zstd-1, at unlimited bandwidth and at 1 Gbit/s; then a
// random writer too fast for 1 Gbit/s, with the default downtime-limit and with the downtime
// ramp; then the real VM's dirty trace replayed while its memory migrates. The receiver runs
// in a child process.
import type { CodecId } from '../src/codecs/types.js';
import { MultifdError } from '../src/errors.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import type { ConvergenceOptions } from '../src/migration/convergence.js';
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
  /** The downtime ramp, e.g. "300→2000 ms by 250"; "-" for a fixed downtime-limit. */
  ramp: string;
  status: string;
  'total-time': number;
  downtime: number | null;
  /** downtime-limit at the end, in ms: the ramp's last step, or the fixed limit. */
  'downtime-limit': number | null;
  transferred: number;
  mbps: number;
  'dirty-sync-count': number;
  /** Distinct pages dirtied per second between the last two syncs (QEMU's dirty-pages-rate). */
  'dirty-pages-rate': number | null;
  /** Pages the guest thread wrote per second while it ran, repeats of a page included; null for the trace replay. */
  'guest-writes-per-second': number | null;
  'expected-downtime': number | null;
  'setup-time': number;
  remaining: number;
}

/** Pages per second the random writer dirties: 20 MiB/s of 4 KiB pages, below a 1 Gbit/s link. */
const DIRTY_PAGES_PER_SECOND = 5000;
const ONE_GBIT = 125_000_000;
/**
 * The downtime ramp's guest: 40,000 pages/s (156 MiB/s) of random writes, more than 1 Gbit/s
 * drains (30,500 pages/s of 4 KiB), so its dirty set stops shrinking well above what 300 ms of
 * the link carries. Chosen for 512 MiB: a smaller guest's writes land on fewer distinct pages.
 */
const RAMP_DIRTY_PAGES_PER_SECOND = 40_000;
/** The ramp: downtime-limit 300 ms, raised 250 ms after each sync that said "not yet", up to 2 s. */
const RAMP: ConvergenceOptions = { downtimeLimitMs: 300, downtimeLimitMaxMs: 2000, downtimeRampStepMs: 250 };
const CODECS: ReadonlyArray<{ codec: CodecId; level?: number; label: string }> = [
  { codec: 'none', label: 'none' },
  { codec: 'zlib', level: 1, label: 'zlib-1' },
  { codec: 'zstd', level: 1, label: 'zstd-1' },
];
const LINKS = [
  { label: 'unlimited', maxBandwidth: 0 },
  { label: '1 Gbit/s', maxBandwidth: ONE_GBIT },
];

type LinkSettings = { codec: CodecId; level?: number; maxBandwidth: number };

/** A migration's final stats, a failed one's included, and the rate its guest wrote at. */
interface LiveRun {
  stats: MigrationStats;
  guestWritesPerSecond?: number;
}

function row(guest: string, codec: string, link: string, run: LiveRun, ramp = '-'): LiveRow {
  const { stats } = run;
  return {
    suite: 'live',
    guest,
    codec,
    link,
    ramp,
    status: stats.status,
    'total-time': stats['total-time'],
    downtime: stats.downtime ?? null,
    'downtime-limit': stats['downtime-limit'] ?? null,
    transferred: stats.transferred,
    mbps: stats.mbps,
    'dirty-sync-count': stats['dirty-sync-count'],
    'dirty-pages-rate': stats['dirty-pages-rate'] ?? null,
    'guest-writes-per-second': run.guestWritesPerSecond ?? null,
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
          const run = await guestRun(peer, pool, sizeMiB, mode, DIRTY_PAGES_PER_SECOND, { codec, level, maxBandwidth: link.maxBandwidth });
          rows.push(row(mode, label, link.label, run));
        }
      }
    }
    // A quick run has no 1 Gbit/s link, and the ramp's guest would run for a minute.
    if (!options.quick) rows.push(...(await rampRows(peer, pool, sizeMiB, notes, progress)));
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

/**
 * The downtime ramp, before and after, on 1 Gbit/s with compression off: the fast random
 * writer with the default convergence options does not converge (ERR_NOT_CONVERGING after
 * maxRounds, 30), and with the ramp switches over once downtime-limit covers its dirty set.
 */
async function rampRows(peer: BenchPeer, pool: WorkerPool, sizeMiB: number, notes: string[], progress: (text: string) => void): Promise<LiveRow[]> {
  const guest = `random-writer ${RAMP_DIRTY_PAGES_PER_SECOND}/s`;
  const ramp = `${RAMP.downtimeLimitMs}→${RAMP.downtimeLimitMaxMs} ms by ${RAMP.downtimeRampStepMs}`;
  const settings: LinkSettings = { codec: 'none', maxBandwidth: ONE_GBIT };
  progress(`${guest} none 1 Gbit/s, defaults`);
  const before = await guestRun(peer, pool, sizeMiB, 'random-writer', RAMP_DIRTY_PAGES_PER_SECOND, settings);
  progress(`${guest} none 1 Gbit/s, downtime ramp`);
  const after = await guestRun(peer, pool, sizeMiB, 'random-writer', RAMP_DIRTY_PAGES_PER_SECOND, settings, RAMP);
  notes.push(
    `${guest}: ${RAMP_DIRTY_PAGES_PER_SECOND} pages/s of random writes at 1 Gbit/s, codec none; first with the defaults (downtime-limit 300 ms, maxRounds 30), ` +
      `then with the downtime ramp (downtimeLimitMs ${RAMP.downtimeLimitMs}, downtimeLimitMaxMs ${RAMP.downtimeLimitMaxMs}, downtimeRampStepMs ${RAMP.downtimeRampStepMs}, maxRounds 30)`,
  );
  return [row(guest, 'none', '1 Gbit/s', before), row(guest, 'none', '1 Gbit/s', after, ramp)];
}

/** A fresh guest of `sizeMiB` filled from the corpus, migrated live while it runs; stopped however the migration ends. */
async function guestRun(peer: BenchPeer, pool: WorkerPool, sizeMiB: number, mode: GuestMode, dirtyPagesPerSecond: number, settings: LinkSettings, convergence: ConvergenceOptions = {}): Promise<LiveRun> {
  const memory = GuestMemory.create({ byteLength: sizeMiB << 20 });
  fillFromCorpus(memory);
  const dirtyLog = new ExplicitDirtyLog(memory);
  const guest = await startGuest({ memory, mode, dirtyLog, dirtyPagesPerSecond });
  const startedMs = performance.now();
  let pausedMs: number | undefined;
  const pause = async () => {
    await guest.pause();
    pausedMs = performance.now();
  };
  try {
    const stats = await liveRun(peer, pool, memory, settings, { ...convergence, dirtyLog, pause, throttle: (p) => guest.setThrottle(p) });
    const ranMs = (pausedMs ?? performance.now()) - startedMs;
    return { stats, guestWritesPerSecond: Math.round((guest.pagesWritten * 1000) / ranMs) };
  } finally {
    await guest.stop();
  }
}

/**
 * One live migration to a fresh receiver in the peer: its final stats, also when it failed
 * with ERR_NOT_CONVERGING (a row of its own); any other failure throws.
 */
async function liveRun(peer: BenchPeer, pool: WorkerPool, memory: GuestMemory, settings: LinkSettings, live: LiveOptions): Promise<MigrationStats> {
  // A failed migration's stats come only through onProgress, called once more at its end.
  let last: MigrationStats | undefined;
  try {
    return (await peer.migrate(2, { source: guestMemorySource(memory), pool, channels: 2, ...settings, live, onProgress: (snapshot) => (last = snapshot) })).stats;
  } catch (error) {
    if (!(error instanceof MultifdError && error.code === 'ERR_NOT_CONVERGING')) throw error;
    return last!;
  }
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
    return row('vm-trace', 'zstd-1', 'unlimited', { stats });
  } finally {
    clearInterval(player);
  }
}

function liveTable(rows: readonly LiveRow[]): string {
  const header = ['guest', 'codec', 'link', 'ramp', 'status', 'total ms', 'downtime ms', 'limit ms', 'transferred kB', 'mbps', 'rounds', 'dirty pages/s', 'writes/s'];
  const body = rows.map((r) => [
    r.guest,
    r.codec,
    r.link,
    r.ramp,
    r.status,
    String(r['total-time']),
    String(r.downtime ?? '-'),
    String(r['downtime-limit'] ?? '-'),
    String(Math.round(r.transferred / 1024)),
    r.mbps.toFixed(0),
    String(r['dirty-sync-count']),
    String(r['dirty-pages-rate'] ?? '-'),
    String(r['guest-writes-per-second'] ?? '-'),
  ]);
  return formatTable(header, body, 'lllllrrrrrrrr');
}
