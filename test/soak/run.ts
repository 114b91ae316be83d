// `npm run soak -- --minutes N`: live migrations back to back in one long-lived process, as a
// migration daemon would run them: a guest thread writing, a random codec, 1–8 channels, half
// of them unthrottled and half at 64 MiB/s, sometimes TLS, sometimes a data channel cut
// mid-transfer (once the receiver has acknowledged packets on it, so unthrottled migrations
// that finish in a few milliseconds are cut too). Every migration is verified byte
// for byte at the pause. Reports migrations, pages verified, failures (expected 0), channel
// drops, and RSS / heap over time; fails when anything failed or RSS grew beyond the bound.
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import { parseArgs } from 'node:util';
import { listCodecs } from '../../src/codecs/registry.js';
import type { CodecId } from '../../src/codecs/types.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { ExplicitDirtyLog } from '../../src/migration/dirty/index.js';
import { listen } from '../../src/migration/listen.js';
import { migrate } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { RECLAIM_BYTES } from '../../src/pool/memory-reclaim.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { connect, parseEndpoint, parsePskFile, type TlsCredentials } from '../../src/transport/index.js';
import { startGuest } from '../../src/workload/index.js';
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
  },
});
const minutes = Number(values.minutes);
const rssBoundMiB = Number(values['rss-bound']);
const random = seededRandom(Number(values.seed));
const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
const MiB = 2 ** 20;

interface Sample {
  atSeconds: number;
  migrations: number;
  rssMiB: number;
  heapUsedMiB: number;
}

interface Failure {
  migration: number;
  /** The migration's setup, then what went wrong. */
  error: string;
}

const codecs = listCodecs().map((c) => c.id as CodecId);
const pool = new WorkerPool({ threads: 2 });
const receivePool = new WorkerPool({ threads: 2 });
const started = performance.now();
const samples: Sample[] = [];
const failures: Failure[] = [];
let migrations = 0;
let pagesVerified = 0;
let dropsInjected = 0;
let unthrottledMigrations = 0;
let unthrottledDrops = 0;
let channelsLost = 0;
let packetsResent = 0;

/** RSS and heap after a full collection (run with --expose-gc), so garbage not yet collected does not read as growth. */
function sample(): Sample {
  (globalThis as { gc?: () => void }).gc?.();
  const usage = process.memoryUsage();
  const s = { atSeconds: Math.round((performance.now() - started) / 1000), migrations, rssMiB: Math.round(usage.rss / MiB), heapUsedMiB: Math.round(usage.heapUsed / MiB) };
  samples.push(s);
  return s;
}

/** One live migration of a fresh memory with a writing guest; throws (naming its setup) unless the destination equals the source. */
async function oneMigration(): Promise<void> {
  const sizeMiB = pick([8, 16, 32]);
  const codec = pick(codecs);
  const channels = pick([1, 2, 3, 4, 8]);
  const tlsOn = random() < 0.25;
  const drop = random() < 0.3;
  const unthrottled = random() < 0.5;
  const setup = `${sizeMiB} MiB, ${codec}, ${channels} ch, ${unthrottled ? 'unthrottled' : '64 MiB/s'}${tlsOn ? ', TLS' : ''}${drop ? ', channel cut' : ''}`;
  const memory: GuestMemory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: sizeMiB * MiB }], seed: migrations + 1 });
  const dirtyLog = new ExplicitDirtyLog(memory);
  const guest = await startGuest({ memory, mode: 'random-writer', dirtyLog, dirtyPagesPerSecond: 2000, zeroFraction: 0.2, seed: migrations + 1 });
  const tls: TlsCredentials | undefined = tlsOn ? { psk: parsePskFile(`soak:${randomBytes(32).toString('hex')}`) } : undefined;
  let destination: GuestMemory | undefined;
  const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (destination = m)), pool: receivePool, tls });
  // The cut: one data channel (connection 1..channels; 0 is control), destroyed when its
  // `acksBeforeCut`-th batch of acks arrives, i.e. while packets are surely on the wire.
  const victim = 1 + Math.floor(random() * channels);
  const acksBeforeCut = 1 + Math.floor(random() * 4);
  let connections = 0;
  const cutWhenAcked = (socket: Socket) => {
    let acks = 0;
    socket.on('data', () => {
      if (++acks !== acksBeforeCut) return;
      socket.destroy();
      dropsInjected++;
      if (unthrottled) unthrottledDrops++;
    });
  };
  if (unthrottled) unthrottledMigrations++;
  try {
    const [stats, result] = await Promise.all([
      migrate({
        source: guestMemorySource(memory),
        connect: async () => {
          const socket = await connect(parseEndpoint(receiver.address), { tls });
          if (drop && connections++ === victim) cutWhenAcked(socket);
          return socket;
        },
        pool,
        codec,
        channels,
        maxBandwidth: unthrottled ? undefined : 64 * MiB,
        live: { dirtyLog, pause: () => guest.pause(), downtimeLimitMs: 300 },
      }),
      receiver.result,
    ]);
    if (!sameContent(destination!, memory)) throw new Error('the destination differs from the paused source');
    if (stats['destination-checksum'] !== stats['source-checksum']) throw new Error('checksums differ');
    if (result.normalPages + result.zeroPages !== stats.normal + stats.duplicate) throw new Error('page counts differ between the sides');
    pagesVerified += memory.totalPages;
    channelsLost += stats['channels-lost'];
    packetsResent += stats['packets-resent'];
  } catch (error) {
    throw new Error(`${setup}: ${(error as Error).message}`, { cause: error });
  } finally {
    await guest.stop();
    await receiver.close();
  }
}

sample();
let lastReport = performance.now();
while (performance.now() - started < minutes * 60_000) {
  migrations++;
  try {
    await oneMigration();
  } catch (error) {
    failures.push({ migration: migrations, error: (error as Error).message });
    console.error(`migration ${migrations} FAILED: ${(error as Error).message}`);
  }
  if (migrations === 3) sample(); // the baseline once pools, WASM and buffers are warm
  if (performance.now() - lastReport > 30_000) {
    lastReport = performance.now();
    const s = sample();
    console.error(`${s.atSeconds} s: ${migrations} migrations, ${pagesVerified} pages verified, ${failures.length} failures, ${dropsInjected} channel cuts, RSS ${s.rssMiB} MiB, heap ${s.heapUsedMiB} MiB`);
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
  migrations,
  pagesVerified,
  failures: failures.length,
  dropsInjected,
  unthrottledMigrations,
  unthrottledDrops,
  channelsLost,
  packetsResent,
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
console.log(`soak: ${migrations} migrations in ${minutes} min, ${pagesVerified} pages verified, ${failures.length} failed; ` +
  `${dropsInjected} channel cuts (${unthrottledDrops} of them in the ${unthrottledMigrations} unthrottled migrations; ${channelsLost} channels lost, ${packetsResent} packets resent); RSS ${baseline.rssMiB} → ${last.rssMiB} MiB (max ${summary.rssMaxMiB}; peaks by half ${rssPeakFirstHalfMiB}, ${rssPeakSecondHalfMiB}), heap ${baseline.heapUsedMiB} → ${last.heapUsedMiB} MiB`);
if (values.out) writeFileSync(values.out, JSON.stringify({ summary, samples, failures }, null, 2) + '\n');
if (failures.length || rssGrowthMiB > rssBoundMiB) {
  if (rssGrowthMiB > rssBoundMiB) console.error(`soak: RSS grew by ${rssGrowthMiB} MiB, more than the ${rssBoundMiB} MiB bound`);
  process.exitCode = 1;
}
