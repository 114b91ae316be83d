// Issue 15, item 1: a 1 GiB live migration (a random-writer guest keeps dirtying memory) whose
// every connection, control included, goes through a fault proxy (test/helpers/fault-proxy.ts)
// cut from outside the migration's code: all connections reset and new ones refused for 5 s at
// about 30 % and 60 % of round 1 and once in a later round, and every byte held silently for
// 20 s (no reset) at about 80 % of round 1. The migration must complete, `verify` must find the
// destination equal to the source hashed afresh at the pause, and what is sent again must stay
// within 5 % of the guest memory. Measured on 2 cores: each reset costs 0.5 to 2 MB of
// resends; the silent outage about 48 MB (the ~40 MB the sender writes into the held link
// before anything tells it, its 8 MiB channel queues and the socket buffers, plus what was
// unacknowledged when it began), so the total runs at 4.6 to 5.2 %, at the edge of the bound.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { ExplicitDirtyLog } from '../../src/migration/dirty/index.js';
import { listen } from '../../src/migration/listen.js';
import type { ReceiveResult } from '../../src/migration/receiver.js';
import { migrate } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import type { MigrationStats } from '../../src/migration/stats.js';
import { connect, parseEndpoint } from '../../src/transport/index.js';
import { startGuest } from '../../src/workload/index.js';
import { faultProxy, type FaultProxy } from '../helpers/fault-proxy.js';
import { filledMemory, sameContent, useTwoPools } from '../helpers/migration.js';
import { until } from '../helpers/support.js';

const test = suite('outages during a live migration');
const pools = useTwoPools(test);

const GIB = 1 << 30;
/**
 * 100 MiB/s: round 1 takes about 10 s of sending. A cap the machine can keep up with: at 150 or
 * 300 MiB/s, with sender, receiver, proxy and guest sharing 2 cores, the receiver is the
 * bottleneck, every socket buffer on the path fills (tcp_rmem's maximum is 32 MiB here), and a
 * reset costs up to 76 MB of resends.
 */
const BANDWIDTH = 100 << 20;
/** 4000 pages/s (16 MiB/s): round 1, stretched by 30 s of outages, leaves a few hundred MiB dirty, so round 2 is long enough to cut. */
const DIRTY_PAGES_PER_SECOND = 4000;
/** Both sides wait this long for the link (the 20 s silent outage plus its detection must fit). */
const RECONNECT_TIMEOUT_MS = 60_000;

/** One outage of the plan: when it is due (from a stats snapshot) and what the proxy does. */
interface PlannedOutage {
  name: string;
  due(stats: MigrationStats, round: { start: number }): boolean;
  run(proxy: FaultProxy): Promise<void>;
}

/** The share of round 1's guest bytes handed to the channels so far, while round 1 lasts. */
const roundOneShare = (s: MigrationStats) => (s['dirty-sync-count'] === 1 ? 1 - s.remaining / s.total : -1);

const PLAN: PlannedOutage[] = [
  { name: 'reset 5 s at 30 % of round 1', due: (s) => roundOneShare(s) >= 0.3, run: (p) => p.resetOutage(5000) },
  { name: 'reset 5 s at 60 % of round 1', due: (s) => roundOneShare(s) >= 0.6, run: (p) => p.resetOutage(5000) },
  { name: 'silent 20 s at 80 % of round 1', due: (s) => roundOneShare(s) >= 0.8, run: (p) => p.silentOutage(20_000) },
  // Once half of what the later round started with is on its way.
  { name: 'reset 5 s in a later round', due: (s, round) => s['dirty-sync-count'] >= 2 && s.remaining <= round.start / 2, run: (p) => p.resetOutage(5000) },
];

/** What an outage trigger saw when it fired. */
interface Fired {
  name: string;
  round: number;
  share: number;
  atMs: number;
  /** resent-bytes when it fired: what the earlier outages cost. */
  resentBefore: number;
  multifdBytes: number;
}

/**
 * Returns an onProgress handler that runs PLAN's outages in order on `proxy`, each once the
 * previous one is over and the link has resumed; `settled()` waits for the last one started.
 */
function outageTrigger(proxy: FaultProxy, linkUp: () => boolean) {
  const fired: Fired[] = [];
  const round = { number: 0, start: 0 };
  let running: Promise<void> | undefined;
  let busy = false;
  let last: MigrationStats | undefined;
  const onProgress = (s: MigrationStats) => {
    last = s;
    if (s['dirty-sync-count'] !== round.number) Object.assign(round, { number: s['dirty-sync-count'], start: s.remaining });
    const next = PLAN[fired.length];
    if (!next || busy || !linkUp() || s.status !== 'active' || !next.due(s, round)) return;
    fired.push({ name: next.name, round: s['dirty-sync-count'], share: 1 - s.remaining / s.total, atMs: s['total-time'], resentBefore: s['resent-bytes'], multifdBytes: s['multifd-bytes'] });
    busy = true;
    running = next.run(proxy).finally(() => (busy = false));
  };
  return { onProgress, fired, settled: () => running, last: () => last };
}

/** A 1 GiB guest memory of mixed pages (a 16 MiB pattern repeated: filling 1 GiB page by page takes 10 s). */
function gibGuest(): GuestMemory {
  const memory = GuestMemory.create({ pageSize: 4096, blocks: [{ name: 'pc.ram', byteLength: GIB }] });
  const pattern = filledMemory({ blocks: [{ name: 'pattern', byteLength: 16 << 20 }], seed: 15 }).blocks[0]!.bytes();
  const bytes = memory.blocks[0]!.bytes();
  for (let offset = 0; offset < GIB; offset += pattern.byteLength) bytes.set(pattern, offset);
  return memory;
}

interface Run {
  stats: PromiseSettledResult<MigrationStats>;
  result: PromiseSettledResult<ReceiveResult>;
  destination: GuestMemory | undefined;
  fired: Fired[];
  events: string[];
  wallMs: number;
}

/** Migrates `memory` live through a fault proxy on every connection while PLAN's outages happen; the guest is stopped on return. */
async function migrateThroughOutages(memory: GuestMemory): Promise<Run> {
  const dirtyLog = new ExplicitDirtyLog(memory);
  const guest = await startGuest({ memory, mode: 'random-writer', dirtyLog, dirtyPagesPerSecond: DIRTY_PAGES_PER_SECOND, zeroFraction: 0.25, seed: 15 });
  let destination: GuestMemory | undefined;
  const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (destination = m)), pool: pools.receiver(), reconnectTimeoutMs: RECONNECT_TIMEOUT_MS });
  const proxy = await faultProxy(Number(receiver.address.split(':').at(-1)));
  const events: string[] = [];
  let up = true;
  const trigger = outageTrigger(proxy, () => up);
  const started = performance.now();
  try {
    await until(() => guest.pagesWritten > 0);
    const [stats, result] = await Promise.allSettled([
      migrate({
        source: guestMemorySource(memory),
        connect: () => connect(parseEndpoint(proxy.endpoint)),
        pool: pools.sender(),
        channels: 2,
        maxBandwidth: BANDWIDTH,
        verify: true,
        reconnectTimeoutMs: RECONNECT_TIMEOUT_MS,
        progressIntervalMs: 20,
        onProgress: trigger.onProgress,
        onLinkEvent: (e) => {
          const at = `multifd-bytes ${trigger.last()?.['multifd-bytes']}`;
          events.push(`${e.event} #${e.outages}${e.event === 'resumed' ? ` after ${e.downMs} ms` : ` (${e.lost}, ${at})`}`);
          up = e.event === 'resumed';
        },
        live: { dirtyLog, pause: () => guest.pause() },
      }),
      receiver.result,
    ]);
    return { stats, result, destination, fired: trigger.fired, events, wallMs: performance.now() - started };
  } finally {
    await trigger.settled();
    await proxy.close();
    await guest.stop();
  }
}

test('1 GiB live, random writer: 5 s resets at 30 % and 60 % of round 1 and in a later round, a 20 s silent drop; completes, verified, ≤ 5 % resent', async () => {
  const memory = gibGuest();
  const run = await migrateThroughOutages(memory);
  console.log(`outages fired: ${JSON.stringify(run.fired)}\nlink events: ${run.events.join('; ')}`);
  if (run.stats.status === 'rejected') throw run.stats.reason;
  if (run.result.status === 'rejected') throw run.result.reason;
  const stats = run.stats.value;
  const resentShare = stats['resent-bytes'] / memory.totalBytes;
  console.log(
    `total ${stats['total-time']} ms (wall ${Math.round(run.wallMs)} ms), rounds ${stats['dirty-sync-count']}, outages ${stats.outages}, ` +
      `outage-time ${stats['outage-time']} ms, resent ${stats['resent-bytes']} bytes (${(resentShare * 100).toFixed(2)} %, ${stats['packets-resent']} packets), ` +
      `control resumes ${stats['control-resumes']} (receiver: ${run.result.value.resumes}), downtime ${stats.downtime} ms, multifd-bytes ${stats['multifd-bytes']}`,
  );
  assert.is(stats.status, 'completed');
  assert.is(stats.verified, true, 'the receiver matched the source hashed afresh at the pause');
  assert.ok(sameContent(run.destination!, memory), 'the destination equals the paused source byte for byte');
  assert.equal(run.fired.map((f) => f.name), PLAN.map((o) => o.name), 'every planned outage happened');
  assert.ok(run.fired[3]!.round >= 2, `the last outage came in round ${run.fired[3]!.round}`);
  assert.ok(stats.outages >= 4, `${stats.outages} outages counted`);
  assert.ok(stats['control-resumes'] >= 4, `${stats['control-resumes']} control resumes`);
  assert.ok(resentShare <= 0.05, `${stats['resent-bytes']} bytes resent, ${(resentShare * 100).toFixed(2)} % of the guest memory`);
});

test.run();
