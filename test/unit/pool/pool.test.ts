import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { listCodecs } from '../../../src/codecs/registry.js';
import type { CodecId } from '../../../src/codecs/types.js';
import { CodecError } from '../../../src/errors.js';
import { CodecPool } from '../../../src/pool/pool.js';
import { concatPages, makePages } from '../../helpers/pages.js';

const test = suite('codec pool (piscina workers)');
const PAGE = 4096;
let pool: CodecPool;

test.before(() => {
  pool = new CodecPool({ threads: 1 });
});

test.after(async () => {
  await pool.close();
});

test('workers adopt the main thread compiled modules and compile none themselves', async () => {
  await pool.encode({ codec: 'zstd', pageSize: PAGE, maxPages: 1 }, concatPages(makePages('text', 1, PAGE)));
  const report = await pool.inspect();
  assert.is(report.compilations, 0);
  assert.ok(report.wasmMemoryBytes.zstd! > 0, 'zstd was instantiated in the worker');
});

test('every codec round-trips a 128-page packet through the workers', async () => {
  for (const { id } of listCodecs()) {
    const setting = { codec: id as CodecId, pageSize: PAGE, maxPages: 128 };
    const original = concatPages(makePages('mixed', 128, PAGE, 9));
    const payload = await pool.encode(setting, original.slice());
    const pages = await pool.decode(setting, payload, 128);
    assert.equal(pages, original, id);
  }
});

test('page buffers are transferred to the worker, not cloned', async () => {
  const pages = concatPages(makePages('random', 4, PAGE));
  await pool.encode({ codec: 'lz4', pageSize: PAGE, maxPages: 4 }, pages);
  assert.is(pages.byteLength, 0, 'the caller buffer is detached');
});

test('a codec error in a worker arrives as a CodecError with its code', async () => {
  const garbage = new Uint8Array(300).fill(7);
  try {
    await pool.decode({ codec: 'zstd', pageSize: PAGE, maxPages: 2 }, garbage, 2);
    assert.unreachable('decode accepted garbage');
  } catch (error) {
    assert.instance(error, CodecError);
    assert.is((error as CodecError).code, 'ERR_CODEC_CORRUPT');
  }
});

test('a worker holds its memory steady across 1000 packets', async () => {
  const setting = { codec: 'zlib' as const, pageSize: PAGE, maxPages: 32 };
  const packet = concatPages(makePages('mixed', 32, PAGE, 4));
  const roundTrip = async () => pool.decode(setting, await pool.encode(setting, packet.slice()), 32);
  for (let i = 0; i < 50; i++) await roundTrip();
  const before = (await pool.inspect()).wasmMemoryBytes;
  for (let i = 0; i < 1000; i++) await roundTrip();
  assert.equal((await pool.inspect()).wasmMemoryBytes, before);
});

test.run();
