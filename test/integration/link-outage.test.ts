// Outages of the data connections, made from outside the sender: its data channels go through a
// fault proxy (test/helpers/fault-proxy.ts) that resets every connection and refuses new ones
// for a while. The control connection goes direct (its loss is issue 15's next step).
import type { Duplex } from 'node:stream';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MultifdError } from '../../src/errors.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { listen } from '../../src/migration/listen.js';
import { migrate, type MigrateOptions } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { connect, parseEndpoint } from '../../src/transport/index.js';
import { faultProxy } from '../helpers/fault-proxy.js';
import { filledMemory, sameContent, useTwoPools } from '../helpers/migration.js';

const test = suite('link outage');
const pools = useTwoPools(test);
const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 16 << 20 }], seed: 6 });

/**
 * Migrates `source` over 2 data channels at 32 MiB/s (about half a second) through a fault
 * proxy and, once a quarter of it is on the wire, resets every data connection and refuses new
 * ones for `outageMs`.
 */
async function migrateThroughOutage(outageMs: number, options: Partial<MigrateOptions> = {}) {
  let destination: GuestMemory | undefined;
  const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (destination = m)), pool: pools.receiver() });
  const proxy = await faultProxy(Number(receiver.address.split(':').at(-1)));
  let outage: Promise<void> | undefined;
  let dialled = 0;
  try {
    const [stats, result] = await Promise.allSettled([
      migrate({
        source: guestMemorySource(source),
        // The first connection is the control one: it goes direct.
        connect: (): Promise<Duplex> => connect(parseEndpoint(dialled++ === 0 ? receiver.address : proxy.endpoint)),
        pool: pools.sender(),
        channels: 2,
        maxBandwidth: 32 << 20,
        progressIntervalMs: 10,
        onProgress: (s) => {
          if (outage || s.status !== 'active' || s['multifd-bytes'] < source.totalBytes / 4) return;
          outage = proxy.resetOutage(outageMs);
        },
        ...options,
      }),
      receiver.result,
    ]);
    assert.ok(outage, 'the migration ended before the outage');
    return { stats, result, destination: () => destination, dialled };
  } finally {
    await outage;
    await proxy.close();
  }
}

test('every data connection reset and new ones refused for 1.5 s: the sender redials with backoff and the migration completes', async () => {
  const run = await migrateThroughOutage(1500);
  if (run.stats.status === 'rejected') throw run.stats.reason;
  if (run.result.status === 'rejected') throw run.result.reason;
  const stats = run.stats.value;
  assert.is(stats.status, 'completed');
  assert.ok(sameContent(run.destination()!, source), 'the destination holds the source');
  assert.is(stats.outages, 1);
  assert.ok(stats['outage-time'] > 0);
  assert.is(stats['channels-lost'] >= 2 && stats['channels-reconnected'] >= 2, true, JSON.stringify(stats));
  assert.ok(run.dialled >= 5, `control, 2 channels and a redial of each: ${run.dialled} connections dialled`);
  assert.is(run.result.value.normalPages + run.result.value.zeroPages, source.totalPages, 'every page counted once on the receiver');
});

test('an outage longer than the reconnect timeout fails the sender with ERR_LINK_DOWN, saying how long the link was down; the receiver fails too', async () => {
  const run = await migrateThroughOutage(2000, { reconnectTimeoutMs: 300 });
  assert.is(run.stats.status, 'rejected');
  const error = (run.stats as PromiseRejectedResult).reason as MultifdError;
  assert.instance(error, MultifdError);
  assert.is(error.code, 'ERR_LINK_DOWN', error.message);
  assert.match(error.message, /the link was down for \d+\.\d s/);
  assert.is(run.result.status, 'rejected');
});

test.run();
