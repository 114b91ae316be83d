// A small seeds results set, as benchmarks/seeds.ts writes it, for the report's tests: a matrix
// of two methods × three channel counts × two links (ours and QEMU), side-by-side rows of the
// corpus and all-zero memory, the CLI file-to-file rows of the corpus cells (1.1× ours in
// memory, zstd-1 at 4 channels 1.2×), and our legacy zero-page row that has no QEMU twin.
import type { SeedRow } from '../../benchmarks/seeds-tables.js';
import { comparisons, seedTargets } from '../../benchmarks/seeds-tables.js';
import type { SeedsResults } from '../../benchmarks/report-html.js';

/** One row with plausible figures; `scale` > 1 makes it slower. */
export function seedRow(fields: Partial<SeedRow> & Pick<SeedRow, 'experiment' | 'impl' | 'method' | 'channels'>, scale = 1): SeedRow {
  const bytes = 64 << 20;
  const totalTimeMs = Math.round(100 * scale * (fields.method === 'none' ? 1 : 3) / Math.sqrt(fields.channels));
  return {
    suite: 'seeds',
    data: 'corpus',
    backend: fields.impl === 'qemu' ? 'QEMU 7.2.22' : 'wasm-simd: zstd 1.5.4',
    threads: fields.impl === 'qemu' ? null : 2,
    link: 'unlimited',
    zeroPageDetection: fields.impl === 'qemu' ? 'legacy' : 'multifd',
    bytes,
    totalTimeMs,
    endToEndMs: totalTimeMs + (fields.impl === 'qemu' ? 2 : 0),
    mbps: Math.round((bytes * 8) / 1e3 / totalTimeMs),
    pagesPerSec: Math.round(bytes / 4096 / (totalTimeMs / 1000)),
    wireBytes: fields.impl === 'qemu' ? null : bytes / (fields.method === 'none' ? 1 : 3),
    sendCpuPct: 60 * scale,
    recvCpuPct: 40 * scale,
    cpuSecondsPerGiB: 2 * scale,
    runsMs: [totalTimeMs],
    ...fields,
  };
}

/** The fixture results. */
export function seedResults(): SeedsResults {
  const rows: SeedRow[] = [];
  for (const impl of ['multifd', 'qemu'] as const) {
    const scale = impl === 'qemu' ? 0.8 : 1;
    for (const method of ['none', 'zstd-1']) {
      for (const channels of [1, 2, 4]) rows.push(seedRow({ experiment: 'side-by-side', impl, method, channels }, scale));
      for (const link of ['unlimited', '1 Gbit/s']) {
        for (const channels of [1, 2, 4]) rows.push(seedRow({ experiment: 'matrix', impl, method, channels, link, bytes: 8 << 20 }, scale));
      }
    }
    rows.push(seedRow({ experiment: 'zero-page', impl, method: 'none', channels: 2, data: 'all-zero', wireBytes: impl === 'qemu' ? null : 4096 }, scale));
  }
  for (const method of ['none', 'zstd-1']) {
    for (const channels of [1, 2, 4]) rows.push(seedRow({ experiment: 'cli-file', impl: 'multifd', method, channels, wireBytes: null }, method === 'zstd-1' && channels === 4 ? 1.2 : 1.1));
  }
  rows.push(seedRow({ experiment: 'zero-page', impl: 'multifd', method: 'none', channels: 4, data: 'all-zero', zeroPageDetection: 'legacy' }));
  const compared = comparisons(rows);
  return { machine: { cpu: 'test CPU', cores: 2, qemu: 'QEMU emulator version 7.2.22', loadAverage: [0.5, 0.5, 0.5], loadAverageEnd: [0.6, 0.5, 0.5] }, sizeMiB: 64, matrixMiB: 8, repeat: 1, threadsPerSide: 2, rows, comparisons: compared, targets: seedTargets(compared), notes: ['a note <with> markup'] };
}
