// `multifd bench codecs`: every registered codec compressing and decompressing 512 KiB packets
// of real data on this thread, each against the native code it is built from (or competes
// with), measured in the same run on the same bytes; then the zero-page scan against native
// C. Only ratios ours/native are comparable across runs on a shared machine, so those carry
// the targets. Runnable directly: node --import tsx benchmarks/codecs.ts [--json] [--size MiB] [--quick]
import { availableParallelism, loadavg } from 'node:os';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { getCodec, listCodecs } from '../src/codecs/registry.js';
import type { Codec } from '../src/codecs/types.js';
import { loadDatasets, PACKET_BYTES, PAGE_BYTES, type Dataset } from './data.js';
import { cliBenchmark, memcpyBaseline, nodeZlibBaseline, type BaselineResult } from './native-baselines.js';
import { machineInfo, writeResults, type BenchRow, type MachineInfo, type CodecRow, type TargetResult, type ZeroScanRow } from './results.js';
import { codecTable, targetLines, zeroScanTable } from './table.js';
import { bestSeconds, megabytesPerSecond, packetsOf, pagesOf, round } from './timing.js';
import { runZeroScanBench } from './zero-scan.js';

/** Options of `multifd bench codecs`. */
export interface CodecBenchOptions {
  /** One JSON object per row on stdout instead of the table. */
  readonly json: boolean;
  /** Sample size per dataset in MiB (default 64, or 8 with `quick`). */
  readonly sizeMiB?: number;
  /** A smaller sample and shorter baseline runs, for a fast check. */
  readonly quick?: boolean;
}

const REPETITIONS = 3;
/** Untimed work before each of our timed directions (see bestSeconds). */
const WARM_UP_SECONDS = 0.3;
const ZERO_SCAN_REPETITIONS = 5;
const ZERO_SCAN_BYTES = 256 * 2 ** 20;
/** Levels measured besides level 1: QEMU's default zstd level and zlib's usual default. */
const EXTRA_LEVELS: Readonly<Record<string, readonly number[]>> = { zstd: [3], zlib: [6] };

/** Targets on ours/baseline, checked per dataset. */
const CODEC_TARGETS = [
  { codec: 'zstd', level: 1, direction: 'compress', min: 0.7 },
  { codec: 'zstd', level: 1, direction: 'decompress', min: 0.6 },
  { codec: 'lz4', level: 1, direction: 'compress', min: 0.6 },
  { codec: 'zlib', level: 1, direction: 'compress', min: 0.8 },
] as const;
const ZERO_SCAN_TARGET = 0.9;

/**
 * Runs the codec and zero-scan suites, prints a table (or NDJSON rows with `json`), writes
 * the full results with machine information to benchmarks/results/, and returns the rows.
 * @throws Error when a codec's decoded bytes differ from its input.
 */
export async function runCodecBench(options: CodecBenchOptions): Promise<BenchRow[]> {
  const started = process.hrtime.bigint();
  const loadAtStart = loadavg()[0]!;
  const sizeMiB = options.sizeMiB ?? (options.quick ? 8 : 64);
  if (!(sizeMiB > 0)) throw new RangeError(`sample size must be a positive number of MiB, got ${options.sizeMiB}`);
  const cliSeconds = options.quick ? 1 : 2;
  const notes: string[] = [];
  const datasets = loadDatasets(sizeMiB * 2 ** 20, notes);
  const runs = codecRuns(notes);

  const codecRows: CodecRow[] = [];
  const baselines: Array<BaselineResult & { data: string }> = [];
  for (const dataset of datasets) {
    const packets = packetsOf(dataset.sample, PACKET_BYTES);
    const measured = new Map<string, BaselineResult>();
    for (const { codec, level } of runs) {
      progress(`${dataset.name}: ${codec.info.id}${level === null ? '' : ` level ${level}`}`);
      const ours = measureCodec(codec, level, packets);
      const { name, compressMBps, decompressMBps } = baselineFor(codec.info.id, level ?? 1, dataset, packets, cliSeconds, measured);
      codecRows.push({ suite: 'codecs', codec: codec.info.id, level, data: dataset.name, ...ours, baseline: { name, compressMBps, decompressMBps } });
    }
    for (const baseline of measured.values()) {
      baselines.push({ data: dataset.name, ...baseline });
      if (baseline.reason) notes.push(`${dataset.name}: baseline ${baseline.name}: ${baseline.reason}`);
    }
  }

  progress('zero scan');
  const zeroRows = await runZeroScanBench(ZERO_SCAN_BYTES, ZERO_SCAN_REPETITIONS, notes);
  const targets = checkTargets(codecRows, zeroRows, datasets);
  noteBusyMachine(loadAtStart, notes);
  const rows: BenchRow[] = [...codecRows, ...zeroRows];
  const machine = machineInfo();
  const resultsPath = writeResults('codecs', {
    suite: 'codecs',
    machine,
    options: { sizeMiB, quick: options.quick ?? false, repetitions: REPETITIONS, cliSeconds, zeroScanBytes: ZERO_SCAN_BYTES },
    datasets: datasets.map(({ name, description, samplePath, sample }) => ({ name, description, samplePath, bytes: sample.byteLength })),
    rows,
    baselines,
    targets,
    notes,
    durationSeconds: Number(process.hrtime.bigint() - started) / 1e9,
  });

  printReport(options.json, { machine, datasets, codecRows, zeroRows, targets, notes, resultsPath });
  return rows;
}

interface Report {
  readonly machine: MachineInfo;
  readonly datasets: readonly Dataset[];
  readonly codecRows: readonly CodecRow[];
  readonly zeroRows: readonly ZeroScanRow[];
  readonly targets: readonly TargetResult[];
  readonly notes: readonly string[];
  readonly resultsPath: string;
}

/** NDJSON rows on stdout (notes on stderr), or the tables, targets and notes as text. */
function printReport(json: boolean, { machine, datasets, codecRows, zeroRows, targets, notes, resultsPath }: Report): void {
  if (json) {
    for (const row of [...codecRows, ...zeroRows]) process.stdout.write(JSON.stringify(row) + '\n');
    for (const note of notes) process.stderr.write(`note: ${note}\n`);
    process.stderr.write(`results: ${resultsPath}\n`);
    return;
  }
  const header = `multifd codec benchmark: ${machine.cpu}, ${machine.cores} cores, Node ${machine.node}, wasm ${machine.wasmVariant}, best of ${REPETITIONS}`;
  const data = datasets.map((d) => `  ${d.name}: ${d.description}`).join('\n');
  const sections = [header, `data:\n${data}`, codecTable(codecRows), zeroScanTable(zeroRows), `targets:\n${targetLines(targets)}`];
  if (notes.length > 0) sections.push(`notes:\n${notes.map((n) => `  - ${n}`).join('\n')}`);
  sections.push(`results: ${resultsPath}`);
  process.stdout.write(sections.join('\n\n') + '\n');
}

/** Every available codec at level 1 plus EXTRA_LEVELS, or once when it has no levels. */
function codecRuns(notes: string[]): Array<{ codec: Codec; level: number | null }> {
  const runs: Array<{ codec: Codec; level: number | null }> = [];
  for (const { id, levels, backend } of listCodecs()) {
    if (!backend.available) {
      notes.push(`${id}: not measured, ${backend.reason}`);
      continue;
    }
    // The hardware formats: which path ran here (uadk without a device sends pages raw, as QEMU).
    if (backend.name.startsWith('native') || backend.reason.includes('no hardware')) notes.push(`${id}: ${backend.reason}`);
    const codec = getCodec(id);
    for (const level of levels ? [1, ...(EXTRA_LEVELS[id] ?? [])] : [null]) runs.push({ codec, level });
  }
  return runs;
}

/**
 * Encodes every packet (128 pages each) with one encoder, then decodes every payload with one
 * decoder, as a multifd channel does; the copies into and out of WASM memory are part of the
 * cost. Checks once that the decoded bytes equal the input.
 */
export function measureCodec(codec: Codec, level: number | null, packets: readonly Uint8Array[]) {
  const options = { pageSize: PAGE_BYTES, maxPages: PACKET_BYTES / PAGE_BYTES, ...(level === null ? {} : { level }) };
  const encoder = codec.createEncoder(options);
  const decoder = codec.createDecoder(options);
  const bytes = packets.length * PACKET_BYTES;
  const inputPages = packets.map((packet) => pagesOf(packet, PAGE_BYTES));
  const bound = encoder.payloadBound(PACKET_BYTES / PAGE_BYTES);
  const outputs = packetsOf(new Uint8Array(bound * packets.length), bound);
  const lengths = new Array<number>(packets.length).fill(0);
  const compress = bestSeconds(REPETITIONS, () => {
    for (let i = 0; i < packets.length; i++) lengths[i] = encoder.encode(inputPages[i]!, outputs[i]!);
  }, WARM_UP_SECONDS);

  const payloads = outputs.map((out, i) => out.subarray(0, lengths[i]));
  // Pre-filled with a non-zero byte so a page the decoder never writes cannot pass as zero.
  const restored = new Uint8Array(bytes).fill(0xd6);
  const restoredPages = packetsOf(restored, PACKET_BYTES).map((packet) => pagesOf(packet, PAGE_BYTES));
  const decompress = bestSeconds(REPETITIONS, () => {
    for (let i = 0; i < payloads.length; i++) decoder.decode(payloads[i]!, restoredPages[i]!);
  }, WARM_UP_SECONDS);
  const original = Buffer.concat(packets);
  if (!original.equals(restored)) {
    const at = original.findIndex((byte, i) => byte !== restored[i]);
    throw new Error(`${codec.info.id} level ${level ?? '-'}: decoded bytes differ from the input at sample offset ${at} (packet ${Math.floor(at / PACKET_BYTES)})`);
  }
  const payloadBytes = lengths.reduce((sum, n) => sum + n, 0);
  return {
    compressMBps: round(megabytesPerSecond(bytes, compress), 1),
    decompressMBps: round(megabytesPerSecond(bytes, decompress), 1),
    ratio: round(bytes / payloadBytes, 3),
  };
}

/**
 * The native counterpart of a codec, measured once per dataset and reused (zlib, qatzip,
 * qpl and uadk all hold against node:zlib raw deflate; hardware formats are fixed at level 1).
 */
function baselineFor(
  id: string,
  level: number,
  dataset: Dataset,
  packets: readonly Uint8Array[],
  cliSeconds: number,
  measured: Map<string, BaselineResult>,
): BaselineResult {
  const key = `${id === 'zstd' || id === 'lz4' || id === 'none' ? id : 'deflate'} ${level}`;
  let baseline = measured.get(key);
  if (!baseline) {
    if (id === 'zstd' || id === 'lz4') baseline = cliBenchmark(id, level, dataset.samplePath, cliSeconds);
    else if (id === 'none') baseline = memcpyBaseline(packets, REPETITIONS);
    else baseline = nodeZlibBaseline(packets, level, REPETITIONS);
    baseline = { ...baseline, compressMBps: round(baseline.compressMBps, 1), decompressMBps: round(baseline.decompressMBps, 1), ratio: round(baseline.ratio, 3) };
    measured.set(key, baseline);
  }
  return baseline;
}

/** Each target's ours/baseline ratio; null (shown as SKIP) when either side was not measured. */
function checkTargets(codecRows: readonly CodecRow[], zeroRows: readonly ZeroScanRow[], datasets: readonly Dataset[]): TargetResult[] {
  const results: TargetResult[] = [];
  const check = (label: string, ours: number | undefined, theirs: number | null | undefined, min: number) => {
    const ratio = ours !== undefined && theirs ? ours / theirs : null;
    results.push({ label, ratio: round(ratio, 3), min, pass: ratio !== null && ratio >= min });
  };
  for (const { name } of datasets) {
    for (const t of CODEC_TARGETS) {
      const row = codecRows.find((r) => r.codec === t.codec && r.level === t.level && r.data === name);
      const key = t.direction === 'compress' ? 'compressMBps' : 'decompressMBps';
      check(`${t.codec}-${t.level} ${t.direction} vs ${row?.baseline.name ?? 'its baseline'} on ${name}`, row?.[key], row?.baseline[key], t.min);
    }
  }
  const simd = zeroRows.find((r) => r.impl === 'wasm-simd');
  check('wasm-simd zero scan vs native C (gcc -O3)', simd?.GBps, simd?.baselineGBps, ZERO_SCAN_TARGET);
  return results;
}

/**
 * Wall-clock figures from an oversubscribed machine are noise. A load average above the core
 * count (plus a margin) at either end means more runnable threads than cores, so this run's
 * single thread will have waited for a core some of the time.
 */
function noteBusyMachine(loadAtStart: number, notes: string[]): void {
  const loadAtEnd = loadavg()[0]!;
  const cores = availableParallelism();
  if (Math.max(loadAtStart, loadAtEnd) > cores + 0.5) {
    notes.push(`busy machine: 1-minute load average ${loadAtStart.toFixed(1)} at the start, ${loadAtEnd.toFixed(1)} at the end, on ${cores} cores; other processes competed for the CPU, so speeds are low and noisy (compare the × columns, or rerun on a quiet machine)`);
  }
}

function progress(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

// Run directly (node --import tsx benchmarks/codecs.ts). The file-name test keeps a bundle that
// inlines this module (the CLI) from running it at startup: there import.meta.url is the bundle.
const thisFile = fileURLToPath(import.meta.url);
if (/[\\/]codecs\.[jt]s$/.test(thisFile) && resolve(process.argv[1] ?? '') === thisFile) {
  const { values } = parseArgs({ options: { json: { type: 'boolean' }, size: { type: 'string' }, quick: { type: 'boolean' } } });
  await runCodecBench({ json: values.json ?? false, quick: values.quick, sizeMiB: values.size === undefined ? undefined : Number(values.size) });
}
