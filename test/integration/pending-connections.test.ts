// Connections a receiver holds before it has accepted them into the migration: at most
// maxPendingConnections, however many a peer opens and whatever they send before the hello.
// Idle ones and well-formed data channel inits that came before the hello count against the
// limit (and against their deadline) until they are accepted; malformed inits are refused at
// once. Over TCP on 127.0.0.1; what the receiver holds is counted on the server's side.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import type { MultifdError } from '../../src/errors.js';
import { GuestMemory } from '../../src/memory/guest-memory.js';
import { memoryDestination } from '../../src/migration/destination.js';
import { receiveFile } from '../../src/migration/receive-file.js';
import { MigrationReceiver, type ReceiveOptions } from '../../src/migration/receiver.js';
import { migrate } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { FileMuxWriter, connect, parseEndpoint } from '../../src/transport/index.js';
import { encodeChannelInit } from '../../src/wire/index.js';
import { filledMemory, sameContent } from '../helpers/migration.js';
import { failure, until, useTempDir } from '../helpers/support.js';
import { useTcpFront } from '../helpers/tcp-front.js';

const test = suite('pending connections');
const temp = useTempDir(test, 'pending');
/** Generous: long enough that no pending connection times out while a test counts them. */
const LONG_MS = 60_000;
const PEERS = 200;
const MAX_PENDING = 64;
let pool: WorkerPool;
const front = useTcpFront(test);

test.before(() => {
  pool = new WorkerPool({ threads: 2 });
});

test.after(async () => {
  await pool.close();
});

/** A receiver behind `front` whose every refusal is kept (receiver.refused keeps the latest 100). */
function receiver(options: Partial<ReceiveOptions> = {}) {
  const refusals: MultifdError[] = [];
  let memory: GuestMemory | undefined;
  const receiver = new MigrationReceiver({
    destination: memoryDestination((m) => (memory = m)),
    pool,
    connectionTimeoutMs: LONG_MS,
    onRefused: (error) => refusals.push(error),
    ...options,
  });
  receiver.result.catch(() => {});
  front().serve(receiver);
  return { receiver, refusals, destination: () => memory };
}

/** `count` connections to the receiver, each sending `first` (nothing when absent); counts those the receiver closed. */
function peers(count: number, first?: (i: number) => Uint8Array) {
  let closed = 0;
  const sockets = Array.from({ length: count }, (_, i) => {
    const socket = front().open();
    socket.on('close', () => closed++);
    if (first) socket.write(first(i));
    return socket;
  });
  return { sockets, closed: () => closed };
}

/** Codes of `refusals`, counted. */
function tally(refusals: MultifdError[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { code } of refusals) counts[code] = (counts[code] ?? 0) + 1;
  return counts;
}

/** A well-formed init of another session (nobody knows the real one before the hello). */
const strangerInit = (i: number) => encodeChannelInit({ sessionId: new Uint8Array(16).fill(0xee), channelId: i % 4 });

/** Migrates a small memory to the receiver behind `front` with a real sender. */
async function migrateThrough(destination: () => GuestMemory | undefined, received: Promise<unknown>): Promise<void> {
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 2 << 20 }], seed: 5 });
  const [stats, result] = await Promise.allSettled([
    migrate({ source: guestMemorySource(source), connect: () => connect(parseEndpoint(front().endpoint)), channels: 2, pool }),
    received,
  ]);
  assert.is(stats.status, 'fulfilled', String((stats as PromiseRejectedResult).reason));
  assert.is(result.status, 'fulfilled', String((result as PromiseRejectedResult).reason));
  assert.ok(sameContent(source, destination()!), 'the destination differs from the source');
}

test(`${PEERS} idle connections before any hello: ${MAX_PENDING} are held, the rest refused and closed at once (ERR_TOO_MANY_CONNECTIONS); once their peers leave, a migration completes`, async () => {
  const side = receiver();
  const idle = peers(PEERS);
  await until(() => side.refusals.length === PEERS - MAX_PENDING && idle.closed() === PEERS - MAX_PENDING);
  assert.equal(tally(side.refusals), { ERR_TOO_MANY_CONNECTIONS: PEERS - MAX_PENDING });
  assert.is(idle.closed(), PEERS - MAX_PENDING, 'refused connections are closed by the receiver');
  assert.is(front().held(), MAX_PENDING);
  for (const socket of idle.sockets) socket.destroy();
  await until(() => front().held() === 0);
  assert.is(front().held(), 0, 'the receiver let go of connections whose peers closed them');
  await migrateThrough(side.destination, side.receiver.result);
});

test(`${PEERS} well-formed data channel inits before any hello: ${MAX_PENDING} wait for it (still pending), the rest and any later connection are refused; the receiver closes every one when it ends`, async () => {
  const stop = new AbortController();
  const side = receiver({ signal: stop.signal });
  const early = peers(PEERS, strangerInit);
  await until(() => side.refusals.length === PEERS - MAX_PENDING && early.closed() === PEERS - MAX_PENDING);
  assert.equal(tally(side.refusals), { ERR_TOO_MANY_CONNECTIONS: PEERS - MAX_PENDING });
  assert.is(front().held(), MAX_PENDING);
  // The slots are full: a sender's own control connection is refused like any other.
  const late = peers(1);
  await until(() => late.closed() === 1);
  assert.is(late.closed(), 1);
  assert.equal(tally(side.refusals), { ERR_TOO_MANY_CONNECTIONS: PEERS - MAX_PENDING + 1 });
  stop.abort();
  await failure(() => side.receiver.result, 'ERR_CANCELLED');
  await until(() => early.closed() === PEERS);
  assert.is(early.closed(), PEERS, 'every connection was closed by the receiver');
  assert.is(front().held(), 0);
});

test(`${PEERS} data channel inits with a bad checksum before any hello are each refused at once (ERR_INIT_CHECKSUM); none is held and a migration then completes`, async () => {
  const side = receiver();
  for (let i = 0; i < PEERS; i++) {
    const init = strangerInit(i);
    init[31]! ^= 1;
    const peer = peers(1, () => init);
    // One at a time, so none is ever refused for the pending limit.
    await until(() => peer.closed() === 1);
    assert.is(peer.closed(), 1, `init ${i} was not refused at once`);
  }
  assert.equal(tally(side.refusals), { ERR_INIT_CHECKSUM: PEERS });
  assert.is(side.refusals[0]!.context.field, 'checksum');
  assert.is(front().held(), 0);
  await migrateThrough(side.destination, side.receiver.result);
});

test('data channel inits that came before the hello are checked against it: another session\'s are refused (ERR_SESSION_MISMATCH) and the migration completes', async () => {
  const side = receiver({ maxPendingConnections: 16 });
  const early = peers(8, strangerInit);
  await until(() => front().held() === 8);
  assert.is(front().held(), 8);
  await migrateThrough(side.destination, side.receiver.result);
  assert.equal(tally(side.refusals), { ERR_SESSION_MISMATCH: 8 });
  assert.is(early.closed(), 8);
});

test('a data channel init that came before the hello waits no longer than connectionTimeoutMs (ERR_CONNECTION_TIMEOUT)', async () => {
  const stop = new AbortController();
  const side = receiver({ connectionTimeoutMs: 300, signal: stop.signal });
  const early = peers(4, strangerInit);
  await until(() => early.closed() === 4);
  assert.equal(tally(side.refusals), { ERR_CONNECTION_TIMEOUT: 4 });
  assert.match(side.refusals[0]!.message, /came before the hello/);
  assert.is(front().held(), 0);
  stop.abort();
  await failure(() => side.receiver.result, 'ERR_CANCELLED');
});

test('a stream file of 100 channels is received whole: all its channels wait for the hello at once', async () => {
  const path = temp.path('hundred.mig');
  const writer = new FileMuxWriter(path);
  const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 4 << 20 }], seed: 6 });
  await migrate({ source: guestMemorySource(source), connect: async () => writer.openChannel(), awaitReceiver: false, channels: 100, pool });
  await writer.close();
  let memory: GuestMemory | undefined;
  await receiveFile(path, { destination: memoryDestination((m) => (memory = m)), pool }).result;
  assert.ok(sameContent(source, memory!));
});

test.run();
