import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import {
  CHECKSUM_CHUNK_BYTES,
  checksumChunkCount,
  chunkChecksums,
  combineChecksums,
  imageChecksum,
} from '../../../src/memory/checksum.js';
import { GuestMemory } from '../../../src/memory/guest-memory.js';
import { fileChunkChecksums } from '../../../src/memory/file-windows.js';
import { createImageSink } from '../../../src/memory/image-sink.js';
import { openImageSource, type ImageSourceOptions } from '../../../src/memory/image-source.js';
import { checksum64, xxh3Bytes } from '../../../src/wasm/kernels.js';
import { useTempDir } from '../../helpers/support.js';

const KiB = 1024;
const MiB = 1024 * KiB;
const test = suite('image checksum');

const unitScratch = new WebAssembly.Memory({ initial: 1, maximum: 1, shared: true });

/** XXH3-64 of one 4 KiB unit (xxh3Bytes, pinned against `xxhsum -H3` in test/unit/wasm/xxh3.test.ts), of bytes copied out of any memory. */
function unitHash(unit: Uint8Array): bigint {
  new Uint8Array(unitScratch.buffer).set(unit);
  return xxh3Bytes(unitScratch, 0, unit.byteLength);
}
const temp = useTempDir(test, 'checksum');

function memoryHolding(bytes: Uint8Array, blockSizes: number[] = [bytes.byteLength]): GuestMemory {
  const memory = GuestMemory.create({ blocks: blockSizes.map((byteLength, i) => ({ name: `b${i}`, byteLength })) });
  let at = 0;
  for (const block of memory.blocks) {
    block.bytes().set(bytes.subarray(at, at + block.byteLength));
    at += block.byteLength;
  }
  return memory;
}

async function sourceChecksum(path: string, options?: ImageSourceOptions): Promise<bigint> {
  const source = await openImageSource(path, options);
  try {
    return await source.checksum();
  } finally {
    await source.close();
  }
}

/** XXH64 of hashes written as consecutive little-endian u64 values. */
function hashOfList(hashes: bigint[]): bigint {
  const list = Buffer.alloc(8 * hashes.length);
  hashes.forEach((h, i) => list.writeBigUInt64LE(h, 8 * i));
  return checksum64(list);
}

// The definition, written out independently: a hash per 4 KiB unit, XXH64 of the
// little-endian unit hashes per 1 MiB chunk, then XXH64 of the little-endian chunk hashes.
function referenceChecksum(blocks: Uint8Array[]): bigint {
  const hashes: bigint[] = [];
  for (const block of blocks) {
    for (let at = 0; at < block.byteLength; at += CHECKSUM_CHUNK_BYTES) {
      const units: bigint[] = [];
      for (let unit = at; unit < Math.min(at + CHECKSUM_CHUNK_BYTES, block.byteLength); unit += 4 * KiB) units.push(unitHash(block.subarray(unit, unit + 4 * KiB)));
      hashes.push(hashOfList(units));
    }
  }
  return hashOfList(hashes);
}

test('follows the definition: a hash per 4 KiB unit, XXH64 of those per 1 MiB chunk, then XXH64 of the chunk hashes', () => {
  const bytes = randomBytes(2 * MiB + 12 * KiB);
  const memory = memoryHolding(bytes, [2 * MiB + 8 * KiB, 4 * KiB]);
  assert.is(checksumChunkCount(2 * MiB + 8 * KiB), 3);
  assert.is(
    imageChecksum(memory),
    referenceChecksum([bytes.subarray(0, 2 * MiB + 8 * KiB), bytes.subarray(2 * MiB + 8 * KiB)]),
  );
});

test('chunk slices hashed separately combine into the same checksum', () => {
  const memory = memoryHolding(randomBytes(5 * MiB + 4 * KiB), [3 * MiB + 4 * KiB, 2 * MiB]);
  const slices = [
    chunkChecksums(memory, 0, 0, 2),
    chunkChecksums(memory, 0, 2, 2),
    chunkChecksums(memory, 1, 0, 1),
    chunkChecksums(memory, 1, 1, 1),
  ];
  assert.equal(slices.map((s) => s.length), [2, 2, 1, 1]);
  assert.is(slices[1]![1], hashOfList([unitHash(memory.blocks[0]!.bytes().subarray(3 * MiB, 3 * MiB + 4 * KiB))]), 'the short last chunk');
  assert.is(combineChecksums(slices.flat()), imageChecksum(memory));
  assert.equal(chunkChecksums(memory, 1, 2, 0), []);
  assert.throws(() => chunkChecksums(memory, 0, 3, 2), RangeError);
  assert.throws(() => chunkChecksums(memory, 2, 0, 1), RangeError);
});

test('GuestMemory, file source and file sink agree on the same bytes, and all change with one byte', async () => {
  const bytes = randomBytes(3 * MiB + 8 * KiB);
  const path = temp.path('same.img');
  await writeFile(path, bytes);
  const sink = await createImageSink(temp.path('same-copy.img'), { byteLength: bytes.byteLength });
  // Pages arrive in any order at a destination: write them backwards.
  for (let page = bytes.byteLength / 4096 - 1; page >= 0; page--) sink.writePages(page, bytes.subarray(page * 4096, (page + 1) * 4096));

  const expected = imageChecksum(memoryHolding(bytes));
  assert.is(await sourceChecksum(path, { windowBytes: 1 * MiB }), expected);
  assert.is(await sink.checksum(), expected, 'the .partial file');
  await sink.complete();
  assert.is(await sink.checksum(), expected, 'the completed file');

  bytes[2 * MiB + 12345] = bytes[2 * MiB + 12345]! ^ 1;
  await writeFile(path, bytes);
  const changed = imageChecksum(memoryHolding(bytes));
  assert.is.not(changed, expected);
  assert.is(await sourceChecksum(path), changed);
});

test('blocks that are whole chunks hash like one file holding them back to back', async () => {
  const bytes = randomBytes(4 * MiB + 16 * KiB);
  const path = temp.path('blocks.img');
  await writeFile(path, bytes);
  const threeBlocks = memoryHolding(bytes, [2 * MiB, 2 * MiB, 16 * KiB]);
  assert.is(await sourceChecksum(path, { windowBytes: 2 * MiB, ringSize: 2 }), imageChecksum(threeBlocks));
  const unaligned = memoryHolding(bytes, [1 * MiB + 4 * KiB, 3 * MiB + 12 * KiB]);
  assert.is.not(imageChecksum(unaligned), imageChecksum(threeBlocks), 'the chunk grid restarts at each block');
});

test('chunk checksums of a byte range of an open file match the block held there', async () => {
  const bytes = randomBytes(5 * MiB);
  const memory = memoryHolding(bytes, [2 * MiB, 3 * MiB]);
  const sink = await createImageSink(temp.path('range.img'), { byteLength: bytes.byteLength, windowBytes: 1 * MiB });
  sink.writePages(0, bytes);
  const second = await fileChunkChecksums(sink.fd, { byteOffset: 2 * MiB, byteLength: 3 * MiB, windowBytes: 2 * MiB });
  assert.equal(second, chunkChecksums(memory, 1, 0, 3));
  await sink.abort();
});

test.run();
