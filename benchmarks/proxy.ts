// `multifd bench proxy`: QEMU 7.2 migrating to QEMU 7.2 directly, and through the proxy pair
// (docs/qemu-proxy.md), on the same corpus-filled memory (benchmarks/qemu.ts: `-machine none`,
// the source's RAM the image file). Two links, each with a direct row and a proxied row:
// - 1 Gbit/s: QEMU's own max-bandwidth with `none` directly; through the pair, QEMU unlimited
//   and the source proxy's --max-bandwidth on the link, zstd-1 on it;
// - unlimited loopback: `none` directly against `none` on the link.
// The proxies run as two child processes of the built CLI (`multifd proxy --json`), so each
// one's CPU is its own, as each QEMU's is: GNU time's total for the process minus what it had
// used (Node start-up, listening, the link's set-up) when `migrate` is issued, read from
// /proc/<pid>/stat; the QEMUs are told to quit only once both proxies exited. The direct and
// proxied rows alternate run by run; the median of `repeat` runs by wall time is kept. A failed
// run through the pair is noted and tried again (the proxies are the subject: every failure is
// on record, in the notes and the results file).
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { cliCpuMeasured, cliFileCheck, command, type Exit } from './cli-file.js';
import { memoryImage } from './images.js';
import { processCpuSeconds, qemuMigrate, qemuVersion, type QemuMigration } from './qemu.js';
import { machineInfo, writeResults } from './results.js';
import { formatTable } from './table.js';
import { median, round } from './timing.js';

/** Options of `multifd bench proxy`. */
export interface ProxyBenchOptions {
  readonly json: boolean;
  /** Guest memory in MiB (default 1024; 64 with `quick`). */
  readonly sizeMiB?: number;
  /** Small memory, one run per row: a smoke run. */
  readonly quick?: boolean;
  /** Runs per row, the median kept (default 3; 1 with `quick`). */
  readonly repeat?: number;
}

/** One migration (the median run of its row), direct or through the pair, as printed with --json. */
export interface ProxyRow {
  suite: 'proxy';
  /** `1 Gbit/s` or `unlimited`. */
  link: string;
  route: 'direct' | 'proxy';
  /** QEMU's method (always none), and the link codec through the pair. */
  method: string;
  bytes: number;
  /** The source QEMU's query-migrate total-time. */
  qemuTotalTimeMs: number;
  /** From `migrate` to the destination QEMU's completed event. */
  wallMs: number;
  /** CPU seconds during the migration, each process its own; null for the proxies without /usr/bin/time. */
  sourceQemuCpuSeconds: number;
  destinationQemuCpuSeconds: number;
  sourceProxyCpuSeconds: number | null;
  destinationProxyCpuSeconds: number | null;
  /** The source QEMU's ram.multifd-bytes. */
  qemuMultifdBytes: number;
  /** All bytes on the link between the proxies (source proxy's wireBytes); null direct. */
  linkBytes: number | null;
  /** qemuMultifdBytes / link data bytes, as the source proxy counts them; null direct. */
  ratio: number | null;
  /** Every run's wallMs; this row is the median one. */
  runsMs: number[];
}

/** A target: pass when through the pair / direct (wall time) is at most `max`. */
export interface ProxyTarget {
  label: string;
  ratio: number | null;
  max: number;
  pass: boolean;
}

const LINKS = [
  { label: '1 Gbit/s', maxBandwidth: 125_000_000, linkCodec: 'zstd', level: 1 as number | undefined, max: 0.5 },
  { label: 'unlimited', maxBandwidth: 0, linkCodec: 'none', level: undefined, max: 1.5 },
] as const;
/** QEMU's multifd-channels, the link's data connections and the source proxy's worker threads. */
const CHANNELS = 2;
/** How long the proxies may take to exit once both QEMUs reported the migration completed. */
const PROXY_EXIT_TIMEOUT_MS = 30_000;
/** Tries of one run through the pair before the suite gives up. */
const PROXY_ATTEMPTS = 3;

/** The link codec as the tables name methods: `zstd-1`, `none`. */
function linkMethod(link: (typeof LINKS)[number]): string {
  return link.level === undefined ? link.linkCodec : `${link.linkCodec}-${link.level}`;
}

/** Runs the suite; prints a table (or NDJSON with `json`) and writes benchmarks/results/proxy-*.json. */
export async function runProxyBench(options: ProxyBenchOptions): Promise<ProxyRow[]> {
  const quick = Boolean(options.quick);
  const sizeMiB = Math.round(options.sizeMiB ?? (quick ? 64 : 1024));
  const repeat = options.repeat ?? (quick ? 1 : 3);
  const qemu = qemuVersion();
  const cli = cliFileCheck();
  const skip = !qemu ? "qemu-system-x86_64 not found (npm run setup:qemu installs Debian's QEMU 7.2)" : !cli.available ? cli.notes[0] : undefined;
  if (skip) {
    console.log(`bench proxy: skipped: ${skip}`);
    return [];
  }
  const notes = [...cli.notes];
  if (!cliCpuMeasured()) notes.push('no proxy CPU figures without /usr/bin/time');
  const image = memoryImage('corpus', sizeMiB * 2 ** 20);
  if (!image) {
    console.log('bench proxy: skipped: the shared corpus (corpus-mix.bin.zst) was not found');
    return [];
  }
  const machine = machineInfo();
  const progress = (text: string) => options.json || process.stderr.write(`\r\x1b[K${text}`);
  // Not recorded: the first QEMU to map a freshly written image pays for it once (seeds.ts).
  progress('warm-up');
  await qemuMigrate({ image: image.path, bytes: image.bytes, channels: CHANNELS, method: 'none', level: 1, maxBandwidth: 0 });
  const rows: ProxyRow[] = [];
  for (const link of LINKS) {
    const runs: Record<ProxyRow['route'], ProxyRow[]> = { direct: [], proxy: [] };
    for (let run = 0; run < repeat; run++) {
      for (const route of run % 2 === 0 ? (['direct', 'proxy'] as const) : (['proxy', 'direct'] as const)) {
        progress(`${link.label} ${route} run ${run + 1}/${repeat}`);
        const base = { image: image.path, bytes: image.bytes, channels: CHANNELS, method: 'none' as const, level: 1 };
        if (route === 'direct') {
          const migration = await qemuMigrate({ ...base, maxBandwidth: link.maxBandwidth });
          runs.direct.push(rowOf(link.label, 'direct', 'none', image.bytes, migration, null));
        } else {
          // A failed run through the pair is noted and run again with new processes (at most
          // PROXY_ATTEMPTS in all), so one failure is on record without ending a long run.
          for (let attempt = 1; ; attempt++) {
            const pair = proxyPair({ linkCodec: link.linkCodec, level: link.level, maxBandwidth: link.maxBandwidth });
            try {
              const migration = await qemuMigrate({ ...base, maxBandwidth: 0, via: async (destination) => ({ uri: await pair.start(destination), done: pair.finished }) });
              runs.proxy.push(rowOf(link.label, 'proxy', `none, ${linkMethod(link)} on the link`, image.bytes, migration, await pair.finished()));
              break;
            } catch (error) {
              notes.push(`${link.label} through the proxies, run ${run + 1}, attempt ${attempt} of ${PROXY_ATTEMPTS} failed: ${(error as Error).message}`);
              if (attempt === PROXY_ATTEMPTS) throw error;
            } finally {
              pair.dispose();
            }
          }
        }
      }
    }
    const measured = [medianRun(runs.direct), medianRun(runs.proxy)];
    rows.push(...measured);
    if (options.json) for (const row of measured) console.log(JSON.stringify(row));
  }
  progress('');
  const targets = proxyTargets(rows);
  if (!options.json) {
    const verdicts = targets.map((t) => `${t.ratio === null ? 'SKIP' : t.pass ? 'PASS' : 'MISS'}  ${t.label}: ${t.ratio === null ? 'not measured' : `${t.ratio.toFixed(2)}×`} (target ≤ ${t.max.toFixed(2)}×)`);
    console.log([proxyTable(rows), '', ...verdicts, ...(notes.length ? ['', 'notes:', ...notes.map((n) => `- ${n}`)] : [])].join('\n'));
  }
  const file = writeResults('proxy', { machine: { ...machine, qemu, loadAverageEnd: loadavg() }, sizeMiB, repeat, channels: CHANNELS, proxies: 'child processes of dist/cli/main.js', rows, targets, notes });
  if (!options.json) console.log(`\nresults: ${file}`);
  return rows;
}

/** Each link's proxied row against its direct row, by wall time. */
export function proxyTargets(rows: readonly ProxyRow[]): ProxyTarget[] {
  return LINKS.map((link) => {
    const direct = rows.find((r) => r.link === link.label && r.route === 'direct');
    const proxied = rows.find((r) => r.link === link.label && r.route === 'proxy');
    const ratio = direct && proxied ? round(proxied.wallMs / direct.wallMs, 2) : null;
    return { label: `${link.label}: through the proxies (${linkMethod(link)} on the link) / QEMU direct, wall`, ratio, max: link.max, pass: ratio !== null && ratio <= link.max };
  });
}

/** The terminal table: one line per row, times in ms, CPU in seconds, bytes in MB. */
export function proxyTable(rows: readonly ProxyRow[]): string {
  const cpu = (seconds: number | null) => (seconds === null ? '-' : seconds.toFixed(2));
  const mb = (bytes: number | null) => (bytes === null ? '-' : (bytes / 1e6).toFixed(1));
  return formatTable(
    ['link', 'route', 'method', 'QEMU total ms', 'wall ms', 'runs ms', 'src QEMU cpu s', 'dst QEMU cpu s', 'src proxy cpu s', 'dst proxy cpu s', 'multifd MB', 'link MB', 'ratio'],
    rows.map((r) => [
      r.link,
      r.route,
      r.method,
      String(r.qemuTotalTimeMs),
      String(r.wallMs),
      r.runsMs.join(' '),
      cpu(r.sourceQemuCpuSeconds),
      cpu(r.destinationQemuCpuSeconds),
      cpu(r.sourceProxyCpuSeconds),
      cpu(r.destinationProxyCpuSeconds),
      mb(r.qemuMultifdBytes),
      mb(r.linkBytes),
      r.ratio === null ? '-' : r.ratio.toFixed(2),
    ]),
    'lllrrlrrrrrrr',
  );
}

/** What the pair reported at its end. */
interface PairResult {
  sourceCpuSeconds: number | null;
  destinationCpuSeconds: number | null;
  linkBytes: number;
  ratio: number;
}

/** The proxies' `complete` event (--json), the fields this suite reads. */
interface CompleteEvent {
  wireBytes: number;
  ratio: number;
}

/**
 * The pair as two `multifd proxy --json` processes: `start` (qemuMigrate's `via`) starts the
 * destination proxy towards the destination QEMU, then the source proxy (which connects the
 * link), and resolves with the source proxy's address for `migrate`; `finished` waits for both
 * to exit and reads the source proxy's `complete` event.
 */
function proxyPair(link: { linkCodec: string; level: number | undefined; maxBandwidth: number }) {
  const dirs: string[] = [];
  const started: Array<{ proxy: ReturnType<typeof command>; ended: boolean; nodePid: number | null; cpuAtStart: number | null }> = [];
  const begin = async (side: 'source' | 'destination', args: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), `multifd-bench-proxy-${side}-`));
    dirs.push(dir);
    const proxy = command(dir, 'proxy', [...args, '--json']);
    const entry = { proxy, ended: false, nodePid: null as number | null, cpuAtStart: null as number | null };
    void proxy.exited.then(() => (entry.ended = true));
    started.push(entry);
    const match = await proxy.printed(/"event":"listening".*?"address":"([^"]+)"/);
    if (!match) throw new Error(`bench proxy: the ${side} proxy exited before listening: ${failureOf(await proxy.exited)}`);
    entry.nodePid = nodePid(proxy.pid);
    return { entry, address: match[1]! };
  };
  let source: Awaited<ReturnType<typeof begin>>['entry'] | undefined;
  let destination: typeof source;
  const waitForExits = async (): Promise<PairResult> => {
    const exits: Exit[] = [];
    for (const [side, entry] of [['source', source!], ['destination', destination!]] as const) {
      const exit = await Promise.race([entry.proxy.exited, sleep(PROXY_EXIT_TIMEOUT_MS).then(() => null)]);
      if (!exit) throw new Error(`bench proxy: the ${side} proxy did not exit ${PROXY_EXIT_TIMEOUT_MS} ms after QEMU completed`);
      if (exit.code !== 0) throw new Error(`bench proxy: the ${side} proxy exited ${exit.code ?? exit.signal}: ${failureOf(exit)}`);
      exits.push(exit);
    }
    const complete = JSON.parse(/\{"event":"complete".*\}/.exec(exits[0]!.output)![0]) as CompleteEvent;
    const during = (exit: Exit, entry: typeof source) => (exit.cpuSeconds === null || entry!.cpuAtStart === null ? null : round(exit.cpuSeconds - entry!.cpuAtStart, 2));
    return { sourceCpuSeconds: during(exits[0]!, source), destinationCpuSeconds: during(exits[1]!, destination), linkBytes: complete.wireBytes, ratio: complete.ratio };
  };
  let result: Promise<PairResult> | undefined;
  return {
    start: async (destinationUri: string): Promise<string> => {
      const dst = await begin('destination', ['--listen', 'tcp:127.0.0.1:0', '--to-qemu', destinationUri]);
      destination = dst.entry;
      const src = await begin('source', [
        '--from-qemu', 'tcp:127.0.0.1:0', '--to', dst.address,
        '--qemu-channels', String(CHANNELS), '--multifd-channels', String(CHANNELS), '--threads', String(CHANNELS),
        '--multifd-compression', link.linkCodec,
        ...(link.level === undefined ? [] : [`--multifd-${link.linkCodec}-level`, String(link.level)]),
        ...(link.maxBandwidth ? ['--max-bandwidth', String(link.maxBandwidth)] : []),
      ]);
      source = src.entry;
      // The baseline each proxy's CPU is counted from: taken last, just before `migrate`.
      for (const entry of started) entry.cpuAtStart = entry.nodePid === null ? null : processCpuSecondsOrNull(entry.nodePid);
      return src.address;
    },
    /** Waits (once) for both proxies to exit and reads the source proxy's `complete` event. */
    finished: (): Promise<PairResult> => (result ??= waitForExits()),
    /** Ends whatever still runs (after a failure) and removes the temporary directories. */
    dispose: () => {
      for (const entry of started) {
        if (entry.ended) continue;
        for (const pid of [entry.nodePid, entry.proxy.pid]) if (pid !== null) try { process.kill(pid, 'SIGTERM'); } catch { /* already gone */ }
      }
      for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** A failed proxy's own one-line error (the CLI's `multifd proxy: …`), else its output's last line: the CLI prints an error's first line only. */
function failureOf(exit: Exit): string {
  const lines = exit.output.split('\n').map((line) => line.replace(/^\[proxy\] /, '').trim()).filter(Boolean);
  return lines.findLast((line) => line.startsWith('multifd proxy:')) ?? lines.at(-1) ?? 'no output';
}

/** The node process a command runs: GNU time's only child when it wraps it (/proc/<pid>/task/<pid>/children), else `pid`. */
function nodePid(pid: number): number | null {
  if (!cliCpuMeasured()) return pid;
  try {
    const child = Number(readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(' ')[0]);
    return child > 0 ? child : null;
  } catch {
    return null;
  }
}

function processCpuSecondsOrNull(pid: number): number | null {
  try {
    return processCpuSeconds(pid);
  } catch {
    return null;
  }
}

function rowOf(link: string, route: ProxyRow['route'], method: string, bytes: number, migration: QemuMigration, pair: PairResult | null): ProxyRow {
  return {
    suite: 'proxy',
    link,
    route,
    method,
    bytes,
    qemuTotalTimeMs: migration.totalTimeMs,
    wallMs: migration.endToEndMs,
    sourceQemuCpuSeconds: round(migration.sendCpuSeconds, 2),
    destinationQemuCpuSeconds: round(migration.recvCpuSeconds, 2),
    sourceProxyCpuSeconds: pair?.sourceCpuSeconds ?? null,
    destinationProxyCpuSeconds: pair?.destinationCpuSeconds ?? null,
    qemuMultifdBytes: migration.multifdBytes,
    linkBytes: pair?.linkBytes ?? null,
    ratio: pair ? round(pair.ratio, 2) : null,
    runsMs: [migration.endToEndMs],
  };
}

/** The run with the median wall time; every run's wall time kept in `runsMs`. */
function medianRun(runs: readonly ProxyRow[]): ProxyRow {
  const wallMs = median(runs.map((r) => r.wallMs));
  return { ...runs.find((r) => r.wallMs === wallMs)!, runsMs: runs.map((r) => r.wallMs) };
}
