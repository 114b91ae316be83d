// The seeds suite's rows, their comparisons (ours against QEMU, and the CLI file to file against
// ours in memory), its targets and its terminal tables.
// Kept apart from the runner so the HTML report (report-html.ts) reads the same types.
import { formatTable } from './table.js';

/** One migration (the median of its runs), ours or QEMU's, as printed with --json. */
export interface SeedRow {
  suite: 'seeds';
  /** `cli-file`: a side-by-side cell run through the built CLI, file to file (benchmarks/cli-file.ts). */
  experiment: 'side-by-side' | 'zero-page' | 'matrix' | 'cli-file';
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
  /**
   * Ours: from the first connection to the receiver's checksum confirmation. QEMU: its
   * query-migrate total-time (source side). The CLI: from spawning the receiver to both
   * processes' exit, start-up included.
   */
  totalTimeMs: number;
  /** From the start to the destination's completion (ours: = totalTimeMs). */
  endToEndMs: number;
  /** Guest megabits per second over totalTimeMs. */
  mbps: number;
  pagesPerSec: number;
  /** Bytes on the wire (ours in memory); null for QEMU 7.2, which counts uncompressed bytes, and for the CLI rows (the same wire as in memory). */
  wireBytes: number | null;
  /** Each side's CPU time over endToEndMs, percent of one core; null for CLI rows without /usr/bin/time. */
  sendCpuPct: number | null;
  recvCpuPct: number | null;
  /** Both sides' CPU seconds per GiB of guest memory; null when either side's CPU is. */
  cpuSecondsPerGiB: number | null;
  /** Every run's totalTimeMs; this row is the median one. */
  runsMs: number[];
}

/**
 * One cell of ours in memory, beside QEMU and beside the CLI file to file where they ran it
 * (null where not): ratios below 1 mean ours in memory took less than QEMU, or the CLI less
 * than ours in memory.
 */
export interface SeedComparison {
  experiment: SeedRow['experiment'];
  data: string;
  method: string;
  channels: number;
  link: string;
  oursMs: number;
  qemuMs: number | null;
  qemuEndToEndMs: number | null;
  /** ours totalTimeMs / QEMU's total-time. */
  timeRatio: number | null;
  /** ours totalTimeMs / QEMU's end-to-end time. */
  endToEndRatio: number | null;
  oursCpuPerGiB: number | null;
  qemuCpuPerGiB: number | null;
  cpuRatio: number | null;
  /** The CLI file to file: its wall time, start-up included. */
  cliMs: number | null;
  /** cliMs / oursMs: what running the commands on files costs over the library in memory. */
  cliRatio: number | null;
  cliCpuPerGiB: number | null;
}

/** A target: pass when the ratio is at most `max` (ours ≤ QEMU's, or the CLI ≤ 1.15× ours in memory). */
export interface SeedTarget {
  label: string;
  ratio: number;
  max: number;
  pass: boolean;
}

/** The most the CLI file to file may take over ours in memory for the same cell. */
export const CLI_TARGET_MAX = 1.15;

const key = (r: Pick<SeedRow, 'experiment' | 'data' | 'method' | 'channels' | 'link'>, experiment = r.experiment) => `${experiment}|${r.data}|${r.method}|${r.channels}|${r.link}`;
const ratio = (ours: number | null, theirs: number | null) => (ours === null || theirs === null ? null : Number((ours / theirs).toFixed(3)));

/**
 * Every row of ours in memory that QEMU or the CLI ran too, with their figures beside it (for
 * all-zero memory: our multifd zero-page detection, never the legacy row).
 */
export function comparisons(rows: readonly SeedRow[]): SeedComparison[] {
  const qemu = new Map(rows.filter((r) => r.impl === 'qemu').map((r) => [key(r), r]));
  const cli = new Map(rows.filter((r) => r.experiment === 'cli-file').map((r) => [key(r, 'side-by-side'), r]));
  return rows.flatMap((mine) => {
    if (mine.impl !== 'multifd' || mine.experiment === 'cli-file' || mine.zeroPageDetection !== 'multifd') return [];
    const theirs = qemu.get(key(mine));
    const file = cli.get(key(mine));
    if (!theirs && !file) return [];
    return [{
      experiment: mine.experiment,
      data: mine.data,
      method: mine.method,
      channels: mine.channels,
      link: mine.link,
      oursMs: mine.totalTimeMs,
      qemuMs: theirs?.totalTimeMs ?? null,
      qemuEndToEndMs: theirs?.endToEndMs ?? null,
      timeRatio: ratio(mine.totalTimeMs, theirs?.totalTimeMs ?? null),
      endToEndRatio: ratio(mine.totalTimeMs, theirs?.endToEndMs ?? null),
      oursCpuPerGiB: mine.cpuSecondsPerGiB,
      qemuCpuPerGiB: theirs?.cpuSecondsPerGiB ?? null,
      cpuRatio: ratio(mine.cpuSecondsPerGiB, theirs?.cpuSecondsPerGiB ?? null),
      cliMs: file?.totalTimeMs ?? null,
      cliRatio: ratio(file?.totalTimeMs ?? null, mine.totalTimeMs),
      cliCpuPerGiB: file?.cpuSecondsPerGiB ?? null,
    }];
  });
}

/**
 * The targets of issue 11 against QEMU 7.2 side by side (ours / QEMU, at up to 4 channels, on
 * the corpus and the VM image): `none` total time ≤ 1.3× and CPU per GiB ≤ 1.5×; zstd-1 ≤ 1.0×
 * and ≤ 1.15×; zlib-1 time ≤ 0.65×; all-zero memory (the zero-page experiment, multifd
 * detection) time ≤ 0.7×. And in every cell the CLI ran, its file-to-file time at most
 * {@link CLI_TARGET_MAX} × ours in memory.
 */
export function seedTargets(compared: readonly SeedComparison[]): SeedTarget[] {
  const target = (label: string, value: number | null, max: number) => (value === null ? [] : [{ label, ratio: value, max, pass: value <= max }]);
  const limits: Record<string, { time: number; cpu?: number }> = { none: { time: 1.3, cpu: 1.5 }, 'zstd-1': { time: 1, cpu: 1.15 }, 'zlib-1': { time: 0.65 } };
  const ofQemu = compared
    .filter((c) => c.channels <= 4 && (c.experiment === 'side-by-side' ? limits[c.method] !== undefined : c.experiment === 'zero-page'))
    .flatMap((c) => {
      const limit = c.experiment === 'zero-page' ? { time: 0.7 } : limits[c.method]!;
      const cell = `${c.data} ${c.method}, ${c.channels} ch`;
      return [
        ...target(`${cell}: total time ours/QEMU`, c.timeRatio, limit.time),
        ...(limit.cpu === undefined ? [] : target(`${cell}: CPU s per GiB ours/QEMU`, c.cpuRatio, limit.cpu)),
      ];
    });
  const ofCli = compared.flatMap((c) => target(`${c.data} ${c.method}, ${c.channels} ch: total time CLI file to file/in memory`, c.cliRatio, CLI_TARGET_MAX));
  return [...ofQemu, ...ofCli];
}

/** Every experiment with its table's title, in the order the tables and the report show them. */
export const EXPERIMENTS: ReadonlyArray<readonly [SeedRow['experiment'], string]> = [
  ['side-by-side', 'Side by side (same memory, same channels and method)'],
  ['cli-file', 'The CLI, file to file (multifd receive and multifd send, start-up included)'],
  ['zero-page', 'All-zero memory (zero-page detection)'],
  ['matrix', 'Methods × channels × link'],
];

/** The terminal tables: side by side, the CLI, zero pages, the matrix, the ratios and the targets. */
export function seedTables(rows: readonly SeedRow[], compared: readonly SeedComparison[], targets: readonly SeedTarget[]): string {
  const parts: string[] = [];
  for (const [experiment, title] of EXPERIMENTS) {
    const selected = rows.filter((r) => r.experiment === experiment);
    if (selected.length) parts.push(`${title}\n\n${rowTable(selected)}`);
  }
  if (compared.length) parts.push(`Ours in memory / QEMU, and the CLI file to file / ours in memory\n\n${comparisonTable(compared)}`);
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
      fixed(r.sendCpuPct, 0),
      fixed(r.recvCpuPct, 0),
      fixed(r.cpuSecondsPerGiB, 2),
      r.runsMs.join(' '),
      r.backend,
    ]),
    'lllrrllrrrrrrrll',
  );
}

/** Ours/QEMU ratios of total time and CPU per GiB, and the CLI's time over ours in memory. */
export function comparisonTable(compared: readonly SeedComparison[]): string {
  const times = (value: number | null) => (value === null ? '-' : `${value.toFixed(2)}×`);
  return formatTable(
    ['experiment', 'data', 'method', 'ch', 'link', 'ours ms', 'QEMU ms', 'QEMU e2e ms', 'time ×', 'e2e ×', 'ours CPU s/GiB', 'QEMU CPU s/GiB', 'CPU ×', 'CLI ms', 'CLI ×', 'CLI CPU s/GiB'],
    compared.map((c) => [
      c.experiment,
      c.data,
      c.method,
      String(c.channels),
      c.link,
      String(c.oursMs),
      fixed(c.qemuMs, 0),
      fixed(c.qemuEndToEndMs, 0),
      times(c.timeRatio),
      times(c.endToEndRatio),
      fixed(c.oursCpuPerGiB, 2),
      fixed(c.qemuCpuPerGiB, 2),
      times(c.cpuRatio),
      fixed(c.cliMs, 0),
      times(c.cliRatio),
      fixed(c.cliCpuPerGiB, 2),
    ]),
    'lllrlrrrrrrrrrrr',
  );
}

/** `value` with `digits` decimals, or `-` when it was not measured. */
function fixed(value: number | null, digits: number): string {
  return value === null ? '-' : value.toFixed(digits);
}
