// `auto`'s chooser (src/migration/codec-choice.ts), fed measurements by hand: no clock, no pool.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { CodecChooser, PROBE_INTERVAL, type CodecChoice } from '../../../src/migration/codec-choice.js';

const test = suite('auto: the codec chooser');

const MiB = 2 ** 20;
/** What each candidate costs per MiB of guest memory on one worker, and what it leaves on the wire. */
const PROFILE: Record<string, { ms: number; wire: number }> = {
  none: { ms: 0.5, wire: 1.0 },
  'lz4-1': { ms: 2, wire: 0.5 },
  'zstd-1': { ms: 4, wire: 0.33 },
  'zstd-2': { ms: 6, wire: 0.31 },
  'zstd-3': { ms: 10, wire: 0.3 },
};

function feed(chooser: CodecChooser, choice: CodecChoice, profile = PROFILE): void {
  const p = profile[choice.label]!;
  chooser.record(choice, { guestBytes: 4 * MiB, wireBytes: 4 * MiB * p.wire, workerMs: 4 * p.ms, packets: 8, normalPages: 1024, rawPages: 0 });
}

/** Runs `tasks` choices at a link of `linkMBps` (Infinity: none), feeding PROFILE; returns the labels chosen. */
function run(chooser: CodecChooser, tasks: number, linkMBps: number, profile = PROFILE): string[] {
  const chosen: string[] = [];
  for (let i = 0; i < tasks; i++) {
    const choice = chooser.choose((linkMBps * 1e6) / 1000);
    chosen.push(choice.label);
    feed(chooser, choice, profile);
  }
  return chosen;
}

test('once the link is bounded, every candidate is tried twice first (its first task, with the encoder\'s creation, is not counted)', () => {
  const chooser = new CodecChooser(2);
  assert.equal(run(chooser, 10, 125), ['none', 'none', 'lz4-1', 'lz4-1', 'zstd-1', 'zstd-1', 'zstd-2', 'zstd-2', 'zstd-3', 'zstd-3']);
});

test('while nothing bounds the link none is taken without trials or probes: no codec costs the workers less', () => {
  const chooser = new CodecChooser(2);
  assert.equal(tally(run(chooser, 100, Infinity)), { none: 100 });
  assert.match(chooser.stats().reason, /^none: no link limit seen/);
  assert.equal(run(chooser, 2, 125), ['none', 'none'], 'the trials start when the link is first bounded');
});

test('on a slow link the codec that leaves fewest bytes wins while the workers keep up; a faster link moves the choice to cheaper codecs', () => {
  const best = (linkMBps: number) => {
    const chooser = new CodecChooser(2);
    const counts = tally(run(chooser, 10 + 64, linkMBps).slice(10));
    return Object.entries(counts).sort((a, b) => b[1] - a[1])[0]![0];
  };
  // 2 workers: zstd-3 moves 200 MB/s of guest on them, zstd-1 500, lz4 1000, none 4000.
  assert.is(best(10), 'zstd-3', '10 MB/s: the wire decides');
  assert.is(best(125), 'zstd-1', '1 Gbit/s: zstd-1 (375 MB/s of guest) beats zstd-3 (200 on the workers) and lz4 (250 on the wire)');
  assert.is(best(1250), 'none', '10 Gbit/s: none');
});

test('a link that slows mid-migration changes the choice at once, without waiting for a probe', () => {
  const chooser = new CodecChooser(2);
  run(chooser, 20, 1250);
  assert.is(chooser.choose(1_250_000).label, 'none', '10 Gbit/s (1 250 000 bytes per ms): none');
  assert.equal(run(chooser, 3, 125), ['zstd-1', 'zstd-1', 'zstd-1'], '1 Gbit/s from the next task');
});

test('the stalest candidate is measured again every PROBE_INTERVAL choices, so a codec that became cheaper is found', () => {
  const chooser = new CodecChooser(2);
  run(chooser, 10 + 64, 125);
  // The data turns incompressible: zstd's ratio goes to 1, and none wins once the probes see it.
  const flat = Object.fromEntries(Object.entries(PROFILE).map(([label, p]) => [label, { ms: p.ms, wire: 1 }]));
  const later = run(chooser, 8 * PROBE_INTERVAL, 125, flat);
  assert.is(later.at(-1), 'none', later.slice(-8).join(', '));
});

test('counts per choice add up, and raw pages are reported', () => {
  const chooser = new CodecChooser(1);
  const choice = chooser.choose(Infinity);
  chooser.record(choice, { guestBytes: 100, wireBytes: 90, workerMs: 1, packets: 2, normalPages: 3, rawPages: 1 });
  chooser.record(choice, { guestBytes: 50, wireBytes: 40, workerMs: 1, packets: 1, normalPages: 1, rawPages: 0 });
  assert.equal(chooser.stats().choices.none, { tasks: 2, packets: 3, 'normal-pages': 4, 'raw-pages': 1, 'guest-bytes': 150, 'wire-bytes': 130 });
});

function tally(labels: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const label of labels) counts[label] = (counts[label] ?? 0) + 1;
  return counts;
}

test.run();
