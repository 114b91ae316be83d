// `multifd bench <suite>`: the same harness as `npm run bench:*` (benchmarks/).
import { runCodecBench } from '../../benchmarks/codecs.js';
import { runLiveBench } from '../../benchmarks/live.js';
import { runMigrateBench } from '../../benchmarks/migrate.js';
import { parseCommand, UsageError } from './usage.js';

const SUITES: Record<string, (options: { json: boolean; sizeMiB?: number; quick: boolean }) => Promise<unknown>> = {
  codecs: runCodecBench,
  migrate: runMigrateBench,
  live: runLiveBench,
};

/** Runs `multifd bench <suite> [--json] [--size MiB] [--quick]`. */
export async function runBench(args: string[]): Promise<void> {
  const parsed = parseCommand(
    `multifd bench ${Object.keys(SUITES).join('|')} [--json] [--size MiB] [--quick]`,
    {
      json: { type: 'boolean', description: 'one JSON object per result line' },
      size: { type: 'string', valueName: 'MiB', description: 'data size in MiB (codecs: sample, default 64; migrate: guest memory, default 1024)' },
      quick: { type: 'boolean', description: 'a short smoke run' },
    },
    args,
  );
  if (!parsed) return;
  const [suite] = parsed.positionals;
  const run = suite === undefined ? undefined : SUITES[suite];
  if (!run) throw new UsageError(`unknown suite "${suite ?? ''}" (suites: ${Object.keys(SUITES).join(', ')})`);
  const size = parsed.values.size === undefined ? undefined : Number(parsed.values.size);
  if (size !== undefined && !(size > 0)) throw new UsageError(`--size must be a positive number of MiB, got "${String(parsed.values.size)}"`);
  await run({ json: Boolean(parsed.values.json), sizeMiB: size, quick: Boolean(parsed.values.quick) });
}
