// What an authenticated sender can make a receiver hold: a data channel that keeps sending
// past its SYNC while the round is held is paused at its read-ahead cap (the sender only sees
// TCP backpressure, and the channel resumes once the round is released), and control frames
// sent faster than the receiver reads them fail the migration past their cap. Over TCP on
// 127.0.0.1, with the receiver in this process: its RSS is measured around each flood.
import type { Socket } from 'node:net';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec } from '../../src/codecs/registry.js';
import { ProtocolError } from '../../src/errors.js';
import { imageChecksum } from '../../src/memory/checksum.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { MAX_CONTROL_BACKLOG_BYTES } from '../../src/migration/control-channel.js';
import { BARRIER_READ_AHEAD_PACKETS } from '../../src/migration/receiver.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { encodeControl, encodeSyncPacket, packetHeaderBytes } from '../../src/wire/index.js';
import { makePages } from '../helpers/pages.js';
import { BLOCK_PAGES, PAGE, dataPacket, rawSession } from '../helpers/raw-sender.js';
import { failure, until } from '../helpers/support.js';
import { useTcpFront } from '../helpers/tcp-front.js';

const test = suite('receiver memory under a flooding sender');
const MiB = 1024 * 1024;
/** What RSS may grow by beyond the cap under test: V8, allocator and socket slack (generous). */
const RSS_ALLOWANCE = 128 * MiB;
let pool: WorkerPool;
const front = useTcpFront(test);

test.before(async () => {
  pool = new WorkerPool({ threads: 2 });
  // Workers start in the background and take tens of MiB each: have them up before any
  // RSS is measured.
  await Promise.all(Array.from({ length: 4 * pool.threads }, () => pool.inspect()));
});

test.after(async () => {
  await pool.close();
});

const rss = () => process.memoryUsage().rss;

/**
 * Writes `chunk` to `socket` over and over as fast as it drains, until `budget` bytes are
 * written, the socket closes, or no drain came for `stallMs` (the peer holds it back).
 */
async function flood(socket: Socket, chunk: (i: number) => Uint8Array, budget: number, stallMs: number) {
  const before = rss();
  let peak = before;
  let written = 0;
  let stalled = false;
  for (let i = 0; written < budget && !socket.destroyed; i++) {
    const bytes = chunk(i);
    written += bytes.byteLength;
    if (socket.write(bytes)) continue;
    peak = Math.max(peak, rss());
    let timer: NodeJS.Timeout | undefined;
    let wake!: (outcome: string) => void;
    const waited = new Promise<string>((resolve) => (wake = resolve));
    const drained = () => wake('drain');
    const closed = () => wake('close');
    socket.once('drain', drained);
    socket.once('close', closed);
    timer = setTimeout(() => wake('stall'), stallMs);
    const outcome = await waited;
    clearTimeout(timer);
    socket.off('drain', drained);
    socket.off('close', closed);
    if (outcome === 'stall') {
      stalled = true;
      break;
    }
  }
  peak = Math.max(peak, rss());
  return { written, growth: peak - before, stalled };
}

/** The session's largest packet (128 pages of 4 KiB with `codec`'s bound), as the receiver sizes its read-ahead cap. */
function largestPacket(codec: 'none' | 'zstd'): number {
  const runs = Array.from({ length: 128 }, (_, i) => ({ first: 2 * i, count: 1 }));
  return packetHeaderBytes(runs, []) + getCodec(codec).payloadBound(128, PAGE);
}

// The floods run first: memory a test frees stays resident for later ones to reuse, which
// would hide growth from RSS.
test('control frames sent faster than the receiver reads them fail the migration past their cap (ERR_CONTROL_FLOOD): RSS stays bounded', async () => {
  const session = await rawSession(pool, { connect: front().connect });
  session.openChannel(0);
  // Round 1 cannot end before channel 0's SYNC, which never comes: the receiver reads no
  // control frame while it waits, and the sender floods valid zero-page frames of round 2.
  await session.control.send({ type: 'round-end', round: 1, packets: 0 });
  const frame = encodeControl({ type: 'zero-pages', round: 2, blockIndex: 0, runs: Array.from({ length: BLOCK_PAGES / 2 }, (_, i) => ({ first: 2 * i, count: 1 })) });
  const batch = new Uint8Array(frame.byteLength * 1024);
  for (let i = 0; i < 1024; i++) batch.set(frame, i * frame.byteLength);
  const { written, growth, stalled } = await flood(session.control.socket as Socket, () => batch, 256 * MiB, 10_000);
  session.control.socket.destroy(); // the receiver has closed it, unless it took the whole flood
  const error = await failure(() => session.receiver.result, 'ERR_CONTROL_FLOOD');
  console.log(`  control flood: ${(written / MiB).toFixed(1)} MiB written before the receiver refused it, RSS +${(growth / MiB).toFixed(1)} MiB (cap ${MAX_CONTROL_BACKLOG_BYTES / MiB} MiB)`);
  assert.instance(error, ProtocolError);
  assert.is((error as ProtocolError).context.channel, 'control');
  assert.not.ok(stalled, 'the receiver held the flood back instead of refusing it');
  assert.ok(written < 256 * MiB, `${written} bytes accepted`);
  assert.ok(growth < MAX_CONTROL_BACKLOG_BYTES + RSS_ALLOWANCE, `RSS grew by ${growth} bytes`);
});

test('a channel that keeps sending past its SYNC while the round is held is paused at its read-ahead cap: RSS stays bounded', async () => {
  const session = await rawSession(pool, { connect: front().connect });
  const channel = session.openChannel(0) as Socket;
  channel.write(encodeSyncPacket(1, 0));
  // Valid-looking packets of the next round (incompressible pages, zstd as the hello says),
  // never released: the round-end of round 1 never comes.
  const packet = dataPacket('zstd', [{ first: 0, count: 128 }], makePages('random', 128, PAGE, 11), { round: 2, sequence: 1 });
  const { written, growth, stalled } = await flood(channel, () => packet, 1024 * MiB, 2000);
  const cap = BARRIER_READ_AHEAD_PACKETS * largestPacket('zstd');
  console.log(`  read-ahead flood: ${(written / MiB).toFixed(1)} MiB accepted before the receiver held it back, RSS +${(growth / MiB).toFixed(1)} MiB (cap ${(cap / MiB).toFixed(2)} MiB)`);
  assert.ok(stalled, `the receiver read all ${written} bytes`);
  assert.ok(written < 256 * MiB, `${written} bytes accepted`);
  assert.ok(growth < cap + RSS_ALLOWANCE, `RSS grew by ${growth} bytes`);
  channel.destroy();
  session.control.socket.destroy();
  await failure(() => session.receiver.result, 'ERR_CONTROL_CLOSED');
});

test('a channel paused at its read-ahead cap resumes once the round is released: the migration completes', async () => {
  // A channel left paused would hold the round for ever: the idle timeout tells that from slow.
  const session = await rawSession(pool, { codec: 'none', connect: front().connect, receive: { idleTimeoutMs: 20_000 } });
  const channel = session.openChannel(0) as Socket;
  const pages = makePages('random', 128, PAGE, 12);
  // 64 MiB of round 2, more than the cap and every socket buffer between the two ends
  // (tcp_rmem allows 32 MiB here): the receiver must pause the channel to hold it.
  const packets = 128;
  channel.write(encodeSyncPacket(1, 0));
  for (let i = 1; i <= packets; i++) channel.write(dataPacket('none', [{ first: 0, count: 128 }], pages, { round: 2, sequence: i }));
  channel.write(encodeSyncPacket(2, packets + 1));
  for (let i = 0; i < 100 && channel.writableLength > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(channel.writableLength > 0, 'the receiver read the whole round ahead of its barrier');
  await session.control.send({ type: 'round-end', round: 1, packets: 0 });
  await session.control.send({ type: 'round-end', round: 2, packets });
  const expected = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: BLOCK_PAGES * PAGE }] });
  pages.forEach((page, i) => expected.blocks[0]!.bytes().set(page, i * PAGE));
  await session.control.send({ type: 'complete', rounds: 2, checksum: imageChecksum(expected) });
  const result = await session.receiver.result;
  assert.is(result.normalPages, packets * 128, 'every packet of round 2 was applied');
  assert.is(result.duplicatePackets, 0);
});

test('a channel that breaks while paused at its read-ahead cap is noticed once the round is released: its replacement waits instead of being refused, and the migration completes', async () => {
  const session = await rawSession(pool, { codec: 'none', connect: front().connect, receive: { idleTimeoutMs: 20_000, connectionTimeoutMs: 30_000 } });
  const pages = makePages('random', 128, PAGE, 13);
  const packet = dataPacket('none', [{ first: 0, count: 128 }], pages, { round: 2, sequence: 1 });
  const first = session.openChannel(0) as Socket;
  first.write(encodeSyncPacket(1, 0));
  // 64 MiB of the next round (the same packet: a resend is applied once): the channel is paused.
  for (let i = 0; i < 128; i++) first.write(packet);
  for (let i = 0; i < 100 && first.writableLength > 0; i++) await new Promise((resolve) => setTimeout(resolve, 20));
  assert.ok(first.writableLength > 0, 'the receiver read the whole round ahead of its barrier');
  // The connection breaks; the receiver, not reading it, cannot tell yet. The sender opens its
  // replacement: the SYNC of the last round it ended, then what was not acknowledged.
  first.destroy();
  const second = session.openChannel(0) as Socket;
  second.write(encodeSyncPacket(1, 2));
  second.write(packet);
  second.write(encodeSyncPacket(2, 3));
  // A receiver that took the replacement for a duplicate would refuse it as soon as it is in.
  await until(() => session.receiver.refused.length > 0 || second.destroyed, 1000);
  const acked = new Promise((resolve) => second.once('data', resolve));
  await session.control.send({ type: 'round-end', round: 1, packets: 0 });
  // As a sender does, round 2 ends only once its packet is acknowledged: on the replacement,
  // since acks for the broken connection are lost with it.
  await acked;
  await session.control.send({ type: 'round-end', round: 2, packets: 1 });
  const expected = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: BLOCK_PAGES * PAGE }] });
  pages.forEach((page, i) => expected.blocks[0]!.bytes().set(page, i * PAGE));
  await session.control.send({ type: 'complete', rounds: 2, checksum: imageChecksum(expected) });
  const result = await session.receiver.result;
  assert.equal(session.receiver.refused.map((e) => e.code), [], 'the replacement was refused');
  assert.is(result.channelsLost, 1, 'the broken channel was noticed');
  assert.is(result.normalPages, 128, 'the packet was applied once');
});

test.run();
