// `multifd send`: migrates a memory image file to a receiver (tcp:, unix:) or into a
// migration stream file (file:). Flags are QEMU's migration parameter names. A stream file is
// written as PATH.partial and named PATH only once the migration completed; a failure or
// Ctrl-C removes it.
import { codecInfos } from '../codecs/registry.js';
import type { CodecId } from '../codecs/types.js';
import { MultifdError } from '../errors.js';
import { openImageSource } from '../memory/image-source.js';
import { migrate } from '../migration/sender.js';
import type { MigrationStats } from '../migration/stats.js';
import { checkOutputPath } from '../partial-file.js';
import { connect, FileMuxWriter, formatEndpoint, type Endpoint, type TlsCredentials } from '../transport/index.js';
import { describeSenderTlsFailure } from '../transport/tls.js';
import { acceleratorOption, choiceOption, endpointOption, HARDWARE_OPTION, integerOption, sizeOption, TLS_OPTIONS, tlsOption } from './options.js';
import { progressReporter, reportMode, summary } from './report.js';
import { interruptible } from './signals.js';
import { parseCommand, UsageError, type OptionSpec } from './usage.js';

const LEVEL_FLAGS: Partial<Record<CodecId, string>> = {
  zlib: 'multifd-zlib-level',
  zstd: 'multifd-zstd-level',
  qatzip: 'multifd-qatzip-level',
  lz4: 'multifd-lz4-level',
};

/** The defaults a command applies to the migration parameters, and shows in its --help. */
export interface MigrationDefaults {
  codec: CodecId;
}

/** `send` uses QEMU's defaults. */
export const SEND_DEFAULTS: MigrationDefaults = { codec: 'none' };

/** The migration parameter flags shared by `send` and `demo`, their help naming `defaults`. */
export function migrationOptions(defaults: MigrationDefaults): Record<string, OptionSpec> {
  return {
    'multifd-channels': { type: 'string', valueName: 'N', description: 'data channels, 1..255 (default 2)' },
    'multifd-compression': { type: 'string', valueName: 'CODEC', description: `none|zlib|zstd|lz4|qatzip|qpl|uadk|auto (default ${defaults.codec}; auto: chosen packet by packet among none, lz4 and zstd 1-3)` },
    'multifd-zlib-level': { type: 'string', valueName: 'N', description: 'zlib level 1..9 (default 1)' },
    'multifd-zstd-level': { type: 'string', valueName: 'N', description: 'zstd level -7..19 (default 1)' },
    'multifd-qatzip-level': { type: 'string', valueName: 'N', description: 'qatzip level 1..9 (default 1)' },
    'multifd-lz4-level': { type: 'string', valueName: 'N', description: 'lz4 acceleration 1..65537 (default 1; not a QEMU parameter)' },
    'zero-page-detection': { type: 'string', valueName: 'MODE', description: 'none|legacy|multifd (default multifd)' },
    ...HARDWARE_OPTION,
    'max-bandwidth': { type: 'string', valueName: 'BYTES', description: 'bytes per second over all channels, k/m/g suffixes (default unlimited)' },
    'reconnect-timeout': { type: 'string', valueName: 'MS', description: 'how long the link may be down (the control connection or every data channel), redialled and resumed, before the migration fails (default 30000)' },
    threads: { type: 'string', valueName: 'N', description: 'compression worker threads (compress-threads; default: cores)' },
    'page-size': { type: 'string', valueName: 'BYTES', description: 'page size, a power of two 4096..65536 (default 4096)' },
    verify: {
      type: 'boolean',
      description:
        'after the last round, hash the whole source again and compare with the destination: catches writes the dirty log did not see (costs one more pass over the source)',
    },
    json: { type: 'boolean', description: 'NDJSON events on stdout, ending with {"event":"complete",...}' },
    quiet: { type: 'boolean', description: 'no progress output' },
  };
}

/** The migration parameter flags with `send`'s defaults. */
export const MIGRATION_OPTIONS: Record<string, OptionSpec> = migrationOptions(SEND_DEFAULTS);

/** Reads the migration parameters shared by `send` and `demo`. */
export function migrationParameters(values: Record<string, unknown>, defaults: MigrationDefaults = SEND_DEFAULTS) {
  const codecs = [...codecInfos().map((c) => c.id), 'auto'];
  const codec = choiceOption(values, 'multifd-compression', codecs, defaults.codec) as CodecId | 'auto';
  const info = codecInfos().find((c) => c.id === codec);
  const levelFlag = codec === 'auto' ? undefined : LEVEL_FLAGS[codec];
  const level = levelFlag && info?.levels ? integerOption(values, levelFlag, info.levels.min, info.levels.max) : undefined;
  const pageSize = integerOption(values, 'page-size', 4096, 65536, 4096)!;
  if (pageSize & (pageSize - 1)) throw new UsageError(`--page-size must be a power of two, got ${pageSize}`);
  return {
    channels: integerOption(values, 'multifd-channels', 1, 255, 2),
    codec,
    level,
    zeroPageDetection: choiceOption(values, 'zero-page-detection', ['none', 'legacy', 'multifd'] as const, 'multifd'),
    accelerator: acceleratorOption(values),
    maxBandwidth: sizeOption(values, 'max-bandwidth'),
    reconnectTimeoutMs: integerOption(values, 'reconnect-timeout', 0, 86_400_000),
    threads: integerOption(values, 'threads', 1, 256),
    pageSize,
    verify: values.verify === true ? true : undefined,
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
      to: { type: 'string', valueName: 'URI', description: 'tcp:HOST:PORT, unix:PATH, or file:PATH (a migration stream file, PATH.partial until complete)' },
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
  const endpoint = endpointOption(values, 'to', ['tcp', 'unix', 'file']);
  const tls = await tlsOption(values);
  if (tls && endpoint.kind === 'file') throw new UsageError('TLS applies to tcp: and unix: endpoints, not to a stream file');
  if (endpoint.kind === 'file') checkOutputPath(endpoint.path, '--to');
  const json = Boolean(values.json);
  const reporter = progressReporter(reportMode(json, Boolean(values.quiet)));
  const source = await openImageSource(values.in, { pageSize: parameters.pageSize });
  const file = endpoint.kind === 'file' ? new FileMuxWriter(endpoint.path) : undefined;
  // Whether the receiver ever said anything on the first (control) connection: a receiver
  // that closes before answering is most often one whose TLS setup differs from ours.
  let connections = 0;
  let answered = false;
  const connectToReceiver = async () => {
    const socket = await connect(endpoint, { timeoutMs: 10_000, tls });
    if (connections++ === 0) socket.once('data', () => (answered = true));
    return socket;
  };
  let stats: MigrationStats;
  try {
    stats = await interruptible(
      async (signal) => {
        try {
          const result = await migrate({
            ...parameters,
            source,
            signal,
            connect: file ? async () => file.openChannel() : connectToReceiver,
            awaitReceiver: !file,
            onProgress: reporter.onProgress,
            onLinkEvent: reporter.onLinkEvent,
          });
          await file?.close();
          return result;
        } catch (error) {
          await file?.abort();
          throw explainFailure(error, endpoint, tls, answered);
        }
      },
      () => (file ? `${file.partialPath} removed` : undefined),
    );
  } finally {
    reporter.done();
    await source.close();
  }
  printOutcome(stats, json);
}

/**
 * A failure in words where the migration's own message does not say what to check. TLS 1.3
 * verifies the sender's certificate after the sender considers the handshake done, so a
 * receiver refusing it shows up as a control connection that failed (with the alert as its
 * cause) or simply closed before the receiver said anything.
 */
function explainFailure(error: unknown, endpoint: Endpoint, tls: TlsCredentials | undefined, answered: boolean): unknown {
  if (!(error instanceof MultifdError) || error.code === 'ERR_TLS_HANDSHAKE' || endpoint.kind === 'file') return error;
  const where = formatEndpoint(endpoint);
  if (tls) {
    for (let cause = error.cause as NodeJS.ErrnoException | undefined; cause; cause = cause.cause as NodeJS.ErrnoException | undefined) {
      const words = cause.code?.startsWith('ERR_SSL_') ? describeSenderTlsFailure(cause.code, tls, tls.hostname ?? where) : undefined;
      if (words) return new Error(`TLS handshake with ${where} failed: ${words}`, { cause: error });
    }
  }
  if (error.code === 'ERR_CONTROL_CLOSED' && !answered) {
    const why = tls
      ? tls.psk
        ? 'it refused this sender after the TLS handshake'
        : "it does not accept this sender's certificate (--tls-cert must be signed by the CA in the receiver's --tls-ca)"
      : 'if it uses TLS, give both ends the same --tls-* options';
    return new Error(`the receiver at ${where} closed the connection before answering: ${why}`, { cause: error });
  }
  return error;
}
