// `--multifd-compression auto` end to end over loopback TCP: the sender picks a codec per task
// and every packet names its own; the receiver, told only "auto" in the hello, decodes each
// with the codec it names. 64 MiB is 16 tasks of 4 MiB: on a bounded link (here max-bandwidth
// 512 MiB/s, which the test does not wait on for long) the first 10 try every candidate twice
// (src/migration/codec-choice.ts), so each run below mixes all five in one stream.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MigrationControl } from '../../src/migration/migration-control.js';
import type { MigrationStats } from '../../src/migration/stats.js';
import { filledMemory, migrateTo, sameContent, useTwoPools } from '../helpers/migration.js';

const test = suite('auto codec');
const pools = useTwoPools(test);

async function autoRun(kind: 'mixed' | 'random'): Promise<MigrationStats> {
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 64 << 20 }], kind, seed: 3 });
  const run = await migrateTo('tcp:127.0.0.1:0', source, { codec: 'auto', channels: 2, pool: pools.sender(), maxBandwidth: 512 << 20 });
  if (run.stats.status === 'rejected') throw run.stats.reason;
  if (run.result.status === 'rejected') throw run.result.reason;
  assert.ok(sameContent(run.destination()!, source), 'the destination holds the source, byte for byte');
  return run.stats.value;
}

test('a receiver decodes a stream whose packets mix all five choices, each compressing what it got', async () => {
  const stats = await autoRun('mixed');
  const choices = stats.auto!.choices;
  assert.equal(Object.keys(choices).sort(), ['lz4-1', 'none', 'zstd-1', 'zstd-2', 'zstd-3']);
  for (const label of ['lz4-1', 'zstd-1', 'zstd-2', 'zstd-3']) {
    const c = choices[label]!;
    assert.ok(c.tasks >= 2 && c['normal-pages'] > c['raw-pages'], `${label}: ${JSON.stringify(c)}`);
    assert.ok(c['wire-bytes'] < c['guest-bytes'], `${label} shrank its pages`);
  }
  assert.is(Object.values(choices).reduce((n, c) => n + c['guest-bytes'], 0), 64 << 20, 'every page went through one choice');
});

test('incompressible pages go raw: every packet a codec did not shrink is sent as none, and none is chosen after the trials', async () => {
  const stats = await autoRun('random');
  const choices = stats.auto!.choices;
  for (const label of ['lz4-1', 'zstd-1', 'zstd-2', 'zstd-3']) {
    const c = choices[label]!;
    assert.is(c['raw-pages'], c['normal-pages'], `${label}: all its pages raw`);
    assert.ok(c['wire-bytes'] > c['guest-bytes'] && c['wire-bytes'] < c['guest-bytes'] * 1.01, `${label}: raw pages and their headers`);
  }
  assert.is(choices.none!.tasks, 2 + 6, 'none: its two trials and every task after the trials');
  assert.match(stats.auto!.reason, /^none: /);
});

test('on a link nothing bounds, auto sends everything as none, without trying the others', async () => {
  // One task: its choice comes before any data could have met a full socket.
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }], seed: 4 });
  const run = await migrateTo('tcp:127.0.0.1:0', source, { codec: 'auto', channels: 2, pool: pools.sender(), control: new MigrationControl() });
  if (run.stats.status === 'rejected') throw run.stats.reason;
  assert.ok(sameContent(run.destination()!, source));
  // A control gives the migration an unlimited bucket: still no bound, so still none.
  assert.equal(Object.keys(run.stats.value.auto!.choices), ['none']);
});

test.run();
