// `multifd proxy`: one of the pair of proxies that carries a real QEMU's multifd migration over
// multifd's channels (docs/qemu-proxy.md). Beside the source QEMU:
//   multifd proxy --from-qemu tcp:127.0.0.1:5555 --to tcp:desthost:4444
// beside the destination QEMU:
//   multifd proxy --listen tcp:0.0.0.0:4444 --to-qemu tcp:127.0.0.1:5556
// Progress goes to stderr, the summary (or --json events) to stdout, as for `send`.
import { codecInfos } from '../codecs/registry.js';
import type { CodecId } from '../codecs/types.js';
import { proxyToQemu } from '../qemu/proxy-destination.js';
import { proxyFromQemu } from '../qemu/proxy-source.js';
import type { ProxyHandle, ProxySide, ProxyStats } from '../qemu/proxy-common.js';
import type { TlsCredentials } from '../transport/index.js';
import { choiceOption, endpointOption, integerOption, sizeOption, TLS_OPTIONS, tlsOption } from './options.js';
import { formatBytes, reportMode, type ReportMode } from './report.js';
import { interruptible } from './signals.js';
import { parseCommand, UsageError, type OptionSpec } from './usage.js';

const LEVEL_FLAGS: Partial<Record<CodecId, string>> = { zlib: 'multifd-zlib-level', zstd: 'multifd-zstd-level', lz4: 'multifd-lz4-level' };
const PROGRESS_INTERVAL_MS = 2000;

const USAGE = 'multifd proxy --from-qemu tcp:HOST:PORT --to tcp:HOST:PORT [options]\n       multifd proxy --listen tcp:HOST:PORT --to-qemu tcp:HOST:PORT [options]';

const OPTIONS = {
  'from-qemu': { type: 'string', valueName: 'URI', description: 'source side: where the source QEMU migrates to (migrate tcp:HOST:PORT)' },
  to: { type: 'string', valueName: 'URI', description: "source side: the destination proxy's --listen" },
  listen: { type: 'string', valueName: 'URI', description: 'destination side: where the source proxy connects' },
  'to-qemu': { type: 'string', valueName: 'URI', description: "destination side: the destination QEMU's migrate-incoming URI" },
  'qemu-channels': { type: 'string', valueName: 'N', description: "source side: QEMU's multifd-channels, 1..255 (default 2); a higher channel id is refused" },
  'multifd-channels': { type: 'string', valueName: 'N', description: 'source side: link data connections, 1..255 (default: --qemu-channels)' },
  'multifd-compression': { type: 'string', valueName: 'CODEC', description: 'source side: link codec none|zlib|zstd|lz4 (default zstd)' },
  'multifd-zlib-level': { type: 'string', valueName: 'N', description: 'zlib level 1..9 (default 1)' },
  'multifd-zstd-level': { type: 'string', valueName: 'N', description: 'zstd level -7..19 (default 1)' },
  'multifd-lz4-level': { type: 'string', valueName: 'N', description: 'lz4 acceleration (default 1)' },
  'page-size': { type: 'string', valueName: 'BYTES', description: "source side: the QEMUs' target page size, 4096..65536 (default 4096)" },
  'max-bandwidth': { type: 'string', valueName: 'BYTES', description: 'source side: bytes per second of packets over the link, k/m/g suffixes (default unlimited)' },
  threads: { type: 'string', valueName: 'N', description: 'source side: worker threads for the zero scan and the codec (default: cores)' },
  json: { type: 'boolean', description: 'NDJSON events on stdout, ending with {"event":"complete",...}' },
  quiet: { type: 'boolean', description: 'no progress output' },
  ...TLS_OPTIONS,
} satisfies Record<string, OptionSpec>;

type Values = Record<string, string | boolean | undefined>;

/** Runs `multifd proxy --from-qemu URI --to URI …` or `multifd proxy --listen URI --to-qemu URI …`. */
export async function runProxy(args: string[]): Promise<void> {
  const parsed = parseCommand(USAGE, OPTIONS, args);
  if (!parsed) return;
  const { values } = parsed;
  const sourceSide = proxySide(values) === 'source';
  const tls = await tlsOption(values);
  const json = Boolean(values.json);
  const mode = reportMode(json, Boolean(values.quiet));
  const handle = sourceSide ? await startSourceProxy(values, tls) : await startDestinationProxy(values, tls);
  const where = sourceSide ? `the source QEMU can migrate to ${handle.address}` : `listening for the source proxy on ${handle.address}`;
  if (json) console.log(JSON.stringify({ event: 'listening', side: handle.stats.side, address: handle.address }));
  else if (mode !== 'quiet') process.stderr.write(`multifd proxy: ${where}\n`);
  const stats = await reportUntilDone(handle, mode);
  if (json) console.log(JSON.stringify({ event: 'complete', ...stats }));
  else console.log(proxySummary(stats));
}

/** Which proxy the flags ask for; a source-only flag beside the destination QEMU is refused. */
function proxySide(values: Values): ProxySide {
  const sourceSide = values['from-qemu'] !== undefined || values.to !== undefined;
  const destinationSide = values.listen !== undefined || values['to-qemu'] !== undefined;
  if (sourceSide === destinationSide) throw new UsageError('give either --from-qemu URI --to URI (beside the source QEMU) or --listen URI --to-qemu URI (beside the destination QEMU)');
  if (destinationSide) {
    // The source proxy's hello carries these: beside the destination QEMU they would be ignored.
    const sourceOnly = ['qemu-channels', 'multifd-channels', 'multifd-compression', 'multifd-zlib-level', 'multifd-zstd-level', 'multifd-lz4-level', 'page-size', 'threads', 'max-bandwidth'];
    const given = sourceOnly.filter((name) => values[name] !== undefined);
    if (given.length) throw new UsageError(`${given.map((n) => `--${n}`).join(', ')} belong(s) to the source proxy (--from-qemu); the destination proxy takes them from its hello`);
  }
  return sourceSide ? 'source' : 'destination';
}

function startSourceProxy(values: Values, tls: TlsCredentials | undefined): Promise<ProxyHandle> {
  for (const name of ['from-qemu', 'to']) if (typeof values[name] !== 'string') throw new UsageError(`--${name} URI is required beside the source QEMU`);
  endpointOption(values, 'from-qemu', ['tcp']);
  endpointOption(values, 'to', ['tcp']);
  const linkCodecs = codecInfos().filter((c) => ['none', 'zlib', 'zstd', 'lz4'].includes(c.id)).map((c) => c.id);
  const codec = choiceOption(values, 'multifd-compression', linkCodecs, 'zstd') as CodecId;
  const info = codecInfos().find((c) => c.id === codec)!;
  const levelFlag = LEVEL_FLAGS[codec];
  const qemuChannels = integerOption(values, 'qemu-channels', 1, 255, 2)!;
  const pageSize = integerOption(values, 'page-size', 4096, 65536, 4096)!;
  if (pageSize & (pageSize - 1)) throw new UsageError(`--page-size must be a power of two, got ${pageSize}`);
  return proxyFromQemu({
    fromQemu: String(values['from-qemu']),
    to: String(values.to),
    qemuChannels,
    linkChannels: integerOption(values, 'multifd-channels', 1, 255, qemuChannels),
    codec,
    level: levelFlag && info.levels ? integerOption(values, levelFlag, info.levels.min, info.levels.max) : undefined,
    pageSize,
    threads: integerOption(values, 'threads', 1, 256),
    maxBandwidth: sizeOption(values, 'max-bandwidth'),
    tls,
  });
}

function startDestinationProxy(values: Values, tls: TlsCredentials | undefined): Promise<ProxyHandle> {
  for (const name of ['listen', 'to-qemu']) if (typeof values[name] !== 'string') throw new UsageError(`--${name} URI is required beside the destination QEMU`);
  endpointOption(values, 'listen', ['tcp']);
  endpointOption(values, 'to-qemu', ['tcp']);
  return proxyToQemu({ listen: String(values.listen), toQemu: String(values['to-qemu']), tls });
}

/** Progress every PROGRESS_INTERVAL_MS while the migration is active, until the proxy is done or interrupted. */
async function reportUntilDone(handle: ProxyHandle, mode: ReportMode): Promise<ProxyStats> {
  const timer = setInterval(() => {
    const stats = handle.stats;
    if (stats.status !== 'active') return;
    if (mode === 'json') console.log(JSON.stringify({ event: 'progress', ...stats }));
    else if (mode !== 'quiet') process.stderr.write(`${mode === 'tty' ? '\r' : ''}${progressLine(stats)}${mode === 'tty' ? '\x1b[K' : '\n'}`);
  }, PROGRESS_INTERVAL_MS);
  try {
    return await interruptible(async (signal) => {
      signal.addEventListener('abort', () => void handle.close(), { once: true });
      return handle.done;
    });
  } finally {
    clearInterval(timer);
    if (mode === 'tty') process.stderr.write('\r\x1b[K');
  }
}

function progressLine(stats: ProxyStats): string {
  return `${stats.side} proxy: ${stats.packets} packets, ${stats.pages} pages (${stats.zeroPages} zero), ${formatBytes(stats.qemuMultifdBytes)} of QEMU multifd, ${formatBytes(stats.wireBytes)} on the link, ratio ${stats.ratio.toFixed(2)}${stats.linkLosses ? `, ${stats.linkLosses} link connection(s) lost, ${stats.resentPackets} frames again` : ''}`;
}

/** The final summary, in the style of `send`'s. */
export function proxySummary(stats: ProxyStats): string {
  const kb = (bytes: number) => `${Math.round(bytes / 1024)} kbytes`;
  return [
    `Proxy (${stats.side}) status: ${stats.status}`,
    `total time: ${stats.elapsedMs} ms`,
    `QEMU channels: ${stats.qemuChannels}, link data connections: ${stats.linkChannels}, link codec: ${stats.codec}${stats.level === undefined ? '' : ` level ${stats.level}`}`,
    `packets: ${stats.packets}`,
    `normal: ${stats.pages} pages`,
    `duplicate: ${stats.zeroPages} pages (found by the zero scan)`,
    ...(stats.qemuZeroPages ? [`QEMU zero pages: ${stats.qemuZeroPages}`] : []),
    `QEMU multifd bytes: ${kb(stats.qemuMultifdBytes)}`,
    `main channel: ${kb(stats.mainBytes)} to the destination, ${kb(stats.returnBytes)} back`,
    `wire bytes: ${kb(stats.wireBytes)}`,
    `per link data connection: ${stats.linkChannelBytes.map(kb).join(', ')}`,
    `link data connections lost: ${stats.linkLosses}, packet frames ${stats.side === 'source' ? 'sent again' : 'received again (dropped)'}: ${stats.resentPackets} (${kb(stats.resentBytes)})`,
    `compression ratio: ${stats.ratio.toFixed(2)}`,
  ].join('\n');
}
