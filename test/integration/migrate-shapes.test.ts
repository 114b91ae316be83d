// Migrations of other shapes: several RAM blocks, 64 KiB pages, each zero-page detection
// mode, the file transport (QEMU's migrate-to-file), max-bandwidth and cancellation.
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MultifdError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { fileDestination, memoryDestination } from '../../src/migration/destination.js';
import { listen } from '../../src/migration/listen.js';
import { MigrationReceiver } from '../../src/migration/receiver.js';
import { migrate } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { connect, FileMuxReader, FileMuxWriter, parseEndpoint } from '../../src/transport/index.js';
import { filledMemory, migrateTo, sameContent } from '../helpers/migration.js';

const test = suite('migration shapes');
let pool: WorkerPool;
let dir: string;

test.before(() => {
  pool = new WorkerPool({ threads: 2 });
  dir = mkdtempSync(join(tmpdir(), 'multifd-shapes-'));
});

test.after(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

async function completed(run: Awaited<ReturnType<typeof migrateTo>>) {
  if (run.stats.status === 'rejected') throw run.stats.reason;
  if (run.result.status === 'rejected') throw run.result.reason;
  return { stats: run.stats.value, result: run.result.value, destination: run.destination()! };
}

test('a memory of three RAM blocks arrives block by block', async () => {
  const source = filledMemory({
    blocks: [
      { name: 'pc.ram', byteLength: 6 << 20 },
      { name: 'vga.vram', byteLength: 1 << 20 },
      { name: 'pc.ram.1', byteLength: (3 << 20) + 4096 * 3 },
    ],
  });
  const { destination, stats } = await completed(await migrateTo('tcp:127.0.0.1:0', source, { codec: 'zstd', channels: 2, pool }));
  assert.equal(destination.blocks.map((b) => b.name), ['pc.ram', 'vga.vram', 'pc.ram.1']);
  assert.ok(sameContent(destination, source));
  assert.is(stats.normal + stats.duplicate, source.totalPages);
});

test('64 KiB pages migrate with every packet holding 8 pages', async () => {
  const source = filledMemory({ pageSize: 65536, blocks: [{ name: 'pc.ram', byteLength: 16 << 20 }] });
  const { destination, stats } = await completed(await migrateTo('tcp:127.0.0.1:0', source, { codec: 'lz4', channels: 2, pool }));
  assert.is(destination.pageSize, 65536);
  assert.ok(sameContent(destination, source));
  assert.is(stats['page-size'], 65536);
});

for (const mode of ['none', 'legacy', 'multifd'] as const) {
  test(`zero-page detection ${mode}: the image arrives and zero pages are counted as QEMU does`, async () => {
    const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }] });
    const zeroPages = source.blocks[0]!.pageCount / 4; // every fourth page of the mixed pattern
    const { destination, stats, result } = await completed(await migrateTo('tcp:127.0.0.1:0', source, { codec: 'zlib', zeroPageDetection: mode, pool }));
    assert.ok(sameContent(destination, source));
    assert.is(stats.duplicate, mode === 'none' ? 0 : zeroPages);
    assert.is(result.zeroPages, mode === 'none' ? 0 : zeroPages);
  });
}

test('an all-zero memory costs headers only', async () => {
  const source = GuestMemory.create({ blocks: [{ name: 'pc.ram', byteLength: 64 << 20 }] });
  source.blocks[0]!.bytes().fill(0);
  const { stats } = await completed(await migrateTo('tcp:127.0.0.1:0', source, { codec: 'zstd', pool }));
  assert.is(stats.duplicate, source.totalPages);
  assert.is(stats.normal, 0);
  assert.ok(stats.transferred < 8192, `transferred ${stats.transferred} bytes for 64 MiB of zeros`);
});

test('the file transport writes a migration stream that a receiver applies later', async () => {
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }] });
  const path = join(dir, 'stream.mig');
  const writer = new FileMuxWriter(path);
  const sent = await migrate({ source: guestMemorySource(source), connect: async () => writer.openChannel(), awaitReceiver: false, codec: 'zstd', channels: 3, pool });
  await writer.close();
  assert.is(sent.status, 'completed');

  let destination: GuestMemory | undefined;
  const receiver = new MigrationReceiver({ destination: memoryDestination((m) => (destination = m)), pool });
  const reader = new FileMuxReader(path);
  reader.on('channel', (channel) => receiver.accept(channel));
  const result = await receiver.result;
  await reader.close();
  assert.ok(sameContent(destination!, source));
  assert.is(result.checksum.toString(16).padStart(16, '0'), sent['source-checksum']);
});

test('max-bandwidth caps the wire rate across all channels', async () => {
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }], kind: 'random' });
  const maxBandwidth = 16 << 20; // bytes per second
  const { stats } = await completed(await migrateTo('tcp:127.0.0.1:0', source, { codec: 'none', channels: 2, maxBandwidth, pool }));
  // The bucket starts with a 100 ms burst; everything past it goes at the cap or slower.
  const floorMs = ((stats.transferred - maxBandwidth / 10) / maxBandwidth) * 1000;
  assert.ok(stats['total-time'] >= floorMs * 0.95, `${stats.transferred} bytes in ${stats['total-time']} ms beat the cap (floor ${floorMs.toFixed(0)} ms)`);
});

test('an AbortSignal cancels the migration: the sender reports cancelled, the receiver fails', async () => {
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }], kind: 'random' });
  const controller = new AbortController();
  const run = migrateTo('tcp:127.0.0.1:0', source, {
    codec: 'none',
    maxBandwidth: 4 << 20,
    pool,
    signal: controller.signal,
    progressIntervalMs: 20,
    onProgress: (s) => {
      if (s.normal > 0) controller.abort();
    },
  });
  const { stats, result } = await run;
  assert.is(stats.status, 'rejected');
  const error = (stats as PromiseRejectedResult).reason as MultifdError;
  assert.is(error.code, 'ERR_CANCELLED');
  assert.is(error.context.status, 'cancelled');
  assert.is(result.status, 'rejected');
});

test('a receiver writing to a file leaves only FILE.partial while it works, and FILE when confirmed', async () => {
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }] });
  const out = join(dir, 'received.raw');
  const receiver = await listen('tcp:127.0.0.1:0', { destination: fileDestination(out), pool });
  await migrate({ source: guestMemorySource(source), connect: () => connect(parseEndpoint(receiver.address)), pool });
  await receiver.result;
  assert.ok(existsSync(out));
  assert.not.ok(existsSync(`${out}.partial`));
  assert.ok(Buffer.compare(readFileSync(out), source.blocks[0]!.bytes()) === 0);
});

test.run();
