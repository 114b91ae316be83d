import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { checksum64 } from '../../../src/wasm/kernels.js';
import { CHANNEL_INIT_BYTES, connectionKind, encodeChannelInit, encodeControl, parseChannelInit } from '../../../src/wire/index.js';
import { SESSION, throwsProtocol } from './fixtures.js';

const test = suite('data channel init');
const expected = { sessionId: SESSION, channels: 4, taken: new Set<number>() };

/** An init for `channelId` with `bytes` written at `offset` and the checksum made right again. */
function patched(channelId: number, offset: number, bytes: number[]): Uint8Array {
  const init = encodeChannelInit({ sessionId: SESSION, channelId });
  init.set(bytes, offset);
  new DataView(init.buffer).setBigUint64(24, checksum64(init.subarray(0, 24)));
  return init;
}

test('an init is 32 bytes: magic, version, reserved, channel id, session id and XXH64 of the rest', () => {
  const init = encodeChannelInit({ sessionId: SESSION, channelId: 0x0102 });
  assert.is(init.byteLength, CHANNEL_INIT_BYTES);
  assert.equal([...init.subarray(0, 8)], [0x4d, 0x46, 0x44, 0x44, 2, 0, 1, 2]);
  assert.equal(init.subarray(8, 24), SESSION);
  assert.is(new DataView(init.buffer).getBigUint64(24), checksum64(init.subarray(0, 24)));
  // The example of docs/wire-format.md; its checksum was computed independently with `xxh64sum`.
  assert.is(Buffer.from(encodeChannelInit({ sessionId: SESSION, channelId: 1 })).toString('hex'), '4d46444402000001a0a1a2a3a4a5a6a7a8a9aaabacadaeaf0028772091ea33a0');
});

test('every channel id below the channel count parses back, trailing bytes ignored', () => {
  for (let id = 0; id < 4; id++) {
    const init = encodeChannelInit({ sessionId: SESSION, channelId: id });
    assert.is(parseChannelInit(Uint8Array.of(...init, 0x4d, 0x46), expected), id);
  }
});

test('an id equal to the channel count is refused (QEMU lets it through with >)', () => {
  throwsProtocol(() => parseChannelInit(encodeChannelInit({ sessionId: SESSION, channelId: 4 }), expected), 'ERR_CHANNEL_ID', {
    channel: 4,
    field: 'channelId',
    expected: '< 4',
    got: 4,
  });
});

test('an id already connected is refused as a duplicate', () => {
  throwsProtocol(
    () => parseChannelInit(encodeChannelInit({ sessionId: SESSION, channelId: 2 }), { ...expected, taken: new Set([0, 2]) }),
    'ERR_CHANNEL_DUPLICATE',
    { channel: 2, field: 'channelId', got: 2 },
  );
});

test('an init from another session is refused and names both session ids', () => {
  const other = SESSION.map((b) => b ^ 1);
  throwsProtocol(() => parseChannelInit(encodeChannelInit({ sessionId: other, channelId: 1 }), expected), 'ERR_SESSION_MISMATCH', {
    channel: 1,
    field: 'sessionId',
    expected: Buffer.from(SESSION).toString('hex'),
    got: Buffer.from(other).toString('hex'),
  });
});

test('a wrong magic, version or reserved byte is refused even with a matching checksum', () => {
  throwsProtocol(() => parseChannelInit(patched(1, 3, [0x43]), expected), 'ERR_INIT_MAGIC', { field: 'magic', expected: '0x4D464444', got: '0x4D464443' });
  throwsProtocol(() => parseChannelInit(patched(1, 4, [1]), expected), 'ERR_INIT_VERSION', { field: 'version', expected: 2, got: 1 });
  throwsProtocol(() => parseChannelInit(patched(1, 5, [9]), expected), 'ERR_INIT_FIELD', { field: 'reserved', got: 9 });
});

test('any single flipped bit of an init fails its checksum or an earlier check', () => {
  const init = encodeChannelInit({ sessionId: SESSION, channelId: 1 });
  for (let bit = 0; bit < 8 * CHANNEL_INIT_BYTES; bit++) {
    const bad = init.slice();
    bad[bit >> 3]! ^= 1 << (bit & 7);
    const error = throwsProtocol(() => parseChannelInit(bad, expected), bit < 48 ? (bit < 32 ? 'ERR_INIT_MAGIC' : bit < 40 ? 'ERR_INIT_VERSION' : 'ERR_INIT_FIELD') : 'ERR_INIT_CHECKSUM');
    if (bit >= 192) assert.is(error.context.field, 'checksum');
  }
});

test('a connection that closes inside its init is truncated', () => {
  const init = encodeChannelInit({ sessionId: SESSION, channelId: 3 });
  throwsProtocol(() => parseChannelInit(init.subarray(0, 31), expected), 'ERR_INIT_TRUNCATED', { channel: 3, expected: '32 bytes', got: '31 bytes' });
  throwsProtocol(() => parseChannelInit(init.subarray(0, 5), expected), 'ERR_INIT_TRUNCATED', { channel: -1 });
});

test('a listener tells control from data connections by their first four bytes', () => {
  assert.is(connectionKind(encodeChannelInit({ sessionId: SESSION, channelId: 0 })), 'data');
  assert.is(connectionKind(encodeControl({ type: 'hello-ack', sessionId: SESSION })), 'control');
  assert.is(connectionKind(Uint8Array.of(0x51, 0x45, 0x56, 0x4d)), undefined);
  assert.is(connectionKind(Uint8Array.of(0x4d, 0x46, 0x44)), undefined);
});

test('the encoder refuses a session id that is not 16 bytes and an id that is not a u16', () => {
  assert.throws(() => encodeChannelInit({ sessionId: new Uint8Array(8), channelId: 0 }), /sessionId\.byteLength/);
  assert.throws(() => encodeChannelInit({ sessionId: SESSION, channelId: 65536 }), /channelId/);
});

test.run();
