// `verify`: the image checksum the receiver confirms is normally tracked (round 1's chunk
// hashes plus re-hashes of the chunks the dirty log named), which proves the transport but
// not the dirty tracking. With verify the source is hashed afresh after the last round, so a
// write the dirty log missed, or a source file changed during the send, fails the migration
// instead of completing with a stale destination.
import { open, writeFile } from 'node:fs/promises';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MultifdError } from '../../src/errors.js';
import { openImageSource } from '../../src/memory/image-source.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { ExplicitDirtyLog, type DirtyLog } from '../../src/migration/dirty/index.js';
import { listen } from '../../src/migration/listen.js';
import { migrate, type MigrateOptions } from '../../src/migration/sender.js';
import { guestMemorySource, type PageSource } from '../../src/migration/source.js';
import { connect, FileMuxWriter, parseEndpoint } from '../../src/transport/index.js';
import { startGuest } from '../../src/workload/index.js';
import { concatPages, makePages } from '../helpers/pages.js';
import { filledMemory, sameContent, useTwoPools } from '../helpers/migration.js';
import { until, useTempDir } from '../helpers/support.js';

const test = suite('verify');
const pools = useTwoPools(test);
const temp = useTempDir(test, 'verify');
const PAGE = 4096;
/** The page written behind the dirty log's back: alone in its 1 MiB checksum chunk. */
const MISSED_PAGE = 700;
/** A page written and marked, in another chunk. */
const MARKED_PAGE = 10;

/** Migrates `source` to a fresh receiver; both sides' outcomes and the destination memory. */
async function migrateTo(source: PageSource, options: Partial<MigrateOptions> = {}) {
  let destination: GuestMemory | undefined;
  const receiver = await listen('tcp:127.0.0.1:0', { destination: memoryDestination((m) => (destination = m)), pool: pools.receiver() });
  const [sent, received] = await Promise.allSettled([
    migrate({ source, connect: () => connect(parseEndpoint(receiver.address)), pool: pools.sender(), ...options }),
    receiver.result,
  ]);
  return { sent, received, destination: () => destination! };
}

/**
 * A live migration whose "guest" writes two pages at the first sync after round 1: one marked
 * in the explicit dirty log, one not (a write the log misses). The switchover comes at that
 * sync; nothing writes after it, so the source at the pause is the memory as the test leaves it.
 */
async function liveWithMissedWrite(options: Partial<MigrateOptions>) {
  const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }], seed: 21 });
  const log = new ExplicitDirtyLog(memory);
  const bytes = memory.blocks[0]!.bytes();
  const before = Buffer.from(bytes.subarray(MISSED_PAGE * PAGE, (MISSED_PAGE + 1) * PAGE));
  let syncs = 0;
  const dirtyLog: DirtyLog = {
    start: () => log.start(),
    async sync() {
      if (syncs++ === 0) {
        bytes.fill(0x5a, MARKED_PAGE * PAGE, (MARKED_PAGE + 1) * PAGE);
        log.markDirty(0, MARKED_PAGE);
        bytes.fill(0xa5, MISSED_PAGE * PAGE, (MISSED_PAGE + 1) * PAGE); // never marked
      }
      return log.sync();
    },
    stop: () => log.stop(),
  };
  const run = await migrateTo(guestMemorySource(memory), {
    ...options,
    live: { dirtyLog, pause: async () => {}, availSwitchoverBandwidth: 1 << 30 },
  });
  return { ...run, memory, before };
}

test('without verify, a write the dirty log missed completes with a stale destination (the gap verify closes)', async () => {
  const run = await liveWithMissedWrite({});
  if (run.sent.status === 'rejected') throw run.sent.reason;
  if (run.received.status === 'rejected') throw run.received.reason;
  const stats = run.sent.value;
  assert.is(stats.status, 'completed');
  assert.is(stats['destination-checksum'], stats['source-checksum'], 'the tracked checksum matched');
  assert.is(stats.verified, undefined);
  const destination = run.destination().blocks[0]!.bytes();
  const page = (bytes: Uint8Array, p: number) => Buffer.from(bytes.subarray(p * PAGE, (p + 1) * PAGE));
  assert.ok(page(destination, MARKED_PAGE).equals(page(run.memory.blocks[0]!.bytes(), MARKED_PAGE)), 'the marked write arrived');
  assert.ok(page(destination, MISSED_PAGE).equals(run.before), 'the destination kept the page as round 1 sent it');
  assert.not.ok(sameContent(run.destination(), run.memory), 'the destination differs from the source at the pause');
});

test('with verify, the same missed write fails with ERR_VERIFY_MISMATCH, and the receiver does not complete', async () => {
  const run = await liveWithMissedWrite({ verify: true });
  assert.is(run.sent.status, 'rejected');
  const error = (run.sent as PromiseRejectedResult).reason as MultifdError;
  assert.instance(error, MultifdError);
  assert.is(error.code, 'ERR_VERIFY_MISMATCH', error.message);
  assert.match(error.message, /differs from the source at the pause/);
  assert.match(error.message, /1 of 4 checksum chunks/);
  assert.match(error.message, /dirty log did not see/);
  assert.is(error.context.unsentChunks, 1);
  assert.is(error.context.status, 'failed');
  assert.is(run.received.status, 'rejected', 'the receiver refuses an image that differs from the fresh checksum');
  assert.is(((run.received as PromiseRejectedResult).reason as MultifdError).code, 'ERR_CHECKSUM_MISMATCH');
});

test('with verify, a live migration of a writing guest completes: the destination equals the source at the pause', async () => {
  // Two blocks, the second not a whole number of checksum chunks.
  const memory = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }, { name: 'vga.vram', byteLength: 3 << 19 }], seed: 4 });
  const log = new ExplicitDirtyLog(memory);
  const guest = await startGuest({ memory, mode: 'random-writer', dirtyLog: log, dirtyPagesPerSecond: 2000, zeroFraction: 0.25, seed: 5 });
  try {
    await until(() => guest.pagesWritten > 0);
    const run = await migrateTo(guestMemorySource(memory), {
      codec: 'zstd',
      maxBandwidth: 64 << 20,
      verify: true,
      live: { dirtyLog: log, pause: () => guest.pause() },
    });
    if (run.sent.status === 'rejected') throw run.sent.reason;
    if (run.received.status === 'rejected') throw run.received.reason;
    const stats = run.sent.value;
    assert.is(stats.status, 'completed');
    assert.is(stats.verified, true);
    assert.is(stats['destination-checksum'], stats['source-checksum']);
    assert.ok(sameContent(run.destination(), memory), 'destination differs from the paused source');
  } finally {
    await guest.stop();
  }
});

/** A 12 MiB image file of mixed pages, streamed in 4 MiB windows through a ring of 2. */
async function imageFile(name: string): Promise<string> {
  const path = temp.path(name);
  await writeFile(path, concatPages(makePages('mixed', (12 << 20) / PAGE, PAGE, 8)));
  return path;
}

/** `source`, but the file is written to once the first pass (round 1) is over. */
function changedAfterRoundOne(source: PageSource, path: string): PageSource {
  let passes = 0;
  return {
    pageSize: source.pageSize,
    blocks: source.blocks,
    async *windows() {
      if (passes++ === 1) {
        const file = await open(path, 'r+');
        await file.write(Buffer.alloc(PAGE, 0x33), 0, PAGE, 5 << 20);
        await file.close();
      }
      yield* source.windows();
    },
  };
}

test('with verify, a file source completes: the file is read again and its checksum confirmed', async () => {
  const path = await imageFile('verified.raw');
  const source = await openImageSource(path, { windowBytes: 4 << 20, ringSize: 2 });
  try {
    const run = await migrateTo(source, { verify: true, codec: 'lz4' });
    if (run.sent.status === 'rejected') throw run.sent.reason;
    if (run.received.status === 'rejected') throw run.received.reason;
    const stats = run.sent.value;
    assert.is(stats.verified, true);
    assert.is(stats['source-checksum'], (await source.checksum()).toString(16).padStart(16, '0'));
    assert.is(stats['destination-checksum'], stats['source-checksum']);
  } finally {
    await source.close();
  }
});

test('with verify, a source file written to during the send fails with ERR_VERIFY_MISMATCH, to a receiver or into a stream file', async () => {
  for (const toFile of [false, true]) {
    const path = await imageFile(`changed-${toFile}.raw`);
    const image = await openImageSource(path, { windowBytes: 4 << 20, ringSize: 2 });
    const writer = toFile ? new FileMuxWriter(temp.path('changed.mig')) : undefined;
    try {
      const source = changedAfterRoundOne(image, path);
      const outcome = writer
        ? await migrate({ source, connect: async () => writer.openChannel(), awaitReceiver: false, pool: pools.sender(), verify: true }).then(
            (stats) => ({ status: 'fulfilled' as const, value: stats }),
            (reason: unknown) => ({ status: 'rejected' as const, reason }),
          )
        : (await migrateTo(source, { verify: true })).sent;
      assert.is(outcome.status, 'rejected', toFile ? 'stream file' : 'receiver');
      const error = (outcome as PromiseRejectedResult).reason as MultifdError;
      assert.is(error.code, 'ERR_VERIFY_MISMATCH', error.message);
      assert.match(error.message, /the source file changed during the send/);
      assert.is(error.context.unsentChunks, 1);
    } finally {
      await writer?.close().catch(() => {});
      await image.close();
    }
  }
});

test.run();
