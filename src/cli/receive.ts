// `multifd receive`: accepts one migration (listening on tcp:/unix:, or reading a migration
// stream file) and writes the image to --out. The image carries its final name only after the
// sender's checksum matched; until then it is FILE.partial, removed on failure.
import { fileDestination } from '../migration/destination.js';
import { MigrationReceiver } from '../migration/receiver.js';
import { FileMuxReader, listen, parseEndpoint } from '../transport/index.js';
import { choiceOption, HARDWARE_POLICIES, integerOption, sizeOption, TLS_OPTIONS, tlsOption } from './options.js';
import { formatBytes } from './report.js';
import { parseCommand, UsageError } from './usage.js';

/** Runs `multifd receive --listen URI | --from file:PATH --out FILE [options]`. */
export async function runReceive(args: string[]): Promise<void> {
  const parsed = parseCommand(
    'multifd receive (--listen tcp:HOST:PORT|unix:PATH | --from file:PATH) --out FILE [options]',
    {
      listen: { type: 'string', valueName: 'URI', description: 'accept the migration on tcp:HOST:PORT or unix:PATH' },
      from: { type: 'string', valueName: 'URI', description: 'apply a migration stream file written by `send --to file:PATH`' },
      out: { type: 'string', valueName: 'FILE', description: 'the image file to write (FILE.partial until confirmed)' },
      threads: { type: 'string', valueName: 'N', description: 'decompression worker threads (decompress-threads; default: cores)' },
      'handshake-timeout': { type: 'string', valueName: 'MS', description: 'time the sender has to connect every channel (default 30000)' },
      'idle-timeout': { type: 'string', valueName: 'MS', description: 'fail when nothing arrives for this long (default 60000)' },
      'max-channels': { type: 'string', valueName: 'N', description: 'refuse a sender asking for more data channels (default 255)' },
      'max-image-size': { type: 'string', valueName: 'BYTES', description: 'refuse a larger image, k/m/g/t suffixes (default 1t)' },
      hardware: { type: 'string', valueName: 'POLICY', description: 'qatzip|qpl|uadk accelerator: prefer (default; software without one) or require' },
      ...TLS_OPTIONS,
      json: { type: 'boolean', description: 'print the outcome as one JSON object' },
      quiet: { type: 'boolean', description: 'print nothing but errors' },
    },
    args,
  );
  if (!parsed) return;
  const { values } = parsed;
  if (typeof values.out !== 'string') throw new UsageError('--out FILE is required');
  if ((typeof values.listen === 'string') === (typeof values.from === 'string')) throw new UsageError('give exactly one of --listen URI and --from file:PATH');
  const tls = await tlsOption(values);
  if (tls && typeof values.from === 'string') throw new UsageError('TLS applies to --listen, not to a stream file');
  const handshakeTimeoutMs = integerOption(values, 'handshake-timeout', 1, 3_600_000, 30_000);
  const receiver = new MigrationReceiver({
    destination: fileDestination(values.out),
    threads: integerOption(values, 'threads', 1, 256),
    handshakeTimeoutMs,
    idleTimeoutMs: integerOption(values, 'idle-timeout', 1, 86_400_000, 60_000),
    maxChannels: integerOption(values, 'max-channels', 1, 255, 255),
    maxImageBytes: sizeOption(values, 'max-image-size'),
    hardware: values.hardware === undefined ? undefined : choiceOption(values, 'hardware', HARDWARE_POLICIES, 'prefer'),
    onRefused: (error) => values.quiet || console.error(`multifd: refused a connection: ${error.message}`),
  });

  if (typeof values.listen === 'string') {
    const endpoint = parseEndpoint(values.listen);
    if (endpoint.kind === 'file') throw new UsageError('--listen takes tcp: or unix:; use --from for a file');
    const server = await listen(endpoint, { onConnection: (socket) => receiver.accept(socket), tls, handshakeTimeoutMs, onRefused: (error) => receiver.refuse(error) });
    if (!values.quiet && !values.json) console.error(`multifd: listening on ${server.address}`);
    await receiver.result.finally(() => server.close());
  } else {
    const endpoint = parseEndpoint(values.from as string);
    if (endpoint.kind !== 'file') throw new UsageError('--from takes file:PATH');
    const reader = new FileMuxReader(endpoint.path);
    reader.on('channel', (channel) => receiver.accept(channel));
    await receiver.result;
  }
  const result = await receiver.result;
  const checksum = result.checksum.toString(16).padStart(16, '0');
  if (values.json) {
    console.log(JSON.stringify({ event: 'complete', ...result, checksum, out: values.out }));
  } else if (!values.quiet) {
    console.log(
      `Migration status: completed\nreceived: ${result.normalPages} normal pages, ${result.zeroPages} zero pages in ${result.rounds} round(s), ` +
        `${formatBytes(result.bytesReceived)} on the wire\n${result.hardwarePages ? `hardware pages: ${result.hardwarePages}\n` : ''}` +
        `image checksum: ${checksum} (matches the sender's)\nwritten: ${values.out}`,
    );
  }
}
