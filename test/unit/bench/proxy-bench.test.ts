// The proxy suite's bookkeeping, without running QEMU: which rows pair up as through the proxies
// against QEMU direct, the targets' ratios and verdicts, and the table's columns.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { proxyTable, proxyTargets, type ProxyRow } from '../../../benchmarks/proxy.js';

const test = suite('bench proxy: targets and table');

function row(link: string, route: ProxyRow['route'], wallMs: number, proxied = route === 'proxy'): ProxyRow {
  return {
    suite: 'proxy',
    link,
    route,
    method: proxied ? 'none, zstd-1 on the link' : 'none',
    bytes: 64 << 20,
    qemuTotalTimeMs: wallMs - 10,
    wallMs,
    sourceQemuCpuSeconds: 0.1,
    destinationQemuCpuSeconds: 0.05,
    sourceProxyCpuSeconds: proxied ? 1.2 : null,
    destinationProxyCpuSeconds: proxied ? 0.6 : null,
    qemuMultifdBytes: 67_500_000,
    linkBytes: proxied ? 13_800_000 : null,
    ratio: proxied ? 4.89 : null,
    runsMs: [wallMs],
  };
}

test('each link compares its proxied row with its direct row by wall time, against that link\'s bound', () => {
  const targets = proxyTargets([row('1 Gbit/s', 'direct', 8000), row('1 Gbit/s', 'proxy', 3000), row('unlimited', 'direct', 1000), row('unlimited', 'proxy', 2000)]);
  assert.equal(targets.map((t) => [t.ratio, t.max, t.pass]), [[0.38, 0.5, true], [2, 1.5, false]]);
});

test('a link missing either row is not measured and does not pass', () => {
  const [limited, unlimited] = proxyTargets([row('1 Gbit/s', 'direct', 8000)]);
  assert.is(limited!.ratio, null);
  assert.is(limited!.pass, false);
  assert.is(unlimited!.ratio, null);
});

test('the table shows a dash where a direct row has no proxy figures', () => {
  const lines = proxyTable([row('unlimited', 'direct', 1000), row('unlimited', 'proxy', 2000)]).split('\n');
  assert.is(lines.length, 4);
  assert.match(lines[2]!, /\s-\s+-\s+67\.5\s+-\s+-$/);
  assert.match(lines[3]!, /1\.20\s+0\.60\s+67\.5\s+13\.8\s+4\.89$/);
});

test.run();
