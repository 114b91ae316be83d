// The real data, when ../shared/data has it: the corpus and the VM image migrate from image
// file to image file with every codec (1, 2 and 4 channels in turn, 2 threads) and arrive with
// the same sha256. Skipped, with the reason, when the data or the zstd tool is missing.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { createReadStream, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { dataDir, sharedDataFile } from '../../benchmarks/data.js';
import { listCodecs } from '../../src/codecs/registry.js';
import { openImageSource } from '../../src/memory/image-source.js';
import { fileDestination } from '../../src/migration/destination.js';
import { listen } from '../../src/migration/listen.js';
import { migrate } from '../../src/migration/sender.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { connect, parseEndpoint } from '../../src/transport/index.js';

const test = suite('real data, image file to image file');
const reason = !existsSync(join(dataDir(), 'corpus-mix.bin.zst'))
  ? `no shared data in ${dataDir()}`
  : spawnSync('zstd', ['--version']).status !== 0
    ? 'zstd is not installed'
    : undefined;
if (reason) console.log(`  skipped: ${reason}`);
const register = reason ? test.skip : test;
let pool: WorkerPool;
let dir: string;

test.before(() => {
  pool = new WorkerPool({ threads: 2 });
  dir = mkdtempSync(join(tmpdir(), 'multifd-data-'));
});

test.after(async () => {
  await pool.close();
  rmSync(dir, { recursive: true, force: true });
});

async function sha256(path: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer);
  return hash.digest('hex');
}

for (const name of ['corpus-mix', 'vm-512m-t0'] as const) {
  listCodecs().forEach(({ id }, i) => {
    const channels = [1, 2, 4][i % 3]!;
    register(`${name} with ${id} over ${channels} channel(s) arrives with the same sha256`, async () => {
      const input = sharedDataFile(name)!;
      const output = join(dir, `${name}-${id}.raw`);
      const receiver = await listen('tcp:127.0.0.1:0', { destination: fileDestination(output), pool });
      const source = await openImageSource(input, { pageSize: 4096 });
      try {
        const stats = await migrate({ source, connect: () => connect(parseEndpoint(receiver.address)), codec: id, channels, pool });
        await receiver.result;
        assert.is(stats.status, 'completed');
      } finally {
        await source.close();
      }
      assert.is(await sha256(output), await sha256(input));
      rmSync(output);
    });
  });
}

test.run();
