import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import type { Socket } from 'node:net';
import { MultifdError } from '../../../src/errors.js';
import { parsePskFile, type TlsCredentials } from '../../../src/transport/index.js';
import { encodeQemuPacketHeader, QEMU_COMPRESSION_FLAGS, QEMU_FLAG_DEVICE_STATE } from '../../../src/qemu/multifd-format.js';
import { mainStreamHead } from './main-stream.js';
import type { ProxyHandle, ProxyStats } from '../../../src/qemu/proxy-common.js';
import { proxyToQemu } from '../../../src/qemu/proxy-destination.js';
import { proxyFromQemu } from '../../../src/qemu/proxy-source.js';
import { collect, concat, connectTo, fakePackets, FakeDestination, Relay, initBytes, PAGE, packetBytes, parseChannel, randomish, type FakePacket } from './fake-qemu.js';

const test = suite('QEMU migration proxy');

/** A failure guard only: every test ends long before it unless something hangs. */
const GUARD_MS = 30_000;

function guard<T>(promise: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise.finally(() => clearTimeout(timer)),
    new Promise<T>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what} did not settle within ${GUARD_MS} ms`)), GUARD_MS);
    }),
  ]);
}

interface Pair {
  source: ProxyHandle;
  destination: ProxyHandle;
  qemu: FakeDestination;
  relay: Relay;
  close(): Promise<void>;
}

interface PairOptions {
  qemuChannels?: number;
  linkChannels?: number;
  codec?: 'zstd' | 'none' | 'lz4' | 'zlib';
  tls?: TlsCredentials;
  maxBandwidth?: number;
  /** Changes bytes on their way between the proxies (see Relay). */
  alter?: (bytes: Buffer, n: number, offset: number) => Buffer;
}

async function startPair(options: PairOptions = {}): Promise<Pair> {
  const qemu = new FakeDestination();
  await qemu.start();
  const destination = await proxyToQemu({ listen: 'tcp:127.0.0.1:0', toQemu: qemu.address, tls: options.tls });
  const relay = new Relay(destination.address!, options.alter);
  await relay.start();
  const source = await proxyFromQemu({
    fromQemu: 'tcp:127.0.0.1:0',
    to: relay.address,
    qemuChannels: options.qemuChannels ?? 2,
    linkChannels: options.linkChannels,
    codec: options.codec,
    tls: options.tls,
    maxBandwidth: options.maxBandwidth,
    threads: 2,
  });
  return {
    source,
    destination,
    qemu,
    relay,
    async close() {
      await source.close();
      await destination.close();
      await relay.close();
      await qemu.close();
    },
  };
}

/** The fake source QEMU's RAM: the blocks its main channel lists (fakePackets' offsets are in pc.ram's first GiB). */
const BLOCKS = [
  { name: 'pc.ram', bytes: 1 << 30 },
  { name: 'pc.bios', bytes: 256 << 10 },
];

/** The main stream a fake source QEMU writes: QEMU 7.2's head listing BLOCKS, then arbitrary bytes up to `length`. */
function mainStream(length: number): Uint8Array {
  const head = mainStreamHead(BLOCKS);
  const bytes = randomish(Math.max(length, head.byteLength), 7);
  bytes.set(head);
  return bytes;
}

function writeAll(socket: Socket, chunks: Uint8Array[]): void {
  for (const chunk of chunks) socket.write(chunk);
}

test('a migration through the pair reaches the destination QEMU as the source QEMU sent it: main bytes both ways, inits in accept order after main, every packet in order', async () => {
  await fullRun({ qemuChannels: 3, linkChannels: 2 }, 1.5);
});

test('the same over TLS (PSK) on the link, one link data connection for 3 QEMU channels, codec none, a bandwidth limit', async () => {
  const psk = parsePskFile('multifd:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n');
  await fullRun({ qemuChannels: 3, linkChannels: 1, codec: 'none', tls: { psk }, maxBandwidth: 64 * 1024 * 1024 }, 1);
});

test('a link data connection lost mid-migration costs nothing: its frames go again on the other, it is dialled again, every packet arrives once and in order', async () => {
  const { source, destination } = await fullRun({ qemuChannels: 3, linkChannels: 2, maxBandwidth: 8 << 20 }, 1.5, async (pair) => {
    await guard(waitFor(() => pair.destination.stats.packets >= 2), 'packets at the destination');
    pair.relay.cutConnection(1);
  });
  assert.ok(source.linkLosses >= 1, `the source proxy saw the loss (${source.linkLosses})`);
  assert.ok(source.resentPackets >= destination.resentPackets, 'the destination dropped only frames that were sent again');
});

test('losing every link data connection at once (the control connection stays) is mended the same way', async () => {
  const { source } = await fullRun({ qemuChannels: 2, linkChannels: 2, maxBandwidth: 8 << 20 }, 1.5, async (pair) => {
    await guard(waitFor(() => pair.destination.stats.packets >= 2), 'packets at the destination');
    pair.relay.cutConnection(1);
    pair.relay.cutConnection(2);
  });
  assert.ok(source.linkLosses >= 2, `both losses seen (${source.linkLosses})`);
});

/**
 * One migration of the given channels × 3 rounds through a pair with `options`; the link must
 * shrink QEMU's bytes by more than `minRatio`. `during` runs once the source QEMU wrote it all.
 */
async function fullRun(options: PairOptions, minRatio: number, during?: (pair: Pair) => Promise<void>): Promise<{ source: ProxyStats; destination: ProxyStats }> {
  const pair = await startPair(options);
  const qemuChannels = options.qemuChannels ?? 2;
  try {
    const main = mainStream(300_000);
    const back = randomish(50_000, 9);
    const ids = Array.from({ length: qemuChannels }, (_, c) => c);
    const packets: FakePacket[][] = ids.map((c) => fakePackets(c, 3, 4));

    const srcMain = await connectTo(pair.source.address!);
    const srcMainGot = collect(srcMain);
    writeAll(srcMain, [main.subarray(0, 2), main.subarray(2, 100_000), main.subarray(100_000)]);
    // Channels connect in another order than their ids, as QEMU's do asynchronously.
    const channels = await Promise.all([...ids].reverse().map(async (id) => ({ id, socket: await connectTo(pair.source.address!) })));
    for (const { id, socket } of channels) {
      socket.write(initBytes(id));
      for (const packet of packets[id]!) socket.write(packetBytes(packet));
      socket.end();
    }
    await during?.(pair);

    // The destination QEMU's main channel: the first accepted, carrying the source's bytes; it answers on it.
    await guard(waitFor(() => pair.qemu.accepted.length === qemuChannels + 1), 'every connection at the destination QEMU');
    const dstMain = pair.qemu.accepted[0]!;
    dstMain.end(back);
    srcMain.end();

    const [srcStats, dstStats] = await guard(Promise.all([pair.source.done, pair.destination.done]), 'both proxies');
    const received = await guard(Promise.all(pair.qemu.received), 'the destination QEMU connections');
    assert.equal(Buffer.compare(Buffer.from(received[0]!.bytes), Buffer.from(main)), 0, 'main bytes, source to destination');
    const returned = await guard(srcMainGot, 'the source main channel');
    assert.equal(Buffer.compare(Buffer.from(returned.bytes), Buffer.from(back)), 0, 'main bytes, destination to source');

    assertChannelsArrived(received.slice(1).map((r) => r.bytes), packets);

    const all = packets.flat();
    const pages = all.reduce((n, p) => n + p.header.normalPages, 0);
    const zero = all.reduce((n, p) => n + countZeroPages(p.pages), 0);
    for (const stats of [srcStats, dstStats]) {
      assert.is(stats.status, 'completed');
      assert.is(stats.packets, all.length);
      assert.is(stats.pages, pages);
      assert.is(stats.zeroPages, zero, `${stats.side}: zero pages found by the scan`);
      assert.is(stats.mainBytes, main.byteLength);
      assert.is(stats.returnBytes, back.byteLength);
      assert.ok(stats.linkChannelBytes.every((b) => b > 0), `${stats.side}: every link data connection carried packets`);
    }
    const qemuBytes = qemuChannels * 64 + all.reduce((n, p) => n + packetBytes(p).byteLength, 0);
    assert.is(srcStats.qemuMultifdBytes, qemuBytes);
    assert.is(dstStats.qemuMultifdBytes, qemuBytes);
    assert.ok(srcStats.ratio > minRatio, `${options.codec ?? 'zstd'} and zero runs shrink these pages (ratio ${srcStats.ratio})`);
    // Bytes in flight on a lost connection never arrive.
    if (srcStats.linkLosses === 0) assert.equal(srcStats.linkChannelBytes, dstStats.linkChannelBytes, 'each link data connection: bytes sent = bytes received');
    else dstStats.linkChannelBytes.forEach((bytes, k) => assert.ok(bytes <= srcStats.linkChannelBytes[k]!, `link data ${k}: received <= sent`));
    assert.ok(srcStats.wireBytes > srcStats.linkChannelBytes.reduce((a, b) => a + b, 0), 'wire bytes include the control connection');
    return { source: srcStats, destination: dstStats };
  } finally {
    await pair.close();
  }
}

/** Each destination QEMU multifd channel got its init verbatim and every packet of `packets[id]`, in order, byte for byte; every channel came. */
function assertChannelsArrived(channels: Uint8Array[], packets: FakePacket[][]): void {
  const seen = new Set<number>();
  for (const bytes of channels) {
    const { init, items } = parseChannel(bytes);
    const id = init[24]!;
    seen.add(id);
    assert.equal(Buffer.compare(Buffer.from(init), Buffer.from(initBytes(id))), 0, `channel ${id}'s init verbatim`);
    const sent = packets[id]!;
    assert.is(items.length, sent.length + 1, `channel ${id}: the init and every packet`);
    items.slice(1).forEach((item, i) => {
      assert.is(item.kind, 'packet');
      if (item.kind !== 'packet') return;
      assert.equal(item.header, sent[i]!.header, `channel ${id} packet ${i}: header fields`);
      assert.ok(Buffer.from(item.pages).equals(Buffer.from(sent[i]!.pages)), `channel ${id} packet ${i}: page bytes`);
    });
  }
  assert.equal([...seen].sort(), packets.map((_, id) => id));
}

function countZeroPages(pages: Uint8Array): number {
  let zero = 0;
  for (let at = 0; at < pages.byteLength; at += PAGE) if (pages.subarray(at, at + PAGE).every((b) => b === 0)) zero++;
  return zero;
}

async function waitFor(condition: () => boolean): Promise<void> {
  while (!condition()) await new Promise((resolve) => setTimeout(resolve, 10));
}

/**
 * Starts a migration whose channel `channelId` sends `bad` after one good packet; returns both
 * proxies' errors once every QEMU connection closed. The destination QEMU's channel must have
 * received nothing of the bad packet: at most the init and the good packet, whole.
 */
async function refusedRun(bad: Uint8Array, channelId = 0, options: PairOptions = {}) {
  const pair = await startPair({ qemuChannels: 2, ...options });
  try {
    const { mainGot: srcMainGot, channel, channelGot } = await connectSourceQemu(pair, 1000);
    const good = concat([initBytes(channelId), packetBytes(fakePackets(channelId, 1, 1)[0]!)]);
    channel.write(good);
    channel.write(bad);
    const [sourceError, destinationError] = await failures(pair);
    const received = await guard(Promise.all([srcMainGot, channelGot, ...pair.qemu.received]), 'every QEMU connection to close');
    const multifd = received.slice(3).map((r) => r.bytes); // after both source connections and the destination main channel
    assert.ok(multifd.length <= 1, 'one multifd channel at the destination QEMU at most');
    const got = multifd[0] ?? new Uint8Array(0);
    assert.ok([0, 64, good.byteLength].includes(got.byteLength), `the destination QEMU got ${got.byteLength} bytes: nothing, the init, or the init and the good packet`);
    assert.ok(Buffer.from(got).equals(Buffer.from(good.subarray(0, got.byteLength))), 'and those bytes are the good ones');
    return { sourceError, destinationError, pair };
  } finally {
    await pair.close();
  }
}

test('a malformed packet is refused with a typed error and the destination QEMU gets none of it: bad magic, pages over the limit, truncated', async () => {
  const header = () => encodeQemuPacketHeader(fakePackets(0, 1, 1)[0]!.header, PAGE);
  const badMagic = header();
  new DataView(badMagic.buffer).setUint32(0, 0x11223345);
  const tooMany = header();
  new DataView(tooMany.buffer).setUint32(16, 129); // normal_pages past pages_alloc (128)
  for (const [bad, code, field] of [
    [badMagic, 'ERR_QEMU_MAGIC', 'magic'],
    [tooMany, 'ERR_QEMU_FIELD', 'normal_pages'],
  ] as const) {
    const { sourceError, destinationError } = await refusedRun(bad);
    expectFailure(sourceError, code, ['source proxy', 'QEMU multifd channel 0', 'packet 1', field]);
    expectFailure(destinationError, 'ERR_PROXY_PEER', ['destination proxy']);
  }
});

test('a packet naming a RAM block the main channel did not list, or a page past its block\'s end, is refused and the destination QEMU gets none of it', async () => {
  const packet = fakePackets(0, 1, 1)[0]!;
  const unknown = packetBytes({ ...packet, header: { ...packet.header, ramBlock: 'pc.rom' } });
  const pastEnd = packetBytes({ ...packet, header: { ...packet.header, ramBlock: 'pc.bios', normalOffsets: packet.header.normalOffsets.map((_, i) => i * PAGE) } });
  for (const [bad, code, text] of [
    [unknown, 'ERR_QEMU_RAMBLOCK', 'pc.rom'],
    [pastEnd, 'ERR_QEMU_OFFSET', 'offset[64]'],
  ] as const) {
    const { sourceError, destinationError } = await refusedRun(bad);
    expectFailure(sourceError, code, ['source proxy', 'QEMU multifd channel 0', 'packet 1', text]);
    expectFailure(destinationError, 'ERR_PROXY_PEER', ['destination proxy']);
  }
});

test('a packet that comes before the main channel listed the RAM blocks waits for the list, then goes on', async () => {
  const pair = await startPair({ qemuChannels: 1, linkChannels: 1 });
  try {
    const main = await connectTo(pair.source.address!);
    const mainGot = collect(main);
    const channel = await connectTo(pair.source.address!);
    const channelGot = collect(channel);
    const [packet] = fakePackets(0, 1, 1) as [FakePacket];
    channel.end(concat([initBytes(0), packetBytes(packet)]));
    await guard(waitFor(() => pair.source.stats.qemuMultifdBytes === 64 + packetBytes(packet).byteLength), 'the packet at the source proxy');
    assert.is(pair.source.stats.packets, 0, 'no packet carried before the RAM block list');
    main.end(mainStream(0));
    await guard(waitFor(() => pair.qemu.accepted.length === 2), 'both connections at the destination QEMU');
    pair.qemu.accepted[0]!.end();
    const [src] = await guard(Promise.all([pair.source.done, pair.destination.done]), 'both proxies');
    assert.is(src.packets, 1);
    const received = await guard(Promise.all(pair.qemu.received), 'the destination QEMU connections');
    assert.ok(Buffer.from(received[1]!.bytes).equals(Buffer.from(concat([initBytes(0), packetBytes(packet)]))), 'the init and the packet, byte for byte');
    await guard(Promise.all([mainGot, channelGot]), 'the source QEMU connections');
  } finally {
    await pair.close();
  }
});

test('a main channel whose head the proxy cannot read (not QEMU 7.2 RAM first) fails the migration naming it', async () => {
  const pair = await startPair({ qemuChannels: 1 });
  try {
    const main = await connectTo(pair.source.address!);
    const mainGot = collect(main);
    main.write(mainStreamHead(BLOCKS, { section: { idstr: 'block', version: 1 } }));
    const [sourceError, destinationError] = await failures(pair);
    expectFailure(sourceError, 'ERR_QEMU_MAIN', ['source proxy', 'QEMU main channel']);
    expectFailure(destinationError, 'ERR_PROXY_PEER', ['destination proxy']);
    await guard(mainGot, 'the source main channel to close');
  } finally {
    await pair.close();
  }
});

test('a packet frame changed on the link is refused by its checksum at the destination proxy, and the destination QEMU gets none of it', async () => {
  // Link data connection 0 is the relay's second connection; 200 000 bytes in is inside the
  // second packet frame's pages (each frame carries 512 KiB of pages with codec none).
  const alter = (bytes: Buffer, n: number, offset: number) => {
    const at = 700_000 - offset;
    if (n !== 1 || at < 0 || at >= bytes.byteLength) return bytes;
    const changed = Buffer.from(bytes);
    changed[at]! ^= 0x10;
    return changed;
  };
  const second = packetBytes({ ...fakePackets(0, 1, 1)[0]!, header: { ...fakePackets(0, 1, 1)[0]!.header, packetNum: 2n } });
  const { sourceError, destinationError } = await refusedRun(second, 0, { qemuChannels: 2, linkChannels: 1, codec: 'none', alter });
  expectFailure(destinationError, 'ERR_PACKET_CHECKSUM', ['destination proxy', 'link data 0']);
  expectFailure(sourceError, 'ERR_PROXY_PEER', ['source proxy']);
});

/** What both proxies' `done` rejected with (undefined for one that resolved). */
function failures(pair: Pair): Promise<[unknown, unknown]> {
  const failure = (handle: ProxyHandle) => handle.done.then(() => undefined, (e: unknown) => e);
  return guard(Promise.all([failure(pair.source), failure(pair.destination)]), 'both proxies');
}

/** A fake source QEMU's main channel (QEVM and `bytes` − 4 more bytes) and one multifd channel, connected to the source proxy. */
async function connectSourceQemu(pair: Pair, mainBytes: number) {
  const main = await connectTo(pair.source.address!);
  const mainGot = collect(main);
  main.write(mainStream(mainBytes));
  const channel = await connectTo(pair.source.address!);
  return { main, mainGot, channel, channelGot: collect(channel) };
}

function expectFailure(error: unknown, code: string, includes: string[]): void {
  assert.instance(error, MultifdError);
  const e = error as MultifdError;
  assert.is(e.code, code, e.message);
  for (const text of includes) assert.ok(e.message.includes(text), `"${e.message}" names ${text}`);
}

test('a packet compressed by QEMU (zstd) is refused by name, and every connection of both proxies closes', async () => {
  const header = fakePackets(0, 1, 1)[0]!;
  const zstd = encodeQemuPacketHeader({ ...header.header, flags: 0, sync: false }, PAGE);
  new DataView(zstd.buffer).setUint32(8, QEMU_COMPRESSION_FLAGS.zstd);
  const { sourceError, destinationError } = await refusedRun(zstd);
  expectFailure(sourceError, 'ERR_QEMU_COMPRESSION', ['source proxy', 'QEMU multifd channel 0', 'zstd']);
  expectFailure(destinationError, 'ERR_PROXY_PEER', ['destination proxy', 'source proxy failed', 'zstd']);
});

test('a device-state packet is refused by name', async () => {
  const bad = encodeQemuPacketHeader(fakePackets(0, 1, 1)[0]!.header, PAGE);
  new DataView(bad.buffer).setUint32(8, QEMU_FLAG_DEVICE_STATE);
  const { sourceError, destinationError } = await refusedRun(bad.subarray(0, 12));
  expectFailure(sourceError, 'ERR_QEMU_DEVICE_STATE', ['source proxy', 'QEMU multifd channel 0', 'device state']);
  expectFailure(destinationError, 'ERR_PROXY_PEER', ['destination proxy']);
});

test('a channel id at or above --qemu-channels is refused', async () => {
  const pair = await startPair({ qemuChannels: 2 });
  try {
    const { mainGot: srcMainGot, channel, channelGot } = await connectSourceQemu(pair, 100);
    channel.write(initBytes(2));
    const [sourceError, destinationError] = await failures(pair);
    expectFailure(sourceError, 'ERR_QEMU_FIELD', ['source proxy', 'id', '< 2']);
    expectFailure(destinationError, 'ERR_PROXY_PEER', ['destination proxy']);
    await guard(Promise.all([srcMainGot, channelGot, ...pair.qemu.received]), 'every QEMU connection to close');
  } finally {
    await pair.close();
  }
});

test('when the link dies mid-stream both QEMUs see their connections close and both proxies fail naming their side and channel', async () => {
  const pair = await startPair({ qemuChannels: 2, linkChannels: 2 });
  try {
    const { mainGot: srcMainGot, channel, channelGot } = await connectSourceQemu(pair, 10_000);
    channel.write(initBytes(0));
    channel.write(packetBytes(fakePackets(0, 1, 1)[0]!));
    await guard(waitFor(() => pair.qemu.accepted.length === 2 && pair.destination.stats.packets === 1), 'the first packet at the destination');
    // Cut every link connection, as a dead network would.
    pair.relay.cut();
    const [sourceError, destinationError] = await failures(pair);
    assert.instance(sourceError, MultifdError);
    assert.ok((sourceError as Error).message.startsWith('source proxy, link'), (sourceError as Error).message);
    assert.instance(destinationError, MultifdError);
    assert.ok((destinationError as Error).message.startsWith('destination proxy, link'), (destinationError as Error).message);
    await guard(Promise.all([srcMainGot, channelGot, ...pair.qemu.received]), 'every QEMU connection to close');
  } finally {
    await pair.close();
  }
});

test('when the destination QEMU closes mid-stream the source QEMU sees its connections close and both proxies fail, the destination one naming the QEMU channel', async () => {
  const pair = await startPair({ qemuChannels: 2 });
  try {
    const { mainGot: srcMainGot, channel, channelGot } = await connectSourceQemu(pair, 10_000);
    channel.write(initBytes(1));
    const packets = fakePackets(1, 2, 3);
    channel.write(packetBytes(packets[0]!));
    await guard(waitFor(() => pair.qemu.accepted.length === 2 && pair.destination.stats.packets === 1), 'the first packet at the destination');
    // The destination QEMU fails: its multifd channel goes, while the source QEMU keeps sending.
    pair.qemu.accepted[1]!.destroy();
    for (const packet of packets.slice(1)) channel.write(packetBytes(packet));
    const [sourceError, destinationError] = await failures(pair);
    expectFailure(destinationError, 'ERR_CLOSED', ['destination proxy', 'QEMU multifd channel 1']);
    expectFailure(sourceError, 'ERR_PROXY_PEER', ['source proxy', 'QEMU multifd channel 1']);
    const [main, multifd] = await guard(Promise.all([srcMainGot, channelGot]), 'the source QEMU connections to close');
    assert.ok(main && multifd);
    await guard(Promise.all(pair.qemu.received), 'the destination QEMU connections to close');
  } finally {
    await pair.close();
  }
});

test('when the source QEMU closes a channel in the middle of a packet the destination QEMU sees its connections close and both proxies fail, naming the channel and the truncation', async () => {
  const pair = await startPair({ qemuChannels: 2 });
  try {
    const { mainGot: srcMainGot, channel, channelGot } = await connectSourceQemu(pair, 5_000);
    channel.write(initBytes(0));
    const bytes = packetBytes(fakePackets(0, 1, 1)[0]!);
    channel.end(bytes.subarray(0, 1344 + 3 * PAGE + 17));
    const [sourceError, destinationError] = await failures(pair);
    expectFailure(sourceError, 'ERR_QEMU_TRUNCATED', ['source proxy', 'QEMU multifd channel 0', 'pages']);
    expectFailure(destinationError, 'ERR_PROXY_PEER', ['destination proxy', 'QEMU multifd channel 0']);
    await guard(Promise.all([srcMainGot, channelGot, ...pair.qemu.received]), 'every QEMU connection to close');
  } finally {
    await pair.close();
  }
});

test('a destination QEMU that closes its channel once it had the last SYNC loses nothing when an empty packet follows (QEMU 7.2 may send one): both proxies complete', async () => {
  const pair = await startPair({ qemuChannels: 1, linkChannels: 1 });
  try {
    const { main, mainGot, channel, channelGot } = await connectSourceQemu(pair, 10_000);
    // A data packet, one with the SYNC riding on it, and the empty packet 7.2 may send after it.
    const [data, synced, empty] = fakePackets(0, 1, 2) as [FakePacket, FakePacket, FakePacket];
    assert.ok(synced.header.sync && empty.header.normalPages === 0 && !empty.header.sync);
    channel.write(initBytes(0));
    for (const packet of [data, synced]) channel.write(packetBytes(packet));
    await guard(waitFor(() => pair.qemu.accepted.length === 2), 'the destination QEMU channel');
    const dstChannel = pair.qemu.accepted[1]!;
    const expected = 64 + packetBytes(data).byteLength + packetBytes(synced).byteLength;
    await guard(waitFor(() => dstChannel.bytesRead === expected), 'the init and both packets at the destination QEMU');
    // Done with this channel, the destination QEMU closes it; the source QEMU then sends its empty packet and ends.
    dstChannel.destroy();
    channel.end(packetBytes(empty));
    pair.qemu.accepted[0]!.end();
    main.end();
    const [source, destination] = await guard(Promise.all([pair.source.done, pair.destination.done]), 'both proxies');
    assert.is(source.status, 'completed');
    assert.is(destination.status, 'completed');
    assert.is(source.packets, 3);
    await guard(Promise.all([mainGot, channelGot]), 'the source QEMU connections to close');
  } finally {
    await pair.close();
  }
});

test.run();
