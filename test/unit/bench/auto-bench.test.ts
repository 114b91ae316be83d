// The auto suite's bookkeeping, without migrating: which row is a cell's best static method,
// and auto's verdict against it.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { autoTable, autoTargets, type AutoRow } from '../../../benchmarks/auto.js';

const test = suite('bench auto: targets and table');

function row(data: string, link: string, method: string, totalTimeMs: number): AutoRow {
  return { suite: 'auto', data, link, method, totalTimeMs, runsMs: [totalTimeMs], wireBytes: 1e6, ratio: 1, sendCpuPct: 50, ...(method === 'auto' ? { choices: { none: 2 ** 20 }, reason: 'none: …' } : {}) };
}

test('each cell compares auto with its fastest static method, passing at 1.05x or less', () => {
  const rows = [
    row('corpus', 'unlimited', 'none', 1000),
    row('corpus', 'unlimited', 'zstd-1', 1800),
    row('corpus', 'unlimited', 'auto', 1050),
    row('corpus', '1 Gbit/s', 'none', 8600),
    row('corpus', '1 Gbit/s', 'zstd-1', 3000),
    row('corpus', '1 Gbit/s', 'auto', 3300),
    row('vm', 'unlimited', 'none', 900),
  ];
  assert.equal(autoTargets(rows), [
    { data: 'corpus', link: 'unlimited', best: 'none', ratio: 1.05, max: 1.05, pass: true },
    { data: 'corpus', link: '1 Gbit/s', best: 'zstd-1', ratio: 1.1, max: 1.05, pass: false },
  ]);
  const table = autoTable(rows);
  assert.match(table, /corpus\s+1 Gbit\/s\s+auto\s+3300/);
  assert.match(table, /none 1$/m);
});

test('where conditions change half way auto must beat every static method', () => {
  const link = 'unlimited, 1 Gbit/s from half way';
  const verdict = (autoMs: number) => autoTargets([row('corpus', link, 'none', 5000), row('corpus', link, 'zstd-1', 4000), row('corpus', link, 'auto', autoMs)])[0]!;
  assert.equal(verdict(3900), { data: 'corpus', link, best: 'zstd-1', ratio: 0.97, max: 1, pass: true });
  assert.is(verdict(4000).pass, false, 'a tie is not a win');
  assert.is(verdict(4100).pass, false);
});

test.run();
