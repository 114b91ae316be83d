// Pages whose libdeflate stream has a dynamic header Intel IAA refuses, and libdeflate's own
// output for any page (what the qpl encoder starts from before its IAA fix-up).
import { cModule } from '../../src/wasm/c-module.js';
import { seededRandom } from '../../src/workload/page-content.js';

interface RawDeflateExports {
  mf_deflate_compress(inputBytes: number, level: number): number;
  mf_iaa_split_runs(inputBytes: number): number;
}

const PAGE = 4096;

/**
 * A 4 KiB page of literals from a small alphabet, byte runs and copies, each seed with its own
 * mix (alphabet, how often each, how long, how far back): varied enough that libdeflate's
 * header ends its literal/length lengths with the length its first distance codes have.
 */
export function craftedPage(seed: number): Uint8Array {
  const next = seededRandom(seed);
  const page = new Uint8Array(PAGE);
  const alphabet = 4 + ((next() * 60) | 0);
  const literalShare = 0.3 + next() * 0.6;
  const runShare = next() * 0.1;
  const longest = 4 + ((next() * 250) | 0);
  const farthest = 1 + ((next() * 4000) | 0);
  let at = 0;
  while (at < PAGE) {
    const pick = next();
    if (pick < literalShare || at < 8) {
      page[at++] = 97 + ((next() * alphabet) | 0);
    } else if (pick < literalShare + runShare) {
      const byte = page[at - 1]!;
      for (let n = 3 + ((next() * longest) | 0); n > 0 && at < PAGE; n--) page[at++] = byte;
    } else {
      const distance = 1 + ((next() * Math.min(at - 1, farthest)) | 0);
      for (let n = 3 + ((next() ** 3 * longest) | 0); n > 0 && at < PAGE; n--, at++) page[at] = page[at - distance]!;
    }
  }
  return page;
}

/** Seeds of {@link craftedPage} whose libdeflate header has a crossing run, found by search. */
export const CROSSING_SEEDS = {
  /** A 16 that begins among the literal/length lengths and ends among the distance lengths (IAA: 206). */
  straddling: [1523, 2248, 2748, 4665],
  /** A 16 that opens the distance lengths, repeating the last literal/length length (IAA: 204). */
  openingDistances: [30183, 36520],
} as const;

/** Runs one entry point of this thread's deflate module on `input`; its output. */
function run(input: Uint8Array, call: (exports: RawDeflateExports) => number): Uint8Array {
  const module = cModule<RawDeflateExports>('deflate');
  module.reserve(input.byteLength, 2 * input.byteLength + 1024);
  module.input(input.byteLength).set(input);
  return module.output(module.check(call(module.exports), 'deflate', 'encode')).slice();
}

/** libdeflate's raw DEFLATE stream of `bytes` at `level`, without the qpl encoder's IAA fix-up. */
export function libdeflateRaw(bytes: Uint8Array, level = 1): Uint8Array {
  return run(bytes, (m) => m.mf_deflate_compress(bytes.byteLength, level));
}

/**
 * The qpl encoder's IAA fix-up applied to any raw DEFLATE stream.
 * @throws CodecError `ERR_CODEC_FORMAT` when the stream is malformed or a run cannot be cut.
 */
export function splitCrossingRuns(stream: Uint8Array): Uint8Array {
  return run(stream, (m) => m.mf_iaa_split_runs(stream.byteLength));
}
