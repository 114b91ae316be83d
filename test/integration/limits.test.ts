// Resource limits a hostile or broken sender meets: the receiver refuses a hello asking for too
// many channels or too large an image before it builds any destination, refuses connections
// beyond its pending limit, and gives up on a session where nothing happens.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { getCodec } from '../../src/codecs/registry.js';
import { MultifdError } from '../../src/errors.js';
import { ControlChannel } from '../../src/migration/control-channel.js';
import { MigrationReceiver, type ReceiveOptions } from '../../src/migration/receiver.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { memoryPair } from '../../src/transport/index.js';
import { rawSession } from '../helpers/raw-sender.js';
import { failure } from '../helpers/support.js';

const test = suite('receiver limits');
let pool: WorkerPool;

test.before(() => {
  pool = new WorkerPool({ threads: 1 });
});

test.after(async () => {
  await pool.close();
});

/** Sends a hello for `channels` channels and a block of `byteLength` bytes; returns the receiver's failure and whether it built a destination. */
async function helloRefused(options: Partial<ReceiveOptions>, channels: number, byteLength: number): Promise<{ error: MultifdError; created: boolean }> {
  let created = false;
  const receiver = new MigrationReceiver({
    destination: async () => {
      created = true;
      throw new Error('the destination must not be built');
    },
    pool,
    ...options,
  });
  const [local, remote] = memoryPair();
  local.on('error', () => {});
  receiver.accept(remote);
  const control = new ControlChannel(local);
  await control.send({
    type: 'hello',
    sessionId: new Uint8Array(16).fill(1),
    pageSize: 4096,
    channels,
    codecWireId: getCodec('none').info.wireId,
    level: 0,
    zeroPageDetection: 'multifd',
    pagesPerPacket: 128,
    blocks: [{ name: 'pc.ram', byteLength }],
  });
  try {
    await receiver.result;
  } catch (error) {
    assert.instance(error, MultifdError);
    return { error: error as MultifdError, created };
  }
  throw new Error('the receiver accepted the hello');
}

test('a hello asking for more channels than maxChannels is refused (ERR_LIMIT_CHANNELS)', async () => {
  const { error, created } = await helloRefused({ maxChannels: 4 }, 8, 1 << 20);
  assert.is(error.code, 'ERR_LIMIT_CHANNELS', error.message);
  assert.is(error.context.got, 8);
  assert.not.ok(created);
});

test('a hello describing an image larger than maxImageBytes is refused (ERR_LIMIT_IMAGE)', async () => {
  const { error, created } = await helloRefused({ maxImageBytes: 1 << 30 }, 2, 2 ** 40);
  assert.is(error.code, 'ERR_LIMIT_IMAGE', error.message);
  assert.not.ok(created);
});

test('connections beyond maxPendingConnections are refused at once (ERR_TOO_MANY_CONNECTIONS)', async () => {
  const session = await rawSession(pool, { receive: { maxPendingConnections: 2 } });
  const peers = Array.from({ length: 3 }, () => {
    const [mine, theirs] = memoryPair();
    mine.on('error', () => {});
    session.receiver.accept(theirs);
    return mine;
  });
  assert.equal(session.receiver.refused.map((e) => e.code), ['ERR_TOO_MANY_CONNECTIONS']);
  peers.forEach((peer) => peer.destroy());
  session.control.socket.destroy();
  await session.receiver.result.catch(() => {});
});

test('a session where nothing arrives fails with ERR_IDLE_TIMEOUT', async () => {
  const session = await rawSession(pool, { receive: { idleTimeoutMs: 300 } });
  session.openChannel(0);
  await failure(() => session.receiver.result, 'ERR_IDLE_TIMEOUT');
});

test.run();
