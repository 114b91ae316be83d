// Bad input reaching a receiver: every case fails the migration with a typed error that names
// the channel, the packet, the field, what was expected and what came, and nothing reaches the
// destination or is reported complete.
import type { Duplex } from 'node:stream';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec } from '../../src/codecs/registry.js';
import { MultifdError, ProtocolError } from '../../src/errors.js';
import { ControlChannel } from '../../src/migration/control-channel.js';
import { fileDestination, memoryDestination, type Hello } from '../../src/migration/destination.js';
import { MigrationReceiver } from '../../src/migration/receiver.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { imageChecksum } from '../../src/memory/checksum.js';
import { memoryPair } from '../../src/transport/index.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { encodeChannelInit, encodeSyncPacket, writePacket } from '../../src/wire/index.js';
import { sameContent } from '../helpers/migration.js';
import { makePages } from '../helpers/pages.js';
import { failure, until } from '../helpers/support.js';
import { BLOCK_PAGES, PAGE, dataPacket, rawSession, type RawSession } from '../helpers/raw-sender.js';

const test = suite('receiver refuses bad input');
let pool: WorkerPool;

test.before(() => {
  pool = new WorkerPool({ threads: 2 });
});

test.after(async () => {
  await pool.close();
});

/** Awaits the receiver's failure and checks its code and (optionally) the named context. */
async function refused(session: RawSession, code: string, context: Record<string, unknown> = {}, untouched = true): Promise<MultifdError> {
  try {
    await session.receiver.result;
  } catch (error) {
    assert.instance(error, MultifdError);
    const e = error as MultifdError;
    assert.is(e.code, code, e.message);
    for (const [key, value] of Object.entries(context)) assert.is(e.context[key], value, `${key} in ${e.message}`);
    const memory = session.destination();
    if (memory && untouched) assert.ok(memory.blocks.every((b) => b.bytes().every((x) => x === 0)), 'the destination was written');
    return e;
  }
  assert.unreachable(`expected ${code}, the migration completed`);
  throw new Error('unreachable');
}

/** A hello for one channel and the raw sender's block, codec none. */
function hello(sessionId: Uint8Array): Hello {
  return { type: 'hello', sessionId, pageSize: PAGE, channels: 1, codecWireId: getCodec('none').info.wireId, level: 0, zeroPageDetection: 'multifd', pagesPerPacket: 128, blocks: [{ name: 'pc.ram', byteLength: BLOCK_PAGES * PAGE }] };
}

/** Checks that a protocol error names all five facts. */
function namesEverything(error: MultifdError): void {
  for (const key of ['channel', 'packet', 'field', 'expected', 'got']) assert.ok(error.context[key] !== undefined, `${key} missing from ${error.message}`);
}

const pages = makePages('text', 4, 4096, 5);
const good = () => dataPacket('zstd', [{ first: 0, count: 4 }], pages);

function patched(offset: number, bytes: number[]): Uint8Array {
  const packet = good();
  packet.set(bytes, offset);
  return packet;
}

const headerCases: Array<[string, () => Uint8Array, string, string]> = [
  ['wrong packet magic', () => patched(0, [0xde, 0xad, 0xbe, 0xef]), 'ERR_PACKET_MAGIC', 'magic'],
  ['wrong version', () => patched(4, [9]), 'ERR_PACKET_VERSION', 'version'],
  ['unknown codec', () => patched(5, [0x7f]), 'ERR_PACKET_CODEC', 'codecWireId'],
  ['page index outside the block', () => dataPacket('zstd', [{ first: BLOCK_PAGES - 2, count: 4 }], pages), 'ERR_PACKET_PAGE_INDEX', ''],
  ['more normal pages than a packet may carry', () => dataPacket('zstd', [{ first: 0, count: 129 }], []), 'ERR_PACKET_COUNT', ''],
  ['payload length over its bound', () => patched(28, [0x7f, 0xff, 0xff, 0xff]), 'ERR_PACKET_PAYLOAD_LENGTH', 'payloadLength'],
];

for (const [name, packet, code, field] of headerCases) {
  test(`a packet with ${name} fails with ${code}`, async () => {
    const session = await rawSession(pool);
    let bytes: Uint8Array;
    try {
      bytes = packet();
    } catch {
      // The encoder refuses to write this one; forge it from a good packet's bytes.
      bytes = good();
      new DataView(bytes.buffer).setUint32(44, 129);
    }
    session.openChannel(0).write(bytes);
    const error = await refused(session, code, { channel: 0, packet: 0, ...(field ? { field } : {}) });
    namesEverything(error);
  });
}

test('a packet whose checksum does not match fails with ERR_PACKET_CHECKSUM', async () => {
  const session = await rawSession(pool);
  const bytes = good();
  bytes[bytes.byteLength - 5]! ^= 0x40;
  session.openChannel(0).write(bytes);
  namesEverything(await refused(session, 'ERR_PACKET_CHECKSUM', { channel: 0, packet: 0, field: 'checksum' }));
});

test('a payload that decodes to fewer bytes than its pages fails with a CodecError naming the packet', async () => {
  const session = await rawSession(pool);
  // Four pages of header, but a payload holding only three pages (a valid checksum over it).
  const three = dataPacket('zstd', [{ first: 0, count: 3 }], pages.slice(0, 3));
  const lying = dataPacket('zstd', [{ first: 0, count: 4 }], pages);
  const payload3 = three.subarray(three.byteLength - new DataView(three.buffer).getUint32(28));
  const forged = rebuild(lying, payload3);
  session.openChannel(0).write(forged);
  namesEverything(await refused(session, 'ERR_CODEC_SIZE_MISMATCH', { channel: 0, packet: 0, field: 'payload' }));
});

/** Waits for the receiver to refuse a connection; checks the code and that nothing was written. */
async function connectionRefused(session: RawSession, code: string): Promise<MultifdError> {
  await until(() => session.receiver.refused.length > 0);
  const error = session.receiver.refused[0];
  assert.ok(error, `expected a refused connection (${code})`);
  assert.instance(error, MultifdError);
  assert.is(error!.code, code, error!.message);
  assert.ok(session.destination()!.blocks.every((b) => b.bytes().every((x) => x === 0)), 'the destination was written');
  return error!;
}

/** Sends one good packet on `channel` and completes round 1 and the migration with the right checksum. */
async function completeWithOnePacket(session: RawSession, channel: Duplex): Promise<void> {
  channel.write(good());
  channel.write(encodeSyncPacket(1, 1));
  await session.control.send({ type: 'round-end', round: 1, packets: 1 });
  const expected = GuestMemory.create({ pageSize: 4096, blocks: [{ name: 'pc.ram', byteLength: BLOCK_PAGES * 4096 }] });
  pages.forEach((page, i) => expected.blocks[0]!.bytes().set(page, i * 4096));
  await session.control.send({ type: 'complete', rounds: 1, checksum: imageChecksum(expected) });
}

test('a data channel id equal to the channel count is refused with ERR_CHANNEL_ID', async () => {
  const session = await rawSession(pool, { channels: 2 });
  session.openChannel(2);
  await connectionRefused(session, 'ERR_CHANNEL_ID');
  session.control.socket.destroy();
});

test('a second connection with a live channel id is refused with ERR_CHANNEL_DUPLICATE; the migration goes on', async () => {
  const session = await rawSession(pool);
  const channel = session.openChannel(0);
  session.openChannel(0);
  await connectionRefused(session, 'ERR_CHANNEL_DUPLICATE');
  await completeWithOnePacket(session, channel);
  const result = await session.receiver.result;
  assert.is(result.normalPages, 4);
});

test('a data channel of another session is refused with ERR_SESSION_MISMATCH', async () => {
  const session = await rawSession(pool);
  session.openChannel(0, new Uint8Array(16).fill(9));
  await connectionRefused(session, 'ERR_SESSION_MISMATCH');
  session.control.socket.destroy();
});

test('a packet cut short when its channel closes is dropped: a round-end counting it fails with ERR_ROUND_PACKETS', async () => {
  const session = await rawSession(pool);
  const bytes = good();
  session.openChannel(0).end(bytes.subarray(0, bytes.byteLength - 10));
  await session.control.send({ type: 'round-end', round: 1, packets: 1 });
  const error = await refused(session, 'ERR_ROUND_PACKETS');
  assert.match(error.message, /1 data channel\(s\) lost/);
});

test('a broken data channel replaced by a new one with the same id completes; a resent packet is applied once', async () => {
  const session = await rawSession(pool);
  const first = session.openChannel(0);
  first.write(good());
  // The receiver acknowledges the packet once applied; then the channel breaks.
  await new Promise((resolve) => first.once('data', resolve));
  first.destroy();
  // The sender did not see the ack: it resends the packet on the new channel.
  await completeWithOnePacket(session, session.openChannel(0));
  const result = await session.receiver.result;
  assert.is(result.channelsLost, 1);
  assert.is(result.duplicatePackets, 1);
  assert.is(result.normalPages, 4, 'the resent packet was applied once');
});

test('a sender that vanishes before completion fails with ERR_CONTROL_CLOSED', async () => {
  const session = await rawSession(pool);
  session.openChannel(0);
  session.control.socket.destroy();
  await refused(session, 'ERR_CONTROL_CLOSED');
});

test('a packet for a later round before the barrier fails with ERR_PACKET_ROUND', async () => {
  const session = await rawSession(pool);
  session.openChannel(0).write(dataPacket('zstd', [{ first: 0, count: 4 }], pages, { round: 2 }));
  namesEverything(await refused(session, 'ERR_PACKET_ROUND', { channel: 0, packet: 0, field: 'round' }));
});

test('a round-end whose packet count disagrees with what arrived fails with ERR_ROUND_PACKETS', async () => {
  const session = await rawSession(pool);
  const channel = session.openChannel(0);
  channel.write(good());
  channel.write(encodeSyncPacket(1, 1));
  await session.control.send({ type: 'round-end', round: 1, packets: 2 });
  await refused(session, 'ERR_ROUND_PACKETS', {}, false);
});

test('a wrong image checksum fails the migration and leaves no image file behind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'multifd-out-'));
  try {
    const out = join(dir, 'image.raw');
    const session = await rawSession(pool, { destination: fileDestination(out) });
    const channel = session.openChannel(0);
    channel.write(good());
    channel.write(encodeSyncPacket(1, 1));
    await session.control.send({ type: 'round-end', round: 1, packets: 1 });
    await session.control.send({ type: 'complete', rounds: 1, checksum: 12345n });
    await refused(session, 'ERR_CHECKSUM_MISMATCH');
    assert.not.ok(existsSync(out), 'a failed migration must not leave the final file');
    assert.equal(readdirSync(dir), [], 'the .partial file is removed');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('before the session exists, a connection with another protocol fails with ERR_CONNECTION_MAGIC', async () => {
  const receiver = new MigrationReceiver({ destination: memoryDestination(), pool, handshakeTimeoutMs: 5000 });
  const [mine, theirs] = memoryPair();
  mine.on('error', () => {});
  receiver.accept(theirs);
  mine.write(Buffer.from('QEVM\u0000\u0000\u0000\u0003'));
  try {
    await receiver.result;
    assert.unreachable('the receiver accepted a foreign protocol');
  } catch (error) {
    assert.is((error as MultifdError).code, 'ERR_CONNECTION_MAGIC');
  }
});

test('once the session exists, a stray connection is dropped and the migration completes', async () => {
  const session = await rawSession(pool);
  const [stray, strayEnd] = memoryPair();
  stray.on('error', () => {});
  session.receiver.accept(strayEnd);
  stray.write(Buffer.from('GET / HTTP/1.1\r\n\r\n'));
  await completeWithOnePacket(session, session.openChannel(0));
  const result = await session.receiver.result;
  assert.is(result.normalPages, 4);
  assert.ok(stray.destroyed || strayEnd.destroyed, 'the stray connection was closed');
});

test('a packet naming another codec than the hello (zstd after none) fails with ERR_PACKET_CODEC before any worker sees it', async () => {
  const session = await rawSession(pool, { codec: 'none' });
  const receive = pool.receive;
  let tasks = 0;
  pool.receive = (session, packets) => (tasks++, receive.call(pool, session, packets));
  try {
    // A well-formed zstd packet with a correct checksum, then all a sender says to complete
    // with it: only the session's codec is wrong.
    await completeWithOnePacket(session, session.openChannel(0));
    const error = await refused(session, 'ERR_PACKET_CODEC', { channel: 0, packet: 0, field: 'codecWireId', got: 2 });
    namesEverything(error);
    assert.instance(error, ProtocolError);
    assert.match(String(error.context.expected), /none/);
    assert.is(tasks, 0, 'a worker was handed the packet');
  } finally {
    pool.receive = receive;
  }
});

test('a migration that fails while its destination is still being built aborts that destination once it exists', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'multifd-out-'));
  try {
    const out = join(dir, 'image.raw');
    let built!: () => void;
    const gate = new Promise<void>((resolve) => (built = resolve));
    let requested = false;
    let aborted = false;
    const stop = new AbortController();
    const receiver = new MigrationReceiver({
      pool,
      signal: stop.signal,
      destination: async (hello) => {
        requested = true;
        await gate;
        const destination = await fileDestination(out)(hello);
        return { ...destination, abort: () => ((aborted = true), destination.abort()) };
      },
    });
    const [mine, theirs] = memoryPair();
    mine.on('error', () => {});
    receiver.accept(theirs);
    const control = new ControlChannel(mine);
    await control.send(hello(new Uint8Array(16).fill(3)));
    await until(() => requested);
    assert.ok(requested, 'the receiver asked for its destination');
    stop.abort();
    // The receiver tells the sender why it fails; only then does the destination come.
    const why = await control.next(5000);
    assert.equal([why.type, why.type === 'error' && why.code], ['error', 'ERR_CANCELLED']);
    built();
    await failure(() => receiver.result, 'ERR_CANCELLED');
    assert.ok(aborted, 'the late destination was aborted');
    assert.equal(readdirSync(dir), [], 'no image and no .partial file are left');
    mine.destroy();
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a data channel that arrives while the destination is still being built waits for it; the migration completes', async () => {
  let built!: () => void;
  const gate = new Promise<void>((resolve) => (built = resolve));
  let requested = false;
  let memory: GuestMemory | undefined;
  const receiver = new MigrationReceiver({
    pool,
    destination: async (hello) => {
      requested = true;
      await gate;
      return memoryDestination((m) => (memory = m))(hello);
    },
  });
  const [mine, theirs] = memoryPair();
  receiver.accept(theirs);
  const control = new ControlChannel(mine);
  const sessionId = new Uint8Array(16).fill(4);
  await control.send(hello(sessionId));
  await until(() => requested);
  const [channel, channelEnd] = memoryPair();
  receiver.accept(channelEnd);
  channel.write(encodeChannelInit({ sessionId, channelId: 0 }));
  const packet = dataPacket('none', [{ first: 0, count: 4 }], pages);
  channel.write(packet);
  channel.write(encodeSyncPacket(1, 1));
  await control.send({ type: 'round-end', round: 1, packets: 1 });
  // A few turns of the event loop: the channel's bytes reach the receiver before its destination.
  for (let turn = 0; turn < 3; turn++) await new Promise((resolve) => setImmediate(resolve));
  built();
  assert.is((await control.next(5000)).type, 'hello-ack');
  const expected = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: BLOCK_PAGES * PAGE }] });
  pages.forEach((page, i) => expected.blocks[0]!.bytes().set(page, i * PAGE));
  await control.send({ type: 'complete', rounds: 1, checksum: imageChecksum(expected) });
  const result = await receiver.result;
  assert.is(result.normalPages, 4);
  assert.ok(sameContent(expected, memory!));
});

/**
 * Replaces a packet's payload and recomputes its header (lengths, checksum) around it. The
 * checksum is sealed without page hashes: the payload must fail to decode before any check.
 */
function rebuild(packet: Uint8Array, payload: Uint8Array): Uint8Array {
  const view = new DataView(packet.buffer, packet.byteOffset);
  const headerBytes = packet.byteLength - view.getUint32(28);
  const out = new Uint8Array(headerBytes + payload.byteLength);
  out.set(packet.subarray(0, headerBytes));
  out.set(payload, headerBytes);
  const header = {
    codecWireId: packet[5]!,
    flags: 0,
    blockIndex: 0,
    round: 1,
    sequence: 0,
    normalRuns: [{ first: 0, count: 4 }],
    zeroRuns: [],
    payloadLength: payload.byteLength,
  };
  return out.slice(0, writePacket(out, header, payload.byteLength, new Uint32Array(0)));
}

test.run();
