import { startWorker } from '../../../src/pool/start-worker.js';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { imageChecksum } from '../../../src/memory/checksum.js';
import { GuestMemory, MAX_BLOCK_BYTES, type GuestMemoryDescriptor } from '../../../src/memory/guest-memory.js';
import { failure } from '../../helpers/support.js';
import { existsSync, readFileSync } from 'node:fs';
import { addonFailure, nativeAddon } from '../../../src/native/addon.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const GiB = 1024 * MiB;

/** Runs a worker entry of this folder and resolves with its first message. */
function runTsWorker<T>(entry: string, workerData: unknown): Promise<T> {
  const worker = startWorker(new URL(entry, import.meta.url), { workerData });
  return new Promise((resolve, reject) => {
    worker.once('message', (message: T) => {
      resolve(message);
      void worker.terminate();
    });
    worker.once('error', reject);
  });
}

async function assertRangeError(fn: () => unknown, name: string): Promise<void> {
  const error = await failure(fn, 'ERR_OUT_OF_RANGE');
  assert.instance(error, RangeError, name);
  assert.match(error.message, `"${name}"`, name);
}

const test = suite('GuestMemory');

test('creates one shared memory per block, sized in whole 64 KiB pages and never growable', () => {
  const memory = GuestMemory.create({ blocks: [{ name: 'pc.ram', byteLength: 68 * KiB }] });
  const [block] = memory.blocks;
  assert.is(memory.pageSize, 4096);
  assert.is(block!.byteLength, 68 * KiB);
  assert.is(block!.pageCount, 17);
  assert.instance(block!.memory.buffer, SharedArrayBuffer);
  assert.is(block!.memory.buffer.byteLength, 128 * KiB);
  assert.throws(() => block!.memory.grow(1), 'initial = maximum');
  assert.is(block!.bytes().byteLength, 68 * KiB);
  assert.ok(block!.bytes().every((b) => b === 0), 'fresh memory reads as zero');
});

test('page views address the block memory in place', async () => {
  const memory = GuestMemory.create({ pageSize: 16 * KiB, blocks: [{ name: 'vga.vram', byteLength: 64 * KiB }] });
  const block = memory.blocks[0]!;
  block.page(3).fill(9);
  assert.is(block.page(3).byteLength, 16 * KiB);
  assert.is(new Uint8Array(block.memory.buffer)[3 * 16 * KiB], 9);
  assert.is(block.bytes()[3 * 16 * KiB - 1], 0);
  await assertRangeError(() => block.page(4), 'index');
  await assertRangeError(() => block.page(-1), 'index');
});

test('holds several blocks with totals and a name index in table order', () => {
  const memory = GuestMemory.create({
    pageSize: 8 * KiB,
    blocks: [
      { name: 'pc.ram', byteLength: 2 * MiB },
      { name: 'pc.bios', byteLength: 256 * KiB },
      { name: 'vga.vram', byteLength: 8 * KiB },
    ],
  });
  assert.equal(memory.blocks.map((b) => b.name), ['pc.ram', 'pc.bios', 'vga.vram']);
  assert.is(memory.totalBytes, 2 * MiB + 264 * KiB);
  assert.is(memory.totalPages, 256 + 32 + 1);
  assert.is(memory.blockIndex('pc.bios'), 1);
  assert.is(memory.blockIndex('vga.vram'), 2);
  assert.is(memory.blockIndex('nope'), -1);
  memory.blocks[1]!.page(0)[0] = 1;
  assert.is(memory.blocks[0]!.page(0)[0], 0, 'blocks do not share bytes');
});

test('splits one large size into pc.ram, pc.ram.1, ... of at most blockBytes', () => {
  const memory = GuestMemory.create({ byteLength: 5 * MiB, blockBytes: 2 * MiB });
  assert.equal(
    memory.blocks.map((b) => [b.name, b.byteLength]),
    [
      ['pc.ram', 2 * MiB],
      ['pc.ram.1', 2 * MiB],
      ['pc.ram.2', 1 * MiB],
    ],
  );
  assert.is(GuestMemory.create({ byteLength: 64 * KiB }).blocks.length, 1);
});

test('maps a 16 GiB memory in 2 GiB blocks without committing RAM for it', () => {
  const before = process.memoryUsage().rss;
  const memory = GuestMemory.create({ byteLength: 16 * GiB });
  assert.is(memory.blocks.length, 8);
  assert.is(memory.blocks[7]!.name, 'pc.ram.7');
  assert.is(memory.totalPages, 4 * 1024 * 1024);
  assert.ok(process.memoryUsage().rss - before < 256 * MiB, 'untouched memory costs no RAM');
});

test('accepts a block of 4 GiB - 64 KiB, the largest a block may be', () => {
  const memory = GuestMemory.create({ blocks: [{ name: 'big', byteLength: MAX_BLOCK_BYTES }] });
  const block = memory.blocks[0]!;
  block.page(block.pageCount - 1).fill(1);
  assert.is(block.bytes()[MAX_BLOCK_BYTES - 1], 1);
});

test('rejects bad page sizes, names and sizes with RangeErrors naming the option', async () => {
  const ok = { name: 'pc.ram', byteLength: 64 * KiB };
  await assertRangeError(() => GuestMemory.create({ pageSize: 3000, blocks: [ok] }), 'pageSize');
  await assertRangeError(() => GuestMemory.create({ pageSize: 128 * KiB, blocks: [ok] }), 'pageSize');
  await assertRangeError(() => GuestMemory.create({ blocks: [] }), 'blocks.length');
  await assertRangeError(() => GuestMemory.create({ blocks: [ok, { ...ok }] }), 'blocks[1].name');
  await assertRangeError(() => GuestMemory.create({ blocks: [{ name: '', byteLength: 4096 }] }), 'blocks[0].name');
  await assertRangeError(() => GuestMemory.create({ blocks: [{ name: 'x'.repeat(256), byteLength: 4096 }] }), 'blocks[0].name');
  await assertRangeError(() => GuestMemory.create({ blocks: [{ name: 'a', byteLength: 0 }] }), 'blocks[0].byteLength');
  await assertRangeError(() => GuestMemory.create({ blocks: [{ name: 'a', byteLength: 6000 }] }), 'blocks[0].byteLength');
  await assertRangeError(() => GuestMemory.create({ blocks: [{ name: 'a', byteLength: 4 * GiB }] }), 'blocks[0].byteLength');
  await assertRangeError(() => GuestMemory.create({ byteLength: 4097 }), 'byteLength');
  await assertRangeError(() => GuestMemory.create({ byteLength: 8 * MiB, blockBytes: 4 * GiB }), 'blockBytes');
  await assertRangeError(() => GuestMemory.create({ pageSize: 65536, byteLength: 1 * MiB, blockBytes: 4096 }), 'blockBytes');
});

test('fromDescriptor refuses a memory that is not shared or is shorter than its block', async () => {
  const plain = new WebAssembly.Memory({ initial: 1 });
  const short = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });
  await assertRangeError(
    () => GuestMemory.fromDescriptor({ pageSize: 4096, blocks: [{ name: 'a', byteLength: 4096, memory: plain }] }),
    'blocks[0].memory',
  );
  await assertRangeError(
    () => GuestMemory.fromDescriptor({ pageSize: 4096, blocks: [{ name: 'a', byteLength: 128 * KiB, memory: short }] }),
    'blocks[0].memory',
  );
  await assertRangeError(
    () => GuestMemory.fromDescriptor({ pageSize: 4096, blocks: [{ name: 'a', byteLength: 6000, memory: short }] }),
    'blocks[0].byteLength',
  );
});

test('fromDescriptor on the same thread sees and shares the same bytes', () => {
  const memory = GuestMemory.create({ blocks: [{ name: 'pc.ram', byteLength: 64 * KiB }] });
  const twin = GuestMemory.fromDescriptor(memory.describe());
  twin.blocks[0]!.page(2)[5] = 42;
  assert.is(memory.blocks[0]!.page(2)[5], 42);
  assert.is(twin.blockIndex('pc.ram'), 0);
});

test('a worker thread rebuilt from describe() reads and writes the same bytes', async () => {
  const memory = GuestMemory.create({
    blocks: [
      { name: 'pc.ram', byteLength: 3 * MiB },
      { name: 'pc.bios', byteLength: 64 * KiB },
      { name: 'vga.vram', byteLength: 16 * KiB },
    ],
  });
  memory.blocks.forEach((block, i) => (block.page(1)[7] = 10 + i));
  const descriptor: GuestMemoryDescriptor = memory.describe();
  const reply = await runTsWorker<{ names: string[]; seen: number[]; checksum: bigint }>('./guest-memory-worker.ts', { descriptor });
  assert.equal(reply.names, ['pc.ram', 'pc.bios', 'vga.vram']);
  assert.equal(reply.seen, [10, 11, 12]);
  assert.ok(memory.blocks[2]!.page(0).every((b) => b === 0x5a), 'the worker wrote into our memory');
  assert.is(reply.checksum, imageChecksum(memory), 'the worker hashed the very bytes we hold');
});

/** Bytes of this process's mappings that carry madvise(MADV_HUGEPAGE) (smaps VmFlags `hg`). */
function hugePageAdvisedBytes(): number {
  let total = 0;
  let size = 0;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    const sized = /^Size:\s+(\d+) kB/.exec(line);
    if (sized) size = Number(sized[1]) * KiB;
    if (line.startsWith('VmFlags:') && line.split(/\s+/).includes('hg')) total += size;
  }
  return total;
}

const thpMissing = existsSync('/sys/kernel/mm/transparent_hugepage/enabled') ? '' : 'this kernel has no transparent huge pages';
const hugePagesSkip = thpMissing || (nativeAddon() ? '' : addonFailure());
if (hugePagesSkip) console.log(`  huge-page advice skipped: ${hugePagesSkip}`);
(hugePagesSkip ? test.skip : test)('with the native shim, every new block is advised for transparent huge pages, as QEMU does for guest RAM', () => {
  const before = hugePageAdvisedBytes();
  const memory = GuestMemory.create({ blocks: [{ name: 'a', byteLength: 8 * MiB }, { name: 'b', byteLength: 4 * MiB }] });
  const advised = hugePageAdvisedBytes() - before;
  assert.ok(advised >= 12 * MiB, `${advised} bytes newly advised, expected both blocks' 12 MiB`);
  memory.blocks[0]!.bytes().fill(1);
  assert.ok(memory.blocks[0]!.bytes().every((b) => b === 1), 'advised memory reads back what was written');
});

test.run();
