// `--multifd-compression auto`: the sender picks, task by task, the codec that should finish
// the migration soonest, from what it measures while migrating. Every packet names its codec
// and decodes alone, so the receiver needs no setting and the choice may change at any packet.
//
// The model: moving one guest byte with codec c costs max(c's worker time per guest byte ÷
// worker threads, c's wire bytes per guest byte ÷ the link's rate). Worker time is measured on
// the workers themselves (so a CPU-bound neighbour that slows them is seen), wire bytes per
// guest byte from the packets c produced (zero pages count as guest bytes that cost no wire),
// and the link's rate is max-bandwidth when set, the measured wire rate while the sockets
// push back, and unbounded otherwise. While nothing bounds the link, `none` is taken without
// trying the others: every codec does none's work (the zero scan, the hashes) and more, so on
// an unbounded link nothing can beat it. Once the link is bounded, each candidate is tried
// twice (its first task, which creates its encoder, is not counted), and the one measured
// longest ago again every PROBE_INTERVAL tasks, so the estimates follow the data and the CPU
// as they change; a change of the link is seen at once. Pure logic: the caller feeds
// measurements, tests need no clock.
import { getCodec } from '../codecs/registry.js';
import type { Codec, CodecId } from '../codecs/types.js';

/** What `auto` chooses among, cheapest first: a tie goes to the earlier one. */
export const AUTO_CANDIDATES: ReadonlyArray<{ codec: CodecId; level?: number }> = [
  { codec: 'none' },
  { codec: 'lz4', level: 1 },
  { codec: 'zstd', level: 1 },
  { codec: 'zstd', level: 2 },
  { codec: 'zstd', level: 3 },
];

/** Tasks each candidate gets first, in order, whatever comes back meanwhile: the first is not counted. */
const TRIALS = 2;
/** After this many choices, the candidate measured longest ago is tried again. */
export const PROBE_INTERVAL = 32;
/** Weight of the newest task in a candidate's running estimates. */
const SMOOTHING = 0.3;
/**
 * A costlier candidate (later in AUTO_CANDIDATES) wins only when it is estimated this much
 * faster: near-ties, as when every codec waits on the same link, go to the cheaper one.
 */
const MARGIN = 0.03;

/** One candidate: its codec, level and name in stats (`zstd-1`). */
export interface CodecChoice {
  label: string;
  codec: Codec;
  level: number | undefined;
}

/** What one task of a choice produced, as the pool reports it. */
export interface ChoiceOutcome {
  /** Pages the task covered, normal and zero, × page size. */
  guestBytes: number;
  /** Bytes of its packets (headers and payloads). */
  wireBytes: number;
  /** Worker milliseconds the task took. */
  workerMs: number;
  packets: number;
  normalPages: number;
  /** Of those, pages sent raw because the codec did not shrink their packet. */
  rawPages: number;
}

/** Per choice, for stats and `--json`. */
export interface ChoiceCounts {
  tasks: number;
  packets: number;
  'normal-pages': number;
  'raw-pages': number;
  'guest-bytes': number;
  'wire-bytes': number;
}

/** `auto` in a migration's stats: what went where, the current choice and why. */
export interface AutoStats {
  current: string;
  reason: string;
  choices: Record<string, ChoiceCounts>;
}

interface Estimate {
  msPerGuestByte: number;
  wirePerGuestByte: number;
  /** The choice count when last measured. */
  measuredAt: number;
}

/** Chooses a codec per task for `auto`. */
export class CodecChooser {
  readonly candidates: CodecChoice[];
  private readonly estimates = new Map<string, Estimate>();
  /** Candidates whose first task (the encoder's creation in it) was seen and left out. */
  private readonly warm = new Set<string>();
  private readonly counts = new Map<string, ChoiceCounts>();
  /** Choices made since the link was first bounded (the trials count from there). */
  private choicesMade = 0;
  private current: CodecChoice;
  private reason = 'not measured yet';

  constructor(private readonly threads: number) {
    this.candidates = AUTO_CANDIDATES.map(({ codec, level }) => ({ label: level === undefined ? codec : `${codec}-${level}`, codec: getCodec(codec), level }));
    this.current = this.candidates[0]!;
  }

  /**
   * The codec for the next task. `linkBytesPerMs`: the wire bytes per ms the link takes
   * (Infinity when nothing limits it).
   */
  choose(linkBytesPerMs: number): CodecChoice {
    if (!Number.isFinite(linkBytesPerMs)) {
      // Unbounded: the cheapest on the workers, which is none (see the top of the file).
      this.current = this.candidates[0]!;
      this.reason = `${this.current.label}: no link limit seen, and no codec costs the workers less`;
      return this.current;
    }
    this.choicesMade++;
    // The trials are issued in order, not as results return: tasks run several at a time.
    const trial = Math.floor((this.choicesMade - 1) / TRIALS);
    if (trial < this.candidates.length) return this.probe(this.candidates[trial]!, 'trying each candidate');
    const measured = this.candidates.filter((c) => this.estimates.has(c.label));
    if (measured.length && this.choicesMade % PROBE_INTERVAL === 0) {
      const stalest = measured.reduce((a, b) => (this.estimates.get(b.label)!.measuredAt < this.estimates.get(a.label)!.measuredAt ? b : a));
      return this.probe(stalest, 'measuring it again');
    }
    let best = this.candidates[0]!;
    let bestCost = Infinity;
    for (const candidate of this.candidates) {
      const cost = this.costPerGuestByte(candidate, linkBytesPerMs);
      if (cost < bestCost * (1 - MARGIN)) [best, bestCost] = [candidate, cost];
    }
    this.current = best;
    this.reason = Number.isFinite(bestCost) ? this.explain(best, linkBytesPerMs) : `${best.label}: the trials are not measured yet`;
    return best;
  }

  /** Feeds what a task of `choice` produced. */
  record(choice: CodecChoice, outcome: ChoiceOutcome): void {
    const counts = this.countsOf(choice.label);
    counts.tasks++;
    counts.packets += outcome.packets;
    counts['normal-pages'] += outcome.normalPages;
    counts['raw-pages'] += outcome.rawPages;
    counts['guest-bytes'] += outcome.guestBytes;
    counts['wire-bytes'] += outcome.wireBytes;
    if (outcome.guestBytes === 0) return;
    if (!this.warm.has(choice.label)) return void this.warm.add(choice.label);
    const sample = { msPerGuestByte: outcome.workerMs / outcome.guestBytes, wirePerGuestByte: outcome.wireBytes / outcome.guestBytes };
    const old = this.estimates.get(choice.label);
    const blend = (a: number, b: number) => (old ? (1 - SMOOTHING) * a + SMOOTHING * b : b);
    this.estimates.set(choice.label, {
      msPerGuestByte: blend(old?.msPerGuestByte ?? 0, sample.msPerGuestByte),
      wirePerGuestByte: blend(old?.wirePerGuestByte ?? 0, sample.wirePerGuestByte),
      measuredAt: this.choicesMade,
    });
  }

  /** Estimated ms per guest byte with `choice` on a link of `linkBytesPerMs`. */
  costPerGuestByte(choice: CodecChoice, linkBytesPerMs: number): number {
    const estimate = this.estimates.get(choice.label);
    if (!estimate) return Infinity;
    return Math.max(estimate.msPerGuestByte / this.threads, estimate.wirePerGuestByte / linkBytesPerMs);
  }

  stats(): AutoStats {
    return { current: this.current.label, reason: this.reason, choices: Object.fromEntries(this.counts) };
  }

  private probe(choice: CodecChoice, why: string): CodecChoice {
    this.reason = `${choice.label}: ${why}`;
    return choice;
  }

  /** Why `best` won: the bound that limits it and its estimate against the next best. */
  private explain(best: CodecChoice, linkBytesPerMs: number): string {
    const estimate = this.estimates.get(best.label)!;
    const cpuBound = estimate.msPerGuestByte / this.threads >= estimate.wirePerGuestByte / linkBytesPerMs;
    const secondsPerGiB = (choice: CodecChoice) => ((this.costPerGuestByte(choice, linkBytesPerMs) * 2 ** 30) / 1000).toFixed(2);
    const others = this.candidates.filter((c) => c !== best).map((c) => `${c.label} ${secondsPerGiB(c)}`);
    const link = Number.isFinite(linkBytesPerMs) ? `${Math.round(linkBytesPerMs / 1000)} MB/s link` : 'no link limit seen';
    return `${best.label}: ${secondsPerGiB(best)} s/GiB, ${cpuBound ? 'worker-bound' : 'link-bound'} (${link}; ${others.join(', ')})`;
  }

  private countsOf(label: string): ChoiceCounts {
    let counts = this.counts.get(label);
    if (!counts) this.counts.set(label, (counts = { tasks: 0, packets: 0, 'normal-pages': 0, 'raw-pages': 0, 'guest-bytes': 0, 'wire-bytes': 0 }));
    return counts;
  }
}
