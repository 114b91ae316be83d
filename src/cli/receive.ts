// `multifd receive`: accepts one migration (listening on tcp:/unix:, or reading a migration
// stream file) and writes the image to --out. The image carries its final name only after the
// sender's checksum matched; until then it is FILE.partial, removed on failure and on Ctrl-C.
// Everything that can be checked before a sender connects is checked before listening: the
// flags, the TLS files, the folder of --out, the address (bound before the receiver exists).
import { existsSync } from 'node:fs';
import { fileDestination } from '../migration/destination.js';
import { listen } from '../migration/listen.js';
import { receiveFile } from '../migration/receive-file.js';
import type { ReceiveOptions, ReceiveResult } from '../migration/receiver.js';
import { checkOutputPath, partialPathOf } from '../partial-file.js';
import { formatEndpoint } from '../transport/index.js';
import { acceleratorOption, endpointOption, HARDWARE_OPTION, integerOption, sizeOption, TLS_OPTIONS, tlsOption } from './options.js';
import { formatBytes } from './report.js';
import { interruptible } from './signals.js';
import { parseCommand, UsageError, type OptionSpec } from './usage.js';

/** The flags of `receive`. */
const RECEIVE_OPTIONS = {
  listen: { type: 'string', valueName: 'URI', description: 'accept the migration on tcp:HOST:PORT or unix:PATH' },
  from: { type: 'string', valueName: 'URI', description: 'apply a migration stream file written by `send --to file:PATH`' },
  out: { type: 'string', valueName: 'FILE', description: 'the image file to write (FILE.partial until confirmed)' },
  threads: { type: 'string', valueName: 'N', description: 'decompression worker threads (decompress-threads; default: cores)' },
  'accept-timeout': { type: 'string', valueName: 'MS', description: 'give up when no sender has connected for this long (default: wait until Ctrl-C)' },
  'handshake-timeout': { type: 'string', valueName: 'MS', description: 'time a sender has, from its first connection, to open every channel (default 30000)' },
  'idle-timeout': { type: 'string', valueName: 'MS', description: 'fail when nothing arrives for this long (default 60000)' },
  'reconnect-timeout': { type: 'string', valueName: 'MS', description: 'how long to keep the session for the sender to resume after its control connection is lost; 0: never (default 30000)' },
  'max-channels': { type: 'string', valueName: 'N', description: 'refuse a sender asking for more data channels (default 255)' },
  'max-image-size': { type: 'string', valueName: 'BYTES', description: 'refuse a larger image, k/m/g/t suffixes (default 1t)' },
  ...HARDWARE_OPTION,
  ...TLS_OPTIONS,
  json: { type: 'boolean', description: 'print the outcome as one JSON object' },
  quiet: { type: 'boolean', description: 'print nothing but errors' },
} satisfies Record<string, OptionSpec>;

/** Runs `multifd receive --listen URI | --from file:PATH --out FILE [options]`. */
export async function runReceive(args: string[]): Promise<void> {
  const parsed = parseCommand(
    'multifd receive (--listen tcp:HOST:PORT|unix:PATH | --from file:PATH) --out FILE [options]',
    RECEIVE_OPTIONS,
    args,
  );
  if (!parsed) return;
  const { values } = parsed;
  if (typeof values.out !== 'string') throw new UsageError('--out FILE is required');
  if ((typeof values.listen === 'string') === (typeof values.from === 'string')) throw new UsageError('give exactly one of --listen URI and --from file:PATH');
  const out = values.out;
  const where =
    typeof values.listen === 'string'
      ? endpointOption(values, 'listen', ['tcp', 'unix'], 'use --from file:PATH to apply a stream file')
      : endpointOption(values, 'from', ['file'], 'use --listen to accept a sender');
  const handshakeTimeoutMs = integerOption(values, 'handshake-timeout', 1, 3_600_000, 30_000);
  const acceptTimeoutMs = integerOption(values, 'accept-timeout', 1, 2_147_483_647);
  if (acceptTimeoutMs !== undefined && where.kind === 'file') throw new UsageError('--accept-timeout applies to --listen: a stream file is read at once');
  const options: Omit<ReceiveOptions, 'destination'> = {
    threads: integerOption(values, 'threads', 1, 256),
    acceptTimeoutMs,
    handshakeTimeoutMs,
    idleTimeoutMs: integerOption(values, 'idle-timeout', 1, 86_400_000, 60_000),
    reconnectTimeoutMs: integerOption(values, 'reconnect-timeout', 0, 86_400_000, 30_000),
    maxChannels: integerOption(values, 'max-channels', 1, 255, 255),
    maxImageBytes: sizeOption(values, 'max-image-size'),
    accelerator: acceleratorOption(values),
  };
  const tls = await tlsOption(values);
  if (tls && where.kind === 'file') throw new UsageError('TLS applies to --listen, not to a stream file');
  checkOutputPath(out, '--out');

  // Whether the image file was ever created, so the interruption line says what was cleaned.
  let started = false;
  const destination = fileDestination(out);
  const receiveOptions: ReceiveOptions = { ...options, destination: (hello) => ((started = true), destination(hello)) };
  const cleaned = () => {
    if (!started) return undefined;
    return existsSync(partialPathOf(out)) ? `${partialPathOf(out)} could not be removed` : `${partialPathOf(out)} removed`;
  };
  const result = await interruptible(async (signal) => {
    if (where.kind === 'file') {
      const receiving = receiveFile(where.path, { ...receiveOptions, signal });
      return receiving.result.catch((error: Error) => {
        // The line names the file it is about: a receiver error alone ("channel 1, packet 3: …") does not.
        throw error.message.includes(where.path) ? error : new Error(`${where.path}: ${error.message}`, { cause: error });
      });
    }
    const listening = await listen(formatEndpoint(where), {
      ...receiveOptions,
      signal,
      tls,
      onRefused: (error) => values.quiet || console.error(`multifd: refused a connection: ${error.message}`),
    });
    if (!values.quiet && !values.json) console.error(`multifd: listening on ${listening.address}`);
    return listening.result;
  }, cleaned);
  printResult(result, out, Boolean(values.json), Boolean(values.quiet));
}

function printResult(result: ReceiveResult, out: string, json: boolean, quiet: boolean): void {
  const checksum = result.checksum.toString(16).padStart(16, '0');
  if (json) {
    console.log(JSON.stringify({ event: 'complete', ...result, checksum, out }));
  } else if (!quiet) {
    console.log(
      `Migration status: completed\nreceived: ${result.normalPages} normal pages, ${result.zeroPages} zero pages in ${result.rounds} round(s), ` +
        `${formatBytes(result.bytesReceived)} on the wire\n${result.hardwarePages ? `hardware pages: ${result.hardwarePages}\n` : ''}` +
        (result.resumes ? `resumed by the sender after an outage: ${result.resumes} time(s)\n` : '') +
        `image checksum: ${checksum} (matches the sender's)\nwritten: ${out}`,
    );
  }
}
