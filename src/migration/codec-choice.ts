// `--multifd-compression auto`: the sender picks, task by task, the codec that should finish
// the migration soonest, from what it measures while migrating. Every packet names its codec
// and decodes alone, so the receiver needs no setting and the choice may change at any packet.
//
// The model: moving one guest byte with codec c costs max(the workers' time per guest byte ÷
// worker threads, c's wire bytes per guest byte ÷ the link's rate). The workers' time is what
// every codec shares (the zero scan, the hashes, the headers), measured on every task, plus c's
// encode time on the share of guest bytes that are not zero pages; c's wire bytes are the
// headers plus c's compressed size on that share. The link's rate is max-bandwidth when set,
// the measured wire rate while the sockets push back, and unbounded otherwise.
//
// The candidates are ranked on the same pages: a task now and then carries a sample (one
// packet's worth of its pages), which the worker encodes with every candidate, timing each.
// Ranking them on the tasks each happened to get would let a codec that met an easy region of
// memory look better than it is. The samples are taken on the first task once the link is
// bounded, then every SAMPLE_INTERVAL tasks, so the ranking follows the data and the CPU as
// they change; a change of the link is seen at once. Until a candidate's first sample is back
// (several tasks are chosen meanwhile), typical figures stand in for it (PRIORS). When the
// receiver runs on this host (loopback), its decoding takes the same cores, so a candidate's
// decode time, timed on the sample too, counts with its encode. While nothing bounds the link, `none` is
// taken and nothing is sampled: every codec does none's work and more, so on an unbounded link
// nothing can beat it. Pure logic: the caller feeds measurements, tests need no clock.
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

/** Tasks between two samples while the link is bounded. */
export const SAMPLE_INTERVAL = 32;
/** Weight of the newest task (shared costs) and of the newest sample (a candidate's time) in the running estimates. */
const SMOOTHING = 0.3;
const SAMPLE_SMOOTHING = 0.5;
/**
 * The shared worker time is the least of the last few tasks': a task's time also holds one-off
 * costs (a worker's first task instantiates its kernels, a fresh result buffer faults in) and
 * preemptions, which would make every codec look worker-bound.
 */
const BASE_WINDOW = 4;
/**
 * A costlier candidate (later in AUTO_CANDIDATES) wins only when it is estimated this much
 * faster: near-ties go to the cheaper one. Small, since the samples compare the candidates'
 * sizes on the same pages exactly: on a link-bound run 2 % fewer bytes is 2 % less time.
 */
const MARGIN = 0.01;

/** One candidate: its codec, level and name in stats (`zstd-1`). */
export interface CodecChoice {
  label: string;
  codec: Codec;
  level: number | undefined;
}

/** What the next task is sent with, and the candidates its sample is encoded with (if it carries one). */
export interface ChoicePlan {
  choice: CodecChoice;
  sample?: CodecChoice[];
}

/** What one task of a plan produced, as the pool reports it. */
export interface ChoiceOutcome {
  /** Pages the task covered, normal and zero, × page size. */
  guestBytes: number;
  /** Normal pages × page size: the bytes a codec encodes. */
  normalBytes: number;
  /** Bytes of its packets (headers and payloads), and of their payloads alone. */
  wireBytes: number;
  payloadBytes: number;
  /** Worker milliseconds the task took, and of those the ones in its codec's encode. */
  workerMs: number;
  encodeMs: number;
  packets: number;
  normalPages: number;
  /** Of those, pages sent raw because the codec did not shrink their packet. */
  rawPages: number;
  /** The sample's raw bytes and, per candidate of the plan's sample in order, its encoding (size, encode and decode ms). */
  sampleBytes: number;
  sampleEncodings: ReadonlyArray<{ wireBytes: number; ms: number; decodeMs: number }>;
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

/** A candidate's encoding of the samples: ms and bytes out per raw byte in. */
interface Encoding {
  msPerByte: number;
  decodeMsPerByte: number;
  wirePerByte: number;
  /** A typical figure (PRIORS), replaced whole by the first sample. */
  prior?: boolean;
}

/** What every codec shares, per guest byte, from every task. */
interface Shared {
  /** Worker ms outside the codec's encode and the sample (the least of the last BASE_WINDOW tasks). */
  baseMs: number;
  /** Packet headers on the wire. */
  headerBytes: number;
  /** The share of guest bytes that are normal pages (the rest are zero pages). */
  normalShare: number;
}

/** `none` encodes nothing and leaves every byte. */
const NONE_ENCODING: Encoding = { msPerByte: 0, decodeMsPerByte: 0, wirePerByte: 1 };

/**
 * Typical figures, until the samples replace them: ms per MiB on one WASM SIMD thread of this
 * project's reference machine, and the share left of memory like the corpus (docs/benchmarks.md,
 * codecs). They matter for the first few tasks only, but those would otherwise go as `none`: at
 * 100 Mbit/s three times as long as zstd-3's.
 */
const PRIORS: Record<string, { encodeMsPerMiB: number; decodeMsPerMiB: number; wire: number }> = {
  'lz4-1': { encodeMsPerMiB: 2, decodeMsPerMiB: 0.5, wire: 0.45 },
  'zstd-1': { encodeMsPerMiB: 4, decodeMsPerMiB: 1.2, wire: 0.34 },
  'zstd-2': { encodeMsPerMiB: 5.5, decodeMsPerMiB: 1.2, wire: 0.33 },
  'zstd-3': { encodeMsPerMiB: 8, decodeMsPerMiB: 1.2, wire: 0.32 },
};
/** What every codec shares, until the first task is back: 0.2 ms per MiB, no zero pages. */
const PRIOR_SHARED: Shared = { baseMs: 0.2 / 2 ** 20, headerBytes: 0.003, normalShare: 1 };

/** Chooses a codec per task for `auto`. */
export class CodecChooser {
  readonly candidates: CodecChoice[];
  private readonly encodings = new Map<string, Encoding>();
  /** PRIOR_SHARED until the first task is back (the first entry of recentBaseMs). */
  private shared: Shared = PRIOR_SHARED;
  /** The receiver runs on this host (loopback): its decoding takes the same cores. */
  private decodeHere = false;
  /**
   * A task's encode time over its codec's sampled time for as many bytes: a sample is encoded
   * with its pages in cache and timed at its best, a task's encode competes with everything
   * else on the machine. Applied to every candidate's sampled time.
   */
  private contention = 1;
  /** The base ms per guest byte of the last BASE_WINDOW tasks. */
  private readonly recentBaseMs: number[] = [];
  private readonly counts = new Map<string, ChoiceCounts>();
  /** Choices made since the link was first bounded (the samples count from there). */
  private choicesMade = 0;
  private current: CodecChoice;
  private reason = 'not measured yet';

  constructor(private readonly threads: number) {
    this.candidates = AUTO_CANDIDATES.map(({ codec, level }) => ({ label: level === undefined ? codec : `${codec}-${level}`, codec: getCodec(codec), level }));
    this.current = this.candidates[0]!;
    this.encodings.set(this.current.label, NONE_ENCODING);
    for (const [label, prior] of Object.entries(PRIORS)) {
      this.encodings.set(label, { msPerByte: prior.encodeMsPerMiB / 2 ** 20, decodeMsPerByte: prior.decodeMsPerMiB / 2 ** 20, wirePerByte: prior.wire, prior: true });
    }
  }

  /**
   * The plan for the next task. `linkBytesPerMs`: the wire bytes per ms the link takes
   * (Infinity when nothing limits it); `receiverOnThisHost`: the connections are loopback.
   */
  choose(linkBytesPerMs: number, receiverOnThisHost = false): ChoicePlan {
    this.decodeHere = receiverOnThisHost;
    if (!Number.isFinite(linkBytesPerMs)) {
      // Unbounded: the cheapest on the workers, which is none (see the top of the file).
      this.current = this.candidates[0]!;
      this.reason = `${this.current.label}: no link limit seen, and no codec costs the workers less`;
      return { choice: this.current };
    }
    const sample = this.choicesMade++ % SAMPLE_INTERVAL === 0 ? this.candidates.filter((c) => c.codec.info.payloadIsPages !== true) : undefined;
    let best = this.candidates[0]!;
    let bestCost = Infinity;
    for (const candidate of this.candidates) {
      const cost = this.costPerGuestByte(candidate, linkBytesPerMs);
      if (cost < bestCost * (1 - MARGIN)) [best, bestCost] = [candidate, cost];
    }
    this.current = best;
    this.reason = this.explain(best, linkBytesPerMs);
    return { choice: best, sample };
  }

  /** Feeds what a task of `plan` produced. */
  record(plan: ChoicePlan, outcome: ChoiceOutcome): void {
    this.count(plan.choice.label, outcome);
    if (outcome.guestBytes === 0) return;
    const sampleMs = outcome.sampleEncodings.reduce((n, e) => n + e.ms, 0);
    const sampled = this.encodings.get(plan.choice.label);
    if (outcome.encodeMs > 0 && outcome.normalBytes > 0 && sampled && !sampled.prior && sampled.msPerByte > 0) {
      this.contention = (1 - SMOOTHING) * this.contention + SMOOTHING * (outcome.encodeMs / outcome.normalBytes / sampled.msPerByte);
    }
    const sharedMeasured = this.recentBaseMs.length > 0;
    this.recentBaseMs.push(Math.max(0, outcome.workerMs - outcome.encodeMs - sampleMs) / outcome.guestBytes);
    if (this.recentBaseMs.length > BASE_WINDOW) this.recentBaseMs.shift();
    this.shared = {
      baseMs: Math.min(...this.recentBaseMs),
      ...blend(sharedMeasured ? this.shared : undefined, SMOOTHING, { headerBytes: (outcome.wireBytes - outcome.payloadBytes) / outcome.guestBytes, normalShare: outcome.normalBytes / outcome.guestBytes }),
    };
    if (!plan.sample || outcome.sampleBytes === 0) return;
    plan.sample.forEach((candidate, i) => {
      const encoding = outcome.sampleEncodings[i]!;
      // A packet a codec does not shrink goes raw: its wire bytes are at most the pages'.
      // The size is the newest sample's: it is of the pages at hand, and memory changes from
      // region to region. The time is smoothed: it is a few ms on a shared machine.
      const old = this.encodings.get(candidate.label);
      const times = blend(old?.prior ? undefined : old, SAMPLE_SMOOTHING, { msPerByte: encoding.ms / outcome.sampleBytes, decodeMsPerByte: encoding.decodeMs / outcome.sampleBytes });
      this.encodings.set(candidate.label, { ...times, wirePerByte: Math.min(1, encoding.wireBytes / outcome.sampleBytes) });
    });
  }

  /** Estimated ms per guest byte with `choice` on a link of `linkBytesPerMs`. */
  costPerGuestByte(choice: CodecChoice, linkBytesPerMs: number): number {
    const bounds = this.bounds(choice, linkBytesPerMs);
    return bounds ? Math.max(bounds.workers, bounds.link) : Infinity;
  }

  /** Ms per guest byte `choice` needs on the workers (and the receiver's, when on this host) and on the link. */
  private bounds(choice: CodecChoice, linkBytesPerMs: number): { workers: number; link: number } | undefined {
    const encoding = this.encodings.get(choice.label);
    if (!encoding) return undefined;
    const { baseMs, normalShare, headerBytes } = this.shared;
    const coding = encoding.msPerByte + (this.decodeHere ? encoding.decodeMsPerByte : 0);
    return {
      workers: (baseMs + normalShare * coding * this.contention) / this.threads,
      link: (headerBytes + normalShare * encoding.wirePerByte) / linkBytesPerMs,
    };
  }

  stats(): AutoStats {
    return { current: this.current.label, reason: this.reason, choices: Object.fromEntries(this.counts) };
  }

  /** Why `best` won: the bound that limits it and its estimate against the others. */
  private explain(best: CodecChoice, linkBytesPerMs: number): string {
    const bounds = this.bounds(best, linkBytesPerMs)!;
    const cpuBound = bounds.workers >= bounds.link;
    const secondsPerGiB = (choice: CodecChoice) => ((this.costPerGuestByte(choice, linkBytesPerMs) * 2 ** 30) / 1000).toFixed(2);
    const others = this.candidates.filter((c) => c !== best).map((c) => `${c.label} ${secondsPerGiB(c)}`);
    return `${best.label}: ${secondsPerGiB(best)} s/GiB, ${cpuBound ? 'worker-bound' : 'link-bound'} (${Math.round(linkBytesPerMs / 1000)} MB/s link; ${others.join(', ')})`;
  }

  private count(label: string, outcome: ChoiceOutcome): void {
    let counts = this.counts.get(label);
    if (!counts) this.counts.set(label, (counts = { tasks: 0, packets: 0, 'normal-pages': 0, 'raw-pages': 0, 'guest-bytes': 0, 'wire-bytes': 0 }));
    counts.tasks++;
    counts.packets += outcome.packets;
    counts['normal-pages'] += outcome.normalPages;
    counts['raw-pages'] += outcome.rawPages;
    counts['guest-bytes'] += outcome.guestBytes;
    counts['wire-bytes'] += outcome.wireBytes;
  }
}

/** A running estimate moved towards `sample` by `weight` (taken whole when there is none yet). */
function blend<T extends object>(old: Partial<T> | undefined, weight: number, sample: T): T {
  if (!old) return sample;
  const mixed = { ...sample };
  for (const key of Object.keys(sample) as Array<keyof T>) (mixed[key] as number) = (1 - weight) * (old[key] as number) + weight * (sample[key] as number);
  return mixed;
}
