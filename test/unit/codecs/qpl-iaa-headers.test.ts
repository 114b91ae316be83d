// The qpl encoder never writes a dynamic Huffman header that Intel IAA refuses: no code-length
// run may cross from the literal/length lengths into the distance lengths, and no 16 may open
// the distance lengths (QPL_STS_WRONG_NUM_LL_CODES_ERR / QPL_STS_FIRST_D_CODE_16_ERR, intel/qpl#21;
// QEMU's IAA receiver has no software retry). libdeflate writes such headers; the encoder cuts
// those runs (wasm/c/deflate_iaa.c). Every header is read back with our own block reader
// (test/helpers/deflate-blocks.ts): on generated pages always, and on 64 MiB each of the corpus
// and the VM image (the `bench codecs` sample) when ../shared/data has them.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { inflateRawSync } from 'node:zlib';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { dataDir, PACKET_BYTES, samplePackets, sharedDataFile } from '../../../benchmarks/data.js';
import { softwareQpl } from '../../../src/codecs/qpl.js';
import { encodePayload, pageEntries } from '../../helpers/codec-conformance.js';
import { crossingRuns, dynamicBlockStream, joinBlocks, readDeflate, type HandmadeBlock } from '../../helpers/deflate-blocks.js';
import { craftedPage, CROSSING_SEEDS, libdeflateRaw, splitCrossingRuns } from '../../helpers/iaa-pages.js';
import { makePages } from '../../helpers/pages.js';

const PAGE = 4096;
const PAGES_PER_PACKET = 128;

/** The per-page entries of qpl payloads for `pages`, packet by packet: each a DEFLATE stream or, at PAGE bytes, the raw page. */
function qplEntries(pages: readonly Uint8Array[]): Uint8Array[] {
  const encoder = softwareQpl.createEncoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET });
  const out = new Uint8Array(encoder.payloadBound(PAGES_PER_PACKET));
  const entries: Uint8Array[] = [];
  for (let first = 0; first < pages.length; first += PAGES_PER_PACKET) {
    const packet = pages.slice(first, first + PAGES_PER_PACKET);
    entries.push(...pageEntries(out.subarray(0, encoder.encode(packet, out)), packet.length).map((entry) => entry.slice()));
  }
  return entries;
}

interface Tally {
  /** Pages whose libdeflate stream (before the fix-up) has a crossing run. */
  crossedBefore: number;
  /** qpl pages with a crossing run. */
  crossedAfter: number;
  /** Pages libdeflate cannot bring under the page size, and pages qpl sends raw. */
  rawBefore: number;
  rawAfter: number;
  /** qpl pages that differ from libdeflate's stream. */
  changed: number;
}

/**
 * Encodes `pages` as qpl and compares every page with libdeflate's own stream: headers read
 * back, the stream ending exactly at the entry's end, changed pages decoded by node:zlib.
 * `fullWalk` false reads a one-block stream's header only (the shared data is large).
 */
function tally(pages: readonly Uint8Array[], fullWalk = true): Tally {
  const result: Tally = { crossedBefore: 0, crossedAfter: 0, rawBefore: 0, rawAfter: 0, changed: 0 };
  qplEntries(pages).forEach((entry, i) => {
    const page = pages[i]!;
    const raw = libdeflateRaw(page);
    if (raw.byteLength >= PAGE) result.rawBefore++;
    else if (crossingRuns(raw, fullWalk).length > 0) result.crossedBefore++;
    if (entry.byteLength === PAGE) {
      result.rawAfter++;
      return assert.equal(entry, page, `page ${i} sent raw`);
    }
    if (crossingRuns(entry, fullWalk).length > 0) result.crossedAfter++;
    if (fullWalk) assert.is(Math.ceil(readDeflate(entry).endBit / 8), entry.byteLength, `page ${i}: bytes after the stream`);
    if (Buffer.compare(entry, raw) === 0) return;
    result.changed++;
    assert.equal(new Uint8Array(inflateRawSync(entry, { windowBits: 12 })), page, `page ${i} decodes to itself`);
  });
  return result;
}

const test = suite('qpl: every dynamic header is one Intel IAA accepts');

test('libdeflate alone writes a crossing run for the known pages: a 16 across the boundary, or a 16 opening the distance lengths', () => {
  const firstCrossing = (seed: number) => {
    const raw = libdeflateRaw(craftedPage(seed));
    return { run: crossingRuns(raw)[0], litlenCount: readDeflate(raw).blocks[0]!.litlenCount };
  };
  for (const seed of CROSSING_SEEDS.straddling) {
    const { run, litlenCount } = firstCrossing(seed);
    assert.ok(run && run.symbol === 16 && run.first < litlenCount && run.first + run.count > litlenCount, `seed ${seed}: ${JSON.stringify(run)}`);
  }
  for (const seed of CROSSING_SEEDS.openingDistances) {
    const { run, litlenCount } = firstCrossing(seed);
    assert.ok(run && run.symbol === 16 && run.first === litlenCount, `seed ${seed}: ${JSON.stringify(run)}`);
  }
});

test('the qpl encoder cuts those runs: no crossing, still compressed (at most 4 bytes more), the same bytes through our decoder and node:zlib', () => {
  const pages = [...CROSSING_SEEDS.straddling, ...CROSSING_SEEDS.openingDistances].map(craftedPage);
  const entries = qplEntries(pages);
  entries.forEach((entry, i) => {
    const raw = libdeflateRaw(pages[i]!);
    assert.ok(entry.byteLength < PAGE, `page ${i} went raw`);
    assert.equal(crossingRuns(entry), [], `page ${i}`);
    assert.ok(entry.byteLength - raw.byteLength >= 0 && entry.byteLength - raw.byteLength <= 4, `page ${i}: ${raw.byteLength} -> ${entry.byteLength} bytes`);
    assert.equal(new Uint8Array(inflateRawSync(entry, { windowBits: 12 })), pages[i]);
  });
  const decoded = Array.from({ length: pages.length }, () => new Uint8Array(PAGE));
  softwareQpl.createDecoder({ pageSize: PAGE, maxPages: pages.length }).decode(encodePayload(softwareQpl, pages, PAGE), decoded);
  assert.equal(decoded, pages);
});

test('no qpl page of generated memory has a crossing run, and no page goes raw for it', () => {
  const crafted = Array.from({ length: 3000 }, (_, i) => craftedPage(i + 1));
  const pages = [...makePages('mixed', 128, PAGE, 7), ...makePages('text', 128, PAGE, 8), ...crafted];
  const result = tally(pages);
  assert.ok(result.crossedBefore >= 3, `libdeflate crossed on ${result.crossedBefore} pages`);
  assert.is(result.crossedAfter, 0);
  assert.is(result.rawAfter, result.rawBefore);
  assert.is(result.changed, result.crossedBefore);
});

test('the fix-up cuts crossing runs in every block: a crossing dynamic block, a stored block, another crossing dynamic block', () => {
  const first = craftedPage(CROSSING_SEEDS.straddling[0]);
  const stored = makePages('random', 1, 300, 3)[0]!;
  const last = craftedPage(CROSSING_SEEDS.openingDistances[0]);
  const joined = joinBlocks([{ stream: libdeflateRaw(first) }, { stored }, { stream: libdeflateRaw(last) }]);
  const expected = Buffer.concat([first, stored, last]);
  assert.equal(inflateRawSync(joined), expected);
  assert.equal(crossingRuns(joined).map((run) => run.block), [0, 2]);
  const split = splitCrossingRuns(joined);
  assert.equal(readDeflate(split).blocks.map((b) => b.type), ['dynamic', 'stored', 'dynamic']);
  assert.equal(crossingRuns(split), []);
  assert.is(Math.ceil(readDeflate(split).endBit / 8), split.byteLength);
  assert.equal(inflateRawSync(split), expected);
});

test('a stream without crossing runs comes out of the fix-up unchanged', () => {
  for (const page of [...makePages('mixed', 8, PAGE, 5), craftedPage(1)]) {
    const raw = libdeflateRaw(page);
    assert.equal(crossingRuns(raw), []);
    assert.equal(splitCrossingRuns(raw), raw);
  }
});

/**
 * A block sending "aba" whose literal/length lengths end with `trailing` zeros and whose
 * distance lengths start with `leading` zeros, both sent as one run of zeros (legal in
 * RFC 1951; no encoder here writes it). `literalZero`: the precode has a codeword for length 0.
 */
function zerosAcross(trailing: number, leading: number, literalZero: boolean): HandmadeBlock {
  const litlen = new Array<number>(258 + trailing).fill(0);
  Object.assign(litlen, { 97: 1, 98: 2, 256: 3, 257: 3 });
  const dist = [...new Array<number>(leading).fill(0), 1, 1];
  const across = trailing + leading;
  const precode = new Array<number>(19).fill(0);
  Object.assign(precode, literalZero ? { 18: 2, 3: 2, 0: 3, 1: 3, 2: 3, 17: 3 } : { 18: 2, 3: 2, 17: 2, 1: 3, 2: 3 });
  const items: HandmadeBlock['items'] = [
    ...(literalZero ? [0, { symbol: 18 as const, count: 96 }] : [{ symbol: 18 as const, count: 97 }]),
    1, 2, { symbol: 18, count: 138 }, { symbol: 18, count: 19 }, 3, 3,
    { symbol: across >= 11 ? 18 : 17, count: across },
    1, 1,
  ];
  return { litlen, dist, precode, items, data: [97, 98, 97, 256] };
}

test('a run of zeros across the boundary is cut with the 17, 18 and 0 the precode has', () => {
  for (const [trailing, leading] of [[4, 2], [8, 5]] as const) {
    const stream = dynamicBlockStream(zerosAcross(trailing, leading, true));
    assert.equal(new TextDecoder().decode(inflateRawSync(stream)), 'aba');
    assert.is(crossingRuns(stream).length, 1, `${trailing} + ${leading} zeros`);
    const split = splitCrossingRuns(stream);
    assert.equal(crossingRuns(split), []);
    assert.equal(new TextDecoder().decode(inflateRawSync(split)), 'aba');
  }
});

test('a run the precode cannot cut (two zeros left, no codeword for length 0), or a truncated stream, is refused: the encoder then sends the page raw', () => {
  const refused = (stream: Uint8Array, why: RegExp) =>
    assert.throws(() => splitCrossingRuns(stream), (error: Error & { code?: string }) => error.code === 'ERR_CODEC_FORMAT' && why.test(error.message));
  const uncuttable = dynamicBlockStream(zerosAcross(4, 2, false));
  assert.equal(new TextDecoder().decode(inflateRawSync(uncuttable)), 'aba');
  refused(uncuttable, /precode lacks/);
  const cuttable = dynamicBlockStream(zerosAcross(4, 2, true));
  for (const length of [3, 10, cuttable.byteLength - 1]) refused(cuttable.subarray(0, length), /not one complete/);
});

test.run();

const shared = suite('qpl on the shared data: the corpus and the VM image, 64 MiB each');
const missing = !existsSync(join(dataDir(), 'corpus-mix.bin.zst')) || !existsSync(join(dataDir(), 'vm-512m-t0.raw.zst'));
if (missing) console.log(`  skipped: no corpus-mix.bin.zst and vm-512m-t0.raw.zst in ${dataDir()}`);
const registerShared = missing ? shared.skip : shared;

for (const name of ['corpus-mix', 'vm-512m-t0'] as const) {
  registerShared(`${name}: no qpl page has a crossing run; the pages libdeflate crossed on are the only ones changed, and none went raw for it`, () => {
    const { sample } = samplePackets(sharedDataFile(name)!, (64 << 20) / PACKET_BYTES);
    const pages = Array.from({ length: sample.byteLength / PAGE }, (_, i) => sample.subarray(i * PAGE, (i + 1) * PAGE));
    const result = tally(pages, false);
    console.log(`  ${name}: ${result.crossedBefore} of ${pages.length - result.rawBefore} compressed pages crossed with libdeflate alone, ${result.crossedAfter} with qpl`);
    assert.is(result.crossedAfter, 0);
    assert.is(result.rawAfter, result.rawBefore);
    assert.is(result.changed, result.crossedBefore);
  });
}

shared.run();
