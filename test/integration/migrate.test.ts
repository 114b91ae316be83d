// Whole migrations over real loopback TCP and Unix sockets: every codec, 1, 2 and 4 channels,
// 2 worker threads; the destination must equal the source and both sides confirm the checksum.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { listCodecs } from '../../src/codecs/registry.js';
import type { CodecId } from '../../src/codecs/types.js';
import { imageChecksum } from '../../src/memory/checksum.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { filledMemory, migrateTo, sameContent } from '../helpers/migration.js';

const test = suite('migration over loopback');
let pool: WorkerPool;
let socketDir: string;
let socketCount = 0;

test.before(() => {
  pool = new WorkerPool({ threads: 2 });
  socketDir = mkdtempSync(join(tmpdir(), 'multifd-sock-'));
});

test.after(async () => {
  await pool.close();
  rmSync(socketDir, { recursive: true, force: true });
});

const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }] });

async function expectComplete(endpoint: string, codec: CodecId, channels: number) {
  const run = await migrateTo(endpoint, source, { codec, channels, pool });
  if (run.stats.status === 'rejected') throw run.stats.reason;
  if (run.result.status === 'rejected') throw run.result.reason;
  const stats = run.stats.value;
  assert.is(stats.status, 'completed');
  assert.ok(sameContent(run.destination()!, source), `${codec} × ${channels}: destination differs`);
  assert.is(stats['source-checksum'], imageChecksum(source).toString(16).padStart(16, '0'));
  assert.is(stats['destination-checksum'], stats['source-checksum']);
  assert.is(stats.normal + stats.duplicate, source.totalPages);
  assert.is(run.result.value.normalPages + run.result.value.zeroPages, source.totalPages);
  if (codec === 'none') assert.ok(stats['header-bytes'] <= 0.005 * stats['multifd-bytes'], `headers are ${stats['header-bytes']} of ${stats['multifd-bytes']} bytes`);
  return stats;
}

for (const { id } of listCodecs()) {
  for (const channels of [1, 2, 4]) {
    test(`${id} over TCP with ${channels} channel(s) arrives byte for byte`, async () => {
      await expectComplete('tcp:127.0.0.1:0', id, channels);
    });
  }
  test(`${id} over a Unix socket with 2 channels arrives byte for byte`, async () => {
    await expectComplete(`unix:${join(socketDir, `s${socketCount++}.sock`)}`, id, 2);
  });
}

test.run();
