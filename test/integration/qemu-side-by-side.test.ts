// The QEMU half of `bench seeds`: two QEMU processes migrate an image file with multifd, and
// QEMU's own counters show that exactly the image's pages moved (its zero pages as zero pages).
// Skipped, with the reason, when qemu-system-x86_64 is not installed (npm run setup:qemu).
import { randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { qemuMigrate, qemuVersion } from '../../benchmarks/qemu.js';
import { useTempDir } from '../helpers/support.js';

const test = suite('QEMU side by side');
const version = qemuVersion();
if (!version) console.log('  skipped: qemu-system-x86_64 is not installed (npm run setup:qemu)');
const register = version ? test : test.skip;
const dir = useTempDir(test, 'qemu');
const PAGE = 4096;
const PAGES = 4096;

register('QEMU migrates the image file between two processes, every fourth page a zero page', async () => {
  const image = new Uint8Array(PAGES * PAGE);
  for (let page = 0; page < PAGES; page++) if (page % 4 !== 0) randomFillSync(image, page * PAGE, PAGE);
  const path = dir.path('image.raw');
  writeFileSync(path, image);
  const result = await qemuMigrate({ image: path, bytes: image.byteLength, channels: 2, method: 'zstd', level: 1, maxBandwidth: 0, timeoutMs: 60_000 });
  assert.is(result.zeroPages, PAGES / 4);
  assert.is(result.normalPages, PAGES - PAGES / 4);
  assert.ok(result.totalTimeMs > 0 && result.endToEndMs >= result.totalTimeMs - 1, `total ${result.totalTimeMs} ms, end to end ${result.endToEndMs} ms`);
  // CPU time of the migration alone (not QEMU's start-up): at most what the machine's cores
  // could give it between migrate and completion.
  const cpuBound = (result.endToEndMs / 1000) * availableParallelism() + 0.02;
  for (const [side, seconds] of [['send', result.sendCpuSeconds], ['receive', result.recvCpuSeconds]] as const) {
    assert.ok(Number.isFinite(seconds) && seconds >= 0 && seconds <= cpuBound, `${side} CPU ${seconds} s for a ${result.endToEndMs} ms migration`);
  }
});

test.run();
