// `--multifd-compression auto` end to end over loopback TCP: the sender picks a codec per task
// and every packet names its own; the receiver, told only "auto" in the hello, decodes each
// with the codec it names. On a bounded link the first task carries the first sample
// (src/migration/codec-choice.ts): until its result is in, tasks go as none, and after it as
// the codec the sample ranks first, so one stream mixes none with a compressing codec.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MigrationControl } from '../../src/migration/migration-control.js';
import type { MigrationStats } from '../../src/migration/stats.js';
import { filledMemory, migrateTo, sameContent, useTwoPools } from '../helpers/migration.js';

const test = suite('auto codec');
const pools = useTwoPools(test);

async function autoRun(kind: 'text' | 'random', maxBandwidth: number): Promise<MigrationStats> {
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 64 << 20 }], kind, seed: 3 });
  const run = await migrateTo('tcp:127.0.0.1:0', source, { codec: 'auto', channels: 2, pool: pools.sender(), maxBandwidth });
  if (run.stats.status === 'rejected') throw run.stats.reason;
  if (run.result.status === 'rejected') throw run.result.reason;
  assert.ok(sameContent(run.destination()!, source), 'the destination holds the source, byte for byte');
  return run.stats.value;
}

test('on a slow link a receiver decodes a stream that mixes none with the codec the sample ranked first', async () => {
  // 40 MB/s: none would take 1.7 s for the 64 MiB, so any codec that shrinks the text
  // pages 4-fold wins once the sample is in, whatever this machine's load makes of its speed.
  const stats = await autoRun('text', 40e6);
  const choices = stats.auto!.choices;
  assert.ok(choices.none!.tasks >= 1, 'the tasks chosen before the first sample was measured');
  const compressing = Object.keys(choices).filter((label) => label !== 'none');
  assert.ok(compressing.length >= 1, JSON.stringify(choices));
  for (const label of compressing) assert.ok(choices[label]!['wire-bytes'] < choices[label]!['guest-bytes'] / 2, `${label} shrank its pages`);
  assert.is(Object.values(choices).reduce((n, c) => n + c['guest-bytes'], 0), 64 << 20, 'every page went through one choice');
  assert.match(stats.auto!.reason, /^(lz4|zstd)-\d: /);
});

test('incompressible pages on a bounded link: the sample finds no codec that shrinks them, and everything goes as none', async () => {
  const stats = await autoRun('random', 400e6);
  assert.equal(Object.keys(stats.auto!.choices), ['none']);
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
