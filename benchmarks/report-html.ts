// `multifd bench --report out.html`: one self-contained HTML page (inline CSS and SVG, no
// script, no external asset) from the JSON results in benchmarks/results/: the seeds suite's
// charts (throughput against channels per method and link, CPU % per method, ours in memory
// against the CLI file to file and QEMU) and tables, then the latest rows of every other suite.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, join, resolve } from 'node:path';
import { EXPERIMENTS, type SeedComparison, type SeedRow, type SeedTarget } from './seeds-tables.js';
import { packageRoot } from '../src/wasm/load.js';
import { barChart, escapeHtml, lineChart, PALETTE, type Series } from './report-svg.js';

/** A seeds results file as benchmarks/seeds.ts writes it. */
export interface SeedsResults {
  machine: Record<string, unknown>;
  sizeMiB: number;
  matrixMiB: number;
  repeat: number;
  threadsPerSide: number;
  rows: SeedRow[];
  comparisons: SeedComparison[];
  targets: SeedTarget[];
  notes: string[];
}

/** What one page shows: the seeds results (if any) and the latest rows of the other suites. */
export interface ReportInput {
  seeds?: { file: string; results: SeedsResults };
  others: Array<{ suite: string; file: string; rows: Array<Record<string, unknown>> }>;
}

/** benchmarks/results/ of this checkout. */
export function resultsDir(): string {
  return join(packageRoot(), 'benchmarks', 'results');
}

/** The newest results file of each suite in `dir` (file names carry ISO dates, so they sort by time). */
export function latestResults(dir = resultsDir()): ReportInput {
  const newest = new Map<string, string>();
  for (const name of readdirSync(dir).filter((n) => n.endsWith('.json')).sort()) newest.set(name.replace(/-\d{4}-\d\d-\d\dT.*$/, ''), name);
  const input: ReportInput = { others: [] };
  for (const [suite, name] of newest) {
    const data = JSON.parse(readFileSync(join(dir, name), 'utf8')) as { rows?: Array<Record<string, unknown>> };
    if (suite === 'seeds') input.seeds = { file: name, results: data as unknown as SeedsResults };
    else if (Array.isArray(data.rows)) input.others.push({ suite, file: name, rows: data.rows });
  }
  return input;
}

/** Writes the page for `input` (default: the latest results) to `out`; returns its absolute path. */
export function writeReport(out: string, input: ReportInput = latestResults()): string {
  const path = resolve(out);
  writeFileSync(path, renderReport(input));
  return path;
}

/** The whole page. */
export function renderReport(input: ReportInput): string {
  const sections = [input.seeds ? seedsSection(input.seeds.file, input.seeds.results) : '<p>No seeds results yet: run <code>npx multifd bench seeds</code>.</p>'];
  for (const other of input.others) sections.push(`<h2>${escapeHtml(other.suite)}</h2><p class="file">${escapeHtml(other.file)}</p>${htmlTable(other.rows)}`);
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>multifd benchmarks</title>
<style>
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px; color: #222; max-width: 1400px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; border-bottom: 1px solid #ccc; } h3 { font-size: 15px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 12px; }
th, td { border: 1px solid #ddd; padding: 2px 6px; text-align: right; white-space: nowrap; }
th { background: #f3f3f3; } td.text, th.text { text-align: left; }
.charts { display: flex; flex-wrap: wrap; gap: 12px; }
svg.chart { border: 1px solid #e3e3e3; background: #fff; font-size: 11px; }
svg.chart .title { font-size: 13px; font-weight: 600; }
.pass { color: #2a7d2a; } .miss { color: #b32020; font-weight: 600; }
.file, .machine { color: #555; font-size: 12px; }
</style></head><body>
<h1>multifd benchmarks</h1>
${sections.join('\n')}
</body></html>
`;
}

function seedsSection(file: string, results: SeedsResults): string {
  const { rows, comparisons, targets, machine, notes } = results;
  const matrix = rows.filter((r) => r.experiment === 'matrix');
  const methods = unique(matrix.map((r) => r.method));
  const color = (method: string) => PALETTE[Math.max(0, methods.indexOf(method)) % PALETTE.length]!;
  const charts: string[] = [];
  for (const link of unique(matrix.map((r) => r.link))) {
    const cells = matrix.filter((r) => r.link === link);
    const channels = unique(cells.map((r) => r.channels)).sort((a, b) => a - b);
    const series: Series[] = [];
    for (const impl of ['multifd', 'qemu'] as const) {
      for (const method of methods) {
        const values = channels.map((ch) => cells.find((r) => r.impl === impl && r.method === method && r.channels === ch)?.mbps ?? null);
        if (values.some((v) => v !== null)) series.push({ name: `${impl === 'qemu' ? 'QEMU ' : ''}${method}`, color: color(method), dashed: impl === 'qemu', values });
      }
    }
    charts.push(lineChart({ title: `Throughput vs channels, ${link} (${results.matrixMiB} MiB corpus)`, xLabels: channels.map(String), yLabel: 'guest Mbit/s', series }));
  }
  const cpuCells = matrix.filter((r) => r.link === 'unlimited');
  const cpuChannels = cpuCells.some((r) => r.channels === 2) ? 2 : cpuCells[0]?.channels;
  if (cpuChannels !== undefined) {
    const at = (impl: string, method: string) => cpuCells.find((r) => r.impl === impl && r.method === method && r.channels === cpuChannels);
    charts.push(barChart({
      title: `CPU % per method (unlimited link, ${cpuChannels} channels)`,
      xLabels: methods,
      yLabel: '% of one core',
      series: [
        { name: 'ours send', color: PALETTE[0]!, values: methods.map((m) => at('multifd', m)?.sendCpuPct ?? null) },
        { name: 'ours receive', color: PALETTE[7]!, values: methods.map((m) => at('multifd', m)?.recvCpuPct ?? null) },
        { name: 'QEMU send', color: PALETTE[1]!, dashed: true, values: methods.map((m) => at('qemu', m)?.sendCpuPct ?? null) },
        { name: 'QEMU receive', color: PALETTE[3]!, dashed: true, values: methods.map((m) => at('qemu', m)?.recvCpuPct ?? null) },
      ],
    }));
  }
  for (const data of unique(comparisons.filter((c) => c.experiment !== 'matrix').map((c) => c.data))) {
    const pairs = comparisons.filter((c) => c.experiment !== 'matrix' && c.data === data);
    const xLabels = pairs.map((c) => `${c.method} ${c.channels}ch`);
    // The CLI's and QEMU's series only where they ran (--no-qemu, no dist/ bundle); results
    // written before the CLI rows existed have no cli* fields at all.
    const measured = (series: Series[]) => series.filter((s) => s.values.some((v) => v !== null));
    charts.push(barChart({ title: `Total time, ${data}`, xLabels, yLabel: 'ms', series: measured([
      { name: 'ours in memory', color: PALETTE[0]!, values: pairs.map((c) => c.oursMs) },
      { name: 'ours, CLI file to file', color: PALETTE[2]!, values: pairs.map((c) => c.cliMs ?? null) },
      { name: 'QEMU 7.2', color: PALETTE[1]!, dashed: true, values: pairs.map((c) => c.qemuMs) },
    ]) }));
    charts.push(barChart({ title: `CPU seconds per GiB, ${data}`, xLabels, yLabel: 'CPU s / GiB', series: measured([
      { name: 'ours in memory', color: PALETTE[0]!, values: pairs.map((c) => c.oursCpuPerGiB) },
      { name: 'ours, CLI file to file', color: PALETTE[2]!, values: pairs.map((c) => c.cliCpuPerGiB ?? null) },
      { name: 'QEMU 7.2', color: PALETTE[1]!, dashed: true, values: pairs.map((c) => c.qemuCpuPerGiB) },
    ]) }));
  }
  const tables = EXPERIMENTS.map(([name, title]) => `<h3>${escapeHtml(title)}</h3>${htmlTable(rows.filter((r) => r.experiment === name).map(displayRow))}`);
  return `<h2>Seeds: the patch series' tables on this machine</h2>
<p class="file">${escapeHtml(file)}; side by side and all-zero: ${results.sizeMiB} MiB (median of ${results.repeat} runs); matrix: ${results.matrixMiB} MiB, one run per cell.</p>
<p class="machine">${escapeHtml(machineLine(machine))}</p>
<div class="charts">${charts.join('\n')}</div>
<h3>Targets</h3>
<ul>${targets.map((t) => `<li class="${t.pass ? 'pass' : 'miss'}">${t.pass ? 'pass' : 'MISS'}: ${escapeHtml(t.label)} ${t.ratio.toFixed(2)}× (target ≤ ${t.max}×)</li>`).join('')}</ul>
<h3>Ours in memory / QEMU, and the CLI file to file / ours in memory</h3>${htmlTable(comparisons as unknown as Array<Record<string, unknown>>)}
${tables.join('\n')}
${notes.length ? `<h3>Notes</h3><ul>${notes.map((n) => `<li>${escapeHtml(n)}</li>`).join('')}</ul>` : ''}`;
}

/** A seeds row with the columns the patch series' tables have. */
function displayRow(r: SeedRow): Record<string, unknown> {
  return {
    impl: r.impl, data: r.data, method: r.method, backend: r.backend, channels: r.channels, threads: r.threads ?? '-', link: r.link,
    'zero pages': r.zeroPageDetection, 'total ms': r.totalTimeMs, mbps: r.mbps, 'pages/s': r.pagesPerSec,
    ratio: r.wireBytes ? (r.bytes / r.wireBytes).toFixed(2) : '-', 'send CPU %': r.sendCpuPct, 'recv CPU %': r.recvCpuPct, 'CPU s/GiB': r.cpuSecondsPerGiB, 'runs ms': r.runsMs.join(' '),
  };
}

function machineLine(machine: Record<string, unknown>): string {
  const load = (v: unknown) => (Array.isArray(v) ? v.map((n: number) => n.toFixed(2)).join(' ') : '?');
  return `${String(machine.cpu)}, ${String(machine.cores)} cores, Linux ${String(machine.kernel)}, Node ${String(machine.node)}, ${String(machine.qemu ?? 'no QEMU')}, git ${String(machine.git)}, ${String(machine.date)}; load average ${load(machine.loadAverage)} at the start, ${load(machine.loadAverageEnd)} at the end`;
}

/** Rows of objects as a table; the columns are the first row's keys, numbers right-aligned. */
function htmlTable(rows: ReadonlyArray<Record<string, unknown>>): string {
  if (rows.length === 0) return '<p>(none)</p>';
  const columns = Object.keys(rows[0]!).filter((c) => c !== 'suite');
  const cell = (value: unknown) => {
    const text = value === null || value === undefined ? '-' : typeof value === 'object' ? JSON.stringify(value) : String(value);
    return `<td${typeof value === 'number' ? '' : ' class="text"'}>${escapeHtml(text)}</td>`;
  };
  return `<table><thead><tr>${columns.map((c) => `<th class="text">${escapeHtml(c)}</th>`).join('')}</tr></thead><tbody>${rows.map((r) => `<tr>${columns.map((c) => cell(r[c])).join('')}</tr>`).join('')}</tbody></table>`;
}

function unique<T>(values: readonly T[]): T[] {
  return [...new Set(values)];
}

/** The report written next to a results file: same name, `.html`. */
export function reportPathFor(resultsFile: string): string {
  return join(resultsFile, '..', basename(resultsFile, '.json') + '.html');
}
