// A receiver reads a plain TCP data channel straight into its staging slots (transport/
// direct-read.ts): the kernel writes each packet's bytes where the packet is assembled. What
// arrived before the switch (with the init, or still in the old socket) must be taken first,
// and the next read must land where those bytes leave the reader, wherever the sender's
// writes cut the stream: a packet header split across writes, the init and a whole round in
// one write, one byte at a time.
import { createServer, connect as tcpConnect, type Server } from 'node:net';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { imageChecksum } from '../../src/memory/checksum.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { encodeChannelInit, encodeSyncPacket } from '../../src/wire/index.js';
import { makePages } from '../helpers/pages.js';
import { BLOCK_PAGES, PAGE, dataPacket, rawSession, type RawConnect } from '../helpers/raw-sender.js';
import { sameContent } from '../helpers/migration.js';

const test = suite('direct reads of a data channel');
let pool: WorkerPool;
let server: Server;
let tcp: RawConnect;

test.before(async () => {
  pool = new WorkerPool({ threads: 2 });
  let accept: (socket: import('node:net').Socket) => void = () => {};
  server = createServer((socket) => accept(socket));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  tcp = (receiver) => {
    accept = (socket) => receiver.accept(socket);
    return tcpConnect(port, '127.0.0.1');
  };
});

test.after(async () => {
  await new Promise((resolve) => server.close(resolve));
  await pool.close();
});

const pages = makePages('mixed', 12, PAGE, 31);

/** Three packets of four pages each (pages 0-11, codec none), then the SYNC: one round as bytes. */
function round(): Uint8Array {
  const packets = [0, 1, 2].map((k) => dataPacket('none', [{ first: 4 * k, count: 4 }], pages.slice(4 * k, 4 * k + 4), { sequence: k }));
  return Buffer.concat([...packets, encodeSyncPacket(1, 3)]);
}

/** Sends the init and the round cut at `cuts` (byte offsets into init + round), pausing between writes. */
async function migrateCut(cuts: (stream: Uint8Array) => number[]): Promise<void> {
  const session = await rawSession(pool, { codec: 'none', connect: tcp });
  const channel = tcp(session.receiver);
  channel.on('error', () => {}); // a receiver that fails resets the connection: the result below says why
  const stream = Buffer.concat([encodeChannelInit({ sessionId: session.sessionId, channelId: 0 }), round()]);
  const points = [0, ...cuts(stream).filter((c) => c > 0 && c < stream.byteLength).sort((a, b) => a - b), stream.byteLength];
  for (let i = 1; i < points.length; i++) {
    channel.write(stream.subarray(points[i - 1], points[i]));
    await new Promise((resolve) => setTimeout(resolve, 2));
  }
  await session.control.send({ type: 'round-end', round: 1, packets: 3 });
  const expected = GuestMemory.create({ pageSize: PAGE, blocks: [{ name: 'pc.ram', byteLength: BLOCK_PAGES * PAGE }] });
  pages.forEach((page, i) => expected.blocks[0]!.bytes().set(page, i * PAGE));
  await session.control.send({ type: 'complete', rounds: 1, checksum: imageChecksum(expected) });
  const result = await session.receiver.result;
  assert.is(result.normalPages, 12);
  assert.ok(sameContent(expected, session.destination()!), 'the destination holds the pages sent');
  channel.destroy();
  session.control.socket.destroy();
}

test('the init and a whole round in one write', async () => {
  await migrateCut(() => []);
});

test('the init with part of the first header, then the rest', async () => {
  await migrateCut(() => [32 + 20]);
});

test('cuts inside headers, runs and payloads of every packet', async () => {
  await migrateCut((stream) => [10, 32, 33, 72, 73, 80, 5000, 20000, stream.byteLength - 41, stream.byteLength - 3]);
});

test('the first packets one byte at a time', async () => {
  await migrateCut(() => Array.from({ length: 200 }, (_, i) => 20 + i));
});

test.run();
