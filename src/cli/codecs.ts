// `multifd codecs`: every registered codec with its wire numbers, levels and the backend this
// process would use, so a user can see why a codec is (un)available before a migration; then
// the vendor library each hardware codec found, with its file and version.
import { listCodecs } from '../codecs/registry.js';
import { HARDWARE_VENDORS, nativeAddon, probeHardware, type HardwareProbe, type HardwareVendor } from '../native/addon.js';
import { parseCommand } from './usage.js';

/** Runs `multifd codecs [--json]`. */
export async function runCodecs(args: string[]): Promise<void> {
  const parsed = parseCommand('multifd codecs [--json]', { json: { type: 'boolean', description: 'one JSON object per codec' } }, args);
  if (!parsed) return;
  const codecs = listCodecs();
  const probes = new Map(HARDWARE_VENDORS.map((vendor) => [vendor as string, probeHardware(vendor)]));
  if (parsed.values.json) {
    for (const codec of codecs) {
      const probe = probes.get(codec.id);
      console.log(JSON.stringify(probe ? { ...codec, library: libraryFacts(probe) } : codec));
    }
    return;
  }
  printTable(
    ['codec', 'qemu flag', 'unit', 'levels (default)', 'backend', 'available', 'detail'],
    codecs.map((c) => [
      c.id,
      c.qemuFlag === null ? '-' : `0x${c.qemuFlag.toString(16).padStart(2, '0')}`,
      c.unit,
      c.levels ? `${c.levels.min}..${c.levels.max} (${c.levels.default})` : 'fixed',
      c.backend.name,
      c.backend.available ? 'yes' : 'no',
      c.backend.reason,
    ]),
  );
  // The shim's absence is already every hardware row's detail.
  if (!nativeAddon()) return;
  console.log('');
  printTable(
    ['library', 'file', 'version', 'device'],
    HARDWARE_VENDORS.map((vendor: HardwareVendor) => {
      const facts = libraryFacts(probes.get(vendor)!);
      return [vendor, facts.file, facts.version || 'unknown', !facts.loaded ? 'not loaded' : facts.device ? 'yes' : 'no'];
    }),
  );
}

/** What `codecs` says about a vendor library (named apart from the codec's own `available`). */
function libraryFacts(probe: HardwareProbe) {
  return { file: probe.file, version: probe.version, loaded: probe.loaded, device: probe.device, reason: probe.reason };
}

function printTable(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows]) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}
