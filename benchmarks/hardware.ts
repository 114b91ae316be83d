// `multifd bench hw`: what the native shim's boundary costs per page. Each hardware codec
// (qatzip, qpl, uadk) compresses and decompresses the same 512 KiB packets three ways on this
// thread: the WASM software path; the shim driving the fake vendor library's "device" (Debian
// zlib at level 1, so this row also carries zlib's speed against libdeflate's); and the shim
// driving a device that answers without touching the data (qpl and uadk: every page comes back
// "incompressible" and goes raw), which leaves only the shim's own work: argument conversion,
// the copies into and out of native buffers, the per-page bookkeeping. Needs the shim
// (npm run build:native), gcc and zlib1g-dev; says why and measures nothing otherwise.
import { loadDatasets, PACKET_BYTES, PAGE_BYTES } from './data.js';
import { measureCodec } from './codecs.js';
import { machineInfo, writeResults } from './results.js';
import { formatTable } from './table.js';
import { packetsOf, round } from './timing.js';
import { fakeLibrary, fakesUnavailable, withKnobs } from '../native/test-fakes/build.js';
import { getCodec } from '../src/codecs/registry.js';
import { softwareQatzip } from '../src/codecs/qatzip.js';
import { softwareQpl } from '../src/codecs/qpl.js';
import { softwareUadk } from '../src/codecs/uadk.js';
import type { Codec } from '../src/codecs/types.js';
import { HARDWARE_VENDORS, type HardwareVendor } from '../src/native/addon.js';

/** Options of `multifd bench hw`. */
export interface HardwareBenchOptions {
  readonly json: boolean;
  /** Sample size per dataset in MiB (default 16, or 2 with `quick`). */
  readonly sizeMiB?: number;
  readonly quick?: boolean;
}

/** One codec on one path: microseconds per 4 KiB page each way. */
export interface HardwareRow {
  suite: 'hw';
  codec: HardwareVendor;
  data: string;
  path: 'wasm' | 'shim + fake device' | 'shim + no-op device';
  encodeMicrosPerPage: number;
  decodeMicrosPerPage: number;
  ratio: number;
}

const SOFTWARE: Record<HardwareVendor, Codec> = { qatzip: softwareQatzip, qpl: softwareQpl, uadk: softwareUadk };
const DEVICE: Record<HardwareVendor, Record<string, string>> = { qatzip: { FAKE_QZ_HW: '1' }, qpl: { FAKE_QPL_HW: '1' }, uadk: { FAKE_UADK_HW: '1' } };
const NO_OP: Partial<Record<HardwareVendor, Record<string, string>>> = { qpl: { FAKE_QPL_NOOP: '1' }, uadk: { FAKE_UADK_NOOP: '1' } };

/** MB/s (decimal) of 4 KiB pages to microseconds per page. */
const microsPerPage = (megabytesPerSecond: number) => round(PAGE_BYTES / megabytesPerSecond, 2);

/**
 * Runs the suite, prints a table (or NDJSON rows), writes benchmarks/results/hw-<date>.json and
 * returns the rows (none when the shim or the fakes cannot be built here).
 */
export async function runHardwareBench(options: HardwareBenchOptions): Promise<HardwareRow[]> {
  const unavailable = fakesUnavailable();
  if (unavailable) {
    process.stderr.write(`bench hw: nothing measured: ${unavailable}\n`);
    return [];
  }
  const sizeMiB = options.sizeMiB ?? (options.quick ? 2 : 16);
  const notes: string[] = [];
  const datasets = loadDatasets(sizeMiB * 2 ** 20, notes);
  const rows: HardwareRow[] = [];
  for (const dataset of datasets) {
    const packets = packetsOf(dataset.sample, PACKET_BYTES);
    for (const vendor of HARDWARE_VENDORS) {
      const level = SOFTWARE[vendor].info.levels ? 1 : null;
      const library = fakeLibrary(vendor, 'bench');
      // The device is required, so a row can only come from the path it names.
      const settings = { MULTIFD_HARDWARE: 'require', [`MULTIFD_${vendor.toUpperCase()}_LIB`]: library, ...DEVICE[vendor] };
      const paths: Array<[HardwareRow['path'], () => ReturnType<typeof measureCodec>]> = [
        ['wasm', () => measureCodec(SOFTWARE[vendor], level, packets)],
        ['shim + fake device', () => withKnobs(settings, () => measureCodec(getCodec(vendor), level, packets))],
      ];
      const noOp = NO_OP[vendor];
      if (noOp) paths.push(['shim + no-op device', () => withKnobs({ ...settings, ...noOp }, () => measureCodec(getCodec(vendor), level, packets))]);
      for (const [path, measure] of paths) {
        process.stderr.write(`bench: ${dataset.name}: ${vendor} ${path}\n`);
        const { compressMBps, decompressMBps, ratio } = measure();
        rows.push({ suite: 'hw', codec: vendor, data: dataset.name, path, encodeMicrosPerPage: microsPerPage(compressMBps), decodeMicrosPerPage: microsPerPage(decompressMBps), ratio });
      }
    }
  }
  const machine = machineInfo();
  const resultsPath = writeResults('hw', { suite: 'hw', machine, options: { sizeMiB, quick: options.quick ?? false }, rows, notes });
  if (options.json) {
    for (const row of rows) process.stdout.write(JSON.stringify(row) + '\n');
    process.stderr.write(`results: ${resultsPath}\n`);
    return rows;
  }
  const table = formatTable(
    ['codec', 'data', 'path', 'encode µs/page', 'decode µs/page', 'ratio'],
    rows.map((r) => [r.codec, r.data, r.path, r.encodeMicrosPerPage.toFixed(2), r.decodeMicrosPerPage.toFixed(2), `x${r.ratio.toFixed(2)}`]),
    'lllrrr',
  );
  const header = `multifd hardware shim overhead: ${machine.cpu}, Node ${machine.node}, one thread, 512 KiB packets of 4 KiB pages`;
  const sections = [header, table, ...(notes.length ? [`notes:\n${notes.map((n) => `  - ${n}`).join('\n')}`] : []), `results: ${resultsPath}`];
  process.stdout.write(sections.join('\n\n') + '\n');
  return rows;
}
