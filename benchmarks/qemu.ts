// QEMU's own multifd, measured beside ours on the same bytes: two qemu-system-x86_64 processes
// on this machine, the source's RAM backed by the image file itself (memory-backend-file,
// share=on: the guest memory *is* the file's page-cache pages, as ours is filled from the same
// file), the destination's fresh anonymous RAM (as our receiver's). No guest runs (`-S`, no CPU
// on `-machine none`), so a migration moves exactly the image. Figures come from QEMU itself
// (query-migrate) and from /proc/<pid>/stat for each side's CPU time.
//
// QEMU 7.2 (Debian 12) quirks handled here (reference/qemu-multifd.md §4, §10):
// - migrate-set-parameters accepts multifd-zlib-level / multifd-zstd-level but never applies
//   them, so the levels are set at start-up with `-global migration.multifd-*-level=N`;
// - max-bandwidth defaults to 128 MiB/s, so "unlimited" is set explicitly (1 PB/s);
// - its rate limit and its multifd byte counters count *uncompressed* page bytes, so on a
//   limited link a compressing QEMU 7.2 is held to the link rate in guest bytes, and its
//   `transferred` / `mbps` say nothing about the wire (we report guest bytes for both sides);
// - zero pages are always found on the migration thread (there is no zero-page-detection).
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { join } from 'node:path';
import { MultifdError } from '../src/errors.js';
import { QmpClient } from './qmp.js';

/** The binary the side-by-side rows need. */
export const QEMU_BINARY = 'qemu-system-x86_64';

/** Methods QEMU 7.2 has (Debian builds none of qatzip, qpl, uadk). */
export type QemuMethod = 'none' | 'zlib' | 'zstd';

/** `qemu-system-x86_64 --version`'s first line, or null when it is not installed. */
export function qemuVersion(): string | null {
  const result = spawnSync(QEMU_BINARY, ['--version'], { encoding: 'utf8' });
  if (result.error || result.status !== 0) return null;
  return result.stdout.split('\n')[0]!.trim();
}

/** One migration between two QEMU processes. */
export interface QemuMigration {
  /** Source's query-migrate total-time (from `migrate` to the source's completion), ms. */
  totalTimeMs: number;
  /** From issuing `migrate` to the destination's MIGRATION completed event, ms. */
  endToEndMs: number;
  setupTimeMs: number;
  /** query-migrate's ram.normal and ram.duplicate (zero) pages. */
  normalPages: number;
  zeroPages: number;
  /** CPU seconds (user + system, all threads) of each process during the migration. */
  sendCpuSeconds: number;
  recvCpuSeconds: number;
  /** query-migrate's ram.multifd-bytes: what QEMU wrote on its multifd channels (7.2: uncompressed page bytes and headers). */
  multifdBytes: number;
}

/** What to migrate and how. */
export interface QemuMigrateOptions {
  /** The image file: the source's RAM, its size the RAM size (a multiple of 1 MiB). */
  readonly image: string;
  readonly bytes: number;
  readonly channels: number;
  readonly method: QemuMethod;
  /** zlib or zstd level (set with -global, see above). */
  readonly level: number;
  /** Bytes per second; 0 = unlimited. */
  readonly maxBandwidth: number;
  /** Give up after this long (default 300 s). */
  readonly timeoutMs?: number;
  /**
   * Routes the migration through something else (a proxy pair): given the destination QEMU's
   * listening URI, resolves with the URI the source QEMU migrates to, called just before
   * `migrate`, outside the timed span; and `done`, awaited once both QEMUs reported the
   * migration over and before they are told to quit (so the route ends before its QEMUs' sockets
   * close under it). By default the source migrates to the destination.
   */
  readonly via?: (destinationUri: string) => Promise<{ uri: string; done: () => Promise<unknown> }>;
}

const UNLIMITED_BYTES_PER_SECOND = 1e15;
const CLOCK_TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout?.trim()) || 100;

/** utime + stime of a process (all its threads), in seconds: fields 14 and 15 of /proc/<pid>/stat. */
export function processCpuSeconds(pid: number): number {
  return cpuSecondsOfStat(readFileSync(`/proc/${pid}/stat`, 'utf8'));
}

/** Parses a /proc/<pid>/stat line; the command name (field 2) may hold spaces and parentheses. */
export function cpuSecondsOfStat(stat: string, ticksPerSecond = CLOCK_TICKS_PER_SECOND): number {
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields[0] is field 3 (state), so utime (14) and stime (15) are fields[11] and fields[12].
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

/** The source's query-migrate once complete. */
interface MigrationInfo {
  status: string;
  'total-time'?: number;
  'setup-time'?: number;
  'error-desc'?: string;
  ram?: { normal: number; duplicate: number; 'multifd-bytes'?: number };
}

/**
 * The source's final query-migrate. QEMU emits the completed event before its migration thread
 * has stored total-time (7.2 computes it afterwards, in migration_calculate_complete), so a
 * query right after the event can read 0: ask again until the figure is there (at most 1 s).
 */
async function finalInfo(src: QmpClient): Promise<MigrationInfo> {
  for (let attempt = 0; ; attempt++) {
    const info = (await src.execute('query-migrate')) as MigrationInfo;
    if (info.status !== 'completed' || (info['total-time'] ?? 0) > 0 || attempt === 100) return info;
    await sleep(10);
  }
}

/**
 * Migrates `options.image` from one QEMU process to another over loopback TCP with multifd and
 * returns QEMU's figures.
 * @throws MultifdError `ERR_QEMU_MIGRATION` when QEMU reports a failed migration, `ERR_QMP_*`
 * when a process does not answer.
 */
export async function qemuMigrate(options: QemuMigrateOptions): Promise<QemuMigration> {
  const dir = mkdtempSync(join(tmpdir(), 'multifd-qemu-'));
  const mib = options.bytes / 2 ** 20;
  const common = [
    '-machine', 'none,memory-backend=mem', '-m', `${mib}M`, '-accel', 'tcg', '-S', '-nographic', '-nodefaults',
    '-global', `migration.multifd-zlib-level=${options.level}`, '-global', `migration.multifd-zstd-level=${options.level}`,
  ];
  const processes: ChildProcess[] = [];
  const clients: QmpClient[] = [];
  const start = (name: string, backend: string, extra: string[]) => {
    const child = spawn(QEMU_BINARY, [...common, '-object', backend, '-qmp', `unix:${join(dir, name)}.sock,server=on,wait=off`, ...extra], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.on('exit', (code) => {
      if (code) process.stderr.write(`${name} QEMU exited with ${code}: ${stderr.trim()}\n`);
    });
    processes.push(child);
    return child;
  };
  try {
    const destination = start('destination', `memory-backend-ram,id=mem,size=${mib}M`, ['-incoming', 'defer']);
    const source = start('source', `memory-backend-file,id=mem,size=${mib}M,mem-path=${options.image},share=on`, []);
    const [dst, src] = await Promise.all([QmpClient.open(join(dir, 'destination.sock'), 'destination QEMU'), QmpClient.open(join(dir, 'source.sock'), 'source QEMU')]);
    clients.push(dst, src);
    for (const qmp of [dst, src]) {
      await qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'multifd', state: true }, { capability: 'events', state: true }] });
      await qmp.execute('migrate-set-parameters', {
        'multifd-channels': options.channels,
        'multifd-compression': options.method,
        'max-bandwidth': options.maxBandwidth || UNLIMITED_BYTES_PER_SECOND,
      });
    }
    await dst.execute('migrate-incoming', { uri: 'tcp:127.0.0.1:0' });
    const incoming = (await dst.execute('query-migrate')) as { 'socket-address'?: Array<{ port?: string }> };
    const port = incoming['socket-address']?.[0]?.port;
    if (!port) throw new MultifdError('ERR_QEMU_MIGRATION', 'destination QEMU did not report its listening port', { context: { reply: JSON.stringify(incoming) } });

    const route = options.via ? await options.via(`tcp:127.0.0.1:${port}`) : { uri: `tcp:127.0.0.1:${port}`, done: async () => undefined };
    const cpuBefore = [processCpuSeconds(source.pid!), processCpuSeconds(destination.pid!)];
    const began = performance.now();
    await src.execute('migrate', { uri: route.uri });
    const timeoutMs = options.timeoutMs ?? 300_000;
    const finished = (e: { event: string; data?: Record<string, unknown> }) => e.event === 'MIGRATION' && (e.data?.status === 'completed' || e.data?.status === 'failed');
    const [sourceEnd, destinationEnd] = await Promise.all([src.waitEvent(finished, timeoutMs), dst.waitEvent(finished, timeoutMs)]);
    const endToEndMs = performance.now() - began;
    const cpuAfter = [processCpuSeconds(source.pid!), processCpuSeconds(destination.pid!)];
    await route.done();
    const info = await finalInfo(src);
    if (sourceEnd.data?.status !== 'completed' || destinationEnd.data?.status !== 'completed' || !info.ram) {
      throw new MultifdError('ERR_QEMU_MIGRATION', `QEMU migration failed: ${info['error-desc'] ?? info.status}`, { context: { channels: options.channels, method: options.method, status: info.status } });
    }
    return {
      totalTimeMs: info['total-time']!,
      endToEndMs: Math.round(endToEndMs),
      setupTimeMs: info['setup-time'] ?? 0,
      normalPages: info.ram.normal,
      zeroPages: info.ram.duplicate,
      sendCpuSeconds: cpuAfter[0]! - cpuBefore[0]!,
      recvCpuSeconds: cpuAfter[1]! - cpuBefore[1]!,
      multifdBytes: info.ram['multifd-bytes'] ?? 0,
    };
  } finally {
    for (const qmp of clients) await qmp.execute('quit').catch(() => undefined);
    for (const qmp of clients) qmp.close();
    await Promise.all(processes.map((child) => (child.exitCode !== null || child.signalCode !== null ? undefined : new Promise((resolve) => {
      const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
      child.once('exit', () => resolve(clearTimeout(timer)));
    }))));
    rmSync(dir, { recursive: true, force: true });
  }
}
