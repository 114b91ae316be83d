import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { TokenBucket } from '../../../src/transport/token-bucket.js';

const test = suite('token bucket (max-bandwidth)');

function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1000;
  return { now: () => t, advance: (ms) => (t += ms) };
}

test('starts with a full burst of a tenth of the rate, as QEMU budgets each 100 ms', () => {
  const c = clock();
  const bucket = new TokenBucket({ bytesPerSecond: 1_000_000, now: c.now });
  assert.is(bucket.take(100_000), 0);
  assert.is(bucket.take(1000), 1, '1000 bytes at 1 MB/s is 1 ms');
});

test('an overdraft waits exactly as long as the rate takes to repay it', () => {
  const c = clock();
  const bucket = new TokenBucket({ bytesPerSecond: 1_000_000, now: c.now });
  assert.is(bucket.take(100_000), 0);
  assert.is(bucket.take(100_000), 100);
  assert.is(bucket.take(50_000), 150, 'debt accumulates across callers');
  c.advance(150);
  assert.is(bucket.take(0), 0, 'repaid after waiting');
  assert.is(bucket.take(1_000), 1);
});

test('a packet larger than the burst is not stuck: it waits in proportion', () => {
  const c = clock();
  const bucket = new TokenBucket({ bytesPerSecond: 1_000_000, burstBytes: 10_000, now: c.now });
  assert.is(bucket.take(512 * 1024), Math.ceil(((512 * 1024 - 10_000) * 1000) / 1_000_000));
});

test('refills continuously but never beyond the burst', () => {
  const c = clock();
  const bucket = new TokenBucket({ bytesPerSecond: 1_000_000, now: c.now });
  bucket.take(100_000);
  c.advance(30);
  assert.is(bucket.take(30_000), 0, '30 ms earned 30 kB');
  assert.is(bucket.take(1), 1);
  c.advance(10_000);
  assert.is(bucket.take(100_000), 0, 'an idle bucket holds one burst...');
  assert.is(bucket.take(10_000), 10, '...and not more');
});

test('channels sharing one bucket get the rate between them', () => {
  const c = clock();
  const bucket = new TokenBucket({ bytesPerSecond: 10_000_000, now: c.now });
  let sent = 0;
  // Four channels, each sending a 64 KiB packet whenever it is allowed to, for one second.
  const readyAt = [0, 0, 0, 0];
  for (let ms = 0; ms < 1000; ms++) {
    readyAt.forEach((at, channel) => {
      if (ms < at) return;
      const wait = bucket.take(65536);
      sent += 65536;
      readyAt[channel] = ms + wait;
    });
    c.advance(1);
  }
  const ratio = sent / (10_000_000 + 1_000_000);
  assert.ok(ratio > 0.95 && ratio < 1.05, `sent ${sent} bytes in one second at 10 MB/s (+1 burst)`);
});

test('0 and Infinity mean no limit', () => {
  for (const bytesPerSecond of [0, Infinity]) {
    const bucket = new TokenBucket({ bytesPerSecond });
    assert.ok(bucket.unlimited);
    assert.is(bucket.take(1e12), 0);
  }
});

test('the rate can change while running, and bad rates are refused', () => {
  const c = clock();
  const bucket = new TokenBucket({ bytesPerSecond: 0, now: c.now });
  bucket.setRate(1_000_000);
  assert.not.ok(bucket.unlimited);
  assert.is(bucket.bytesPerSecond, 1_000_000);
  assert.is(bucket.take(100_000), 0, 'a limit set on an unlimited bucket starts with a full burst');
  assert.is(bucket.take(2_000), 2);
  bucket.setRate(2_000_000);
  assert.is(bucket.take(2_000), 2, 'debt is kept; repaid at the new rate');
  assert.throws(() => bucket.setRate(-1), RangeError);
  assert.throws(() => bucket.setRate(Number.NaN), RangeError);
  assert.throws(() => new TokenBucket({ bytesPerSecond: 1000, burstBytes: 0 }), RangeError);
});

test('acquire() sleeps for what take() says, and not at all within the budget', async () => {
  const c = clock();
  const sleeps: number[] = [];
  const bucket = new TokenBucket({ bytesPerSecond: 1_000_000, now: c.now, sleep: async (ms) => void sleeps.push(ms) });
  await bucket.acquire(100_000);
  await bucket.acquire(20_000);
  assert.equal(sleeps, [20]);
});

test.run();
