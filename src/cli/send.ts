// `multifd send`: migrates a memory image file to a receiver (tcp:, unix:) or into a
// migration stream file (file:). Flags are QEMU's migration parameter names.
import { codecInfos } from '../codecs/registry.js';
import type { CodecId } from '../codecs/types.js';
import { openImageSource } from '../memory/image-source.js';
import { migrate } from '../migration/sender.js';
import type { MigrationStats } from '../migration/stats.js';
import { connect, FileMuxWriter, parseEndpoint } from '../transport/index.js';
import { choiceOption, HARDWARE_POLICIES, integerOption, sizeOption, TLS_OPTIONS, tlsOption } from './options.js';
import { progressReporter, reportMode, summary } from './report.js';
import { parseCommand, UsageError, type OptionSpec } from './usage.js';

const LEVEL_FLAGS: Partial<Record<CodecId, string>> = {
  zlib: 'multifd-zlib-level',
  zstd: 'multifd-zstd-level',
  qatzip: 'multifd-qatzip-level',
  lz4: 'multifd-lz4-level',
};

/** Options shared by `send` and `demo`: the migration parameters. */
export const MIGRATION_OPTIONS: Record<string, OptionSpec> = {
  'multifd-channels': { type: 'string', valueName: 'N', description: 'data channels, 1..255 (default 2)' },
  'multifd-compression': { type: 'string', valueName: 'CODEC', description: 'none|zlib|zstd|lz4|qatzip|qpl|uadk (default none)' },
  'multifd-zlib-level': { type: 'string', valueName: 'N', description: 'zlib level 1..9 (default 1)' },
  'multifd-zstd-level': { type: 'string', valueName: 'N', description: 'zstd level -7..19 (default 1)' },
  'multifd-qatzip-level': { type: 'string', valueName: 'N', description: 'qatzip level 1..9 (default 1)' },
  'multifd-lz4-level': { type: 'string', valueName: 'N', description: 'lz4 acceleration 1..65537 (default 1; not a QEMU parameter)' },
  'zero-page-detection': { type: 'string', valueName: 'MODE', description: 'none|legacy|multifd (default multifd)' },
  hardware: { type: 'string', valueName: 'POLICY', description: 'qatzip|qpl|uadk accelerator: prefer (default; software without one) or require' },
  'max-bandwidth': { type: 'string', valueName: 'BYTES', description: 'bytes per second over all channels, k/m/g suffixes (default unlimited)' },
  threads: { type: 'string', valueName: 'N', description: 'compression worker threads (compress-threads; default: cores)' },
  'page-size': { type: 'string', valueName: 'BYTES', description: 'page size, a power of two 4096..65536 (default 4096)' },
  json: { type: 'boolean', description: 'NDJSON events on stdout, ending with {"event":"complete",...}' },
  quiet: { type: 'boolean', description: 'no progress output' },
};

/** Reads the migration parameters shared by `send` and `demo`. */
export function migrationParameters(values: Record<string, unknown>) {
  const codecs = codecInfos().map((c) => c.id);
  const codec = choiceOption(values, 'multifd-compression', codecs, 'none') as CodecId;
  const info = codecInfos().find((c) => c.id === codec)!;
  const levelFlag = LEVEL_FLAGS[codec];
  const level = levelFlag && info.levels ? integerOption(values, levelFlag, info.levels.min, info.levels.max) : undefined;
  const pageSize = integerOption(values, 'page-size', 4096, 65536, 4096)!;
  if (pageSize & (pageSize - 1)) throw new UsageError(`--page-size must be a power of two, got ${pageSize}`);
  return {
    channels: integerOption(values, 'multifd-channels', 1, 255, 2),
    codec,
    level,
    zeroPageDetection: choiceOption(values, 'zero-page-detection', ['none', 'legacy', 'multifd'] as const, 'multifd'),
    hardware: values.hardware === undefined ? undefined : choiceOption(values, 'hardware', HARDWARE_POLICIES, 'prefer'),
    maxBandwidth: sizeOption(values, 'max-bandwidth'),
    threads: integerOption(values, 'threads', 1, 256),
    pageSize,
  };
}

/** Prints the end of a migration: the JSON event or the summary. */
export function printOutcome(stats: MigrationStats, json: boolean): void {
  if (json) console.log(JSON.stringify({ event: stats.status === 'completed' ? 'complete' : 'failed', ...stats }));
  else console.log(summary(stats));
}

/** Runs `multifd send --in FILE --to URI [options]`. */
export async function runSend(args: string[]): Promise<void> {
  const parsed = parseCommand(
    'multifd send --in FILE --to tcp:HOST:PORT|unix:PATH|file:PATH [options]',
    {
      in: { type: 'string', valueName: 'FILE', description: 'the memory image to send (a multiple of the page size)' },
      to: { type: 'string', valueName: 'URI', description: 'tcp:HOST:PORT, unix:PATH, or file:PATH (a migration stream file)' },
      ...MIGRATION_OPTIONS,
      ...TLS_OPTIONS,
    },
    args,
  );
  if (!parsed) return;
  const { values } = parsed;
  if (typeof values.in !== 'string') throw new UsageError('--in FILE is required');
  if (typeof values.to !== 'string') throw new UsageError('--to URI is required');
  const parameters = migrationParameters(values);
  const endpoint = parseEndpoint(values.to);
  const tls = await tlsOption(values);
  if (tls && endpoint.kind === 'file') throw new UsageError('TLS applies to tcp: and unix: endpoints, not to a stream file');
  const json = Boolean(values.json);
  const reporter = progressReporter(reportMode(json, Boolean(values.quiet)));
  const source = await openImageSource(values.in, { pageSize: parameters.pageSize });
  const file = endpoint.kind === 'file' ? new FileMuxWriter(endpoint.path) : undefined;
  let stats: MigrationStats;
  try {
    stats = await migrate({
      ...parameters,
      source,
      connect: file ? async () => file.openChannel() : () => connect(endpoint, { timeoutMs: 10_000, tls }),
      awaitReceiver: !file,
      onProgress: reporter.onProgress,
    });
  } catch (error) {
    reporter.done();
    throw error;
  } finally {
    await file?.close();
    await source.close();
  }
  reporter.done();
  printOutcome(stats, json);
}
