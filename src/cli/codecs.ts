// `multifd codecs`: every registered codec with its wire numbers, levels and the backend this
// process would use, so a user can see why a codec is (un)available before a migration.
import { listCodecs } from '../codecs/registry.js';
import { parseCommand } from './usage.js';

/** Runs `multifd codecs [--json]`. */
export async function runCodecs(args: string[]): Promise<void> {
  const parsed = parseCommand('multifd codecs [--json]', { json: { type: 'boolean', description: 'one JSON object per codec' } }, args);
  if (!parsed) return;
  const codecs = listCodecs();
  if (parsed.values.json) {
    for (const codec of codecs) console.log(JSON.stringify(codec));
    return;
  }
  const rows = codecs.map((c) => [
    c.id,
    c.qemuFlag === null ? '-' : `0x${c.qemuFlag.toString(16).padStart(2, '0')}`,
    c.unit,
    c.levels ? `${c.levels.min}..${c.levels.max} (${c.levels.default})` : 'fixed',
    c.backend.name,
    c.backend.available ? 'yes' : 'no',
    c.backend.reason,
  ]);
  const header = ['codec', 'qemu flag', 'unit', 'levels (default)', 'backend', 'available', 'detail'];
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  for (const row of [header, ...rows]) console.log(row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ').trimEnd());
}
