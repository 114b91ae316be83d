// A real Linux guest under QEMU 7.2, driven over QMP, for tests that migrate it: the kernel and
// initramfs of scripts/build-test-guest.sh (test/.cache/guest/), TCG (nested KVM does not work
// on these machines: reference/qemu-multifd.md §10.4), one vCPU, no devices but the serial port,
// which writes to a file the harness polls for the guest's lines ("dirtier: ready ...",
// "dirtier: tick N"). Each VM owns a temp dir (QMP socket, serial log, RAM dumps); close()
// quits QEMU, kills it if it does not go, and removes the dir. A VM still running when Node
// exits is killed and its dir removed then, so an aborted test leaves nothing behind.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { open as openFile, stat } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { QEMU_BINARY, qemuVersion, type QemuMethod } from '../../benchmarks/qemu.js';
import { QmpClient } from '../../benchmarks/qmp.js';
import { MultifdError } from '../../src/errors.js';
import * as assert from 'uvu/assert';

/** Where scripts/build-test-guest.sh puts the guest. */
export const GUEST_DIR = fileURLToPath(new URL('../.cache/guest/', import.meta.url));

/** The guest's boot files. */
export interface GuestImage {
  readonly kernel: string;
  readonly initrd: string;
}

/** The built guest's files. */
export const TEST_GUEST: GuestImage = { kernel: join(GUEST_DIR, 'vmlinuz'), initrd: join(GUEST_DIR, 'initramfs.cpio.gz') };

/** Why a real guest cannot run here (for the suite's `skipped:` line), or undefined. */
export function qemuGuestSkipReason(): string | undefined {
  if (!qemuVersion()) return `${QEMU_BINARY} is not installed (npm run setup:qemu)`;
  if (!existsSync(TEST_GUEST.kernel) || !existsSync(TEST_GUEST.initrd)) return `the test guest is not built in ${GUEST_DIR} (bash scripts/build-test-guest.sh)`;
  return undefined;
}

/** A line the dirtier prints about every 100 ms once its memory is filled; N counts up from 1. */
const TICK_LINE = /^dirtier: tick (\d+)$/;

/** How to start one VM. Source and destination of a migration need the same options but `incoming`. */
export interface QemuVmOptions {
  /** For messages: "source", "destination". */
  readonly name: string;
  /** Guest RAM, MiB; the guest gets 64 KiB more (see TCG_SYNC_PAD_KIB). */
  readonly memoryMib: number;
  /** MiB the guest's dirtier fills and keeps dirtying (its default: 160). */
  readonly dirtierMib?: number;
  /** Start with `-incoming defer`, waiting for {@link QemuVm.migrateIncoming}. */
  readonly incoming?: boolean;
  /** Start with `-S`: the CPU stays stopped until {@link QemuVm.cont}. */
  readonly paused?: boolean;
  readonly guest?: GuestImage;
}

/** What query-migrate reports (the fields tests read; QEMU sends more). */
export interface MigrationInfo {
  readonly status: string;
  readonly 'total-time'?: number;
  readonly 'error-desc'?: string;
  readonly ram?: { readonly normal: number; readonly duplicate: number; readonly 'multifd-bytes'?: number; readonly 'dirty-sync-count'?: number };
}

const MIB = 2 ** 20;
/**
 * Guest RAM is `memoryMib` MiB and this much more, so that a migration does not lose stores.
 * QEMU 7.2's dirty-bitmap sync has a fast path for RAM blocks that are a whole number of 64-page
 * words, and under TCG it clears dirty bits there without resetting the vCPU's TLB entries: a
 * store through an entry filled before the sync then marks nothing, and the destination keeps
 * the page's older content (fixed in QEMU 9.0 by 03bfc2188f, "physmem: Fix migration dirty
 * bitmap coherency with TCG memory access"). A block that is not a multiple of 256 KiB takes the
 * page-by-page path, which does reset them. Seen here with 2 multifd channels: at 256 MiB, 10 of
 * 12 migrations left one page stale (the dirtier's page as of tick 13 where the source had it as
 * of tick 16); with 64 KiB more (256 and 384 MiB, idle or loaded host), none of 28.
 */
const TCG_SYNC_PAD_KIB = 64;
const POLL_MS = 50;
const QUIT_TIMEOUT_MS = 5000;
const ENDED = new Set(['completed', 'failed', 'cancelled']);

/** VMs not yet closed, killed if Node exits first. */
const openVms = new Set<QemuVm>();
process.once('exit', () => {
  for (const vm of openVms) vm.killNow();
});

/** One QEMU process running the test guest. */
export class QemuVm {
  /** The guest's serial output so far. */
  readonly serialPath: string;
  private readonly exited: Promise<void>;
  private stderr = '';
  private ended = false;
  private qmpClient: QmpClient | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    readonly options: QemuVmOptions,
    private readonly dir: string,
    private readonly child: ChildProcess,
  ) {
    this.serialPath = join(dir, 'serial.log');
    child.stderr!.on('data', (chunk: Buffer) => (this.stderr += chunk.toString()));
    // 'error' alone when QEMU could not be spawned at all.
    this.exited = new Promise((resolve) => {
      const end = () => {
        this.ended = true;
        resolve();
      };
      child.once('exit', end);
      child.once('error', (error) => {
        this.stderr += String(error);
        end();
      });
    });
  }

  /**
   * Starts QEMU and connects to its QMP socket.
   * @throws MultifdError `ERR_QEMU_EXITED` when QEMU ends before QMP answers (its stderr in the
   * message), `ERR_QMP_CONNECT` when QMP does not answer in time.
   */
  static async start(options: QemuVmOptions): Promise<QemuVm> {
    const guest = options.guest ?? TEST_GUEST;
    const dir = mkdtempSync(join(tmpdir(), `multifd-vm-${options.name}-`));
    const append = ['console=ttyS0', 'quiet', 'panic=-1', ...(options.dirtierMib ? [`dirtier.mib=${options.dirtierMib}`] : [])].join(' ');
    const args = [
      '-accel', 'tcg', '-machine', 'pc', '-m', `${options.memoryMib * 1024 + TCG_SYNC_PAD_KIB}k`, '-smp', '1',
      '-display', 'none', '-nodefaults', '-no-reboot',
      '-kernel', guest.kernel, '-initrd', guest.initrd, '-append', append,
      '-serial', `file:${join(dir, 'serial.log')}`,
      '-qmp', `unix:${join(dir, 'qmp.sock')},server=on,wait=off`,
      ...(options.incoming ? ['-incoming', 'defer'] : []),
      ...(options.paused ? ['-S'] : []),
    ];
    const vm = new QemuVm(options, dir, spawn(QEMU_BINARY, args, { stdio: ['ignore', 'ignore', 'pipe'] }));
    openVms.add(vm);
    try {
      const connecting = QmpClient.open(join(dir, 'qmp.sock'), `${options.name} QEMU`);
      connecting.catch(() => undefined); // when QEMU's exit wins the race below
      vm.qmpClient = await Promise.race([connecting, vm.exited.then(() => Promise.reject(vm.exitError('starting')))]);
      return vm;
    } catch (error) {
      await vm.close();
      throw error;
    }
  }

  /** The guest's RAM size (all of it below 4 GiB, from guest-physical address 0). */
  get ramBytes(): number {
    return this.options.memoryMib * MIB + TCG_SYNC_PAD_KIB * 1024;
  }

  /** The QMP connection, for commands this class has no method for. */
  get qmp(): QmpClient {
    if (!this.qmpClient) throw new MultifdError('ERR_QMP_CLOSED', `${this.options.name} QEMU: not connected`);
    return this.qmpClient;
  }

  /**
   * Resolves with the first complete serial line (from the start of the log) that matches
   * `pattern` and that `accept` takes.
   * @throws MultifdError `ERR_QEMU_TIMEOUT` naming the pattern and the last line seen,
   * `ERR_QEMU_EXITED` when QEMU ends first.
   */
  async waitForSerial(pattern: RegExp, timeoutMs: number, accept: (match: RegExpMatchArray) => boolean = () => true): Promise<RegExpMatchArray> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const lines = this.serialLines();
      for (const line of lines) {
        const match = line.match(pattern);
        if (match && accept(match)) return match;
      }
      if (this.ended) throw this.exitError(`waiting for a serial line matching ${pattern}`);
      if (performance.now() > deadline) {
        throw new MultifdError('ERR_QEMU_TIMEOUT', `${this.options.name} QEMU: no serial line matching ${pattern} within ${timeoutMs} ms (last line: ${JSON.stringify(lines.at(-1) ?? '')})`, {
          context: { qemu: this.options.name, pattern: String(pattern), timeoutMs },
        });
      }
      await sleep(POLL_MS);
    }
  }

  /** Waits for a "dirtier: tick N" line with N > `after` and resolves with N. */
  async waitForTick(after: number, timeoutMs: number): Promise<number> {
    const match = await this.waitForSerial(TICK_LINE, timeoutMs, (m) => Number(m[1]) > after);
    return Number(match[1]);
  }

  /** The last "dirtier: tick N" in the serial log, or 0 when there is none yet. */
  lastTick(): number {
    const lines = this.serialLines();
    for (let i = lines.length - 1; i >= 0; i--) {
      const match = lines[i]!.match(TICK_LINE);
      if (match) return Number(match[1]);
    }
    return 0;
  }

  /** QEMU's run state (query-status): "running", "paused", "inmigrate", "postmigrate", ... */
  async runState(): Promise<string> {
    return ((await this.qmp.execute('query-status')) as { status: string }).status;
  }

  /**
   * Polls query-status until QEMU's run state is `state`. A source reports its migration
   * completed a moment before it enters "postmigrate" (7.2 sets the status from the migration
   * thread, the run state afterwards under the big lock), so a test waits for it.
   * @throws MultifdError `ERR_QEMU_TIMEOUT` with the last state seen.
   */
  async waitForRunState(state: string, timeoutMs: number): Promise<void> {
    const deadline = performance.now() + timeoutMs;
    for (let now = await this.runState(); now !== state; now = await this.runState()) {
      if (performance.now() > deadline) {
        throw new MultifdError('ERR_QEMU_TIMEOUT', `${this.options.name} QEMU: run state still ${now}, not ${state}, after ${timeoutMs} ms`, {
          context: { qemu: this.options.name, state: now, timeoutMs },
        });
      }
      await sleep(POLL_MS);
    }
  }

  /** Turns on multifd with `channels` channels and `method` (both ends need the same). */
  async enableMultifd(channels: number, method: QemuMethod = 'none'): Promise<void> {
    await this.qmp.execute('migrate-set-capabilities', { capabilities: [{ capability: 'multifd', state: true }] });
    await this.qmp.execute('migrate-set-parameters', { 'multifd-channels': channels, 'multifd-compression': method });
  }

  /** Destination: listens for the migration on `uri` (`tcp:127.0.0.1:PORT`). */
  async migrateIncoming(uri: string): Promise<void> {
    await this.qmp.execute('migrate-incoming', { uri });
  }

  /** Source: starts migrating to `uri`; {@link waitForMigration} follows it. */
  async migrate(uri: string): Promise<void> {
    await this.qmp.execute('migrate', { uri });
  }

  /**
   * Polls query-migrate until the migration completed, failed or was cancelled, and returns
   * that last answer (the caller checks its status).
   * @throws MultifdError `ERR_QEMU_TIMEOUT` with the last status seen.
   */
  async waitForMigration(timeoutMs: number): Promise<MigrationInfo> {
    const deadline = performance.now() + timeoutMs;
    for (;;) {
      const info = (await this.qmp.execute('query-migrate')) as MigrationInfo;
      if (ENDED.has(info.status)) return info;
      if (performance.now() > deadline) {
        throw new MultifdError('ERR_QEMU_TIMEOUT', `${this.options.name} QEMU: migration still ${info.status ?? 'not started'} after ${timeoutMs} ms`, {
          context: { qemu: this.options.name, status: info.status, timeoutMs },
        });
      }
      await sleep(POLL_MS * 2);
    }
  }

  /** Dumps the whole guest RAM ({@link ramBytes} from address 0) to a file in the VM's dir; resolves with its path. */
  async pmemsave(fileName = 'ram.dump'): Promise<string> {
    const path = join(this.dir, fileName);
    await this.qmp.execute('pmemsave', { val: 0, size: this.ramBytes, filename: path });
    return path;
  }

  /** Starts (or resumes) the guest's CPU. */
  async cont(): Promise<void> {
    await this.qmp.execute('cont');
  }

  /** Quits QEMU (killed after 5 s), closes QMP and removes the VM's dir. Safe to call again. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      if (this.qmpClient) await this.qmpClient.execute('quit').catch(() => undefined);
      this.qmpClient?.close();
      if (!this.ended) {
        const timer = setTimeout(() => this.child.kill('SIGKILL'), QUIT_TIMEOUT_MS);
        await this.exited;
        clearTimeout(timer);
      }
      rmSync(this.dir, { recursive: true, force: true });
      openVms.delete(this);
    })();
    return this.closing;
  }

  /** At Node's exit: kill QEMU and remove the dir, synchronously. */
  killNow(): void {
    this.child.kill('SIGKILL');
    rmSync(this.dir, { recursive: true, force: true });
  }

  /** The serial log's complete lines (the last, unfinished one left out), without CR. */
  private serialLines(): string[] {
    let text: string;
    try {
      text = readFileSync(this.serialPath, 'latin1');
    } catch {
      return [];
    }
    return text.split('\n').slice(0, -1).map((line) => line.replace(/\r$/, ''));
  }

  private exitError(doing: string): MultifdError {
    const how = this.child.signalCode ?? `code ${this.child.exitCode}`;
    return new MultifdError('ERR_QEMU_EXITED', `${this.options.name} QEMU exited (${how}) while ${doing}: ${this.stderr.trim() || 'no stderr'}`, {
      context: { qemu: this.options.name },
    });
  }
}

/** A port free on 127.0.0.1 just now (listened on with port 0, then closed). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

/** Two RAM dumps compared page by page (over the shorter one): how many pages differ, the first few of them, and both sizes. */
export interface DumpComparison {
  readonly bytes: [number, number];
  readonly differentPages: number;
  readonly firstDifferentPages: number[];
}

/** Compares two files page by page, 1 MiB at a time (no whole-file buffers). */
export async function compareDumps(pathA: string, pathB: string, pageSize = 4096): Promise<DumpComparison> {
  const bytes: [number, number] = [(await stat(pathA)).size, (await stat(pathB)).size];
  const chunkA = Buffer.alloc(MIB);
  const chunkB = Buffer.alloc(MIB);
  let differentPages = 0;
  const firstDifferentPages: number[] = [];
  const a = await openFile(pathA);
  try {
    const b = await openFile(pathB);
    try {
      for (let offset = 0; offset < Math.min(...bytes); offset += MIB) {
        const [readA, readB] = await Promise.all([a.read(chunkA, 0, MIB, offset), b.read(chunkB, 0, MIB, offset)]);
        const bytesRead = Math.min(readA.bytesRead, readB.bytesRead);
        if (chunkA.subarray(0, bytesRead).equals(chunkB.subarray(0, bytesRead))) continue;
        for (let at = 0; at < bytesRead; at += pageSize) {
          if (chunkA.subarray(at, at + pageSize).equals(chunkB.subarray(at, at + pageSize))) continue;
          differentPages++;
          if (firstDifferentPages.length < 8) firstDifferentPages.push((offset + at) / pageSize);
        }
      }
    } finally {
      await b.close();
    }
  } finally {
    await a.close();
  }
  return { bytes, differentPages, firstDifferentPages };
}

/** What the real-guest migration tests start: a running source and a paused destination, multifd on. */
export interface GuestPair {
  readonly source: QemuVm;
  readonly destination: QemuVm;
}

/**
 * Starts a source guest and a destination waiting for a migration (`-incoming defer -S`),
 * pushes both onto `vms` (for the test's `after` to close), waits until the source's program
 * is ready and ticking, and turns multifd on with `channels` on both.
 */
export async function startGuestPair(vms: QemuVm[], options: { memoryMib: number; dirtierMib: number; channels: number; guardMs: number }): Promise<GuestPair> {
  const sizes = { memoryMib: options.memoryMib, dirtierMib: options.dirtierMib };
  vms.push(await QemuVm.start({ ...sizes, name: 'source' }));
  vms.push(await QemuVm.start({ ...sizes, name: 'destination', incoming: true, paused: true }));
  const [source, destination] = vms.slice(-2) as [QemuVm, QemuVm];
  await source.waitForSerial(/^dirtier: ready /, options.guardMs);
  await source.waitForTick(3, options.guardMs);
  for (const vm of [source, destination]) await vm.enableMultifd(options.channels);
  return { source, destination };
}

/** Both sides' final `query-migrate`, each asserted `completed` (with QEMU's error when not). */
export async function assertMigrationCompleted({ source, destination }: GuestPair, guardMs: number): Promise<{ sent: MigrationInfo; received: MigrationInfo }> {
  const [sent, received] = await Promise.all([source.waitForMigration(guardMs), destination.waitForMigration(guardMs)]);
  assert.is(received.status, 'completed', `destination: ${received['error-desc'] ?? received.status}`);
  assert.is(sent.status, 'completed', `source: ${sent['error-desc'] ?? sent.status}`);
  return { sent, received };
}

/**
 * After a completed migration: the source is stopped (`postmigrate`) and the destination still
 * paused; their RAM dumps are identical; once continued, the destination's guest counts on past
 * the last tick the source printed.
 */
export async function assertGuestMovedIntact({ source, destination }: GuestPair, guardMs: number): Promise<void> {
  await source.waitForRunState('postmigrate', guardMs);
  assert.is(await destination.runState(), 'paused');
  const comparison = await compareDumps(await source.pmemsave(), await destination.pmemsave());
  assert.equal(comparison, { bytes: [source.ramBytes, destination.ramBytes], differentPages: 0, firstDifferentPages: [] });
  const lastOnSource = source.lastTick();
  assert.ok(lastOnSource >= 3, `the source printed ticks (last ${lastOnSource})`);
  await destination.cont();
  const next = await destination.waitForTick(lastOnSource, guardMs);
  assert.ok(next > lastOnSource, `tick ${next} after ${lastOnSource}`);
}
