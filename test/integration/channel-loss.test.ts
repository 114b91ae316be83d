// Channels breaking mid-migration over real loopback TCP. A broken data channel costs nothing
// but time: the sender replaces it (or carries on without it) and resends what the receiver had
// not acknowledged, and the image arrives whole. A broken control connection is resumed on a new
// one (the sender proves it knows the session's secret); with reconnecting off it fails both
// sides and leaves no file that looks like a complete image.
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import type { Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MultifdError } from '../../src/errors.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { fileDestination, memoryDestination, type DestinationFactory } from '../../src/migration/destination.js';
import { listen } from '../../src/migration/listen.js';
import { migrate, type MigrateOptions } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { connect, parseEndpoint } from '../../src/transport/index.js';
import { filledMemory, sameContent, useTwoPools } from '../helpers/migration.js';

const test = suite('channel loss');
const pools = useTwoPools(test);

const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 16 << 20 }], seed: 5 });

/**
 * Migrates `source` uncompressed over 4 channels at 32 MiB/s (about half a second) and, once a
 * quarter of it is on the wire, destroys the sender's connection number `cut` (0 = control,
 * 1.. = data channels).
 */
async function migrateAndCut(cut: number[], options: Partial<MigrateOptions> & { destination?: DestinationFactory } = {}) {
  let destination: GuestMemory | undefined;
  const receiver = await listen('tcp:127.0.0.1:0', { destination: options.destination ?? memoryDestination((m) => (destination = m)), pool: pools.receiver() });
  const sockets: Socket[] = [];
  let cutDone = false;
  const [stats, result] = await Promise.allSettled([
    migrate({
      source: guestMemorySource(source),
      connect: async () => {
        const socket = await connect(parseEndpoint(receiver.address));
        sockets.push(socket);
        return socket;
      },
      pool: pools.sender(),
      channels: 4,
      maxBandwidth: 32 << 20,
      progressIntervalMs: 10,
      onProgress: (s) => {
        if (cutDone || s.status !== 'active' || s['multifd-bytes'] < source.totalBytes / 4) return;
        cutDone = true;
        cut.forEach((n) => sockets[n]!.destroy());
      },
      ...options,
    }),
    receiver.result,
  ]);
  assert.ok(cutDone, 'the migration ended before the cut');
  return { stats, result, destination: () => destination, connections: sockets.length };
}

for (const reconnect of [true, false]) {
  test(`one of 4 data channels cut mid-transfer (${reconnect ? 'reconnected' : 'not replaced'}): the migration completes with the right checksum`, async () => {
    const run = await migrateAndCut([2], { reconnect });
    if (run.stats.status === 'rejected') throw run.stats.reason;
    if (run.result.status === 'rejected') throw run.result.reason;
    const stats = run.stats.value;
    assert.is(stats.status, 'completed');
    assert.is(stats['destination-checksum'], stats['source-checksum']);
    assert.ok(sameContent(run.destination()!, source), 'destination differs from the source');
    // A replacement that reaches the receiver before it has seen the cut connection end is
    // refused as a duplicate id and counts as one more loss, replaced in turn.
    const lost = stats['channels-lost'];
    assert.ok(reconnect ? lost >= 1 : lost === 1, `${lost} lost`);
    assert.is(stats['channels-reconnected'], reconnect ? lost : 0);
    assert.is(run.connections, 5 + stats['channels-reconnected'], 'control, 4 channels and the replacements');
    assert.ok(run.result.value.channelsLost >= 1, 'the receiver saw the loss');
    // Every page counted once on the receiver, however many packets were resent.
    assert.is(run.result.value.normalPages + run.result.value.zeroPages, source.totalPages);
  });
}

test('every data channel cut without reconnecting: both sides fail with typed errors', async () => {
  const run = await migrateAndCut([1, 2, 3, 4], { reconnect: false });
  assert.is(run.stats.status, 'rejected');
  const error = (run.stats as PromiseRejectedResult).reason as MultifdError;
  assert.instance(error, MultifdError);
  assert.is(error.code, 'ERR_CHANNEL_CLOSED', error.message);
  assert.is(error.context.status, 'failed');
  assert.is(run.result.status, 'rejected');
  assert.instance((run.result as PromiseRejectedResult).reason, MultifdError);
});

for (const cut of [[0], [0, 1, 2, 3, 4]]) {
  test(`${cut.length === 1 ? 'the control connection' : 'every connection'} cut mid-transfer: the sender resumes the session on a new control connection and the migration completes`, async () => {
    const run = await migrateAndCut(cut);
    if (run.stats.status === 'rejected') throw run.stats.reason;
    if (run.result.status === 'rejected') throw run.result.reason;
    const stats = run.stats.value;
    assert.is(stats.status, 'completed');
    assert.ok(sameContent(run.destination()!, source), 'destination differs from the source');
    assert.is(stats['control-resumes'], 1);
    assert.is(run.result.value.resumes, 1);
    assert.is(stats.outages, 1, 'one outage, however many connections it took');
    // The resumed receiver drops the data connections it had: the sender redials them all.
    assert.ok(stats['channels-lost'] >= 4, `${stats['channels-lost']} lost`);
    assert.is(run.result.value.normalPages + run.result.value.zeroPages, source.totalPages, 'every page counted once');
  });
}

test('the control connection cut mid-transfer with reconnecting off: both sides fail and no image file is left that looks complete', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'multifd-loss-'));
  try {
    const out = join(dir, 'image.raw');
    const run = await migrateAndCut([0], { destination: fileDestination(out), reconnect: false });
    assert.is(run.stats.status, 'rejected');
    assert.is(((run.stats as PromiseRejectedResult).reason as MultifdError).code, 'ERR_CONTROL_CLOSED');
    assert.is(run.result.status, 'rejected');
    assert.is(((run.result as PromiseRejectedResult).reason as MultifdError).code, 'ERR_CONTROL_CLOSED');
    assert.not.ok(existsSync(out), 'no file carries the final name');
    assert.equal(readdirSync(dir), [], 'the .partial file is removed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
