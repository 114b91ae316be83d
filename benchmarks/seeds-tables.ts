// The seeds suite's rows, their ours/QEMU comparisons, its targets and its terminal tables.
// Kept apart from the runner so the HTML report (report-html.ts) reads the same types.
import { formatTable } from './table.js';

/** One migration (the median of its runs), ours or QEMU's, as printed with --json. */
export interface SeedRow {
  suite: 'seeds';
  experiment: 'side-by-side' | 'zero-page' | 'matrix';
  impl: 'multifd' | 'qemu';
  /** `corpus`, `all-zero` or `vm-512m-t0`. */
  data: string;
  /** QEMU's method name and the level where it has one: `none`, `zlib-1`, `zstd-1`, `qatzip-1`, `qpl`, `uadk`. */
  method: string;
  /** What did the work, e.g. "software path (wasm-simd, …)" for the hardware methods here. */
  backend: string;
  channels: number;
  /** Worker threads per side; null for QEMU (one send and one receive thread per channel). */
  threads: number | null;
  link: string;
  zeroPageDetection: string;
  /** Guest memory moved. */
  bytes: number;
  /** Ours: from the first connection to the receiver's checksum confirmation. QEMU: its query-migrate total-time (source side). */
  totalTimeMs: number;
  /** From the start to the destination's completion (ours: = totalTimeMs). */
  endToEndMs: number;
  /** Guest megabits per second over totalTimeMs. */
  mbps: number;
  pagesPerSec: number;
  /** Bytes on the wire (ours); null for QEMU 7.2, which counts uncompressed bytes. */
  wireBytes: number | null;
  /** Each side's CPU time over endToEndMs, percent of one core. */
  sendCpuPct: number;
  recvCpuPct: number;
  /** Both sides' CPU seconds per GiB of guest memory. */
  cpuSecondsPerGiB: number;
  /** Every run's totalTimeMs; this row is the median one. */
  runsMs: number[];
}

/** Ours beside QEMU for one cell: ratios below 1 mean we took less. */
export interface SeedComparison {
  experiment: SeedRow['experiment'];
  data: string;
  method: string;
  channels: number;
  link: string;
  oursMs: number;
  qemuMs: number;
  qemuEndToEndMs: number;
  /** ours totalTimeMs / QEMU's total-time. */
  timeRatio: number;
  /** ours totalTimeMs / QEMU's end-to-end time. */
  endToEndRatio: number;
  oursCpuPerGiB: number;
  qemuCpuPerGiB: number;
  cpuRatio: number;
}

/** A side-by-side target: pass when ours ≤ QEMU's. */
export interface SeedTarget {
  label: string;
  ratio: number;
  max: number;
  pass: boolean;
}

const key = (r: Pick<SeedRow, 'experiment' | 'data' | 'method' | 'channels' | 'link'>) => `${r.experiment}|${r.data}|${r.method}|${r.channels}|${r.link}`;
const ratio = (ours: number, theirs: number) => Number((ours / theirs).toFixed(3));

/** Every QEMU row paired with our row of the same cell (for all-zero memory: our multifd zero-page detection). */
export function comparisons(rows: readonly SeedRow[]): SeedComparison[] {
  const ours = new Map(rows.filter((r) => r.impl === 'multifd' && r.zeroPageDetection === 'multifd').map((r) => [key(r), r]));
  return rows.flatMap((qemu) => {
    const mine = qemu.impl === 'qemu' ? ours.get(key(qemu)) : undefined;
    if (!mine) return [];
    return [{
      experiment: qemu.experiment,
      data: qemu.data,
      method: qemu.method,
      channels: qemu.channels,
      link: qemu.link,
      oursMs: mine.totalTimeMs,
      qemuMs: qemu.totalTimeMs,
      qemuEndToEndMs: qemu.endToEndMs,
      timeRatio: ratio(mine.totalTimeMs, qemu.totalTimeMs),
      endToEndRatio: ratio(mine.totalTimeMs, qemu.endToEndMs),
      oursCpuPerGiB: mine.cpuSecondsPerGiB,
      qemuCpuPerGiB: qemu.cpuSecondsPerGiB,
      cpuRatio: ratio(mine.cpuSecondsPerGiB, qemu.cpuSecondsPerGiB),
    }];
  });
}

/** The targets: on the corpus, none and zstd-1 at 1, 2 and 4 channels, ours ≤ QEMU in total time and in CPU per GiB. */
export function seedTargets(compared: readonly SeedComparison[]): SeedTarget[] {
  return compared
    .filter((c) => c.experiment === 'side-by-side' && c.data === 'corpus' && (c.method === 'none' || c.method === 'zstd-1') && c.channels <= 4)
    .flatMap((c) => [
      { label: `${c.method}, ${c.channels} ch: total time ours/QEMU`, ratio: c.timeRatio, max: 1, pass: c.timeRatio <= 1 },
      { label: `${c.method}, ${c.channels} ch: CPU s per GiB ours/QEMU`, ratio: c.cpuRatio, max: 1, pass: c.cpuRatio <= 1 },
    ]);
}

/** The terminal tables: side by side, zero pages, the matrix, the ratios and the targets. */
export function seedTables(rows: readonly SeedRow[], compared: readonly SeedComparison[], targets: readonly SeedTarget[]): string {
  const parts: string[] = [];
  for (const [experiment, title] of [['side-by-side', 'Side by side (same memory, same channels and method)'], ['zero-page', 'All-zero memory (zero-page detection)'], ['matrix', 'Methods × channels × link']] as const) {
    const selected = rows.filter((r) => r.experiment === experiment);
    if (selected.length) parts.push(`${title}\n\n${rowTable(selected)}`);
  }
  if (compared.length) parts.push(`Ours / QEMU\n\n${comparisonTable(compared)}`);
  if (targets.length) parts.push(targets.map((t) => `${t.pass ? 'pass' : 'MISS'}  ${t.label}: ${t.ratio.toFixed(2)}× (target ≤ ${t.max.toFixed(2)}×)`).join('\n'));
  return parts.join('\n\n');
}

/** The figures of the patch series' tables, one line per row. */
export function rowTable(rows: readonly SeedRow[]): string {
  return formatTable(
    ['impl', 'data', 'method', 'ch', 'th', 'link', 'zero pages', 'total ms', 'mbps', 'pages/s', 'ratio', 'send CPU %', 'recv CPU %', 'CPU s/GiB', 'runs ms', 'backend'],
    rows.map((r) => [
      r.impl,
      r.data,
      r.method,
      String(r.channels),
      r.threads === null ? '-' : String(r.threads),
      r.link,
      r.zeroPageDetection,
      String(r.totalTimeMs),
      String(r.mbps),
      String(r.pagesPerSec),
      r.wireBytes === null || r.wireBytes === 0 ? '-' : `x${(r.bytes / r.wireBytes).toFixed(2)}`,
      r.sendCpuPct.toFixed(0),
      r.recvCpuPct.toFixed(0),
      r.cpuSecondsPerGiB.toFixed(2),
      r.runsMs.join(' '),
      r.backend,
    ]),
    'lllrrllrrrrrrrll',
  );
}

/** Ours/QEMU ratios of total time and CPU per GiB. */
export function comparisonTable(compared: readonly SeedComparison[]): string {
  return formatTable(
    ['experiment', 'data', 'method', 'ch', 'link', 'ours ms', 'QEMU ms', 'QEMU e2e ms', 'time ×', 'e2e ×', 'ours CPU s/GiB', 'QEMU CPU s/GiB', 'CPU ×'],
    compared.map((c) => [
      c.experiment,
      c.data,
      c.method,
      String(c.channels),
      c.link,
      String(c.oursMs),
      String(c.qemuMs),
      String(c.qemuEndToEndMs),
      `${c.timeRatio.toFixed(2)}×`,
      `${c.endToEndRatio.toFixed(2)}×`,
      c.oursCpuPerGiB.toFixed(2),
      c.qemuCpuPerGiB.toFixed(2),
      `${c.cpuRatio.toFixed(2)}×`,
    ]),
    'lllrlrrrrrrrr',
  );
}
