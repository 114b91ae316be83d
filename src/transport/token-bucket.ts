// `max-bandwidth` across all channels. QEMU budgets bytes per 100 ms window (limit / 10) and
// makes the migration thread sleep out the rest of a window once its budget is spent; a
// token bucket of burst = limit / 10 is the same budget without window edges: tokens refill
// continuously, and a sender that overdraws waits exactly as long as the debt takes to repay.
import { setTimeout as sleepMs } from 'node:timers/promises';
import { outOfRange } from '../errors.js';

/** Options of {@link TokenBucket}. */
export interface TokenBucketOptions {
  /** The rate limit in bytes per second; 0 or Infinity = unlimited. */
  bytesPerSecond: number;
  /** Bytes that may go at once after an idle spell; default bytesPerSecond / 10 (QEMU's 100 ms). */
  burstBytes?: number;
  /** Clock in milliseconds (monotonic); default performance.now. Tests inject their own. */
  now?: () => number;
  /** How {@link TokenBucket.acquire} waits; default a timer. Tests inject their own. */
  sleep?: (ms: number) => Promise<unknown>;
}

/**
 * A token bucket shared by all channels of a migration. Call {@link TokenBucket.take} (or
 * await {@link TokenBucket.acquire}) with the wire bytes of each packet: the bytes are
 * debited at once, even beyond the burst, so a packet larger than the burst is never stuck,
 * and every later caller waits behind the debt. Senders on several channels therefore share
 * one rate without coordinating.
 */
export class TokenBucket {
  private rate = 0;
  private burst = 0;
  private readonly burstOption: number | undefined;
  private tokens = 0;
  private last: number;
  private readonly now: () => number;
  private readonly sleep: (ms: number) => Promise<unknown>;

  constructor(options: TokenBucketOptions) {
    this.now = options.now ?? (() => performance.now());
    this.sleep = options.sleep ?? sleepMs;
    this.burstOption = options.burstBytes;
    this.last = this.now();
    this.setRate(options.bytesPerSecond);
  }

  /** True when there is no limit (the rate is 0 or Infinity). */
  get unlimited(): boolean {
    return this.rate === Infinity;
  }

  /** The current limit in bytes per second (Infinity when unlimited). */
  get bytesPerSecond(): number {
    return this.rate;
  }

  /**
   * Changes the limit while running (QEMU's migrate-set-parameters max-bandwidth); tokens
   * already earned are kept up to the new burst, and debt is kept as it is.
   * @throws RangeError (`ERR_OUT_OF_RANGE`) for a negative or non-numeric rate or burst.
   */
  setRate(bytesPerSecond: number): void {
    if (typeof bytesPerSecond !== 'number' || Number.isNaN(bytesPerSecond) || bytesPerSecond < 0) {
      throw outOfRange('bytesPerSecond', 'a number >= 0 (0 or Infinity for no limit)', bytesPerSecond);
    }
    this.refill();
    this.rate = bytesPerSecond === 0 ? Infinity : bytesPerSecond;
    const burst = this.burstOption ?? this.rate / 10;
    if (typeof burst !== 'number' || !(burst > 0)) throw outOfRange('burstBytes', 'a number > 0', burst);
    const first = this.burst === 0;
    this.burst = burst;
    // A new bucket starts full: the first burst goes out at once, as in QEMU's first window.
    this.tokens = first ? burst : Math.min(this.tokens, burst);
  }

  /**
   * Debits `bytes` and returns how many milliseconds the caller should wait before sending
   * them (0: send now). The wait repays any debt, this call's and earlier ones'.
   */
  take(bytes: number): number {
    if (this.rate === Infinity) return 0;
    this.refill();
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : Math.ceil((-this.tokens * 1000) / this.rate);
  }

  /** {@link TokenBucket.take}, then waits as long as it says. */
  async acquire(bytes: number): Promise<void> {
    const waitMs = this.take(bytes);
    if (waitMs > 0) await this.sleep(waitMs);
  }

  private refill(): void {
    const now = this.now();
    if (this.rate !== Infinity) this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.rate) / 1000);
    this.last = now;
  }
}
