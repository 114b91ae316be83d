// A small coverage-guided fuzzer in the style of libFuzzer, for JavaScript targets on Node 20.
// Jazzer.js would be the usual tool, but its native libFuzzer addon needs glibc 2.38 (Debian 12
// has 2.36) and building it fetches LLVM from GitHub, which this project's machines cannot
// reach (docs/security.md, "Fuzzing"). The coverage signal here is V8's own block coverage,
// taken through the inspector after every input: a block entered, and how often (in libFuzzer's
// power-of-two buckets), is a feature; an input that shows a feature never seen joins the corpus
// and is mutated further. Code inside the WebAssembly codecs is invisible to V8's counters, so
// the stable error code and message of every typed error (the C libraries' own error names
// reach them) count as features too.
import { Session } from 'node:inspector';
import { MultifdError } from '../../src/errors.js';

/** One thing to fuzz. */
export interface FuzzTarget {
  readonly name: string;
  /** Path fragments (`/src/wire/`) of the source files whose block coverage guides this target. */
  readonly sources: readonly string[];
  /** Longest input the mutator makes. */
  readonly maxLength: number;
  /** Values worth writing into inputs (magics, limits, sizes), big- and little-endian. */
  readonly dictionary: readonly number[];
  /**
   * Runs one input. It may throw only typed errors ({@link typedCode}); anything else it throws,
   * including a broken guard region, is a crash.
   */
  run(data: Uint8Array): void;
}

/**
 * The stable code of a typed error: a MultifdError (ProtocolError, CodecError, …), which is what
 * peer bytes may end in. Undefined for anything else — a TypeError, a plain Error, a WASM trap,
 * and a RangeError `ERR_OUT_OF_RANGE` too: that is how the library reports a caller's mistake or
 * a broken internal invariant, never bad input from a peer.
 */
export function typedCode(error: unknown): string | undefined {
  if (error instanceof MultifdError && /^ERR_[A-Z0-9_]+$/.test(error.code)) return error.code;
  return undefined;
}

/** What a target did with one input: nothing to report, a typed refusal, or a crash. */
export type Outcome = { code?: string; message?: string } | { crash: unknown };

/** Runs one input and sorts its outcome. */
export function runInput(target: FuzzTarget, data: Uint8Array): Outcome {
  try {
    target.run(data);
    return {};
  } catch (error) {
    const code = typedCode(error);
    if (code === undefined) return { crash: error };
    return { code, message: (error as Error).message };
  }
}

interface ScriptCoverage {
  url: string;
  functions: Array<{ ranges: Array<{ startOffset: number; endOffset: number; count: number }> }>;
}

/** V8 block coverage of the files a target names, read and reset after every input. */
class BlockCoverage {
  private readonly session = new Session();
  /** Every block of the watched files V8 has reported, entered or not. */
  readonly known = new Set<string>();
  /** Blocks entered at least once. */
  readonly covered = new Set<string>();

  constructor(private readonly sources: readonly string[]) {
    this.session.connect();
    this.post('Profiler.enable');
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  /** Features of the code run since the last call: block and count bucket. */
  take(): string[] {
    const result = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    const features: string[] = [];
    for (const script of result.result) {
      if (!this.sources.some((s) => script.url.includes(s))) continue;
      for (const fn of script.functions) {
        for (const { startOffset, endOffset, count } of fn.ranges) {
          const block = `${script.url}:${startOffset}-${endOffset}`;
          this.known.add(block);
          if (count === 0) continue;
          this.covered.add(block);
          features.push(`${block}#${bucket(count)}`);
        }
      }
    }
    return features;
  }

  close(): void {
    this.session.disconnect();
  }

  /** The inspector answers a same-thread session synchronously. */
  private post(method: string, params?: object): unknown {
    let answer: unknown;
    let failure: Error | null = null;
    this.session.post(method, params, (error, result) => {
      failure = error;
      answer = result;
    });
    if (failure) throw failure;
    return answer;
  }
}

/** libFuzzer's hit-count buckets: 1, 2, 3, 4–7, 8–15, 16–31, 32–127, 128+. */
function bucket(count: number): number {
  if (count < 4) return count;
  if (count < 8) return 4;
  if (count < 16) return 5;
  if (count < 32) return 6;
  return count < 128 ? 7 : 8;
}

/** Fuzzing options. */
export interface FuzzOptions {
  /** Stop after this long. */
  seconds: number;
  /** Seed of the mutation choices (a run reproduces only if the target is deterministic). */
  seed: number;
  /** Inputs to start from: the seed corpus. */
  corpus: readonly Uint8Array[];
  /** Called with every input that added coverage (to keep it). */
  onNewInput?(data: Uint8Array): void;
  /** Called before every input (a watchdog records it, to report a hang). */
  beforeRun?(data: Uint8Array): void;
  /** Called about once a second with the running figures. */
  onProgress?(stats: FuzzStats): void;
}

/** A fuzzing run's figures. */
export interface FuzzStats {
  target: string;
  seconds: number;
  executions: number;
  /** Distinct features (block × hit-count bucket, typed error kinds) seen. */
  features: number;
  /** Blocks of the watched source files entered, of those V8 reported. */
  blocksCovered: number;
  blocksKnown: number;
  corpus: number;
  /** Typed errors by code: what the inputs were refused with. */
  refusals: Record<string, number>;
  /** The first crash (the run stops there), with the input that caused it. */
  crash?: { error: string; input: Uint8Array };
}

/** Replays the seeds, then mutates corpus entries until time runs out or an input crashes. */
export function fuzz(target: FuzzTarget, options: FuzzOptions): FuzzStats {
  const coverage = new BlockCoverage(target.sources);
  const random = xorshift(options.seed);
  const seen = new Set<string>();
  const corpus: Uint8Array[] = [];
  const started = performance.now();
  const stats: FuzzStats = { target: target.name, seconds: 0, executions: 0, features: 0, blocksCovered: 0, blocksKnown: 0, corpus: 0, refusals: {} };
  const update = () => {
    stats.seconds = Math.round((performance.now() - started) / 100) / 10;
    stats.features = seen.size;
    stats.blocksCovered = coverage.covered.size;
    stats.blocksKnown = coverage.known.size;
    stats.corpus = corpus.length;
  };
  /** Runs one input; keeps it if it showed a new feature; false once it crashed. */
  const execute = (data: Uint8Array, isSeed: boolean): boolean => {
    options.beforeRun?.(data);
    coverage.take(); // drop what ran between inputs
    const outcome = runInput(target, data);
    stats.executions++;
    if ('crash' in outcome) {
      const error = outcome.crash;
      stats.crash = { error: error instanceof Error ? (error.stack ?? error.message) : String(error), input: data };
      return false;
    }
    const features = coverage.take();
    if (outcome.code) {
      stats.refusals[outcome.code] = (stats.refusals[outcome.code] ?? 0) + 1;
      // A codec's message carries the C library's own error name: a path in WASM code. Numbers
      // and hex values (sizes, CRCs, header bytes) are not.
      const detail = outcome.code.startsWith('ERR_CODEC_') ? outcome.message!.replace(/\b(0x)?[0-9a-f]+\b/gi, 'N') : '';
      features.push(`error:${outcome.code}:${detail}`);
    }
    let fresh = false;
    for (const feature of features) {
      if (seen.has(feature)) continue;
      seen.add(feature);
      fresh = true;
    }
    if (fresh || isSeed) {
      corpus.push(data);
      if (!isSeed) options.onNewInput?.(data);
    }
    return true;
  };

  let lastProgress = started;
  try {
    for (const seed of options.corpus.length ? options.corpus : [new Uint8Array(0)]) {
      if (!execute(seed, true)) return stats;
    }
    const deadline = started + options.seconds * 1000;
    for (;;) {
      const now = performance.now();
      if (now >= deadline) break;
      if (now - lastProgress >= 1000) {
        lastProgress = now;
        update();
        options.onProgress?.(stats);
      }
      const parent = corpus[Math.floor(random() * corpus.length)]!;
      if (!execute(mutate(parent, corpus, target, random), false)) break;
    }
    return stats;
  } finally {
    update();
    coverage.close();
  }
}

type Random = () => number;

/** xorshift32: a fast seeded generator for mutation choices. */
function xorshift(seed: number): Random {
  let state = seed >>> 0 || 0x9e3779b9;
  return () => {
    state ^= state << 13;
    state ^= state >>> 17;
    state ^= state << 5;
    return (state >>> 0) / 4294967296;
  };
}

const INTERESTING = [0, 1, 2, 7, 8, 16, 32, 64, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

/** One to five stacked mutations of `input`, libFuzzer's repertoire plus field-sized arithmetic. */
function mutate(input: Uint8Array, corpus: readonly Uint8Array[], target: FuzzTarget, random: Random): Uint8Array {
  const below = (n: number) => Math.floor(random() * n);
  let data: Uint8Array = input.slice();
  for (let depth = 1 + below(5); depth > 0; depth--) {
    const at = below(data.byteLength + 1);
    switch (below(10)) {
      case 0: // flip a bit
        if (data.byteLength) data[at % data.byteLength]! ^= 1 << below(8);
        break;
      case 1: // set a random byte
        if (data.byteLength) data[at % data.byteLength] = below(256);
        break;
      case 2: // insert random bytes
        data = splice(data, at, 0, Uint8Array.from({ length: 1 + below(16) }, () => below(256)));
        break;
      case 3: // erase bytes
        data = splice(data, at, 1 + below(Math.max(1, data.byteLength >> 3)), new Uint8Array(0));
        break;
      case 4: { // copy a chunk of the input elsewhere in it
        const from = below(data.byteLength + 1);
        data = splice(data, at, 0, data.slice(from, from + 1 + below(64)));
        break;
      }
      case 5: { // crossover: splice in a piece of another corpus entry
        const other = corpus[below(corpus.length)]!;
        const from = below(other.byteLength + 1);
        data = splice(data, at, below(32), other.slice(from, from + 1 + below(256)));
        break;
      }
      case 6: // an interesting or dictionary value over a 1-, 2- or 4-byte field
      case 7: {
        const pool = random() < 0.5 ? INTERESTING : target.dictionary.length ? target.dictionary : INTERESTING;
        writeField(data, at, pool[below(pool.length)]!, [1, 2, 4][below(3)]!, random() < 0.8);
        break;
      }
      case 8: { // add or subtract a little from a 1-, 2- or 4-byte field (lengths, counts, indices)
        const width = [1, 2, 4][below(3)]!;
        const value = readField(data, at, width, true);
        if (value !== undefined) writeField(data, at, value + (below(33) - 16 || 1), width, true);
        break;
      }
      default: // truncate
        data = data.slice(0, below(data.byteLength + 1));
    }
    if (data.byteLength > target.maxLength) data = data.slice(0, target.maxLength);
  }
  return data;
}

function splice(data: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  const out = new Uint8Array(data.byteLength - Math.min(remove, data.byteLength - at) + insert.byteLength);
  out.set(data.subarray(0, at));
  out.set(insert, at);
  out.set(data.subarray(at + remove), at + insert.byteLength);
  return out;
}

function readField(data: Uint8Array, at: number, width: number, bigEndian: boolean): number | undefined {
  if (at + width > data.byteLength) return undefined;
  let value = 0;
  for (let i = 0; i < width; i++) value = value * 256 + data[at + (bigEndian ? i : width - 1 - i)]!;
  return value;
}

function writeField(data: Uint8Array, at: number, value: number, width: number, bigEndian: boolean): void {
  if (at + width > data.byteLength) return;
  let v = ((value % 2 ** (8 * width)) + 2 ** (8 * width)) % 2 ** (8 * width);
  for (let i = width - 1; i >= 0; i--) {
    data[at + (bigEndian ? i : width - 1 - i)] = v & 0xff;
    v = Math.floor(v / 256);
  }
}
