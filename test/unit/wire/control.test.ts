import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import fc from 'fast-check';
import { ControlReader, MAX_CONTROL_BODY, encodeControl, type ControlMessage, type HelloMessage } from '../../../src/wire/index.js';
import { SESSION, concat, rawFrame, readControl, resealFrame, split, throwsProtocol } from './fixtures.js';

const HELLO: HelloMessage = {
  type: 'hello',
  sessionId: SESSION,
  pageSize: 4096,
  channels: 4,
  codecWireId: 2,
  level: -5,
  zeroPageDetection: 'multifd',
  pagesPerPacket: 128,
  blocks: [
    { name: 'pc.ram', byteLength: 2 ** 33 },
    { name: 'vga.vram', byteLength: 16 * 4096 },
    { name: 'mémoire/β', byteLength: 4096 },
  ],
};

const EVERY_MESSAGE: ControlMessage[] = [
  HELLO,
  { ...HELLO, resumeKey: new Uint8Array(32).fill(7) },
  { type: 'hello-ack', sessionId: SESSION },
  { type: 'hello-ack', sessionId: SESSION, resumeKey: new Uint8Array(32).fill(9) },
  { type: 'resume', sessionId: SESSION, attempt: 3, received: 2 ** 40, proof: new Uint8Array(32).fill(1) },
  { type: 'resume-ack', sessionId: SESSION, attempt: 0xffffffff, received: 0, proof: new Uint8Array(32).fill(2) },
  { type: 'zero-pages', round: 2, blockIndex: 1, runs: [{ first: 0, count: 3 }, { first: 5, count: 11 }] },
  { type: 'round-end', round: 7, packets: 2 ** 40 + 3 },
  { type: 'complete', rounds: 9, checksum: 0xfedcba9876543210n },
  { type: 'report', normalPages: 123456789, zeroPages: 2 ** 52, checksum: 1n, cpuMicros: 4_500_000 },
  { type: 'error', code: 'ERR_PACKET_CHECKSUM', message: 'channel 1, packet 2: checksum: expected 0x1, got 0x2 — ünïcode' },
];

const roundTrip = suite('control frames round trip');

roundTrip('every message type decodes to the message that was encoded', () => {
  for (const message of EVERY_MESSAGE) assert.equal(readControl([encodeControl(message)]), [message], message.type);
});

roundTrip('all message types back to back decode in order, whole and one byte at a time', () => {
  const stream = concat(EVERY_MESSAGE.map(encodeControl));
  assert.equal(readControl([stream]), EVERY_MESSAGE);
  assert.equal(readControl(split(stream, Array.from(stream, (_, i) => i))), EVERY_MESSAGE);
});

roundTrip('a frame is its head, its body and an XXH64 of both, byte for byte as docs/wire-format.md shows', () => {
  // The checksum was computed independently with `xxh64sum` over the first 24 bytes.
  const frame = encodeControl({ type: 'round-end', round: 1, packets: 2 });
  assert.is(Buffer.from(frame).toString('hex'), '4d464443' + '02' + '04' + '0000' + '0000000c' + '00000001' + '0000000000000002' + '345d4376d483c9a9');
});

roundTrip('the hello of docs/wire-format.md encodes to the bytes shown there', () => {
  const frame = encodeControl({ ...HELLO, channels: 2, level: 1, blocks: [{ name: 'pc.ram', byteLength: 2 ** 30 }] });
  const expected = [
    '4d464443 02 01 0000 00000031', // head: body of 49 bytes
    'a0a1a2a3a4a5a6a7a8a9aaabacadaeaf 00001000 0002 02 00000001 02 0080 0001', // session .. block count
    '0006 70632e72616d 0000000040000000', // "pc.ram", 1 GiB
    '00', // no resume key
    '288f2952913e3f5a', // XXH64 of the 61 bytes before (xxhsum -H1)
  ];
  assert.is(Buffer.from(frame).toString('hex'), expected.join('').replace(/ /g, ''));
});

const sessionId = fc.uint8Array({ minLength: 16, maxLength: 16 });
const count = fc.integer({ min: 0, max: Number.MAX_SAFE_INTEGER });
const u32 = fc.integer({ min: 0, max: 0xffffffff });
const u64 = fc.bigInt({ min: 0n, max: 2n ** 64n - 1n });
const runs = fc
  .array(fc.tuple(fc.integer({ min: 0, max: 1000 }), fc.integer({ min: 1, max: 100000 })), { minLength: 1, maxLength: 40 })
  .map((pairs) => {
    let at = 0;
    return pairs.map(([gap, n]) => {
      const run = { first: at + gap, count: n };
      at = run.first + n;
      return run;
    });
  });
const hello = fc
  .record({
    sessionId,
    pageShift: fc.integer({ min: 12, max: 16 }),
    channels: fc.integer({ min: 1, max: 255 }),
    codecWireId: fc.constantFrom(0, 1, 2, 3, 4, 8, 16),
    level: fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 }),
    zeroPageDetection: fc.constantFrom('none' as const, 'legacy' as const, 'multifd' as const),
    pagesPerPacket: fc.integer({ min: 1, max: 1024 }),
    blocks: fc.uniqueArray(fc.record({ name: fc.string({ unit: 'grapheme', minLength: 1, maxLength: 20 }), pages: fc.integer({ min: 1, max: 2 ** 32 }) }), {
      minLength: 1,
      maxLength: 12,
      selector: (b) => b.name,
    }).filter((blocks) => blocks.every((b) => Buffer.byteLength(b.name) <= 255)),
  })
  .map(({ pageShift, blocks, ...rest }): ControlMessage => ({
    type: 'hello',
    ...rest,
    pageSize: 2 ** pageShift,
    blocks: blocks.map((b) => ({ name: b.name, byteLength: b.pages * 2 ** pageShift })),
  }));
const anyMessage: fc.Arbitrary<ControlMessage> = fc.oneof(
  hello,
  sessionId.map((id): ControlMessage => ({ type: 'hello-ack', sessionId: id })),
  fc.record({ round: u32, blockIndex: u32, runs }).map((m): ControlMessage => ({ type: 'zero-pages', ...m })),
  fc.record({ round: u32, packets: count }).map((m): ControlMessage => ({ type: 'round-end', ...m })),
  fc.record({ rounds: u32, checksum: u64 }).map((m): ControlMessage => ({ type: 'complete', ...m })),
  fc.record({ normalPages: count, zeroPages: count, checksum: u64, cpuMicros: count }).map((m): ControlMessage => ({ type: 'report', ...m })),
  fc.record({ code: fc.string({ minLength: 1 }), message: fc.string({ unit: 'grapheme' }) }).map((m): ControlMessage => ({ type: 'error', ...m })),
);

roundTrip('any valid message survives encode then decode unchanged (property)', () => {
  fc.assert(
    fc.property(anyMessage, (message) => {
      assert.equal(readControl([encodeControl(message)]), [message]);
    }),
    { seed: 0x5eed, numRuns: 300 },
  );
});

roundTrip('any chunking of a stream of frames yields the same messages (property)', () => {
  // A reader checks zero-page frames against the hello it read, so a stream holds one or the other.
  const messageLists = fc
    .array(anyMessage, { minLength: 1, maxLength: 6 })
    .filter((ms) => !(ms.some((m) => m.type === 'hello') && ms.some((m) => m.type === 'zero-pages')));
  fc.assert(
    fc.property(messageLists, fc.array(fc.nat(), { maxLength: 30 }), (messages, cuts) => {
      const stream = concat(messages.map(encodeControl));
      assert.equal(readControl(split(stream, cuts.map((c) => c % (stream.byteLength + 1)))), messages);
    }),
    { seed: 0xc0ffee, numRuns: 150 },
  );
});

const refuse = suite('control frames: the encoder refuses what the reader would');

refuse('messages outside the rules throw ERR_OUT_OF_RANGE naming the field', () => {
  const cases: Array<[ControlMessage, string]> = [
    [{ ...HELLO, pageSize: 3000 }, 'message.pageSize'],
    [{ ...HELLO, channels: 0 }, 'message.channels'],
    [{ ...HELLO, codecWireId: 99 }, 'message.codecWireId'],
    [{ ...HELLO, pagesPerPacket: 1025 }, 'message.pagesPerPacket'],
    [{ ...HELLO, blocks: [] }, 'message.blocks.length'],
    [{ ...HELLO, blocks: [{ name: 'a', byteLength: 4095 }] }, 'message.blocks[0].byteLength'],
    [{ ...HELLO, blocks: [{ name: 'a', byteLength: 4096 }, { name: 'a', byteLength: 4096 }] }, 'message.blocks[1].name'],
    [{ ...HELLO, blocks: [{ name: 'x'.repeat(256), byteLength: 4096 }] }, 'message.blocks[0].name.byteLength'],
    [{ ...HELLO, sessionId: new Uint8Array(15) }, 'sessionId.byteLength'],
    [{ type: 'zero-pages', round: 1, blockIndex: 0, runs: [] }, 'message.runs.length'],
    [{ type: 'round-end', round: 2 ** 32, packets: 0 }, 'round'],
    [{ type: 'error', code: '', message: '' }, 'message.code'],
  ];
  for (const [message, field] of cases) {
    try {
      encodeControl(message);
      assert.unreachable(field);
    } catch (error) {
      assert.instance(error, RangeError, field);
      assert.is((error as RangeError & { code: string }).code, 'ERR_OUT_OF_RANGE');
      assert.match((error as Error).message, `"${field}"`);
    }
  }
});

refuse('a body over 1 MiB is refused rather than split', () => {
  const runs = Array.from({ length: MAX_CONTROL_BODY / 8 }, (_, i) => ({ first: 2 * i, count: 1 }));
  assert.throws(() => encodeControl({ type: 'zero-pages', round: 1, blockIndex: 0, runs }), /at most 1048576 bytes/);
});

const validate = suite('control frames: the reader validates every field');

const frameOf = (message: ControlMessage) => encodeControl(message);
/** A copy of `frame` with `bytes` written at `offset`, checksum recomputed so only the field is wrong. */
function patched(frame: Uint8Array, offset: number, bytes: number[], reseal = true): Uint8Array {
  const copy = frame.slice();
  copy.set(bytes, offset);
  return reseal ? resealFrame(copy) : copy;
}
const read = (frame: Uint8Array) => () => readControl([frame]);

validate('a wrong magic, version, type, reserved field or oversized length is refused from the head', () => {
  const frame = frameOf({ type: 'complete', rounds: 1, checksum: 5n });
  throwsProtocol(read(patched(frame, 0, [0x51])), 'ERR_CONTROL_MAGIC', { channel: 'control', packet: 0, field: 'magic', expected: '0x4D464443' });
  throwsProtocol(read(patched(frame, 4, [1])), 'ERR_CONTROL_VERSION', { field: 'version', expected: 2, got: 1 });
  throwsProtocol(read(patched(frame, 5, [0])), 'ERR_CONTROL_TYPE', { field: 'type', got: 0 });
  throwsProtocol(read(patched(frame, 5, [10])), 'ERR_CONTROL_TYPE', { field: 'type', got: 10 });
  throwsProtocol(read(patched(frame, 6, [0, 1])), 'ERR_CONTROL_FIELD', { field: 'reserved', got: 1 });
  throwsProtocol(read(patched(frame, 8, [0, 0x10, 0, 1])), 'ERR_CONTROL_LENGTH', { field: 'bodyLength', got: MAX_CONTROL_BODY + 1 });
});

validate('an oversized length is refused before any body byte arrives', () => {
  const reader = new ControlReader();
  reader.push(patched(frameOf({ type: 'complete', rounds: 1, checksum: 5n }), 8, [0xff, 0xff, 0xff, 0xff]).subarray(0, 12));
  throwsProtocol(() => reader.next(), 'ERR_CONTROL_LENGTH', { got: 0xffffffff });
});

validate('a checksum mismatch is refused and names both checksums', () => {
  const frame = frameOf({ type: 'round-end', round: 3, packets: 9 });
  const error = throwsProtocol(read(patched(frame, 15, [4], false)), 'ERR_CONTROL_CHECKSUM', { field: 'checksum', packet: 0 });
  assert.match(String(error.context.expected), /^0x[0-9A-F]{16}$/);
});

validate('a body shorter or longer than its fields is refused', () => {
  throwsProtocol(read(rawFrame(4, new Uint8Array(11))), 'ERR_CONTROL_LENGTH', { field: 'packets' });
  throwsProtocol(read(rawFrame(4, new Uint8Array(13))), 'ERR_CONTROL_LENGTH', { field: 'bodyLength', expected: 12, got: 13 });
  throwsProtocol(read(rawFrame(3, Uint8Array.of(0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff))), 'ERR_CONTROL_LENGTH', { field: 'runs[0].first' });
});

validate('hello fields outside their ranges are refused with ERR_CONTROL_FIELD', () => {
  const frame = frameOf({ ...HELLO, blocks: [{ name: 'ab', byteLength: 8192 }, { name: 'cd', byteLength: 4096 }] });
  const body = 12;
  const cases: Array<[number, number[], string]> = [
    [body + 16, [0, 0, 0x0c, 0], 'pageSize'], // 3072
    [body + 16, [0, 0x02, 0, 0], 'pageSize'], // 128 KiB
    [body + 20, [0, 0], 'channels'],
    [body + 20, [1, 0], 'channels'], // 256
    [body + 22, [99], 'codecWireId'],
    [body + 27, [3], 'zeroPageDetection'],
    [body + 28, [0, 0], 'pagesPerPacket'],
    [body + 28, [4, 1], 'pagesPerPacket'],
    [body + 34, [0x63, 0x64], 'blocks[1].name'], // block 0 renamed 'cd', as block 1
    [body + 36, [0, 0, 0, 0, 0, 0, 0x20, 1], 'blocks[0].byteLength'], // not a page multiple
    [body + 36, [0, 0, 0, 0, 0, 0, 0, 0], 'blocks[0].byteLength'], // zero
    [body + 36, [0, 0, 0x10, 0, 0, 0, 0x10, 0], 'blocks[0].byteLength'], // 2^32 + 1 pages
    [body + 34, [0xc3, 0x28], 'blocks[0].name'], // malformed UTF-8
  ];
  for (const [offset, bytes, field] of cases) {
    throwsProtocol(read(patched(frame, offset, bytes)), 'ERR_CONTROL_FIELD', { channel: 'control', packet: 0, field });
  }
});

validate('a hello without blocks or with an empty block name is refused', () => {
  const frame = frameOf({ ...HELLO, blocks: [{ name: 'a', byteLength: 4096 }] });
  throwsProtocol(read(rawFrame(1, concat([frame.subarray(12, 12 + 32).map((b, i) => (i >= 30 ? 0 : b)), Uint8Array.of(0)]))), 'ERR_CONTROL_FIELD', { field: 'blocks.length', got: 0 });
  const emptyName = concat([frame.subarray(12, 12 + 32), Uint8Array.of(0, 0), new Uint8Array(6), Uint8Array.of(0x10, 0), Uint8Array.of(0)]);
  throwsProtocol(read(rawFrame(1, emptyName)), 'ERR_CONTROL_FIELD', { field: 'blocks[0].name.byteLength', got: 0 });
});

validate('zero-page runs must be non-empty, ascending and, after a hello, inside its block', () => {
  const zp = (runs: Array<[number, number]>, blockIndex = 0) =>
    rawFrame(3, concat([Uint8Array.of(0, 0, 0, 1), u32be(blockIndex), u32be(runs.length), ...runs.map(([f, c]) => concat([u32be(f), u32be(c)]))]));
  throwsProtocol(read(zp([])), 'ERR_CONTROL_FIELD', { field: 'runs.length' });
  throwsProtocol(read(zp([[4, 0]])), 'ERR_CONTROL_FIELD', { field: 'runs[0].count' });
  throwsProtocol(read(zp([[10, 5], [12, 1]])), 'ERR_CONTROL_FIELD', { field: 'runs[1].first', expected: '>= 15' });
  throwsProtocol(read(zp([[0xffffffff, 2]])), 'ERR_CONTROL_FIELD', { field: 'runs[0].first + runs[0].count' });
  const hello = frameOf({ ...HELLO, blocks: [{ name: 'a', byteLength: 16 * 4096 }] });
  assert.is(readControl([hello, zp([[0, 16]])]).length, 2);
  throwsProtocol(() => readControl([hello, zp([[8, 9]])]), 'ERR_CONTROL_FIELD', { packet: 1, expected: '<= 16', got: 17 });
  throwsProtocol(() => readControl([hello, zp([[0, 1]], 1)]), 'ERR_CONTROL_FIELD', { packet: 1, field: 'blockIndex' });
});

validate('counts above 2^53 and malformed UTF-8 in an error frame are refused', () => {
  throwsProtocol(read(rawFrame(4, Uint8Array.of(0, 0, 0, 1, 0, 0x20, 0, 0, 0, 0, 0, 0))), 'ERR_CONTROL_FIELD', { field: 'packets' });
  throwsProtocol(read(rawFrame(7, Uint8Array.of(0, 1, 0x41, 0, 2, 0xff, 0xfe))), 'ERR_CONTROL_FIELD', { field: 'message', expected: 'valid UTF-8' });
});

validate('a stream that ends mid-frame is truncated, and one that ends between frames is not', () => {
  const frame = frameOf({ type: 'hello-ack', sessionId: SESSION });
  for (const cut of [1, 11, 12, 20, frame.byteLength - 1]) {
    throwsProtocol(() => readControl([frame, frame.subarray(0, cut)]), 'ERR_CONTROL_TRUNCATED', { packet: 1, field: 'frame' });
  }
  assert.is(readControl([frame, frame]).length, 2);
});

validate('after an error the reader keeps throwing the same error', () => {
  const reader = new ControlReader();
  reader.push(patched(frameOf({ type: 'hello-ack', sessionId: SESSION }), 0, [0]));
  const first = throwsProtocol(() => reader.next(), 'ERR_CONTROL_MAGIC');
  assert.is(throwsProtocol(() => reader.next(), 'ERR_CONTROL_MAGIC'), first);
  assert.is(throwsProtocol(() => reader.push(new Uint8Array(1)), 'ERR_CONTROL_MAGIC'), first);
});

function u32be(value: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, value);
  return bytes;
}

validate('a resume key must be 32 bytes, a resume attempt at least 1 and its proof 32 bytes', () => {
  const hello = frameOf({ ...HELLO, resumeKey: new Uint8Array(32) });
  // The key's length byte sits 33 bytes before the checksum.
  throwsProtocol(read(patched(hello, hello.byteLength - 8 - 33, [31])), 'ERR_CONTROL_FIELD', { field: 'resumeKey.byteLength', got: 31 });
  const resume = frameOf({ type: 'resume', sessionId: SESSION, attempt: 1, received: 0, proof: new Uint8Array(32) });
  throwsProtocol(read(patched(resume, 12 + 16, [0, 0, 0, 0])), 'ERR_CONTROL_FIELD', { field: 'attempt', got: 0 });
  assert.throws(() => encodeControl({ type: 'resume', sessionId: SESSION, attempt: 1, received: 0, proof: new Uint8Array(31) }), /proof/);
});

roundTrip.run();
refuse.run();
validate.run();
