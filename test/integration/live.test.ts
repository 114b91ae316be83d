// Live pre-copy while a guest thread keeps writing (random numbers, and whole pages zeroed so
// pages go normal → zero → normal between rounds): the destination must equal the source at
// the pause, byte for byte, with every codec, both dirty logs and 1 to 4 channels.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { listCodecs } from '../../src/codecs/registry.js';
import { MultifdError } from '../../src/errors.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { ExplicitDirtyLog, HashDirtyLog, type DirtyLog } from '../../src/migration/dirty/index.js';
import { listen } from '../../src/migration/listen.js';
import { migrate, type MigrateOptions } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { connect, parseEndpoint } from '../../src/transport/index.js';
import { startGuest, type Guest } from '../../src/workload/index.js';
import { filledMemory, sameContent, useTwoPools } from '../helpers/migration.js';
import { until } from '../helpers/support.js';

const test = suite('live pre-copy');
const pools = useTwoPools(test);

/**
 * Holds the end of round 1 until the guest has written since tracking started: on a loaded
 * machine the guest thread can miss a whole (short) round 1, and then nothing is left to resend.
 */
function roundOneSeesWrites(log: DirtyLog, guest: Guest): DirtyLog {
  // Random numbers always change a page; zeroing may not (the hash log would not see it).
  const randomWrites = () => guest.pagesWritten - guest.pagesZeroed;
  let writtenAtStart = 0;
  let syncs = 0;
  return {
    async start() {
      await log.start();
      writtenAtStart = randomWrites();
    },
    async sync() {
      if (syncs++ === 0) await until(() => randomWrites() > writtenAtStart);
      return log.sync();
    },
    stop: () => log.stop(),
  };
}

type Live = Omit<NonNullable<MigrateOptions['live']>, 'dirtyLog' | 'pause' | 'throttle'>;

/** Migrates `memory` live while a random writer dirties it; returns both sides' outcomes with the guest paused. */
async function liveMigration(memory: GuestMemory, log: 'explicit' | 'hash', options: Partial<Omit<MigrateOptions, 'live'>> & { live?: Live; dirtyPagesPerSecond?: number }) {
  const explicit = log === 'explicit' ? new ExplicitDirtyLog(memory) : undefined;
  const guest = await startGuest({ memory, mode: 'random-writer', dirtyLog: explicit, dirtyPagesPerSecond: options.dirtyPagesPerSecond ?? 2000, zeroFraction: 0.25, seed: 11 });
  // The migration starts once the guest is writing (its thread takes a moment to start).
  await until(() => guest.pagesWritten > 0);
  const dirtyLog = roundOneSeesWrites(explicit ?? new HashDirtyLog(memory), guest);
  let destination: GuestMemory | undefined;
  const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (destination = m)), pool: pools.receiver() });
  const throttles: number[] = [];
  try {
    const [stats, result] = await Promise.allSettled([
      migrate({
        source: guestMemorySource(memory),
        connect: () => connect(parseEndpoint(receiver.address)),
        pool: pools.sender(),
        ...options,
        live: {
          dirtyLog,
          pause: () => guest.pause(),
          throttle: (percent) => {
            throttles.push(percent);
            guest.setThrottle(percent);
          },
          ...options.live,
        },
      }),
      receiver.result,
    ]);
    return { stats, result, destination: () => destination, throttles, pagesWritten: guest.pagesWritten, zeroed: guest.pagesZeroed };
  } finally {
    await guest.stop();
  }
}

const codecs = listCodecs().map((c) => c.id);
for (const [i, codec] of codecs.entries()) {
  for (const log of ['explicit', 'hash'] as const) {
    const channels = [1, 2, 4][(i + (log === 'hash' ? 1 : 0)) % 3]!;
    test(`${codec}, ${log} dirty log, ${channels} channel(s): the destination equals the source at the pause`, async () => {
      const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }], seed: i });
      // 64 MiB/s keeps round 1 longer than a few of the guest's 10 ms timeslices, so there is
      // always something dirty to resend.
      const run = await liveMigration(memory, log, { codec, channels, maxBandwidth: 64 << 20 });
      if (run.stats.status === 'rejected') throw run.stats.reason;
      if (run.result.status === 'rejected') throw run.result.reason;
      const stats = run.stats.value;
      assert.ok(sameContent(run.destination()!, memory), 'destination differs from the paused source');
      assert.ok(stats['dirty-sync-count'] >= 2, `only ${stats['dirty-sync-count']} round(s)`);
      assert.ok(run.pagesWritten > 0 && run.zeroed > 0, 'the guest wrote, and zeroed pages');
      // Every page sent in any round is counted once as normal or duplicate, on both sides.
      assert.is(stats.normal + stats.duplicate, run.result.value.normalPages + run.result.value.zeroPages);
      assert.ok(stats.normal + stats.duplicate > memory.totalPages, 'later rounds resent dirty pages');
      assert.is(stats['destination-checksum'], stats['source-checksum']);
      assert.ok(stats.downtime !== undefined && stats.downtime > 0 && stats.downtime < stats['total-time'], `downtime ${stats.downtime} ms of ${stats['total-time']} ms`);
    });
  }
}

test('a guest dirtying faster than the bandwidth cap with a tiny downtime limit fails as not converging', async () => {
  const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }] });
  const run = await liveMigration(memory, 'explicit', {
    codec: 'none',
    maxBandwidth: 2 << 20,
    dirtyPagesPerSecond: 4000,
    live: { downtimeLimitMs: 1, maxRounds: 4 },
  });
  assert.is(run.stats.status, 'rejected');
  const error = (run.stats as PromiseRejectedResult).reason as MultifdError;
  assert.is(error.code, 'ERR_NOT_CONVERGING', error.message);
  assert.is(error.context.status, 'failed');
  assert.match(error.message, /not converging after 4 rounds/);
  assert.is(run.result.status, 'rejected', 'the receiver does not complete either');
});

test('with the downtime ramp the same guest converges: downtime-limit rose from 1 ms a step per round', async () => {
  const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }] });
  const run = await liveMigration(memory, 'explicit', {
    codec: 'none',
    maxBandwidth: 2 << 20,
    dirtyPagesPerSecond: 4000,
    // One step takes the limit to 12 s, in which 2 MiB/s moves three times this memory.
    live: { downtimeLimitMs: 1, downtimeLimitMaxMs: 60_001, maxRounds: 4 },
  });
  if (run.stats.status === 'rejected') throw run.stats.reason;
  assert.ok(sameContent(run.destination()!, memory));
  const limit = run.stats.value['downtime-limit']!;
  assert.ok(limit > 1 && limit <= 60_001 && (limit - 1) % 12_000 === 0, `downtime-limit ${limit} ms: 1 ms plus whole steps of 12 s`);
});

test('with auto-converge the same guest is throttled until the migration converges, the throttle steps reported', async () => {
  const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }] });
  const run = await liveMigration(memory, 'explicit', {
    codec: 'none',
    maxBandwidth: 2 << 20,
    dirtyPagesPerSecond: 4000,
    live: { downtimeLimitMs: 50, maxRounds: 200, autoConverge: true, cpuThrottleInitial: 60, cpuThrottleIncrement: 20 },
  });
  if (run.stats.status === 'rejected') throw run.stats.reason;
  assert.ok(sameContent(run.destination()!, memory));
  assert.ok(run.throttles.length > 0, 'the guest was throttled');
  assert.is(run.throttles[0], 60, 'first step is cpu-throttle-initial');
  for (let i = 1; i < run.throttles.length; i++) assert.is(run.throttles[i], Math.min(99, run.throttles[i - 1]! + 20));
  assert.is(run.stats.value['cpu-throttle-percentage'], run.throttles[run.throttles.length - 1]);
});

test.run();
