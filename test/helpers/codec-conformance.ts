// The one conformance suite every codec passes: round trips over every page kind and packet
// shape, and refusal of every kind of bad payload with a CodecError that leaves the
// destination untouched. Enrolling a codec is one call: `conformance(codec)`.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { CodecError } from '../../src/errors.js';
import type { Codec, PacketDecoder } from '../../src/codecs/types.js';
import { PAGE_KINDS, concatPages, makePages, seededRandom } from './pages.js';

const GUARD_BYTES = 64;
const GUARD_FILL = 0xa5;
const UNTOUCHED_FILL = 0xee;

/**
 * Destination pages laid out with guard bytes between and around them, so a decoder that
 * wrote past a page would be caught.
 */
export function guardedPages(count: number, pageSize: number) {
  const stride = pageSize + GUARD_BYTES;
  const buffer = new Uint8Array(GUARD_BYTES + count * stride).fill(GUARD_FILL);
  const pages = Array.from({ length: count }, (_, i) => {
    const page = buffer.subarray(GUARD_BYTES + i * stride, GUARD_BYTES + i * stride + pageSize);
    page.fill(UNTOUCHED_FILL);
    return page;
  });
  const guardsIntact = () => {
    for (let i = 0; i <= count; i++) {
      const start = i * stride;
      for (let b = start; b < start + GUARD_BYTES; b++) if (buffer[b] !== GUARD_FILL) return false;
    }
    return true;
  };
  const untouched = () => pages.every((p) => p.every((b) => b === UNTOUCHED_FILL));
  return { pages, guardsIntact, untouched };
}

/** Encodes `pages` with a fresh encoder and returns the payload. */
export function encodePayload(codec: Codec, pages: Uint8Array[], pageSize: number, level?: number): Uint8Array {
  const encoder = codec.createEncoder({ pageSize, maxPages: Math.max(1, pages.length), level });
  const out = new Uint8Array(encoder.payloadBound(pages.length));
  return out.slice(0, encoder.encode(pages, out));
}

/** Splits a per-page payload (qpl, uadk) into its entries: compressed pages, or raw pages of the page size. */
export function pageEntries(payload: Uint8Array, count: number): Uint8Array[] {
  const view = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  let at = 4 * count;
  return Array.from({ length: count }, (_, i) => {
    const length = view.getUint32(4 * i);
    const entry = payload.subarray(at, at + length);
    at += length;
    return entry;
  });
}

/** Builds a per-page payload (qpl, uadk) from its entries: the be32 length table, then the entries. */
export function pagePayload(entries: readonly Uint8Array[]): Uint8Array {
  const table = new Uint8Array(4 * entries.length);
  entries.forEach((e, i) => new DataView(table.buffer).setUint32(4 * i, e.byteLength));
  return concatPages([table, ...entries]);
}

/**
 * Decodes a bad payload and asserts the outcome: a CodecError (with `code` when given) and
 * untouched destination pages, or, when `mayDecode` (a codec without integrity checks may turn
 * a flipped byte into different data), a clean decode. Never a crash, never a write past a page.
 */
export function assertRefused(
  decoder: PacketDecoder,
  payload: Uint8Array,
  count: number,
  pageSize: number,
  options: { code?: string; mayDecode?: boolean } = {},
): void {
  const destination = guardedPages(count, pageSize);
  try {
    decoder.decode(payload, destination.pages);
    assert.ok(options.mayDecode, `decode accepted a bad payload of ${payload.byteLength} bytes`);
  } catch (error) {
    if (!(error instanceof CodecError)) throw error;
    if (options.code) assert.is(error.code, options.code, error.message);
    assert.ok(destination.untouched(), 'a refused payload wrote to the destination');
  }
  assert.ok(destination.guardsIntact(), 'decode wrote outside a destination page');
}

/**
 * Runs the shared conformance suite for one codec (`title` tells apart several runs of one
 * codec). With `skip`, registers every test as skipped, so the tally still counts them.
 */
export function conformance(codec: Codec, { title = `codec ${codec.info.id}: conformance`, skip = false } = {}): void {
  const { id, levels } = codec.info;
  const conformanceSuite = suite(title);
  const test = skip ? conformanceSuite.skip : conformanceSuite;

  for (const pageSize of [4096, 65536]) {
    for (const count of [1, 128]) {
      for (const kind of PAGE_KINDS) {
        test(`round-trips ${count} ${kind} page(s) of ${pageSize} bytes`, () => {
          const pages = makePages(kind, count, pageSize, count + pageSize);
          const payload = encodePayload(codec, pages, pageSize);
          assert.ok(payload.byteLength <= codec.payloadBound(count, pageSize), 'payload exceeds its bound');
          const destination = guardedPages(count, pageSize);
          codec.createDecoder({ pageSize, maxPages: count }).decode(payload, destination.pages);
          assert.equal(concatPages(destination.pages), concatPages(pages));
          assert.ok(destination.guardsIntact());
        });
      }
    }
  }

  if (levels) {
    test('round-trips at its lowest, default and highest level', () => {
      const pages = makePages('mixed', 32, 4096, 7);
      for (const level of [levels.min, levels.default, levels.max]) {
        const payload = encodePayload(codec, pages, 4096, level);
        const destination = guardedPages(32, 4096);
        codec.createDecoder({ pageSize: 4096, maxPages: 32 }).decode(payload, destination.pages);
        assert.equal(concatPages(destination.pages), concatPages(pages), `level ${level}`);
      }
    });

    test('rejects levels outside its range with a RangeError naming options.level', () => {
      for (const level of [levels.min - 1, levels.max + 1, 1.5]) {
        assert.throws(
          () => codec.createEncoder({ pageSize: 4096, maxPages: 1, level }),
          (e: Error & { code?: string }) => e instanceof RangeError && e.code === 'ERR_OUT_OF_RANGE' && e.message.includes('options.level'),
        );
      }
    });
  } else {
    test('rejects a level, having none', () => {
      assert.throws(() => codec.createEncoder({ pageSize: 4096, maxPages: 1, level: 1 }), RangeError);
    });
  }

  test('rejects page sizes that are not a power of two from 4 KiB to 64 KiB', () => {
    for (const pageSize of [0, 2048, 4095, 6144, 131072]) {
      assert.throws(() => codec.createDecoder({ pageSize, maxPages: 1 }), RangeError);
    }
  });

  test('encodes an empty packet as an empty payload and refuses bytes for one', () => {
    const encoder = codec.createEncoder({ pageSize: 4096, maxPages: 4 });
    assert.is(encoder.encode([], new Uint8Array(0)), 0);
    const decoder = codec.createDecoder({ pageSize: 4096, maxPages: 4 });
    decoder.decode(new Uint8Array(0), []);
    assert.throws(() => decoder.decode(new Uint8Array(1), []), (e: CodecError) => e.code === 'ERR_CODEC_TRAILING_DATA');
  });

  test('refuses to encode into an output that is too small', () => {
    const pages = makePages('random', 4, 4096, 3);
    const encoder = codec.createEncoder({ pageSize: 4096, maxPages: 4 });
    assert.throws(() => encoder.encode(pages, new Uint8Array(100)), (e: CodecError) => e.code === 'ERR_CODEC_OUTPUT_TOO_SMALL');
  });

  test('refuses a page list longer than maxPages or with a page of the wrong size', () => {
    const encoder = codec.createEncoder({ pageSize: 4096, maxPages: 2 });
    const out = new Uint8Array(1 << 20);
    assert.throws(() => encoder.encode(makePages('text', 3, 4096), out), RangeError);
    assert.throws(() => encoder.encode([new Uint8Array(4095)], out), RangeError);
  });

  for (const kind of ['mixed', 'text'] as const) {
    const count = 16;
    const pages = makePages(kind, count, 4096, 11);
    const decoder = () => codec.createDecoder({ pageSize: 4096, maxPages: count + 1 });

    test(`refuses every truncation of a ${kind} payload, leaving the destination untouched`, () => {
      const payload = encodePayload(codec, pages, 4096);
      const d = decoder();
      const cuts = new Set([0, 1, 2, 3, 4, 5, 10, 64, payload.byteLength >> 1, payload.byteLength - 4, payload.byteLength - 1]);
      for (const cut of cuts) {
        if (cut < 0 || cut >= payload.byteLength) continue;
        assertRefused(d, payload.subarray(0, cut), count, 4096);
      }
    });

    test(`refuses a ${kind} payload with trailing bytes`, () => {
      const payload = encodePayload(codec, pages, 4096);
      const longer = new Uint8Array(payload.byteLength + 1);
      longer.set(payload);
      assertRefused(decoder(), longer, count, 4096);
    });

    test(`refuses a ${kind} payload decoded into one page more or one page fewer`, () => {
      const payload = encodePayload(codec, pages, 4096);
      assertRefused(decoder(), payload, count + 1, 4096);
      assertRefused(decoder(), payload, count - 1, 4096);
    });
  }

  test('refuses a payload longer than its bound before decoding it', () => {
    const bound = codec.payloadBound(2, 4096);
    assertRefused(codec.createDecoder({ pageSize: 4096, maxPages: 2 }), new Uint8Array(bound + 1), 2, 4096, {
      code: 'ERR_CODEC_PAYLOAD_TOO_LARGE',
    });
  });

  test('survives 1000 seeded mutations of valid payloads: a CodecError or a clean decode, never a write past a page', () => {
    const next = seededRandom(0xc0dec);
    const count = 8;
    const payload = encodePayload(codec, makePages('mixed', count, 4096, 5), 4096);
    const d = codec.createDecoder({ pageSize: 4096, maxPages: count });
    for (let round = 0; round < 1000; round++) {
      const mutated = payload.slice();
      const flips = 1 + ((next() * 4) | 0);
      for (let f = 0; f < flips; f++) mutated[(next() * mutated.length) | 0]! ^= 1 + ((next() * 255) | 0);
      assertRefused(d, mutated, count, 4096, { mayDecode: true });
    }
  });

  test('refuses random garbage of every length up to 64 bytes, and a few long ones', () => {
    const next = seededRandom(0x9a4ba9e);
    const d = codec.createDecoder({ pageSize: 4096, maxPages: 2 });
    const lengths = [...Array.from({ length: 65 }, (_, i) => i), 1000, 4096, 8192];
    for (const length of lengths) {
      const garbage = Uint8Array.from({ length }, () => (next() * 256) | 0);
      // Random bytes of exactly two pages are a valid `none` payload.
      assertRefused(d, garbage, 2, 4096, { mayDecode: id === 'none' && length === 8192 });
    }
  });

  conformanceSuite.run();
}
