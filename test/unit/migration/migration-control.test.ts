// MigrationControl: max-bandwidth changed on a running migration's bucket, or kept until one attaches.
import * as assert from 'uvu/assert';
import { suite } from 'uvu';
import { MigrationControl } from '../../../src/migration/migration-control.js';
import { TokenBucket } from '../../../src/transport/token-bucket.js';

const test = suite('migration control');

test('a rate set before the migration starts applies to its bucket; one set later changes it at once; 0 lifts the limit', () => {
  const control = new MigrationControl();
  control.setMaxBandwidth(125_000_000);
  const bucket = new TokenBucket({ bytesPerSecond: 0 });
  assert.ok(bucket.unlimited);
  control.attach(bucket);
  assert.is(bucket.bytesPerSecond, 125_000_000);
  control.setMaxBandwidth(12_500_000);
  assert.is(bucket.bytesPerSecond, 12_500_000);
  control.setMaxBandwidth(0);
  assert.ok(bucket.unlimited);
});

test('a negative or non-numeric rate is refused and changes nothing', () => {
  const control = new MigrationControl();
  const bucket = new TokenBucket({ bytesPerSecond: 1000 });
  control.attach(bucket);
  for (const bad of [-1, Number.NaN, '5' as unknown as number]) assert.throws(() => control.setMaxBandwidth(bad), /bytesPerSecond/);
  assert.is(bucket.bytesPerSecond, 1000);
});

test.run();
