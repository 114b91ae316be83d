// Plain aligned text tables for the terminal: numbers right-aligned, a dash where a baseline
// could not be measured, and ours/baseline as a multiplier (the figure that survives a
// noisy shared machine; absolute MB/s do not).
import type { CodecRow, TargetResult, ZeroScanRow } from './results.js';

/** Pads every column to its widest cell; `align` has one 'l' or 'r' per column. */
export function formatTable(header: readonly string[], rows: readonly (readonly string[])[], align: string): string {
  const widths = header.map((h, c) => Math.max(h.length, ...rows.map((row) => row[c]!.length)));
  const line = (cells: readonly string[]) =>
    cells.map((cell, c) => (align[c] === 'r' ? cell.padStart(widths[c]!) : cell.padEnd(widths[c]!))).join('  ').trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

const speed = (v: number | null) => (v === null ? '-' : v >= 100 ? v.toFixed(0) : v.toFixed(1));
const times = (ours: number, theirs: number | null) => (theirs === null ? '-' : `${(ours / theirs).toFixed(2)}×`);

/** The codec suite: ours, the baseline, and ours/baseline for each direction. */
export function codecTable(rows: readonly CodecRow[]): string {
  return formatTable(
    ['codec', 'level', 'data', 'comp MB/s', 'decomp MB/s', 'ratio', 'baseline', 'base comp', 'base decomp', 'comp ×', 'decomp ×'],
    rows.map((r) => [
      r.codec,
      r.level === null ? '-' : String(r.level),
      r.data,
      speed(r.compressMBps),
      speed(r.decompressMBps),
      `x${r.ratio.toFixed(2)}`,
      r.baseline.name,
      speed(r.baseline.compressMBps),
      speed(r.baseline.decompressMBps),
      times(r.compressMBps, r.baseline.compressMBps),
      times(r.decompressMBps, r.baseline.decompressMBps),
    ]),
    'lrlrrrlrrrr',
  );
}

/** The zero-scan suite against the native C scan. */
export function zeroScanTable(rows: readonly ZeroScanRow[]): string {
  return formatTable(
    ['zero scan', 'GB/s', 'native C GB/s', 'ours/native'],
    rows.map((r) => [r.impl, r.GBps.toFixed(2), r.baselineGBps === null ? '-' : r.baselineGBps.toFixed(2), times(r.GBps, r.baselineGBps)]),
    'lrrr',
  );
}

/** One PASS / MISS / SKIP line per target; SKIP when ours or the baseline was not measured. */
export function targetLines(targets: readonly TargetResult[]): string {
  return targets
    .map((t) => {
      const verdict = t.ratio === null ? 'SKIP' : t.pass ? 'PASS' : 'MISS';
      const measured = t.ratio === null ? 'not measured (see notes)' : `${t.ratio.toFixed(2)}×`;
      return `${verdict}  ${t.label}: ${measured} (target ≥ ${t.min.toFixed(2)}×)`;
    })
    .join('\n');
}
