// `multifd bench <suite>`: the same harness as `npm run bench:*` (benchmarks/), and
// `multifd bench --report out.html`, the HTML page of the latest results.
import { runAutoBench } from '../../benchmarks/auto.js';
import { runCodecBench } from '../../benchmarks/codecs.js';
import { runHardwareBench } from '../../benchmarks/hardware.js';
import { runLiveBench } from '../../benchmarks/live.js';
import { runMigrateBench } from '../../benchmarks/migrate.js';
import { runProxyBench } from '../../benchmarks/proxy.js';
import { runSeedsBench } from '../../benchmarks/seeds.js';
import { writeReport } from '../../benchmarks/report-html.js';
import { parseCommand, UsageError } from './usage.js';

/** What every suite is given; a suite ignores what it has no use for. */
interface SuiteOptions {
  json: boolean;
  sizeMiB?: number;
  quick: boolean;
  channels?: number[];
  codecs?: string[];
  repeat?: number;
  noQemu: boolean;
  links?: string[];
}

const SUITES: Record<string, (options: SuiteOptions) => Promise<unknown>> = {
  codecs: runCodecBench,
  migrate: runMigrateBench,
  live: runLiveBench,
  seeds: runSeedsBench,
  proxy: runProxyBench,
  auto: runAutoBench,
  hw: runHardwareBench,
};
/** `bench all`: every suite in turn, so one run's results come from one revision and one sitting. */
const ALL = async (options: SuiteOptions) => {
  for (const run of Object.values(SUITES)) await run(options);
};

/** Runs `multifd bench <suite> [options]` or `multifd bench --report FILE`. */
export async function runBench(args: string[]): Promise<void> {
  const parsed = parseCommand(
    `multifd bench ${Object.keys(SUITES).join('|')}|all [--json] [--size MiB] [--quick] [--channels N,N] [--codecs ID,ID] | multifd bench --report FILE.html`,
    {
      json: { type: 'boolean', description: 'one JSON object per result line' },
      size: { type: 'string', valueName: 'MiB', description: 'data size in MiB (codecs: sample, default 64; migrate, seeds and proxy: guest memory, default 1024)' },
      quick: { type: 'boolean', description: 'a short smoke run' },
      channels: { type: 'string', valueName: 'N,N', description: 'seeds: channel counts (default 1,2,4 side by side, 1,2,4,8,16 in the matrix)' },
      codecs: { type: 'string', valueName: 'ID,ID', description: 'seeds: methods (default none,zlib,zstd,qatzip,qpl,uadk)' },
      repeat: { type: 'string', valueName: 'N', description: 'seeds: runs per side-by-side cell of none and zstd-1, proxy: runs per row, the median kept (default 3)' },
      'no-qemu': { type: 'boolean', description: 'seeds: leave QEMU out even when qemu-system-x86_64 is installed' },
      links: { type: 'string', valueName: 'L,L', description: 'auto: links to run, of unlimited,10g,1g,100m,limit-half,neighbour-half (default all)' },
      report: { type: 'string', valueName: 'FILE', description: 'write one self-contained HTML page of the latest results in benchmarks/results/' },
    },
    args,
  );
  if (!parsed) return;
  const [suite] = parsed.positionals;
  if (typeof parsed.values.report === 'string') {
    if (suite !== undefined) throw new UsageError('--report takes no suite: it reads the latest results of every suite');
    console.log(`report: ${writeReport(parsed.values.report)}`);
    return;
  }
  const run = suite === 'all' ? ALL : suite === undefined ? undefined : SUITES[suite];
  if (!run) throw new UsageError(`unknown suite "${suite ?? ''}" (suites: ${Object.keys(SUITES).join(', ')}, all)`);
  await run({
    json: Boolean(parsed.values.json),
    sizeMiB: positiveNumber('--size', parsed.values.size),
    quick: Boolean(parsed.values.quick),
    channels: numberList('--channels', parsed.values.channels, 255),
    codecs: typeof parsed.values.codecs === 'string' ? parsed.values.codecs.split(',') : undefined,
    repeat: positiveNumber('--repeat', parsed.values.repeat),
    noQemu: Boolean(parsed.values['no-qemu']),
    links: typeof parsed.values.links === 'string' ? linkLabels(parsed.values.links) : undefined,
  });
}

/** `--links 1g,100m` as the auto suite's link labels. */
function linkLabels(value: string): string[] {
  const names: Record<string, string> = {
    unlimited: 'unlimited',
    '10g': '10 Gbit/s',
    '1g': '1 Gbit/s',
    '100m': '100 Mbit/s',
    'limit-half': 'unlimited, 1 Gbit/s from half way',
    'neighbour-half': '1 Gbit/s, a CPU-bound neighbour from half way',
  };
  return value.split(',').map((name) => {
    const label = names[name];
    if (!label) throw new UsageError(`--links takes ${Object.keys(names).join(', ')}, got "${name}"`);
    return label;
  });
}

function positiveNumber(flag: string, value: string | boolean | undefined): number | undefined {
  if (value === undefined) return undefined;
  const number = Number(value);
  if (!(number > 0)) throw new UsageError(`${flag} must be a positive number, got "${String(value)}"`);
  return number;
}

function numberList(flag: string, value: string | boolean | undefined, max: number): number[] | undefined {
  if (value === undefined) return undefined;
  const numbers = String(value).split(',').map(Number);
  if (numbers.some((n) => !Number.isInteger(n) || n < 1 || n > max)) throw new UsageError(`${flag} must be a comma-separated list of integers 1..${max}, got "${String(value)}"`);
  return numbers;
}
