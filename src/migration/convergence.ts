// Pre-copy convergence, by QEMU's rules (migration/migration.c, ram.c, cpu-throttle.c):
// bandwidth measured over windows of at least 100 ms; switch over when the bytes still dirty
// fit in bandwidth × downtime-limit; with auto-converge, throttle the guest when it dirties
// memory faster than the link drains it (checked at syncs at least 1 s apart, acting on the
// second time in a row). Pure logic with an injected clock, so it is tested without timing.
//
// Both rules compare guest bytes with guest bytes: the dirty bytes left against the rate at
// which guest memory crosses the link (the wire rate × the current compression ratio, zero
// pages included), not against the wire rate. With a codec that shrinks pages 3 times, the
// link drains guest memory 3 times faster than its wire rate; judging by the wire rate would
// make the switchover 3 times stricter than QEMU's own rule with `none` on the same link, and
// auto-converge throttle a guest the link keeps up with.

/** Parameters, with QEMU's names and defaults. */
export interface ConvergenceOptions {
  /** downtime-limit in ms (QEMU default 300). */
  downtimeLimitMs?: number;
  /**
   * The downtime ramp's ceiling in ms: after each sync at which the rule said "not yet",
   * downtime-limit rises by `downtimeRampStepMs` up to this (default: no ramp).
   */
  downtimeLimitMaxMs?: number;
  /** The ramp's step in ms (default: a fifth of the way from downtime-limit to the ceiling). */
  downtimeRampStepMs?: number;
  /** avail-switchover-bandwidth in bytes/s: used instead of the measured bandwidth when > 0. */
  availSwitchoverBandwidth?: number;
  /** Rounds after which a migration that has not converged fails (default 30). */
  maxRounds?: number;
  /** capability auto-converge (default off). */
  autoConverge?: boolean;
  /** throttle-trigger-threshold, % (default 50). */
  throttleTriggerThreshold?: number;
  /** cpu-throttle-initial, % (default 20). */
  cpuThrottleInitial?: number;
  /** cpu-throttle-increment, % (default 10). */
  cpuThrottleIncrement?: number;
  /** max-cpu-throttle, % (default 99). */
  maxCpuThrottle?: number;
}

/** QEMU's BUFFER_DELAY: the bandwidth window. */
export const BANDWIDTH_WINDOW_MS = 100;
/** Auto-converge looks at periods of at least this long between syncs. */
const THROTTLE_PERIOD_MS = 1000;

/** A link's rate over the last window: wire bytes, and the guest bytes they carried. */
export interface LinkRate {
  /** Wire bytes per ms. */
  bytesPerMs: number;
  /** Guest bytes (pages sent, zero pages included, × page size) per ms. */
  guestBytesPerMs: number;
}

/** Measures bandwidth over windows of at least 100 ms, as migration_update_counters does: wire bytes, and the guest bytes they carried. */
export class BandwidthMeter implements LinkRate {
  /** The last window's bandwidth in bytes per ms (0 until a window carried data). */
  bytesPerMs = 0;
  /** The guest bytes per ms of that window. */
  guestBytesPerMs = 0;
  private windowStartMs: number;
  private windowStartBytes = 0;
  private windowStartGuestBytes = 0;

  constructor(private readonly now: () => number = () => performance.now()) {
    this.windowStartMs = now();
  }

  /**
   * Feeds the total wire bytes transferred so far and the guest bytes they carried (the wire
   * bytes when not given); closes a window when 100 ms have passed.
   */
  sample(totalBytes: number, guestBytes = totalBytes): void {
    const now = this.now();
    const elapsed = now - this.windowStartMs;
    if (elapsed < BANDWIDTH_WINDOW_MS) return;
    const bytes = totalBytes - this.windowStartBytes;
    if (bytes > 0) {
      this.bytesPerMs = bytes / elapsed;
      this.guestBytesPerMs = (guestBytes - this.windowStartGuestBytes) / elapsed;
    }
    this.windowStartMs = now;
    this.windowStartBytes = totalBytes;
    this.windowStartGuestBytes = guestBytes;
  }
}

/** What the switchover rule says at a sync. */
export interface SwitchoverDecision {
  switchover: boolean;
  /** guest-byte bandwidth × downtime-limit, in bytes. */
  thresholdBytes: number;
  /** remaining / bandwidth, in ms (QEMU's expected-downtime); Infinity before any bandwidth is known. */
  expectedDowntimeMs: number;
}

/** The switchover rule and auto-converge's throttle, for one migration. */
export class Convergence {
  /** cpu-throttle-percentage now (0 = not throttling). */
  throttlePercent = 0;
  /** downtime-limit now: the option's, raised by the downtime ramp. */
  downtimeLimitMs: number;
  readonly maxRounds: number;
  private readonly options: Required<ConvergenceOptions>;
  private periodStartMs: number;
  private periodDirtyBytes = 0;
  private periodStartTransferred = 0;
  private dirtyRateHighCount = 0;

  constructor(options: ConvergenceOptions = {}, private readonly now: () => number = () => performance.now()) {
    this.options = {
      downtimeLimitMs: options.downtimeLimitMs ?? 300,
      availSwitchoverBandwidth: options.availSwitchoverBandwidth ?? 0,
      maxRounds: options.maxRounds ?? 30,
      autoConverge: options.autoConverge ?? false,
      throttleTriggerThreshold: options.throttleTriggerThreshold ?? 50,
      cpuThrottleInitial: options.cpuThrottleInitial ?? 20,
      cpuThrottleIncrement: options.cpuThrottleIncrement ?? 10,
      maxCpuThrottle: options.maxCpuThrottle ?? 99,
      downtimeLimitMaxMs: options.downtimeLimitMaxMs ?? options.downtimeLimitMs ?? 300,
      downtimeRampStepMs: 0,
    };
    const { downtimeLimitMs, downtimeLimitMaxMs } = this.options;
    this.options.downtimeRampStepMs = options.downtimeRampStepMs ?? Math.max(1, Math.ceil((downtimeLimitMaxMs - downtimeLimitMs) / 5));
    this.maxRounds = this.options.maxRounds;
    this.periodStartMs = now();
    this.downtimeLimitMs = this.options.downtimeLimitMs;
    if (this.options.downtimeLimitMaxMs < this.options.downtimeLimitMs) throw new RangeError(`downtimeLimitMaxMs (${this.options.downtimeLimitMaxMs}) is below downtimeLimitMs (${this.options.downtimeLimitMs})`);
  }

  /**
   * The downtime ramp, for a guest that would not converge at downtime-limit: called after a
   * sync at which the rule said "not yet", it raises the limit one step, up to the ceiling.
   * Returns the new limit when it changed.
   */
  rampDowntimeLimit(): number | undefined {
    const { downtimeLimitMaxMs, downtimeRampStepMs } = this.options;
    if (this.downtimeLimitMs >= downtimeLimitMaxMs) return undefined;
    this.downtimeLimitMs = Math.min(downtimeLimitMaxMs, this.downtimeLimitMs + downtimeRampStepMs);
    return this.downtimeLimitMs;
  }

  /**
   * QEMU's rule, in guest bytes: switch over once the dirty bytes fit in the guest-byte
   * bandwidth × downtime-limit. avail-switchover-bandwidth, like QEMU's, is the link's wire
   * rate: it stands for the measured one, times the measured ratio of guest to wire bytes.
   */
  decide(remainingBytes: number, rate: LinkRate): SwitchoverDecision {
    const avail = this.options.availSwitchoverBandwidth;
    const ratio = rate.bytesPerMs > 0 ? rate.guestBytesPerMs / rate.bytesPerMs : 1;
    const bytesPerMs = avail > 0 ? (avail / 1000) * ratio : rate.guestBytesPerMs;
    const thresholdBytes = bytesPerMs * this.downtimeLimitMs;
    return {
      switchover: remainingBytes === 0 || remainingBytes < thresholdBytes,
      thresholdBytes,
      expectedDowntimeMs: bytesPerMs > 0 ? remainingBytes / bytesPerMs : Infinity,
    };
  }

  /**
   * Called at each dirty sync with the bytes just found dirty and the guest bytes transferred
   * so far. With auto-converge, returns the new throttle percent when it changes.
   */
  onSync(dirtyBytes: number, transferredBytes: number): number | undefined {
    this.periodDirtyBytes += dirtyBytes;
    if (!this.options.autoConverge) return undefined;
    const now = this.now();
    if (now - this.periodStartMs < THROTTLE_PERIOD_MS) return undefined;
    const xferred = transferredBytes - this.periodStartTransferred;
    const dirtiedTooFast = this.periodDirtyBytes > (xferred * this.options.throttleTriggerThreshold) / 100;
    this.periodStartMs = now;
    this.periodDirtyBytes = 0;
    this.periodStartTransferred = transferredBytes;
    if (!dirtiedTooFast || ++this.dirtyRateHighCount < 2) return undefined;
    this.dirtyRateHighCount = 0;
    const next = this.throttlePercent === 0 ? this.options.cpuThrottleInitial : this.throttlePercent + this.options.cpuThrottleIncrement;
    this.throttlePercent = Math.min(next, this.options.maxCpuThrottle);
    return this.throttlePercent;
  }
}
