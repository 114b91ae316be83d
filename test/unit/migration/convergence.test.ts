import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { BandwidthMeter, Convergence } from '../../../src/migration/convergence.js';

function clock() {
  let ms = 0;
  return { now: () => ms, advance: (by: number) => (ms += by) };
}

const test = suite('convergence (QEMU rules)');

test('bandwidth is measured over windows of at least 100 ms, keeping the last window with data', () => {
  const c = clock();
  const meter = new BandwidthMeter(c.now);
  c.advance(50);
  meter.sample(1_000_000);
  assert.is(meter.bytesPerMs, 0, 'a window shorter than 100 ms is not closed');
  c.advance(50);
  meter.sample(1_000_000);
  assert.is(meter.bytesPerMs, 10_000);
  c.advance(200);
  meter.sample(1_000_000);
  assert.is(meter.bytesPerMs, 10_000, 'an idle window keeps the last measurement');
  c.advance(100);
  meter.sample(3_000_000);
  assert.is(meter.bytesPerMs, 20_000);
});

test('the meter measures the guest bytes the wire bytes carried over the same windows', () => {
  const c = clock();
  const meter = new BandwidthMeter(c.now);
  c.advance(100);
  meter.sample(1_000_000, 3_000_000);
  assert.equal([meter.bytesPerMs, meter.guestBytesPerMs], [10_000, 30_000]);
  c.advance(100);
  meter.sample(1_500_000, 5_000_000);
  assert.equal([meter.bytesPerMs, meter.guestBytesPerMs], [5_000, 20_000]);
});

/** A link moving `bytesPerMs` wire bytes that carry `ratio` times as many guest bytes. */
const rate = (bytesPerMs: number, ratio = 1) => ({ bytesPerMs, guestBytesPerMs: bytesPerMs * ratio });

test('switches over when remaining bytes fit in bandwidth × downtime-limit', () => {
  const rule = new Convergence({ downtimeLimitMs: 300 });
  const bandwidth = rate(10_000); // bytes per ms, uncompressed
  assert.ok(rule.decide(2_999_999, bandwidth).switchover);
  const no = rule.decide(3_000_001, bandwidth);
  assert.not.ok(no.switchover);
  assert.is(no.thresholdBytes, 3_000_000);
  assert.is(Math.round(no.expectedDowntimeMs), 300);
  assert.ok(rule.decide(0, rate(0)).switchover, 'nothing dirty: switch over even without a bandwidth');
  assert.not.ok(rule.decide(1, rate(0)).switchover, 'no bandwidth known yet: keep going');
});

test('the rule counts guest bytes: a x3 codec on a link with a third of the wire rate decides as QEMU\'s rule does with none', () => {
  const rule = new Convergence({ downtimeLimitMs: 300 });
  const none = rate(30_000);
  const zstd = rate(10_000, 3); // the same guest bytes per ms, a third of the wire bytes
  for (const remaining of [0, 8_999_999, 9_000_001, 50_000_000]) {
    const [a, b] = [rule.decide(remaining, none), rule.decide(remaining, zstd)];
    assert.is(b.switchover, a.switchover, `${remaining} bytes dirty`);
    assert.is(b.thresholdBytes, a.thresholdBytes);
    assert.is(b.expectedDowntimeMs, a.expectedDowntimeMs);
  }
  assert.ok(rule.decide(8_999_999, zstd).switchover, 'fits in 3 x 10 000 bytes/ms x 300 ms');
  assert.not.ok(rule.decide(3_000_001 * 2, rate(10_000)).switchover, 'the wire rate alone would have been 3 times stricter');
});

test('avail-switchover-bandwidth replaces the measured wire bandwidth, times the measured guest/wire ratio', () => {
  const rule = new Convergence({ downtimeLimitMs: 100, availSwitchoverBandwidth: 50_000_000 });
  assert.is(rule.decide(1, rate(1)).thresholdBytes, 5_000_000);
  assert.is(rule.decide(1, rate(1, 2.5)).thresholdBytes, 12_500_000);
  assert.is(rule.decide(1, rate(0)).thresholdBytes, 5_000_000, 'no window yet: ratio 1');
});

test('the downtime ramp raises downtime-limit a step after each "not yet", up to its ceiling, and the rule follows it', () => {
  const rule = new Convergence({ downtimeLimitMs: 300, downtimeLimitMaxMs: 1000 });
  const link = rate(10_000);
  const dirty = 8_000_000; // 800 ms at this rate
  const limits: number[] = [];
  let rounds = 0;
  while (!rule.decide(dirty, link).switchover) {
    limits.push(rule.rampDowntimeLimit()!);
    rounds++;
  }
  assert.equal(limits, [440, 580, 720, 860], 'steps of a fifth of 700 ms');
  assert.is(rounds, 4);
  assert.is(rule.decide(dirty, link).thresholdBytes, 8_600_000);
  assert.is(rule.rampDowntimeLimit(), 1000);
  assert.is(rule.rampDowntimeLimit(), undefined, 'no step past the ceiling');
  assert.is(rule.downtimeLimitMs, 1000);
});

test('without a ceiling there is no ramp, a given step is kept, and a ceiling below the limit is refused', () => {
  const none = new Convergence({ downtimeLimitMs: 300 });
  assert.is(none.rampDowntimeLimit(), undefined);
  assert.is(none.downtimeLimitMs, 300);
  const stepped = new Convergence({ downtimeLimitMs: 300, downtimeLimitMaxMs: 2000, downtimeRampStepMs: 1000 });
  assert.equal([stepped.rampDowntimeLimit(), stepped.rampDowntimeLimit(), stepped.rampDowntimeLimit()], [1300, 2000, undefined]);
  assert.throws(() => new Convergence({ downtimeLimitMs: 300, downtimeLimitMaxMs: 200 }), /below downtimeLimitMs/);
});

test('auto-converge throttles at the second high-dirty-rate period, then steps by the increment up to the cap', () => {
  const c = clock();
  const rule = new Convergence({ autoConverge: true, cpuThrottleInitial: 30, cpuThrottleIncrement: 20, maxCpuThrottle: 75 }, c.now);
  let transferred = 0;
  const period = (dirty: number, xfer: number) => {
    c.advance(1000);
    transferred += xfer;
    return rule.onSync(dirty, transferred);
  };
  assert.is(period(600, 1000), undefined, 'first time over the 50 % trigger: counted only');
  assert.is(period(600, 1000), 30, 'second time: cpu-throttle-initial');
  assert.is(period(600, 1000), undefined);
  assert.is(period(600, 1000), 50, 'then + cpu-throttle-increment');
  period(600, 1000);
  assert.is(period(600, 1000), 70);
  period(600, 1000);
  assert.is(period(600, 1000), 75, 'capped at max-cpu-throttle');
  assert.is(rule.throttlePercent, 75);
});

test('auto-converge leaves a guest alone while the link drains what it dirties, and looks only at periods of 1 s or more', () => {
  const c = clock();
  const rule = new Convergence({ autoConverge: true }, c.now);
  for (let i = 0; i < 5; i++) {
    c.advance(1000);
    assert.is(rule.onSync(400, (i + 1) * 1000), undefined);
  }
  c.advance(300);
  assert.is(rule.onSync(1e9, 5000), undefined, 'too soon after the last evaluation');
  assert.is(rule.throttlePercent, 0);
});

test('without auto-converge nothing is throttled', () => {
  const c = clock();
  const rule = new Convergence({}, c.now);
  for (let i = 0; i < 4; i++) {
    c.advance(2000);
    assert.is(rule.onSync(1e9, i), undefined);
  }
});

test.run();
