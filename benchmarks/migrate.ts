// `multifd bench migrate`: whole migrations over loopback TCP, the sender in this process and
// the receiver in a child process (each side's CPU is its own, as on two hosts), for memory
// filled from the corpus, all-zero memory and the real VM image: codecs none, lz4, zstd-1 and
// zlib-1 at 1, 2 and 4 channels and 1 and 2 threads. In the same run: a plain Node TCP stream
// moving the same bytes (warmed up first, then sampled between our datasets: the median of the
// samples is the baseline), and the SIMD zero-scan rate, which the targets compare against; and
// what TLS costs: none and zstd-1 on the corpus at 2 channels again, every connection under
// TLS 1.3 with a pre-shared key.
import { randomBytes } from 'node:crypto';
import { connect as connectTcp } from 'node:net';
import type { CodecId } from '../src/codecs/types.js';
import { GuestMemory } from '../src/memory/guest-memory.js';
import { guestMemorySource } from '../src/migration/source.js';
import { WorkerPool } from '../src/pool/pool.js';
import { parseEndpoint } from '../src/transport/index.js';
import { fillMemoryFromFile } from '../src/cli/demo-content.js';
import { sharedDataFile } from './data.js';
import { BenchPeer } from './peer.js';
import { machineInfo, writeResults } from './results.js';
import { formatTable } from './table.js';
import { median } from './timing.js';
import { measureWasmScan } from './zero-scan.js';

/** Options of `multifd bench migrate`. */
export interface MigrateBenchOptions {
  readonly json: boolean;
  /** Guest memory per dataset in MiB (default 1024; 256 with `quick`). */
  readonly sizeMiB?: number;
  /** One channel count and one thread count, for a fast check. */
  readonly quick?: boolean;
}

/** One migration, as printed with --json. */
export interface MigrateRow {
  suite: 'migrate';
  data: string;
  codec: string;
  channels: number;
  threads: number;
  /** `tls`: every connection under TLS 1.3 (PSK). */
  transport: 'tcp' | 'tls';
  totalTimeMs: number;
  /** Guest memory moved, megabits per second. */
  mbps: number;
  pagesPerSec: number;
  wireBytes: number;
  /** Guest bytes / wire bytes. */
  ratio: number;
  headerBytes: number;
  sendCpuPct: number;
  recvCpuPct: number;
  baseline: { name: string; mbps: number };
}

const CODECS: ReadonlyArray<{ codec: CodecId; level?: number; label: string }> = [
  { codec: 'none', label: 'none' },
  { codec: 'lz4', label: 'lz4' },
  { codec: 'zstd', level: 1, label: 'zstd-1' },
  { codec: 'zlib', level: 1, label: 'zlib-1' },
];

/** The memories to migrate; every one is written before it is measured (DESIGN §8). */
function datasets(bytes: number, notes: string[]): Array<{ name: string; memory: GuestMemory }> {
  const sets: Array<{ name: string; memory: GuestMemory }> = [];
  const corpus = sharedDataFile('corpus-mix');
  if (corpus) {
    const memory = GuestMemory.create({ byteLength: bytes });
    fillMemoryFromFile(memory, corpus);
    sets.push({ name: 'corpus', memory });
  } else {
    notes.push('corpus-mix not found: the corpus rows are missing');
  }
  const zero = GuestMemory.create({ byteLength: bytes });
  for (const block of zero.blocks) block.bytes().fill(0);
  sets.push({ name: 'all-zero', memory: zero });
  const vm = sharedDataFile('vm-512m-t0');
  if (vm) {
    const memory = GuestMemory.create({ byteLength: 512 << 20 });
    fillMemoryFromFile(memory, vm);
    sets.push({ name: 'vm-512m-t0', memory });
  } else {
    notes.push('vm-512m-t0 not found: the VM image rows are missing');
  }
  return sets;
}

/** One plain TCP stream moving `bytes` to the peer (512 KiB writes, with backpressure), in mbps. */
async function rawLoopbackMbps(peer: BenchPeer, bytes: number): Promise<number> {
  const sink = await peer.raw(bytes);
  const { port } = parseEndpoint(sink.address) as { port: number };
  const socket = connectTcp(port, '127.0.0.1');
  await new Promise((resolve) => socket.once('connect', resolve));
  const chunk = Buffer.alloc(512 << 10, 0x5a);
  for (let sent = 0; sent < bytes; sent += chunk.byteLength) {
    if (!socket.write(chunk)) await new Promise((resolve) => socket.once('drain', resolve));
  }
  const { rawMs } = await sink.done;
  socket.end();
  return (bytes * 8) / 1000 / rawMs!;
}

/** Runs the suite; prints a table (or NDJSON with `json`) and writes benchmarks/results/. */
export async function runMigrateBench(options: MigrateBenchOptions): Promise<MigrateRow[]> {
  const sizeMiB = options.sizeMiB ?? (options.quick ? 256 : 1024);
  const notes: string[] = [];
  const sets = datasets(sizeMiB << 20, notes);
  const channelCounts = options.quick ? [2] : [1, 2, 4];
  const threadCounts = options.quick ? [2] : [1, 2];
  const peer = new BenchPeer();
  const rows: MigrateRow[] = [];
  // The raw stream is measured like our rows: warmed up (not recorded), then sampled once
  // before and once after every dataset, interleaved with ours, so a quiet or busy stretch of a
  // shared machine weighs on both; its median is the baseline of every row.
  const rawSamples: number[] = [];
  const sampleRaw = async () => void rawSamples.push(await rawLoopbackMbps(peer, sizeMiB << 20));
  try {
    await rawLoopbackMbps(peer, sizeMiB << 20);
    await sampleRaw();
    const zeroScanGBps = measureWasmScan(256 << 20, 5);
    for (const threads of threadCounts) {
      const pool = new WorkerPool({ threads });
      try {
        // Warm-up, not recorded: the first migration of a pool pays for JIT, WASM compilation
        // in every worker and the receiver's first page faults.
        await peer.migrate(threads, { source: guestMemorySource(sets[0]!.memory), channels: 2, pool });
        for (const { name, memory } of sets) {
          for (const { codec, level, label } of CODECS) {
            for (const channels of channelCounts) {
              const transports = name === 'corpus' && channels === 2 && threads === Math.max(...threadCounts) && (codec === 'none' || codec === 'zstd') ? (['tcp', 'tls'] as const) : (['tcp'] as const);
              for (const transport of transports) {
                if (!options.json) process.stderr.write(`\r\x1b[K${name} ${label} ${channels} ch ${threads} th ${transport}`);
                const psk = transport === 'tls' ? randomBytes(32).toString('hex') : undefined;
                const { stats, recvCpuMicros } = await peer.migrate(threads, { source: guestMemorySource(memory), codec, level, channels, pool }, psk);
                rows.push({
                  suite: 'migrate',
                  data: name,
                  codec: label,
                  channels,
                  threads,
                  transport,
                  totalTimeMs: stats['total-time'],
                  mbps: stats['guest-mbps'],
                  pagesPerSec: stats['pages-per-second'],
                  wireBytes: stats.transferred,
                  ratio: stats['compression-ratio'],
                  headerBytes: stats['header-bytes'],
                  sendCpuPct: stats['send-cpu-percent'],
                  recvCpuPct: Math.round((recvCpuMicros / 10 / stats['total-time']) * 100) / 100,
                  baseline: { name: 'node TCP stream', mbps: 0 }, // the median of the samples, set below
                });
              }
            }
          }
          await sampleRaw();
        }
      } finally {
        await pool.close();
      }
    }
    if (!options.json) process.stderr.write('\r\x1b[K');
    const rawMbps = median(rawSamples);
    for (const row of rows) row.baseline.mbps = Math.round(rawMbps);
    const targets = checkTargets(rows, rawMbps, zeroScanGBps);
    if (options.json) for (const row of rows) console.log(JSON.stringify(row));
    else console.log(migrateTable(rows) + '\n\n' + targets.map((t) => `${t.pass ? 'pass' : 'MISS'}  ${t.label}`).join('\n') + (notes.length ? `\n\nnotes:\n${notes.map((n) => `- ${n}`).join('\n')}` : ''));
    const file = writeResults('migrate', { machine: machineInfo(), sizeMiB, rawLoopbackMbps: rawMbps, rawLoopbackSamplesMbps: rawSamples.map(Math.round), zeroScanGBps, rows, targets, notes });
    if (!options.json) console.log(`\nresults: ${file}`);
    return rows;
  } finally {
    await peer.close();
  }
}

interface Target {
  label: string;
  pass: boolean;
}

/** The issue's targets, each a ratio within this run. */
function checkTargets(rows: readonly MigrateRow[], rawMbps: number, zeroScanGBps: number): Target[] {
  const find = (data: string, codec: string, channels: number, threads: number, transport = 'tcp') =>
    rows.find((r) => r.data === data && r.codec === codec && r.channels === channels && r.threads === threads && r.transport === transport);
  const targets: Target[] = [];
  const maxThreads = Math.max(...rows.map((r) => r.threads));
  const none2 = find('corpus', 'none', 2, maxThreads);
  if (none2) targets.push({ label: `none, 2 channels: ${(none2.mbps / rawMbps).toFixed(2)}× the raw loopback stream (${Math.round(rawMbps)} mbps); target ≥ 0.70×`, pass: none2.mbps >= 0.7 * rawMbps });
  const zero = find('all-zero', 'none', 2, maxThreads);
  if (zero) {
    const scanMbps = zeroScanGBps * 8000;
    targets.push({ label: `all-zero memory: ${(zero.mbps / scanMbps).toFixed(2)}× the SIMD zero-scan rate (${zeroScanGBps.toFixed(1)} GB/s); target ≥ 0.5×`, pass: zero.mbps >= 0.5 * scanMbps });
  }
  const zstd1 = find('corpus', 'zstd-1', 2, 1);
  const zstd2 = find('corpus', 'zstd-1', 2, 2);
  if (zstd1 && zstd2) targets.push({ label: `zstd-1 with 2 threads: ${(zstd2.mbps / zstd1.mbps).toFixed(2)}× its 1-thread throughput; target ≥ 1.7×`, pass: zstd2.mbps >= 1.7 * zstd1.mbps });
  for (const codec of ['none', 'zstd-1']) {
    const plain = find('corpus', codec, 2, maxThreads);
    const tls = find('corpus', codec, 2, maxThreads, 'tls');
    if (plain && tls) {
      const cpu = (r: MigrateRow) => r.sendCpuPct + r.recvCpuPct;
      targets.push({ label: `TLS cost, ${codec} at 2 channels: ${(tls.mbps / plain.mbps).toFixed(2)}× the plain throughput, ${(cpu(tls) / cpu(plain)).toFixed(2)}× the CPU % (measured, no target)`, pass: true });
    }
  }
  const corpus = rows.filter((r) => r.data === 'corpus');
  if (corpus.length) {
    const worst = Math.max(...corpus.map((r) => r.headerBytes / r.wireBytes));
    targets.push({ label: `headers: at most ${(worst * 100).toFixed(3)} % of wire bytes on the corpus; target ≤ 0.5 %`, pass: worst <= 0.005 });
  }
  return targets;
}

function migrateTable(rows: readonly MigrateRow[]): string {
  const header = ['data', 'codec', 'ch', 'th', 'transport', 'total ms', 'mbps', 'pages/s', 'wire MiB', 'ratio', 'send CPU %', 'recv CPU %', 'vs raw TCP'];
  const body = rows.map((r) => [
    r.data,
    r.codec,
    String(r.channels),
    String(r.threads),
    r.transport,
    String(r.totalTimeMs),
    String(Math.round(r.mbps)),
    String(r.pagesPerSec),
    (r.wireBytes / 2 ** 20).toFixed(1),
    r.ratio.toFixed(2),
    r.sendCpuPct.toFixed(0),
    r.recvCpuPct.toFixed(0),
    `${(r.mbps / r.baseline.mbps).toFixed(2)}×`,
  ]);
  return formatTable(header, body, 'llrrlrrrrrrrr');
}
