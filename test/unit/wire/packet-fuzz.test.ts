// Corrupt streams, as a broken or hostile sender would write them, through the receiver's
// whole packet path: the main-thread reader, then the worker's checksum. Whatever the bytes,
// the only acceptable failure is a ProtocolError, and a corrupted byte is always caught.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec } from '../../../src/codecs/registry.js';
import { ProtocolError } from '../../../src/errors.js';
import { encodeSyncPacket, verifyPacketChecksum, type PageRun } from '../../../src/wire/index.js';
import { makePages, seededRandom } from '../../helpers/pages.js';
import { PAGE, buildPacket, concat, header, newPacketReader, pattern, split } from './fixtures.js';

const test = suite('packet fuzzing');

function compressed(codecId: 'zstd' | 'lz4' | 'zlib', normalRuns: PageRun[], seed: number): Uint8Array {
  const pageCount = normalRuns.reduce((n, r) => n + r.count, 0);
  const encoder = getCodec(codecId).createEncoder({ pageSize: PAGE, maxPages: pageCount });
  const out = new Uint8Array(encoder.payloadBound(pageCount));
  const payload = out.subarray(0, encoder.encode(makePages('mixed', pageCount, PAGE, seed), out));
  return buildPacket(header({ codecWireId: getCodec(codecId).info.wireId, normalRuns, sequence: seed }), payload);
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
        verifyPacketChecksum(packet.bytes, 3, ordinal++);
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

test('thousands of mutated streams only ever raise ProtocolError, and every corrupted byte is caught', () => {
  const random = seededRandom(0x5eed);
  const names = Object.keys(MUTATIONS);
  const codes = new Map<string, number>();
  const started = Date.now();
  for (let i = 0; i < 3500; i++) {
    const name = names[i % names.length]!;
    const { bytes, mustFail } = MUTATIONS[name]!(STREAM, random);
    const error = receive(bytes, random);
    if (error !== undefined) {
      if (!(error instanceof ProtocolError)) throw new Error(`${name} #${i}: ${String(error)}`, { cause: error });
      for (const key of ['channel', 'packet', 'field', 'expected', 'got']) assert.ok(error.context[key] !== undefined, `${name} #${i}: details.${key}`);
      codes.set(error.code, (codes.get(error.code) ?? 0) + 1);
    } else if (mustFail) {
      assert.unreachable(`${name} #${i} was accepted`);
    }
  }
  assert.ok(Date.now() - started < 5000, 'no mutation makes the reader slow');
  for (const code of ['ERR_PACKET_MAGIC', 'ERR_PACKET_CHECKSUM', 'ERR_PACKET_TRUNCATED', 'ERR_PACKET_COUNT', 'ERR_PACKET_PAGE_INDEX', 'ERR_PACKET_PAYLOAD_LENGTH']) {
    assert.ok(codes.has(code), `the fuzzer reached ${code} (seen: ${[...codes.keys()].join(', ')})`);
  }
});

test('the unmutated stream is accepted whole, so every failure above is the mutation', () => {
  assert.is(receive(STREAM, seededRandom(1)), undefined);
});

test('every single-byte change of a sample packet fails its checksum', () => {
  const sample = PACKETS[3]!.subarray(0, 100);
  const packet = buildPacket(header({ normalRuns: [{ first: 1, count: 1 }], zeroRuns: [{ first: 2, count: 7 }] }), sample);
  verifyPacketChecksum(packet, 3, 0);
  for (let at = 0; at < packet.byteLength; at++) {
    const original = packet[at]!;
    for (let mask = 1; mask < 256; mask++) {
      packet[at] = original ^ mask;
      let caught: unknown;
      try {
        verifyPacketChecksum(packet, 3, 0);
      } catch (error) {
        caught = error;
      }
      if (!(caught instanceof ProtocolError) || caught.code !== 'ERR_PACKET_CHECKSUM') {
        assert.unreachable(`byte ${at} ^ ${mask} passed the checksum`);
      }
    }
    packet[at] = original;
  }
});

test.run();
