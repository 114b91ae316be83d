// Sending into a migration stream file (awaitReceiver false): nobody confirms the image, so
// 'completed' must mean every record has been handed to the file, not that it is still queued
// in a channel; and a channel whose last writes fail fails the migration.
import { Duplex } from 'node:stream';
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { migrate } from '../../src/migration/sender.js';
import { guestMemorySource } from '../../src/migration/source.js';
import { WorkerPool } from '../../src/pool/pool.js';
import { FileMuxWriter } from '../../src/transport/index.js';
import { filledMemory } from '../helpers/migration.js';
import { failure, useTempDir } from '../helpers/support.js';

const test = suite('sending to a stream file');
const temp = useTempDir(test, 'stream-send');
let pool: WorkerPool;

test.before(() => {
  pool = new WorkerPool({ threads: 2 });
});

test.after(async () => {
  await pool.close();
});

/**
 * A channel as a file gives it, but slower: each write's callback comes a while after the
 * write (a disk that lags), and `failFinal` makes its last flush fail.
 */
class LaggingChannel extends Duplex {
  handed = 0;
  accepted = 0;

  constructor(private readonly failFinal = false) {
    super({ allowHalfOpen: true });
    this.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.handed += chunk.byteLength;
    setTimeout(() => {
      this.accepted += chunk.byteLength;
      callback();
    }, 2);
  }

  override _read(): void {}

  override _final(callback: (error?: Error | null) => void): void {
    this.push(null);
    callback(this.failFinal ? new Error('disk full') : null);
  }
}

const source = filledMemory({ blocks: [{ name: 'pc.ram', byteLength: 8 << 20 }], seed: 9 });

test('with a FileMuxWriter, migrate resolves only once every channel has handed all its records to the file', async () => {
  const path = temp.path('finished.mig');
  const writer = new FileMuxWriter(path);
  const opened: Duplex[] = [];
  const stats = await migrate({
    source: guestMemorySource(source),
    connect: async () => {
      const channel = writer.openChannel();
      opened.push(channel);
      return channel;
    },
    awaitReceiver: false,
    channels: 3,
    codec: 'zstd',
    pool,
  });
  assert.is(stats.status, 'completed');
  assert.is(opened.length, 4, 'control and 3 data channels');
  opened.forEach((channel, i) => assert.ok(channel.writableFinished, `channel ${i} still had writes queued when migrate resolved`));
  await writer.close();
});

test('channels whose write callbacks come late: when migrate resolves, every byte it wrote has been accepted', async () => {
  const channels: LaggingChannel[] = [];
  const stats = await migrate({
    source: guestMemorySource(source),
    connect: async () => {
      const channel = new LaggingChannel();
      channels.push(channel);
      return channel;
    },
    awaitReceiver: false,
    channels: 2,
    pool,
  });
  assert.is(stats.status, 'completed');
  const handed = channels.reduce((n, c) => n + c.handed, 0);
  const accepted = channels.reduce((n, c) => n + c.accepted, 0);
  assert.is(handed, stats.transferred, 'every byte counted was handed to a channel');
  assert.is(accepted, handed, `${handed - accepted} bytes were still in flight`);
});

test('a data channel whose last flush fails fails the migration with a typed error naming it', async () => {
  let opened = 0;
  const error = await failure(
    () =>
      migrate({
        source: guestMemorySource(source),
        connect: async () => new LaggingChannel(opened++ === 2),
        awaitReceiver: false,
        channels: 2,
        pool,
      }),
    'ERR_CLOSED',
  );
  assert.match(error.message, /data channel 1: the last writes did not reach the file: disk full/);
  assert.is((error as unknown as { context: { status: string } }).context.status, 'failed');
});

test.run();
