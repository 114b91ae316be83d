// The seeds suite's bookkeeping and its HTML report, without running a migration or a browser:
// which rows pair up as ours against QEMU and as the CLI against ours in memory, which targets
// are checked, and that the page is one self-contained file whose charts plot every measured cell.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { cpuSecondsOfStat } from '../../../benchmarks/qemu.js';
import { CLI_TARGET_MAX, comparisons, comparisonTable, seedTables, seedTargets } from '../../../benchmarks/seeds-tables.js';
import { renderReport } from '../../../benchmarks/report-html.js';
import { seedResults, seedRow } from '../../helpers/seed-results.js';

const test = suite('bench seeds: comparisons, targets and report');

test('every QEMU row is paired with our row of the same cell, and the ratios are ours over QEMU', () => {
  const { rows, comparisons: compared } = seedResults();
  assert.is(compared.length, rows.filter((r) => r.impl === 'qemu').length);
  const pair = compared.find((c) => c.experiment === 'side-by-side' && c.method === 'zstd-1' && c.channels === 2)!;
  const ours = rows.find((r) => r.experiment === 'side-by-side' && r.impl === 'multifd' && r.method === 'zstd-1' && r.channels === 2)!;
  const qemu = rows.find((r) => r.experiment === 'side-by-side' && r.impl === 'qemu' && r.method === 'zstd-1' && r.channels === 2)!;
  assert.is(pair.oursMs, ours.totalTimeMs);
  assert.is(pair.qemuMs, qemu.totalTimeMs);
  assert.is(pair.timeRatio, Number((ours.totalTimeMs / qemu.totalTimeMs).toFixed(3)));
  assert.is(pair.cpuRatio, Number((ours.cpuSecondsPerGiB! / qemu.cpuSecondsPerGiB!).toFixed(3)));
});

test('a CLI file-to-file row sits beside our in-memory row of the same cell, its ratio the CLI over in memory, with or without QEMU', () => {
  const { rows, comparisons: compared } = seedResults();
  const pair = compared.find((c) => c.experiment === 'side-by-side' && c.method === 'none' && c.channels === 2)!;
  const cli = rows.find((r) => r.experiment === 'cli-file' && r.method === 'none' && r.channels === 2)!;
  assert.is(pair.cliMs, cli.totalTimeMs);
  assert.is(pair.cliRatio, Number((cli.totalTimeMs / pair.oursMs).toFixed(3)));
  assert.is(pair.cliCpuPerGiB, cli.cpuSecondsPerGiB);
  assert.ok(compared.every((c) => c.experiment !== 'cli-file'), 'a CLI row is never a cell of its own');
  assert.ok(compared.filter((c) => c.data === 'all-zero').every((c) => c.cliMs === null && c.cliRatio === null));

  const alone = comparisons([
    seedRow({ experiment: 'side-by-side', impl: 'multifd', method: 'zstd-1', channels: 1, totalTimeMs: 200 }),
    seedRow({ experiment: 'cli-file', impl: 'multifd', method: 'zstd-1', channels: 1, totalTimeMs: 250, sendCpuPct: null, recvCpuPct: null, cpuSecondsPerGiB: null }),
    seedRow({ experiment: 'side-by-side', impl: 'multifd', method: 'none', channels: 1 }),
  ]);
  assert.is(alone.length, 1, 'a cell with neither QEMU nor the CLI is no comparison');
  assert.equal(
    { qemuMs: alone[0]!.qemuMs, timeRatio: alone[0]!.timeRatio, cpuRatio: alone[0]!.cpuRatio, cliRatio: alone[0]!.cliRatio, cliCpuPerGiB: alone[0]!.cliCpuPerGiB },
    { qemuMs: null, timeRatio: null, cpuRatio: null, cliRatio: 1.25, cliCpuPerGiB: null },
  );
  assert.match(comparisonTable(alone), /side-by-side +corpus +zstd-1 +1 +unlimited +200 +- +- +- +- +[\d.]+ +- +- +250 +1\.25× +-/);
});

test('QEMU all-zero rows pair with our multifd zero-page detection, never with our legacy row', () => {
  const rows = [
    seedRow({ experiment: 'zero-page', impl: 'multifd', method: 'none', channels: 4, data: 'all-zero', zeroPageDetection: 'legacy', totalTimeMs: 999 }),
    seedRow({ experiment: 'zero-page', impl: 'multifd', method: 'none', channels: 4, data: 'all-zero', totalTimeMs: 50 }),
    seedRow({ experiment: 'zero-page', impl: 'qemu', method: 'none', channels: 4, data: 'all-zero', totalTimeMs: 100 }),
  ];
  const [pair, ...rest] = comparisons(rows);
  assert.is(rest.length, 0);
  assert.is(pair!.oursMs, 50);
  assert.is(pair!.timeRatio, 0.5);
});

test('targets: none ≤ 1.3× QEMU in time and 1.5× in CPU, zstd-1 ≤ 1.0× and 1.15×, all-zero ≤ 0.7× in time, at up to 4 channels', () => {
  const targets = seedTargets(seedResults().comparisons).filter((t) => t.label.includes('ours/QEMU'));
  const sideBySide = targets.filter((t) => /^corpus (none|zstd-1), [124] ch: /.test(t.label));
  assert.is(sideBySide.length, 2 * 3 * 2);
  const allZero = targets.filter((t) => t.label.startsWith('all-zero none'));
  assert.equal(allZero.map((t) => [t.label, t.max]), [['all-zero none, 2 ch: total time ours/QEMU', 0.7]]);
  assert.is(targets.length, sideBySide.length + allZero.length, 'the matrix cells have no targets');
  // The fixture makes ours 1.25× QEMU everywhere: within none's 1.3× and 1.5×, beyond every other limit.
  for (const t of sideBySide) assert.is(t.pass, t.label.startsWith('corpus none'), t.label);
  assert.equal(sideBySide.filter((t) => t.label.startsWith('corpus zstd-1')).map((t) => t.max), [1, 1.15, 1, 1.15, 1, 1.15]);
  assert.match(seedTables(seedResults().rows, seedResults().comparisons, targets), /MISS  corpus zstd-1, 1 ch: total time ours\/QEMU: 1\.25× \(target ≤ 1\.00×\)/);
});

test('every cell the CLI ran has a target of its time at most 1.15× ours in memory', () => {
  const { rows, comparisons: compared } = seedResults();
  const targets = seedTargets(compared).filter((t) => t.label.includes('CLI'));
  assert.is(targets.length, rows.filter((r) => r.experiment === 'cli-file').length);
  assert.ok(targets.every((t) => t.max === CLI_TARGET_MAX && CLI_TARGET_MAX === 1.15));
  assert.equal(targets.filter((t) => !t.pass).map((t) => `${t.label} ${t.ratio}`), ['corpus zstd-1, 4 ch: total time CLI file to file/in memory 1.2']);
  const tables = seedTables(rows, compared, targets);
  assert.match(tables, /The CLI, file to file[^\n]*\n\nimpl/);
  assert.match(tables, /pass  corpus none, 1 ch: total time CLI file to file\/in memory: 1\.10× \(target ≤ 1\.15×\)/);
});

test('the report is one self-contained page: no script, no external asset, markup escaped', () => {
  const html = renderReport({ seeds: { file: 'seeds-x.json', results: seedResults() }, others: [{ suite: 'migrate', file: 'migrate-x.json', rows: [{ suite: 'migrate', codec: 'zstd-1', mbps: 1234 }] }] });
  assert.not.match(html, /<script|<link|<img|@import|url\(|\s(src|href)=/i);
  assert.match(html, /a note &#60;with&#62; markup/);
  assert.match(html, /<h2>migrate<\/h2>/);
});

test('the report charts every matrix cell per link, CPU per method, and ours against QEMU per data set', () => {
  const html = renderReport({ seeds: { file: 'seeds-x.json', results: seedResults() }, others: [] });
  const charts = html.match(/<svg class="chart"[\s\S]*?<\/svg>/g)!;
  const marks = (chart: string) => (chart.match(/class="mark"/g) ?? []).length;
  const titled = (title: string) => charts.filter((c) => c.includes(title));
  assert.equal(titled('Throughput vs channels').map(marks), [12, 12], '2 methods × 3 channel counts × (ours + QEMU) per link');
  assert.equal(titled('CPU % per method').map(marks), [8], '2 methods × send and receive × (ours + QEMU)');
  assert.equal(titled(', corpus').map(marks), [18, 18], '6 cells × (in memory + CLI + QEMU), time and CPU');
  assert.equal(titled(', all-zero').map(marks), [2, 2], 'in memory and QEMU: the CLI series is left out where it did not run');
  assert.match(html, /<h3>The CLI, file to file[^<]*<\/h3><table>/);
});

test('CPU seconds come from utime and stime of /proc/<pid>/stat, even with spaces and parentheses in the name', () => {
  const stat = '4242 (qemu (x) 1) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 5 0 1000 0 0';
  assert.is(cpuSecondsOfStat(stat, 100), 3.25);
});

test.run();
