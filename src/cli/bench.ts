// `multifd bench <suite>`: the same harness as `npm run bench:*` (benchmarks/).
import { runCodecBench } from '../../benchmarks/codecs.js';
import { parseCommand, UsageError } from './usage.js';

/** Runs `multifd bench codecs [--json] [--size MiB] [--quick]`. */
export async function runBench(args: string[]): Promise<void> {
  const parsed = parseCommand(
    'multifd bench codecs [--json] [--size MiB] [--quick]',
    {
      json: { type: 'boolean', description: 'one JSON object per result line' },
      size: { type: 'string', valueName: 'MiB', description: 'sample size in MiB (default 64)' },
      quick: { type: 'boolean', description: 'a short smoke run (8 MiB)' },
    },
    args,
  );
  if (!parsed) return;
  const [suite] = parsed.positionals;
  if (suite !== 'codecs') throw new UsageError(`unknown suite "${suite ?? ''}" (suites: codecs)`);
  const size = parsed.values.size === undefined ? undefined : Number(parsed.values.size);
  if (size !== undefined && !(size > 0)) throw new UsageError(`--size must be a positive number of MiB, got "${String(parsed.values.size)}"`);
  await runCodecBench({ json: Boolean(parsed.values.json), sizeMiB: size, quick: Boolean(parsed.values.quick) });
}
