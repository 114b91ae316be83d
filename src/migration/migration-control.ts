// Changing a running migration's parameters, as QEMU's migrate-set-parameters does: give a
// MigrationControl to migrate() (MigrateOptions.control) and call it while the migration runs.
import { outOfRange } from '../errors.js';
import type { TokenBucket } from '../transport/token-bucket.js';

/** A handle on a running migration's parameters. */
export class MigrationControl {
  private bucket: TokenBucket | undefined;
  private maxBandwidth: number | undefined;

  /**
   * max-bandwidth in bytes per second over all channels, 0 for unlimited: takes effect at the
   * next packet (before the migration starts: from its start).
   * @throws RangeError `ERR_OUT_OF_RANGE` for a negative or non-numeric rate.
   */
  setMaxBandwidth(bytesPerSecond: number): void {
    if (typeof bytesPerSecond !== 'number' || !(bytesPerSecond >= 0)) throw outOfRange('bytesPerSecond', 'a number >= 0', bytesPerSecond);
    this.maxBandwidth = bytesPerSecond;
    this.bucket?.setRate(bytesPerSecond);
  }

  /** The sender's bucket (one per migration), set to the last rate given here, if any. */
  attach(bucket: TokenBucket): void {
    this.bucket = bucket;
    if (this.maxBandwidth !== undefined) bucket.setRate(this.maxBandwidth);
  }
}
