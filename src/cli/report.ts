// How the CLI shows a migration: a redrawn bar on a TTY, a plain line every few seconds
// otherwise, NDJSON events with --json, and a final summary in the style of QEMU's
// `info migrate`.
import type { LinkEvent } from '../channel/link-outage.js';
import type { MigrationStats } from '../migration/stats.js';

/** How progress is shown. */
export type ReportMode = 'tty' | 'lines' | 'json' | 'quiet';

/** Picks the mode: --json wins, then a TTY on stderr, else plain lines. */
export function reportMode(json: boolean, quiet: boolean): ReportMode {
  if (json) return 'json';
  if (quiet) return 'quiet';
  return process.stderr.isTTY ? 'tty' : 'lines';
}

const LINE_INTERVAL_MS = 2000;

/** Returns the progress callback for a mode, and a `done` that clears a TTY bar. */
export function progressReporter(mode: ReportMode): { onProgress: (s: MigrationStats) => void; onLinkEvent: (e: LinkEvent) => void; done: () => void } {
  let lastLine = 0;
  return {
    onLinkEvent(event) {
      if (mode === 'json') return console.log(JSON.stringify(event));
      if (mode === 'quiet') return;
      const line = event.event === 'outage' ? `link lost (${event.lost}): redialling` : `link back after ${(event.downMs / 1000).toFixed(1)} s: resumed`;
      process.stderr.write(`${mode === 'tty' ? '\r\x1b[K' : ''}multifd: ${line}\n`);
    },
    onProgress(stats) {
      if (mode === 'json') {
        if (stats.status === 'active' || stats.status === 'setup') console.log(JSON.stringify({ event: 'progress', ...stats }));
      } else if (mode === 'tty') {
        process.stderr.write(`\r${bar(stats)}\x1b[K`);
      } else if (mode === 'lines' && performance.now() - lastLine >= LINE_INTERVAL_MS && stats.status === 'active') {
        lastLine = performance.now();
        process.stderr.write(`${bar(stats)}\n`);
      }
    },
    done() {
      if (mode === 'tty') process.stderr.write('\r\x1b[K');
    },
  };
}

function bar(stats: MigrationStats): string {
  const fraction = stats.total ? 1 - stats.remaining / stats.total : 1;
  const width = 30;
  const filled = Math.round(fraction * width);
  return (
    `[${'#'.repeat(filled)}${'-'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}%  ` +
    `round ${stats['dirty-sync-count']}  ${formatBytes(stats['guest-bytes'])} sent, ${formatBytes(stats.remaining)} remaining  ` +
    (stats['dirty-pages-rate'] === undefined ? '' : `dirty ${stats['dirty-pages-rate']} pages/s  `) +
    (stats['channels-lost'] === 0 ? '' : `${stats['channels-lost']} channel(s) lost, ${stats['packets-resent']} packets resent  `) +
    (stats.reconnecting ? 'reconnecting  ' : '') +
    `${stats['guest-mbps'].toFixed(0)} mbps guest, ${stats.mbps.toFixed(0)} mbps wire`
  );
}

/** 1536 → "1.5 KiB". */
export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return `${value.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

/** `auto`'s lines: each choice's packets and bytes, the last choice and why. */
function autoLines(stats: MigrationStats): string[] {
  if (!stats.auto) return [];
  const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
  return [
    `auto: last choice ${stats.auto.reason}`,
    ...Object.entries(stats.auto.choices).map(
      ([label, c]) => `auto ${label}: ${c.packets} packets, ${mib(c['guest-bytes'])} of guest in ${mib(c['wire-bytes'])}${c['raw-pages'] ? `, ${c['raw-pages']} pages raw (not shrunk)` : ''}`,
    ),
  ];
}

/** The final summary, QEMU `info migrate` style (kbytes are 1024 bytes, as QEMU prints them). */
export function summary(stats: MigrationStats): string {
  const kb = (bytes: number) => `${Math.round(bytes / 1024)} kbytes`;
  const lines = [
    `Migration status: ${stats.status}`,
    `total time: ${stats['total-time']} ms`,
    ...(stats.downtime === undefined ? [] : [`downtime: ${stats.downtime} ms`]),
    ...(stats['downtime-limit'] === undefined ? [] : [`downtime limit: ${stats['downtime-limit']} ms`]),
    ...(stats['expected-downtime'] === undefined ? [] : [`expected downtime: ${stats['expected-downtime']} ms`]),
    `setup: ${stats['setup-time']} ms`,
    `transferred ram: ${kb(stats.transferred)}`,
    `throughput: ${stats.mbps.toFixed(2)} mbps`,
    `remaining ram: ${kb(stats.remaining)}`,
    `total ram: ${kb(stats.total)}`,
    `duplicate: ${stats.duplicate} pages`,
    `normal: ${stats.normal} pages`,
    `normal bytes: ${kb(stats['normal-bytes'])}`,
    ...(stats['hardware-pages'] === 0 ? [] : [`hardware pages: ${stats['hardware-pages']} (software: ${stats['software-pages']})`]),
    `dirty sync count: ${stats['dirty-sync-count']}`,
    ...(stats['channels-lost'] === 0 ? [] : [`channels lost: ${stats['channels-lost']} (reconnected: ${stats['channels-reconnected']}, packets resent: ${stats['packets-resent']})`]),
    ...(stats.outages === 0 ? [] : [`outages: ${stats.outages} (${stats['outage-time']} ms down in all; control connection resumed ${stats['control-resumes']} times; ${kb(stats['resent-bytes'])} resent)`]),
    ...(stats['dirty-pages-rate'] === undefined ? [] : [`dirty pages rate: ${stats['dirty-pages-rate']} pages`]),
    ...(stats['cpu-throttle-percentage'] === undefined ? [] : [`cpu throttle percentage: ${stats['cpu-throttle-percentage']}`]),
    `page size: ${stats['page-size'] / 1024} kbytes`,
    `multifd bytes: ${kb(stats['multifd-bytes'])}`,
    `header bytes: ${kb(stats['header-bytes'])}`,
    `pages-per-second: ${stats['pages-per-second']}`,
    `guest throughput: ${stats['guest-mbps'].toFixed(2)} mbps`,
    `compression ratio: ${stats['compression-ratio'].toFixed(2)}`,
    ...autoLines(stats),
    `send cpu: ${stats['send-cpu-percent'].toFixed(1)} %`,
  ];
  if (stats['recv-cpu-percent'] !== undefined) lines.push(`receive cpu: ${stats['recv-cpu-percent'].toFixed(1)} %`);
  if (stats['source-checksum']) lines.push(`image checksum: ${stats['source-checksum']}${stats['destination-checksum'] === stats['source-checksum'] ? ' (confirmed by the receiver)' : ''}`);
  if (stats['error-desc']) lines.push(`error: ${stats['error-desc']}`);
  return lines.join('\n');
}
