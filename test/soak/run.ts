// `npm run soak -- --minutes N`: live migrations back to back in one long-lived process, as a
// migration daemon would run them: a guest thread writing, a random codec, 1–8 channels, half
// of them unthrottled and half at 64 MiB/s, sometimes TLS, sometimes a data channel cut
// mid-transfer (once the receiver has acknowledged packets on it, so unthrottled migrations
// that finish in a few milliseconds are cut too), and sometimes, drawn apart from the cut, a
// link outage: every connection of the migration, control included, goes through a fault
// proxy (test/helpers/fault-proxy.ts) that, half the time, resets every one of them and
// refuses new ones for 100–1500 ms, and the other half holds every byte silently for
// 1500–3000 ms (with the sender's silence timeout at 1 s, so it notices); both well inside
// the reconnect timeout, so the sender must resume the control connection, redial its data
// channels and complete. Every migration is verified byte for byte at the pause. Reports
// migrations, pages verified, failures (expected 0), channel cuts, outages by kind (drawn,
// reached, counted by the senders), control resumes (sender and receiver), resends and resent
// bytes, and RSS / heap over time; fails when anything failed or RSS grew beyond the bound.
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { listCodecs } from '../../src/codecs/registry.js';
import type { CodecId } from '../../src/codecs/types.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { ExplicitDirtyLog } from '../../src/migration/dirty/index.js';
import { listen } from '../../src/migration/listen.js';
import type { ReceiveResult } from '../../src/migration/receiver.js';
import { migrate } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import type { MigrationStats } from '../../src/migration/stats.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { RECLAIM_BYTES } from '../../src/pool/memory-reclaim.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { connect, parseEndpoint, parsePskFile, type TlsCredentials } from '../../src/transport/index.js';
import { startGuest } from '../../src/workload/index.js';
import { faultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { seededRandom } from '../helpers/pages.js';
import { filledMemory, sameContent } from '../helpers/migration.js';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '1' },
    seed: { type: 'string', default: '1' },
    // RSS growth allowed after warm-up: each of the 4 pool workers may hold up to RECLAIM_BYTES
    // of finished memories before it collects, plus 256 MiB of slack.
    'rss-bound': { type: 'string', default: String((4 * RECLAIM_BYTES) / 2 ** 20 + 256) },
    out: { type: 'string' },
    // A failure's `setup` from the --out record, as JSON: every migration uses it, to reproduce the failure.
    setup: { type: 'string' },
  },
});
const minutes = Number(values.minutes);
const rssBoundMiB = Number(values['rss-bound']);
const random = seededRandom(Number(values.seed));
const replay = values.setup === undefined ? undefined : (JSON.parse(values.setup) as Setup);
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const between = (low: number, high: number) => low + Math.floor(random() * (high - low + 1));
const MiB = 2 ** 20;

/** Migrations that get an outage, drawn apart from the channel cut: either, both or neither may happen. */
const OUTAGE_FRACTION = 0.3;
/** Of those, the ones whose outage is silent (bytes held) rather than a reset. */
const SILENT_FRACTION = 0.5;
/** A reset outage's length, ms: long enough for several redials (50 ms doubling), short enough to keep the soak moving. */
const RESET_MIN_MS = 100;
const RESET_MAX_MS = 1500;
/**
 * A silent outage's length, ms: longer than the silence timeout, so the sender notices it
 * (after SILENCE_TIMEOUT_MS, then checked every bandwidth window) and resumes into a link
 * still held, which its redials must outlast.
 */
const SILENT_MIN_MS = 1500;
const SILENT_MAX_MS = 3000;
/** MigrateOptions.silenceTimeoutMs for migrations with a silent outage (the default, 10 s, would stall the soak). */
const SILENCE_TIMEOUT_MS = 1000;
/**
 * The outage starts when 1 to this many chunks of acks have arrived over all the data
 * connections together, and at most 2 per channel: the receiver batches its acks, and a
 * single-channel migration of 8 MiB may see only a few chunks before it ends.
 */
const OUTAGE_MAX_ACKS = 6;
/**
 * The reconnect timeout of both sides, passed explicitly: every outage drawn (at most
 * SILENT_MAX_MS, plus the silence timeout before the sender notices) is far shorter, so every
 * one must be survived.
 */
const RECONNECT_TIMEOUT_MS = 30_000;
/** Once one side of a migration failed, how long the other gets to end on its own before both are cancelled. */
const SETTLE_MS = 5000;

type OutageKind = 'reset' | 'silent';

interface Sample {
  atSeconds: number;
  migrations: number;
  rssMiB: number;
  heapUsedMiB: number;
}

/** One migration that had an outage drawn: what was drawn, whether it began, and what both sides counted. */
interface OutageRecord {
  migration: number;
  kind: OutageKind;
  setup: string;
  reached: boolean;
  /** When the proxy's outage began, ms after the migration started. */
  outageAtMs?: number;
  /** The sender's link events, as `outage:control@<ms>`, `outage:data@<ms>`, `resumed:<down ms>@<ms>` (@: ms after the migration started). */
  linkEvents: string[];
  /** Undefined when the migration failed. */
  senderOutages?: number;
  outageTimeMs?: number;
  controlResumes?: number;
  receiverResumes?: number;
  channelsLost?: number;
  channelsReconnected?: number;
  packetsResent?: number;
  resentBytes?: number;
}

interface Failure {
  migration: number;
  /** The migration's setup, then what went wrong. */
  error: string;
  /** The error's code (MultifdError), when it has one. */
  code?: string;
  setup: Setup;
}

/** One migration's draw. Every field is drawn for every migration, so a seed gives the same run whatever is drawn off. */
interface Setup {
  sizeMiB: number;
  codec: CodecId;
  channels: number;
  tls: boolean;
  unthrottled: boolean;
  /** The channel cut: its connection (1..channels; 0 is control) and the chunk of acks that triggers it. */
  cut: { victim: number; acksBefore: number } | undefined;
  /** The outage: its kind, its length and the chunk of acks, over every data connection, that starts it. */
  outage: Outage | undefined;
}

interface Outage {
  kind: OutageKind;
  ms: number;
  acksBefore: number;
}

const codecs = listCodecs().map((c) => c.id as CodecId);
const pool = new WorkerPool({ threads: 2 });
const receivePool = new WorkerPool({ threads: 2 });
const started = performance.now();
const startState = gitState();
const samples: Sample[] = [];
const failures: Failure[] = [];
const outageRecords: OutageRecord[] = [];
let migrations = 0;
let pagesVerified = 0;
/** Per outage kind; `reached` counts the outages that started before their migration ended. */
const kindCounts = () => ({ drawn: 0, reached: 0, notReached: 0, msReached: 0, completed: 0, senderOutages: 0, reachedUncounted: 0 });
const byKind: Record<OutageKind, ReturnType<typeof kindCounts>> = { reset: kindCounts(), silent: kindCounts() };
/** Counters for the summary, over every migration unless named for the outage ones. */
const counts = {
  unthrottledMigrations: 0,
  dropsInjected: 0,
  unthrottledDrops: 0,
  channelsLost: 0,
  channelsReconnected: 0,
  packetsResent: 0,
  resentBytes: 0,
  /** The most resent bytes of one migration, in percent of its guest memory, and which migration. */
  maxResentPercent: 0,
  maxResentMigration: 0,
  duplicatePacketsSkipped: 0,
  senderOutages: 0,
  senderOutageTimeMs: 0,
  senderControlResumes: 0,
  receiverResumes: 0,
  /** Migrations whose sender's control-resumes differ from their receiver's resumes. */
  resumeCountMismatches: 0,
};

/** RSS and heap after a full collection (run with --expose-gc), so garbage not yet collected does not read as growth. */
function sample(): Sample {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  const s = { atSeconds: Math.round((performance.now() - started) / 1000), migrations, rssMiB: Math.round(usage.rss / MiB), heapUsedMiB: Math.round(usage.heapUsed / MiB) };
  samples.push(s);
  return s;
}

function drawSetup(): Setup {
  const sizeMiB = pick([8, 16, 32]);
  const codec = pick(codecs);
  const channels = pick([1, 2, 3, 4, 8]);
  const tls = random() < 0.25;
  const drop = random() < 0.3;
  const unthrottled = random() < 0.5;
  const cut = { victim: between(1, channels), acksBefore: between(1, 4) };
  const hasOutage = random() < OUTAGE_FRACTION;
  const kind: OutageKind = random() < SILENT_FRACTION ? 'silent' : 'reset';
  const ms = kind === 'silent' ? between(SILENT_MIN_MS, SILENT_MAX_MS) : between(RESET_MIN_MS, RESET_MAX_MS);
  const outage = { kind, ms, acksBefore: between(1, Math.min(OUTAGE_MAX_ACKS, 2 * channels)) };
  return { sizeMiB, codec, channels, tls, unthrottled, cut: drop ? cut : undefined, outage: hasOutage ? outage : undefined };
}

function describe(setup: Setup): string {
  return `${setup.sizeMiB} MiB, ${setup.codec}, ${setup.channels} ch, ${setup.unthrottled ? 'unthrottled' : '64 MiB/s'}${setup.tls ? ', TLS' : ''}` +
    `${setup.cut ? ', channel cut' : ''}${setup.outage ? `, ${setup.outage.ms} ms ${setup.outage.kind} outage after ${setup.outage.acksBefore} ack chunks` : ''}`;
}

/** Destroys `socket` when its `acksBefore`-th chunk of acks arrives, i.e. while packets are surely on the wire. */
function cutWhenAcked(socket: Socket, acksBefore: number, unthrottled: boolean): void {
  let acks = 0;
  socket.on('data', () => {
    if (++acks !== acksBefore) return;
    socket.destroy();
    counts.dropsInjected++;
    if (unthrottled) counts.unthrottledDrops++;
  });
}

/**
 * The outage of one migration: every data socket dialled is watched, and when the chunks of acks
 * seen on all of them together reach the draw, the proxy goes down. Timed by acks, like the cut,
 * so a migration that finishes in a few milliseconds is hit too; one that ends first is counted
 * as not reached, not as a failure.
 */
function outageTrigger(proxy: FaultProxy, outage: Outage, record: OutageRecord, startedAt: number) {
  let acks = 0;
  let begun: Promise<void> | undefined;
  return {
    watch(socket: Socket): void {
      socket.on('data', () => {
        if (begun || ++acks !== outage.acksBefore) return;
        record.outageAtMs = Math.round(performance.now() - startedAt);
        begun = outage.kind === 'silent' ? proxy.silentOutage(outage.ms) : proxy.resetOutage(outage.ms);
      });
    },
    /** Whether the outage began, once it is over. */
    async ended(): Promise<boolean> {
      await begun;
      return begun !== undefined;
    },
  };
}

/** Counts what one completed migration reports: resends, losses, resumes and the outages its sender saw. */
function tally(setup: Setup, stats: MigrationStats, result: ReceiveResult): void {
  counts.channelsLost += stats['channels-lost'];
  counts.channelsReconnected += stats['channels-reconnected'];
  counts.packetsResent += stats['packets-resent'];
  counts.resentBytes += stats['resent-bytes'];
  const resentPercent = (100 * stats['resent-bytes']) / (setup.sizeMiB * MiB);
  if (resentPercent > counts.maxResentPercent) Object.assign(counts, { maxResentPercent: resentPercent, maxResentMigration: migrations });
  counts.duplicatePacketsSkipped += result.duplicatePackets;
  counts.senderOutages += stats.outages;
  counts.senderOutageTimeMs += stats['outage-time'];
  counts.senderControlResumes += stats['control-resumes'];
  counts.receiverResumes += result.resumes;
  if (stats['control-resumes'] !== result.resumes) counts.resumeCountMismatches++;
  if (!setup.outage) return;
  Object.assign(outageRecords.at(-1)!, {
    senderOutages: stats.outages,
    outageTimeMs: stats['outage-time'],
    controlResumes: stats['control-resumes'],
    receiverResumes: result.resumes,
    channelsLost: stats['channels-lost'],
    channelsReconnected: stats['channels-reconnected'],
    packetsResent: stats['packets-resent'],
    resentBytes: stats['resent-bytes'],
  });
  byKind[setup.outage.kind].completed++;
  byKind[setup.outage.kind].senderOutages += stats.outages;
}

/**
 * The migration's dialler. Connection 0 is the control one; the data channels come after it,
 * and then the redials. With an outage drawn, every connection goes through the proxy, and
 * every one but the first control connection is watched for its trigger: the sender cannot
 * say which redial is a control one, and before the outage only a channel cut of a
 * single-channel migration resumes the control connection.
 */
function dialler(setup: Setup, tls: TlsCredentials | undefined, address: string, proxy: FaultProxy | undefined, outage: ReturnType<typeof outageTrigger> | undefined) {
  let connections = 0;
  return async (): Promise<Socket> => {
    const index = connections++;
    const socket = await connect(parseEndpoint(proxy ? proxy.endpoint : address), { tls });
    if (setup.cut && index === setup.cut.victim) cutWhenAcked(socket, setup.cut.acksBefore, setup.unthrottled);
    if (outage && index > 0) outage.watch(socket);
    return socket;
  };
}

/** The migration's outage record, counted as drawn; undefined without an outage. */
function outageRecord(setup: Setup): OutageRecord | undefined {
  if (!setup.outage) return undefined;
  byKind[setup.outage.kind].drawn++;
  const record: OutageRecord = { migration: migrations, kind: setup.outage.kind, setup: describe(setup), reached: false, linkEvents: [] };
  outageRecords.push(record);
  return record;
}

/**
 * Both sides' results. When one fails, the other gets SETTLE_MS to end (a sender usually
 * tells its receiver why it fails), then both are cancelled; the error says what each side
 * ended with and the sender's last stats, and carries the first failure's code.
 */
async function bothSides(sending: Promise<MigrationStats>, receiving: Promise<ReceiveResult>, abort: AbortController, lastStats: () => MigrationStats | undefined): Promise<[MigrationStats, ReceiveResult]> {
  let first: (Error & { code?: string }) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const failed = (error: Error) => {
    first ??= error;
    timer ??= setTimeout(() => abort.abort(), SETTLE_MS);
    throw error;
  };
  const [sent, received] = await Promise.allSettled([sending.catch(failed), receiving.catch(failed)]);
  clearTimeout(timer);
  if (sent.status === 'fulfilled' && received.status === 'fulfilled') return [sent.value, received.value];
  const why = (r: PromiseSettledResult<unknown>) => (r.status === 'fulfilled' ? 'completed' : `${(r.reason as { code?: string }).code ?? 'no code'}: ${(r.reason as Error).message}`);
  const s = lastStats();
  const state = s
    ? `; the sender's last stats: status ${s.status}, dirty syncs ${s['dirty-sync-count']}, outages ${s.outages} (${s['outage-time']} ms), reconnecting ${s.reconnecting}, ` +
      `control-resumes ${s['control-resumes']}, channels lost ${s['channels-lost']}, reconnected ${s['channels-reconnected']}, packets resent ${s['packets-resent']}`
    : '';
  throw Object.assign(new Error(`sender ${why(sent)}; receiver ${why(received)}${state}`), { code: first?.code });
}

/** One live migration of a fresh memory with a writing guest; throws unless the destination equals the source. */
async function oneMigration(setup: Setup): Promise<void> {
  const memory: GuestMemory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: setup.sizeMiB * MiB }], seed: migrations + 1 });
  const dirtyLog = new ExplicitDirtyLog(memory);
  const guest = await startGuest({ memory, mode: 'random-writer', dirtyLog, dirtyPagesPerSecond: 2000, zeroFraction: 0.2, seed: migrations + 1 });
  const tls: TlsCredentials | undefined = setup.tls ? { psk: parsePskFile(`soak:${randomBytes(32).toString('hex')}`) } : undefined;
  let destination: GuestMemory | undefined;
  // Cancels both sides once one failed and the other did not end within SETTLE_MS (see bothSides).
  const abort = new AbortController();
  const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (destination = m)), pool: receivePool, tls, reconnectTimeoutMs: RECONNECT_TIMEOUT_MS, signal: abort.signal });
  // One proxy per migration with an outage, closed after it, so no outage reaches another migration.
  const proxy = setup.outage ? await faultProxy(Number(receiver.address.split(':').at(-1))) : undefined;
  const record = outageRecord(setup);
  const startedAt = performance.now();
  const outage = proxy && record && setup.outage ? outageTrigger(proxy, setup.outage, record, startedAt) : undefined;
  const at = () => `@${Math.round(performance.now() - startedAt)}`;
  let lastStats: MigrationStats | undefined;
  if (setup.unthrottled) counts.unthrottledMigrations++;
  try {
    const [stats, result] = await bothSides(
      migrate({
        source: guestMemorySource(memory),
        connect: dialler(setup, tls, receiver.address, proxy, outage),
        pool,
        codec: setup.codec,
        channels: setup.channels,
        maxBandwidth: setup.unthrottled ? undefined : 64 * MiB,
        reconnectTimeoutMs: RECONNECT_TIMEOUT_MS,
        silenceTimeoutMs: setup.outage?.kind === 'silent' ? SILENCE_TIMEOUT_MS : undefined,
        onLinkEvent: record && ((e) => record.linkEvents.push((e.event === 'outage' ? `outage:${e.lost}` : `resumed:${e.downMs}`) + at())),
        onProgress: (s) => (lastStats = s),
        signal: abort.signal,
        live: { dirtyLog, pause: () => guest.pause(), downtimeLimitMs: 300 },
      }),
      receiver.result,
      abort,
      () => lastStats,
    );
    if (!sameContent(destination!, memory)) throw new Error('the destination differs from the paused source');
    if (stats['destination-checksum'] !== stats['source-checksum']) throw new Error('checksums differ');
    if (result.normalPages + result.zeroPages !== stats.normal + stats.duplicate) throw new Error('page counts differ between the sides');
    pagesVerified += memory.totalPages;
    tally(setup, stats, result);
  } finally {
    await finishOutage(outage, setup, record);
    await proxy?.close();
    await guest.stop();
    await receiver.close();
  }
}

/** Waits out the migration's outage, if it began, and counts it as reached or not. */
async function finishOutage(outage: ReturnType<typeof outageTrigger> | undefined, setup: Setup, record: OutageRecord | undefined): Promise<void> {
  if (!outage || !setup.outage || !record) return;
  const kind = byKind[setup.outage.kind];
  record.reached = await outage.ended();
  if (!record.reached) return void kind.notReached++;
  kind.reached++;
  kind.msReached += setup.outage.ms;
  // An outage that began once every packet was acknowledged leaves the sender nothing to lose.
  if (record.senderOutages === 0) kind.reachedUncounted++;
}

sample();
let lastReport = performance.now();
while (performance.now() - started < minutes * 60_000) {
  migrations++;
  const setup = replay ?? drawSetup();
  try {
    await oneMigration(setup);
  } catch (error) {
    const { message, code } = error as Error & { code?: string };
    failures.push({ migration: migrations, error: `${describe(setup)}: ${message}`, code, setup });
    console.error(`migration ${migrations} FAILED (seed ${values.seed}; ${describe(setup)}): ${code ?? ''} ${message}`);
  }
  if (migrations === 3) sample(); // the baseline once pools, WASM and buffers are warm
  if (performance.now() - lastReport > 30_000) {
    lastReport = performance.now();
    const s = sample();
    const reached = byKind.reset.reached + byKind.silent.reached;
    console.error(`${s.atSeconds} s: ${migrations} migrations, ${pagesVerified} pages verified, ${failures.length} failures, ${counts.dropsInjected} channel cuts, ` +
      `${reached} outages, ${counts.senderControlResumes} control resumes, RSS ${s.rssMiB} MiB, heap ${s.heapUsedMiB} MiB`);
  }
}
/** The commit the soak ran, and the tracked files that differed from it when it started (others edit the tree meanwhile). */
function gitState(): { commit: string; uncommitted: string[] } {
  const git = (...args: string[]) => execFileSync('git', args, { encoding: 'utf8' }).trim();
  try {
    return { commit: git('rev-parse', 'HEAD'), uncommitted: git('status', '--porcelain', '--untracked-files=no').split('\n').filter(Boolean) };
  } catch {
    return { commit: 'unknown', uncommitted: [] };
  }
}

const last = sample();
await pool.close();
await receivePool.close();
const baseline = samples[1] ?? samples[0]!;
const rssGrowthMiB = last.rssMiB - baseline.rssMiB;
// A leak climbs steadily; collected garbage saws up and down: compare the peaks of the two halves.
const half = (last.atSeconds + baseline.atSeconds) / 2;
const peak = (part: Sample[]) => Math.max(0, ...part.map((s) => s.rssMiB));
const rssPeakFirstHalfMiB = peak(samples.slice(1).filter((s) => s.atSeconds <= half));
const rssPeakSecondHalfMiB = peak(samples.filter((s) => s.atSeconds > half));
const summary = {
  minutes,
  ...startState,
  seed: Number(values.seed),
  migrations,
  pagesVerified,
  failures: failures.length,
  ...counts,
  maxResentPercent: Number(counts.maxResentPercent.toFixed(2)),
  outagesByKind: byKind,
  outage: {
    fraction: OUTAGE_FRACTION,
    silentFraction: SILENT_FRACTION,
    resetMs: [RESET_MIN_MS, RESET_MAX_MS],
    silentMs: [SILENT_MIN_MS, SILENT_MAX_MS],
    silenceTimeoutMs: SILENCE_TIMEOUT_MS,
    maxAcksBefore: OUTAGE_MAX_ACKS,
    reconnectTimeoutMs: RECONNECT_TIMEOUT_MS,
  },
  rssStartMiB: baseline.rssMiB,
  rssEndMiB: last.rssMiB,
  rssMaxMiB: Math.max(...samples.map((s) => s.rssMiB)),
  heapStartMiB: baseline.heapUsedMiB,
  heapEndMiB: last.heapUsedMiB,
  rssGrowthMiB,
  rssBoundMiB,
  rssPeakFirstHalfMiB,
  rssPeakSecondHalfMiB,
};
const kindLine = (kind: OutageKind) => {
  const k = byKind[kind];
  return `${kind} ${k.drawn} drawn, ${k.reached} reached (${k.msReached} ms in all), ${k.notReached} not reached, ${k.completed} completed, ${k.senderOutages} counted by their senders`;
};
console.log(`soak: ${migrations} migrations in ${minutes} min, ${pagesVerified} pages verified, ${failures.length} failed; ` +
  `${counts.dropsInjected} channel cuts (${counts.unthrottledDrops} of them in the ${counts.unthrottledMigrations} unthrottled migrations); ` +
  `outages: ${kindLine('reset')}; ${kindLine('silent')}; ${counts.senderOutages} counted by senders in all (${counts.senderOutageTimeMs} ms); ` +
  `${counts.senderControlResumes} control resumes by senders, ${counts.receiverResumes} by receivers (${counts.resumeCountMismatches} migrations differ); ` +
  `${counts.channelsLost} channels lost, ${counts.channelsReconnected} reconnected, ${counts.packetsResent} packets resent (${(counts.resentBytes / MiB).toFixed(1)} MiB; ` +
  `at most ${summary.maxResentPercent}% of a migration's memory, migration ${counts.maxResentMigration}), ${counts.duplicatePacketsSkipped} duplicates skipped by receivers; ` +
  `RSS ${baseline.rssMiB} → ${last.rssMiB} MiB (max ${summary.rssMaxMiB}; peaks by half ${rssPeakFirstHalfMiB}, ${rssPeakSecondHalfMiB}), heap ${baseline.heapUsedMiB} → ${last.heapUsedMiB} MiB`);
if (values.out) writeFileSync(values.out, JSON.stringify({ summary, samples, failures, outages: outageRecords }, null, 2) + '\n');
if (failures.length || rssGrowthMiB > rssBoundMiB) {
  if (rssGrowthMiB > rssBoundMiB) console.error(`soak: RSS grew by ${rssGrowthMiB} MiB, more than the ${rssBoundMiB} MiB bound`);
  process.exitCode = 1;
}
