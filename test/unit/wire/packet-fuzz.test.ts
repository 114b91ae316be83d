// Corrupt streams, as a broken or hostile sender would write them, through the receiver's
// whole packet path: the main-thread reader, then the worker's decode and checksum over the
// pages it got. Whatever the bytes, the only acceptable failure is a ProtocolError or a
// CodecError (a payload that does not decode), and a corrupted byte is always caught.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { codecByWireId, getCodec } from '../../../src/codecs/registry.js';
import { CodecError, ProtocolError } from '../../../src/errors.js';
import { encodeSyncPacket, runsPageCount, type PageRun, type ParsedPacket } from '../../../src/wire/index.js';
import { makePages, seededRandom } from '../../helpers/pages.js';
import { PAGE, PAGES_PER_PACKET, buildPacket, concat, header, newPacketReader, pattern, split, verifyParsed } from './fixtures.js';

const test = suite('packet fuzzing');

function compressed(codecId: 'zstd' | 'lz4' | 'zlib', normalRuns: PageRun[], seed: number): Uint8Array {
  const pageCount = normalRuns.reduce((n, r) => n + r.count, 0);
  const encoder = getCodec(codecId).createEncoder({ pageSize: PAGE, maxPages: pageCount });
  const out = new Uint8Array(encoder.payloadBound(pageCount));
  const pages = makePages('mixed', pageCount, PAGE, seed);
  const payload = out.subarray(0, encoder.encode(pages, out));
  return buildPacket(header({ codecWireId: getCodec(codecId).info.wireId, normalRuns, sequence: seed }), payload, concat(pages));
}

/** What a receiving worker does with a parsed packet: decode its payload into scratch, then check the pages it got. */
function decodeAndVerify(packet: ParsedPacket, ordinal: number): void {
  const pages = runsPageCount(packet.header.normalRuns);
  const payload = packet.bytes.subarray(packet.payloadOffset);
  const codec = codecByWireId(packet.header.codecWireId)!;
  let decoded = payload;
  if (pages > 0 && !codec.info.payloadIsPages) {
    decoded = new Uint8Array(pages * PAGE);
    const views = Array.from({ length: pages }, (_, i) => decoded.subarray(i * PAGE, (i + 1) * PAGE));
    codec.createDecoder({ pageSize: PAGE, maxPages: PAGES_PER_PACKET }).decode(payload, views);
  } else if (payload.byteLength !== pages * PAGE) {
    throw new CodecError('ERR_CODEC_SIZE_MISMATCH', `none: ${payload.byteLength} payload bytes for ${pages} pages`);
  }
  verifyParsed(packet, decoded, 3, ordinal);
}

/** A realistic round on one channel: compressed, raw and zero-only packets, then the SYNC. */
const PACKETS = [
  compressed('zstd', [{ first: 0, count: 3 }, { first: 8, count: 1 }], 1),
  buildPacket(header({ zeroRuns: [{ first: 3, count: 5 }, { first: 9, count: 200 }], sequence: 2 })),
  compressed('lz4', [{ first: 212, count: 2 }], 3),
  buildPacket(header({ normalRuns: [{ first: 220, count: 1 }], zeroRuns: [{ first: 221, count: 3 }], sequence: 4 }), pattern(PAGE, 4)),
  compressed('zlib', [{ first: 230, count: 4 }], 5),
  encodeSyncPacket(1, 6),
];
const STREAM = concat(PACKETS);
const PACKET_STARTS = PACKETS.reduce<number[]>((starts, p, i) => [...starts, (starts[i] ?? 0) + p.byteLength], [0]).slice(0, -1);

/** Feeds `bytes` in random chunks through a reader and the checksum; returns the error, if any. */
function receive(bytes: Uint8Array, random: () => number): unknown {
  const reader = newPacketReader();
  const cuts = Array.from({ length: 1 + Math.floor(random() * 8) }, () => Math.floor(random() * bytes.byteLength));
  let ordinal = 0;
  try {
    for (const chunk of split(bytes, cuts)) {
      reader.push(chunk);
      for (let packet = reader.next(); packet; packet = reader.next()) {
        decodeAndVerify(packet, ordinal++);
        if (ordinal > bytes.byteLength / 40) throw new Error('more packets than bytes allow');
      }
    }
    reader.end();
  } catch (error) {
    return error;
  }
  return undefined;
}

type Mutation = (bytes: Uint8Array, random: () => number) => { bytes: Uint8Array; mustFail: boolean };

const int = (random: () => number, below: number) => Math.floor(random() * below);

const MUTATIONS: Record<string, Mutation> = {
  'byte flips anywhere': (bytes, random) => {
    const copy = bytes.slice();
    for (let n = 1 + int(random, 3); n > 0; n--) copy[int(random, copy.byteLength)]! ^= 1 + int(random, 255);
    return { bytes: copy, mustFail: true };
  },
  'byte flips in a header': (bytes, random) => {
    const copy = bytes.slice();
    const k = int(random, PACKETS.length);
    copy[PACKET_STARTS[k]! + int(random, Math.min(56, PACKETS[k]!.byteLength))]! ^= 1 + int(random, 255);
    return { bytes: copy, mustFail: true };
  },
  'a header field set to an extreme': (bytes, random) => {
    const copy = bytes.slice();
    const at = PACKET_STARTS[int(random, PACKET_STARTS.length)]! + 4 * int(random, 10);
    copy.set(random() < 0.5 ? [0xff, 0xff, 0xff, 0xff] : [0, 0, 0, 0], at);
    return { bytes: copy, mustFail: !copy.subarray(at, at + 4).every((b, i) => b === bytes[at + i]) };
  },
  truncation: (bytes, random) => {
    const length = int(random, bytes.byteLength);
    return { bytes: bytes.subarray(0, length), mustFail: !PACKET_STARTS.includes(length) };
  },
  'a slice removed': (bytes, random) => {
    const a = int(random, bytes.byteLength);
    const b = a + 1 + int(random, 300);
    return { bytes: concat([bytes.subarray(0, a), bytes.subarray(b)]), mustFail: false };
  },
  'a slice duplicated elsewhere': (bytes, random) => {
    const a = int(random, bytes.byteLength);
    const slice = bytes.subarray(a, a + 1 + int(random, 500));
    const at = int(random, bytes.byteLength);
    return { bytes: concat([bytes.subarray(0, at), slice, bytes.subarray(at)]), mustFail: false };
  },
  'random bytes inserted': (bytes, random) => {
    const at = int(random, bytes.byteLength);
    const junk = Uint8Array.from({ length: 1 + int(random, 64) }, () => int(random, 256));
    return { bytes: concat([bytes.subarray(0, at), junk, bytes.subarray(at)]), mustFail: false };
  },
};

test('thousands of mutated streams only ever raise ProtocolError or CodecError, and every corrupted byte is caught', () => {
  const random = seededRandom(0x5eed);
  const names = Object.keys(MUTATIONS);
  const codes = new Map<string, number>();
  for (let i = 0; i < 3500; i++) {
    const name = names[i % names.length]!;
    const { bytes, mustFail } = MUTATIONS[name]!(STREAM, random);
    const error = receive(bytes, random);
    if (error !== undefined) {
      if (error instanceof CodecError) {
        codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
        continue;
      }
      if (!(error instanceof ProtocolError)) throw new Error(`${name} #${i}: ${String(error)}`, { cause: error });
      for (const key of ['channel', 'packet', 'field', 'expected', 'got']) assert.ok(error.context[key] !== undefined, `${name} #${i}: details.${key}`);
      codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
    } else if (mustFail) {
      assert.unreachable(`${name} #${i} was accepted`);
    }
  }
  for (const code of ['ERR_PACKET_MAGIC', 'ERR_PACKET_CHECKSUM', 'ERR_PACKET_TRUNCATED', 'ERR_PACKET_COUNT', 'ERR_PACKET_PAGE_INDEX', 'ERR_PACKET_PAYLOAD_LENGTH']) {
    assert.ok(codes.has(code), `the fuzzer reached ${code} (seen: ${[...codes.keys()].join(', ')})`);
  }
});

test('the unmutated stream is accepted whole, so every failure above is the mutation', () => {
  assert.is(receive(STREAM, seededRandom(1)), undefined);
});

test('every single-byte change of a sample packet fails its checksum', () => {
  const packet = buildPacket(header({ normalRuns: [{ first: 1, count: 1 }], zeroRuns: [{ first: 2, count: 7 }] }), pattern(PAGE, 4));
  const headerBytes = 56;
  const check = () => {
    try {
      verifyParsed({ header: header({}), bytes: packet, payloadOffset: headerBytes });
    } catch (error) {
      return error instanceof ProtocolError && error.code === 'ERR_PACKET_CHECKSUM';
    }
    return false;
  };
  assert.is(check(), false, 'the unchanged packet passes');
  // Every bit pattern of every header byte; every byte of the page with one pattern, and a
  // sample of page bytes with every pattern (each is a whole page hash).
  const changes: Array<[number, number]> = [];
  for (let at = 0; at < headerBytes; at++) for (let mask = 1; mask < 256; mask++) changes.push([at, mask]);
  for (let at = headerBytes; at < packet.byteLength; at++) changes.push([at, 0x80 >> at % 8]);
  for (let at = headerBytes; at < packet.byteLength; at += 257) for (let mask = 1; mask < 256; mask++) changes.push([at, mask]);
  for (const [at, mask] of changes) {
    packet[at]! ^= mask;
    if (!check()) assert.unreachable(`byte ${at} ^ ${mask} passed the checksum`);
    packet[at]! ^= mask;
  }
});

test.run();
