// `auto`'s chooser (src/migration/codec-choice.ts), fed measurements by hand: no clock, no pool.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { CodecChooser, SAMPLE_INTERVAL, type ChoiceOutcome, type ChoicePlan } from '../../../src/migration/codec-choice.js';

const test = suite('auto: the codec chooser');

const MiB = 2 ** 20;
const TASK = 4 * MiB;
const SAMPLE = 256 * 1024;

/** Per MiB of pages on one worker: each codec's encode ms and the bytes it leaves; every task also costs BASE_MS per MiB (scan, hashes). */
interface Profile {
  baseMs: number;
  /** How much longer a task's encode takes than its codec's sample for as many bytes (1 when absent). */
  contention?: number;
  codecs: Record<string, { ms: number; wire: number; decodeMs?: number }>;
}
const PROFILE: Profile = {
  baseMs: 0.5,
  codecs: {
    none: { ms: 0, wire: 1.0 },
    'lz4-1': { ms: 1.5, wire: 0.5 },
    'zstd-1': { ms: 3.5, wire: 0.33 },
    'zstd-2': { ms: 5.5, wire: 0.31 },
    'zstd-3': { ms: 9.5, wire: 0.28 },
  },
};

/** What a 4 MiB task of normal pages sent as `plan` says it produced under `profile`; `taskWire` overrides its own ratio. */
function outcome(plan: ChoicePlan, profile = PROFILE, taskWire?: number): ChoiceOutcome {
  const own = profile.codecs[plan.choice.label]!;
  const payloadBytes = TASK * (taskWire ?? own.wire);
  const sampleEncodings = (plan.sample ?? []).map((c) => {
    const codec = profile.codecs[c.label]!;
    return { wireBytes: SAMPLE * codec.wire, ms: (SAMPLE / MiB) * codec.ms, decodeMs: (SAMPLE / MiB) * (codec.decodeMs ?? 0) };
  });
  const encodeMs = 4 * own.ms * (profile.contention ?? 1);
  return {
    guestBytes: TASK,
    normalBytes: TASK,
    wireBytes: payloadBytes + 8 * 1400,
    payloadBytes,
    workerMs: 4 * profile.baseMs + encodeMs + sampleEncodings.reduce((n, e) => n + e.ms, 0),
    encodeMs,
    packets: 8,
    normalPages: 1024,
    rawPages: 0,
    sampleBytes: plan.sample ? SAMPLE : 0,
    sampleEncodings,
  };
}

/** Runs `tasks` choices at a link of `linkMBps` (Infinity: none), feeding `profile`; returns the plans. */
function run(chooser: CodecChooser, tasks: number, linkMBps: number, profile = PROFILE, taskWire?: () => number, receiverOnThisHost = false): ChoicePlan[] {
  const plans: ChoicePlan[] = [];
  for (let i = 0; i < tasks; i++) {
    const plan = chooser.choose((linkMBps * 1e6) / 1000, receiverOnThisHost);
    plans.push(plan);
    chooser.record(plan, outcome(plan, profile, taskWire?.()));
  }
  return plans;
}

const labels = (plans: ChoicePlan[]) => plans.map((p) => p.choice.label);

test('while nothing bounds the link none is taken and nothing is sampled: no codec costs the workers less', () => {
  const chooser = new CodecChooser(2);
  const plans = run(chooser, 100, Infinity);
  assert.equal(tally(labels(plans)), { none: 100 });
  assert.ok(plans.every((p) => p.sample === undefined));
  assert.match(chooser.stats().reason, /^none: no link limit seen/);
});

test('once the link is bounded, the first task and every SAMPLE_INTERVAL-th after it carry a sample for every codec that encodes', () => {
  const chooser = new CodecChooser(2);
  run(chooser, 5, Infinity);
  const plans = run(chooser, 2 * SAMPLE_INTERVAL + 1, 125);
  const sampled = plans.flatMap((p, i) => (p.sample ? [i] : []));
  assert.equal(sampled, [0, SAMPLE_INTERVAL, 2 * SAMPLE_INTERVAL]);
  assert.equal(plans[0]!.sample!.map((c) => c.label), ['lz4-1', 'zstd-1', 'zstd-2', 'zstd-3']);
});

test('before the first sample is back, typical figures decide: none only where the link outruns every codec', () => {
  const first = (linkMBps: number) => new CodecChooser(2).choose((linkMBps * 1e6) / 1000).choice.label;
  assert.is(first(12.5), 'zstd-3', '100 Mbit/s');
  assert.is(first(125), 'zstd-1', '1 Gbit/s');
  assert.is(first(1250), 'none', '10 Gbit/s');
  const chooser = new CodecChooser(2);
  const fast = { ...PROFILE, codecs: { ...PROFILE.codecs, 'lz4-1': { ms: 0.5, wire: 0.3 } } };
  assert.equal(labels(run(chooser, 2, 125, fast)), ['zstd-1', 'lz4-1'], 'the first sample replaces the figures whole');
});

test('a receiver on this host decodes on the same cores: its decode time counts', () => {
  // zstd decodes at 4 ms a MiB here: with it, zstd-1 needs (0.5 + 3.5 + 4) / 2 = 4 ms a MiB on
  // 2 workers, zstd-2 5; lz4 (0.5 to decode) 1.25 on the workers, 4.2 on the wire.
  const slowDecode: Profile = { ...PROFILE, codecs: Object.fromEntries(Object.entries(PROFILE.codecs).map(([label, p]) => [label, { ...p, decodeMs: label.startsWith('zstd') ? 4 : label === 'lz4-1' ? 0.5 : 0 }])) };
  assert.is(labels(run(new CodecChooser(2), 4, 125, slowDecode)).at(-1), 'zstd-1', 'a receiver elsewhere: its decoding is not ours');
  assert.is(labels(run(new CodecChooser(2), 4, 125, slowDecode, undefined, true)).at(-1), 'zstd-1', 'zstd-1 (4 on the workers, 2.8 on the wire) still beats lz4 (4.2)');
  const slowerDecode: Profile = { ...slowDecode, codecs: { ...slowDecode.codecs, 'zstd-1': { ...slowDecode.codecs['zstd-1']!, decodeMs: 6 } } };
  assert.is(labels(run(new CodecChooser(2), 4, 125, slowerDecode, undefined, true)).at(-1), 'lz4-1', 'zstd-1 decoding at 6 ms a MiB: 5 on the workers, lz4 wins');
});

test('on a slow link the codec that leaves fewest bytes wins while the workers keep up; a faster link moves the choice to cheaper codecs', () => {
  const best = (linkMBps: number) => labels(run(new CodecChooser(2), 40, linkMBps).slice(1));
  // 2 workers: zstd-3 moves 200 MiB/s of guest on them, zstd-2 333, zstd-1 500, lz4 1000, none 4000.
  assert.equal(tally(best(10)), { 'zstd-3': 39 }, '10 MB/s: the wire decides');
  assert.equal(tally(best(125)), { 'zstd-1': 39 }, '1 Gbit/s: zstd-1 (about 360 MiB/s of guest, wire-bound) beats zstd-2 (333, worker-bound) and lz4 (238 on the wire)');
  assert.equal(tally(best(1250)), { none: 39 }, '10 Gbit/s: none');
  assert.match(new CodecChooser(2).stats().reason, /not measured/);
});

test('the ranking comes from the samples, not from the regions of memory each codec\'s tasks happened to get', () => {
  const chooser = new CodecChooser(2);
  // The tasks' own ratios swing between easy and hard regions; the samples (the same pages for
  // every candidate) keep their order, so the choice does not follow the swings.
  let task = 0;
  const swinging = () => (task++ % 2 ? 0.05 : 0.9);
  const plans = run(chooser, 3 * SAMPLE_INTERVAL, 10, PROFILE, swinging);
  assert.equal(tally(labels(plans.slice(1))), { 'zstd-3': 3 * SAMPLE_INTERVAL - 1 });
});

test('a link that slows mid-migration changes the choice at once, without waiting for a sample', () => {
  const chooser = new CodecChooser(2);
  run(chooser, 20, 1250);
  assert.is(chooser.choose(1_250_000).choice.label, 'none', '10 Gbit/s (1 250 000 bytes per ms): none');
  assert.equal(labels(run(chooser, 3, 125)), ['zstd-1', 'zstd-1', 'zstd-1'], '1 Gbit/s from the next task');
});

test('data that turns incompressible moves the choice to none at the next sample', () => {
  const chooser = new CodecChooser(2);
  run(chooser, SAMPLE_INTERVAL, 125);
  const flat: Profile = { baseMs: PROFILE.baseMs, codecs: Object.fromEntries(Object.entries(PROFILE.codecs).map(([label, p]) => [label, { ms: p.ms, wire: 1 }])) };
  const later = labels(run(chooser, 2, 125, flat));
  assert.equal(later, ['zstd-1', 'none'], 'the sampled task itself was chosen before its sample was seen');
});

test('workers that lose CPU to a neighbour move the choice to a cheaper codec', () => {
  const chooser = new CodecChooser(2);
  run(chooser, SAMPLE_INTERVAL, 125);
  const slowed: Profile = { baseMs: 3 * PROFILE.baseMs, codecs: Object.fromEntries(Object.entries(PROFILE.codecs).map(([label, p]) => [label, { ms: 3 * p.ms, wire: p.wire }])) };
  const later = labels(run(chooser, 3 * SAMPLE_INTERVAL, 125, slowed));
  assert.is(later.at(-1), 'lz4-1', 'zstd-1 now needs 6 ms a MiB on 2 workers, lz4 4.2 on the wire');
  assert.match(chooser.stats().reason, /^lz4-1: .* link-bound/);
});

test('a codec whose tasks encode slower than its samples is costed at what the tasks take, and so is every candidate', () => {
  const chooser = new CodecChooser(2);
  // Tasks compete with the rest of the machine: zstd-1's take 3 × its sampled time, which
  // makes it worker-bound (5.5 ms a MiB); lz4, at 3 × its sampled time too, needs 2.5 ms on
  // the workers and 4.2 on the wire.
  const later = labels(run(chooser, SAMPLE_INTERVAL, 125, { ...PROFILE, contention: 3 }));
  assert.is(later[1], 'zstd-1', 'before a task of it came back, the sample alone');
  assert.is(later.at(-1), 'lz4-1', later.slice(-4).join(', '));
});

test('counts per choice add up, and raw pages are reported', () => {
  const chooser = new CodecChooser(1);
  const plan = chooser.choose(Infinity);
  const base = { normalBytes: 0, payloadBytes: 0, encodeMs: 0, sampleBytes: 0, sampleEncodings: [] };
  chooser.record(plan, { ...base, guestBytes: 100, wireBytes: 90, workerMs: 1, packets: 2, normalPages: 3, rawPages: 1 });
  chooser.record(plan, { ...base, guestBytes: 50, wireBytes: 40, workerMs: 1, packets: 1, normalPages: 1, rawPages: 0 });
  assert.equal(chooser.stats().choices.none, { tasks: 2, packets: 3, 'normal-pages': 4, 'raw-pages': 1, 'guest-bytes': 150, 'wire-bytes': 130 });
});

function tally(names: string[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const name of names) counts[name] = (counts[name] ?? 0) + 1;
  return counts;
}

test.run();
