// `--multifd-compression auto` end to end over loopback TCP: the sender picks a codec per task
// and every packet names its own; the receiver, told only "auto" in the hello, decodes each
// with the codec it names. On a bounded link the first task carries the first sample
// (src/migration/codec-choice.ts); the tasks chosen before it is back go by typical figures.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MigrationControl } from '../../src/migration/migration-control.js';
import type { MigrationStats } from '../../src/migration/stats.js';
import type { GuestMemory } from '../../src/memory/guest-memory.js';
import { makePages } from '../../src/workload/page-content.js';
import { filledMemory, migrateTo, sameContent, useTwoPools } from '../helpers/migration.js';

const test = suite('auto codec');
const pools = useTwoPools(test);
const MiB = 1 << 20;

async function autoRun(source: GuestMemory, maxBandwidth: number): Promise<MigrationStats> {
  const run = await migrateTo('tcp:127.0.0.1:0', source, { codec: 'auto', channels: 2, pool: pools.sender(), maxBandwidth });
  if (run.stats.status === 'rejected') throw run.stats.reason;
  if (run.result.status === 'rejected') throw run.result.reason;
  assert.ok(sameContent(run.destination()!, source), 'the destination holds the source, byte for byte');
  return run.stats.value;
}

test('on a slow link a receiver decodes a stream that mixes a compressing codec with raw packets of the pages it could not shrink', async () => {
  // 16 MiB of text, then 16 MiB of random bytes, at 40 MB/s: the wire decides, so a codec
  // that shrinks the text 4-fold is chosen, and the next sample is 32 tasks away: the random
  // pages go through the same codec, and each of their packets goes raw, as none.
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 16 * MiB }, { name: 'vga.ram', byteLength: 16 * MiB }], kind: 'text', seed: 3 });
  const random = source.blocks[1]!;
  makePages('random', random.pageCount, source.pageSize, 9).forEach((page, p) => random.bytes().set(page, p * source.pageSize));
  const stats = await autoRun(source, 40e6);
  const choices = Object.entries(stats.auto!.choices).filter(([label]) => label !== 'none');
  assert.ok(choices.length >= 1, JSON.stringify(stats.auto!.choices));
  const raw = choices.reduce((n, [, c]) => n + c['raw-pages'], 0);
  assert.ok(raw >= random.pageCount / 2, `${raw} pages sent raw by ${choices.map(([l]) => l).join(', ')}`);
  const compressed = choices.reduce((n, [, c]) => n + c['normal-pages'] - c['raw-pages'], 0);
  assert.ok(compressed > 0, 'and the text pages went compressed');
  assert.is(Object.values(stats.auto!.choices).reduce((n, c) => n + c['guest-bytes'], 0), 32 * MiB, 'every page went through one choice');
});

test('incompressible pages on a bounded link: once the sample is back everything goes as none, and what went before it went raw', async () => {
  const stats = await autoRun(filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 64 * MiB }], kind: 'random', seed: 3 }), 400e6);
  const { choices, reason } = stats.auto!;
  for (const [label, c] of Object.entries(choices)) if (label !== 'none') assert.is(c['raw-pages'], c['normal-pages'], `${label}: all its pages raw`);
  assert.ok(choices.none!.tasks > 8, JSON.stringify(choices));
  assert.match(reason, /^none: /);
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
