// The real dirty trace: three snapshots of a 512 MiB Linux guest, 5 s apart (shared data,
// see its README). Decompressed once into benchmarks/.cache/ (benchmarks/data.ts); skipped
// without the data or zstd.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { traceFromSnapshots } from '../../../src/migration/dirty/trace-log.js';
import { runsPageCount } from '../../../src/wire/page-runs.js';
import { dataDir, sharedDataFile } from '../../../benchmarks/data.js';

const PAGE = 4096;
const FILES = ['vm-512m-t0.raw.zst', 'vm-512m-t1.patch.zst', 'vm-512m-t2.patch.zst'];

function skipReason(): string | undefined {
  const missing = FILES.filter((file) => !existsSync(join(dataDir(), file)));
  if (missing.length > 0) return `${missing.join(', ')} not found in ${dataDir()} (set MULTIFD_DATA_DIR)`;
  if (spawnSync('zstd', ['--version']).status !== 0) return 'zstd is not installed (apt-get install zstd)';
  return undefined;
}

function isZero(bytes: Uint8Array): boolean {
  return bytes.every((byte) => byte === 0);
}

const reason = skipReason();
const vmSuite = suite('dirty trace of a real 512 MiB guest');
if (reason) console.log(`  skipped: ${reason}`);
const test = reason ? vmSuite.skip : vmSuite;

test('t0 → t1 dirties 1,250 pages (27 of them zeroed) and t1 → t2 1,217 (29 zeroed), as the data README says', async () => {
  const snapshots = (['vm-512m-t0', 'vm-512m-t1', 'vm-512m-t2'] as const).map((name) => sharedDataFile(name)!);
  const trace = await traceFromSnapshots(snapshots, PAGE);
  const summary = trace.steps.map((step) => {
    let zeroed = 0;
    for (let at = 0; at < step.bytes.byteLength; at += PAGE) if (isZero(step.bytes.subarray(at, at + PAGE))) zeroed++;
    return { pages: runsPageCount(step.runs), zeroed };
  });
  assert.equal(summary, [
    { pages: 1250, zeroed: 27 },
    { pages: 1217, zeroed: 29 },
  ]);
});

vmSuite.run();
