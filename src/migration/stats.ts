// Migration statistics under QEMU's names and meanings (query-migrate's MigrationInfo and
// MigrationStats), plus what QEMU lacks: guest vs wire bytes, the compression ratio and CPU
// use. Counters are updated on the main thread as packets are written; snapshots are cheap.
import type { AutoStats } from './codec-choice.js';

/** Migration state, as QEMU's `status`. */
export type MigrationStatus = 'setup' | 'active' | 'completed' | 'failed' | 'cancelled';

/** A snapshot of a migration's statistics (sender side), keys as in QEMU's query-migrate. */
export interface MigrationStats {
  status: MigrationStatus;
  /** ms since the migration started (frozen at the end). */
  'total-time': number;
  /** ms spent connecting channels and agreeing the session. */
  'setup-time': number;
  /** Live migration: ms from the workload's pause to the receiver's confirmation. */
  downtime?: number;
  /** Live migration: remaining / bandwidth at the last sync, ms (QEMU's expected-downtime). */
  'expected-downtime'?: number;
  /** Live migration: downtime-limit now, in ms (above the option's once the downtime ramp raised it). */
  'downtime-limit'?: number;
  /** `--multifd-compression auto`: what each choice carried, the current choice and why. */
  auto?: AutoStats;
  /** Bytes written on every connection: control and data, headers included. */
  transferred: number;
  /** Guest bytes not yet sent in the current round. */
  remaining: number;
  /** Guest bytes in all RAM blocks. */
  total: number;
  /** Zero pages sent (as runs, without payload). */
  duplicate: number;
  /** Normal pages sent. */
  normal: number;
  /** normal × page size. */
  'normal-bytes': number;
  /** Normal pages compressed on an accelerator (qatzip, qpl, uadk through the native shim). */
  'hardware-pages': number;
  /** Normal pages compressed, or sent raw, in software: normal − hardware-pages. */
  'software-pages': number;
  /** Rounds started (each begins with a dirty sync in live migration; 1 for an image). */
  'dirty-sync-count': number;
  /** Live migration: pages dirtied per second, measured between the last two syncs. */
  'dirty-pages-rate'?: number;
  /** Live migration with auto-converge: the workload's throttle, percent. */
  'cpu-throttle-percentage'?: number;
  /** (normal + duplicate) pages per second over the whole migration. */
  'pages-per-second': number;
  /** Wire throughput in megabits per second (10^6 bits), QEMU's `mbps`. */
  mbps: number;
  /** Bytes written on data channels: init messages, packet headers, payloads, SYNC packets. */
  'multifd-bytes': number;
  /** The part of multifd-bytes that is not payload: init messages, packet headers and runs, SYNC packets. */
  'header-bytes': number;
  'page-size': number;
  /** Guest bytes moved: (normal + duplicate) × page size. */
  'guest-bytes': number;
  /** Guest throughput in megabits per second. */
  'guest-mbps': number;
  /** guest-bytes / transferred. */
  'compression-ratio': number;
  /** This process's CPU time (all threads) over wall time, in percent of one core. */
  'send-cpu-percent': number;
  /** The receiver's process CPU percent, from its final report. */
  'recv-cpu-percent'?: number;
  /** Data channels that broke during the migration. */
  'channels-lost': number;
  /**
   * Outages of the link (the control connection lost, or every data channel at once), and the
   * ms from each loss until the control connection was resumed and the receiver acknowledged again.
   */
  outages: number;
  'outage-time': number;
  /** An outage is under way, and the sender is redialling. */
  reconnecting: boolean;
  /** Times the control connection was lost and the session resumed on a new one. */
  'control-resumes': number;
  /** Broken data channels replaced by a new connection with the same id. */
  'channels-reconnected': number;
  /** Packets written again because their channel broke before the receiver acknowledged them, and their bytes. */
  'packets-resent': number;
  'resent-bytes': number;
  /** Image checksums (XXH64 of chunk hashes), hex, once known. */
  'source-checksum'?: string;
  'destination-checksum'?: string;
  /**
   * Completed with `verify`: source-checksum is the source hashed afresh after the last
   * round (at the pause), so the destination equals the source as it was then, not only as
   * it was sent.
   */
  verified?: boolean;
  /** Why the migration failed, when it did. */
  'error-desc'?: string;
}

/** Accumulates counters and turns them into {@link MigrationStats} snapshots. */
export class StatsTracker {
  status: MigrationStatus = 'setup';
  rounds = 0;
  normalPages = 0;
  hardwarePages = 0;
  zeroPages = 0;
  controlBytes = 0;
  dataBytes = 0;
  payloadBytes = 0;
  /** Bytes of resent packets (in dataBytes, not header bytes). */
  resentBytes = 0;
  channelsLost = 0;
  channelsReconnected = 0;
  /** See MigrationStats.outages (src/channel/link-outage.ts counts them). */
  outages = 0;
  outageMs = 0;
  reconnecting = false;
  controlResumes = 0;
  packetsResent = 0;
  remainingBytes: number;
  setupMs = 0;
  recvCpuPercent: number | undefined;
  downtimeMs: number | undefined;
  expectedDowntimeMs: number | undefined;
  /** `auto`'s chooser, whose counts the snapshot reports. */
  auto: { stats(): AutoStats } | undefined;
  downtimeLimitMs: number | undefined;
  dirtyPagesRate: number | undefined;
  throttlePercent: number | undefined;
  sourceChecksum: bigint | undefined;
  destinationChecksum: bigint | undefined;
  verified: boolean | undefined;
  error: string | undefined;
  private readonly startMs = performance.now();
  private readonly startCpu = process.cpuUsage();
  private endMs: number | undefined;
  private endCpuMicros: number | undefined;

  constructor(
    readonly totalBytes: number,
    readonly pageSize: number,
  ) {
    this.remainingBytes = totalBytes;
  }

  /** Bytes written on every connection so far. */
  transferredBytes(): number {
    return this.controlBytes + this.dataBytes;
  }

  /** Guest bytes sent so far: (normal + duplicate) pages × page size. */
  guestBytes(): number {
    return (this.normalPages + this.zeroPages) * this.pageSize;
  }

  /** ms since the start, frozen once finished. */
  elapsedMs(): number {
    return (this.endMs ?? performance.now()) - this.startMs;
  }

  /** CPU time of this process since the start, in µs, frozen once finished. */
  cpuMicros(): number {
    if (this.endCpuMicros !== undefined) return this.endCpuMicros;
    const used = process.cpuUsage(this.startCpu);
    return used.user + used.system;
  }

  /** Freezes the clocks with a final status. */
  finish(status: MigrationStatus, error?: string): void {
    this.endCpuMicros = this.cpuMicros();
    this.endMs = performance.now();
    this.status = status;
    this.error = error;
  }

  snapshot(): MigrationStats {
    const ms = Math.max(this.elapsedMs(), 1e-3);
    const transferred = this.transferredBytes();
    const guestBytes = this.guestBytes();
    const hex = (v: bigint | undefined) => (v === undefined ? undefined : v.toString(16).padStart(16, '0'));
    return {
      status: this.status,
      'total-time': Math.round(ms),
      'setup-time': Math.round(this.setupMs),
      downtime: this.downtimeMs === undefined ? undefined : Math.round(this.downtimeMs),
      'downtime-limit': this.downtimeLimitMs,
      auto: this.auto?.stats(),
      'expected-downtime': this.expectedDowntimeMs === undefined || !Number.isFinite(this.expectedDowntimeMs) ? undefined : Math.round(this.expectedDowntimeMs),
      transferred,
      remaining: this.remainingBytes,
      total: this.totalBytes,
      duplicate: this.zeroPages,
      normal: this.normalPages,
      'normal-bytes': this.normalPages * this.pageSize,
      'hardware-pages': this.hardwarePages,
      'software-pages': this.normalPages - this.hardwarePages,
      'dirty-sync-count': this.rounds,
      'dirty-pages-rate': this.dirtyPagesRate,
      'cpu-throttle-percentage': this.throttlePercent,
      'pages-per-second': Math.round(((this.normalPages + this.zeroPages) * 1000) / ms),
      mbps: round2((transferred * 8) / 1000 / ms),
      'multifd-bytes': this.dataBytes,
      'header-bytes': this.dataBytes - this.payloadBytes - this.resentBytes,
      'page-size': this.pageSize,
      'guest-bytes': guestBytes,
      'guest-mbps': round2((guestBytes * 8) / 1000 / ms),
      'compression-ratio': round2(transferred ? guestBytes / transferred : 0),
      'send-cpu-percent': round2((this.cpuMicros() / 10) / ms),
      'recv-cpu-percent': this.recvCpuPercent,
      'channels-lost': this.channelsLost,
      'channels-reconnected': this.channelsReconnected,
      outages: this.outages,
      reconnecting: this.reconnecting,
      'outage-time': Math.round(this.outageMs),
      'control-resumes': this.controlResumes,
      'packets-resent': this.packetsResent,
      'resent-bytes': this.resentBytes,
      'source-checksum': hex(this.sourceChecksum),
      'destination-checksum': hex(this.destinationChecksum),
      verified: this.verified,
      'error-desc': this.error,
    };
  }
}

function round2(value: number): number {
  return Math.round(value * 100) / 100;
}
