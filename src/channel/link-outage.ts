// When a sender has lost its link to the receiver: the control connection, or every data
// channel at once (one channel lost among live ones is not an outage: its packets go to the
// others). An outage starts at the first such loss and ends once both parts are back: the
// control connection resumed and the receiver acknowledging data again. Its length is what
// --reconnect-timeout bounds, and what the stats and the `outage`/`resumed` events report.
import type { StatsTracker } from '../migration/stats.js';

/** The two parts of the link. */
export type LinkPart = 'control' | 'data';

/** Told when an outage starts and when it ends. */
export type LinkEvent = { event: 'outage'; lost: LinkPart; outages: number } | { event: 'resumed'; downMs: number; outages: number };

/** The link's state for one migration; see the file comment. */
export class LinkOutage {
  private since: number | undefined;
  private readonly down = new Set<LinkPart>();
  private waiters: Array<() => void> = [];

  constructor(
    private readonly stats: StatsTracker,
    private readonly onEvent?: (event: LinkEvent) => void,
  ) {}

  /** `part` is lost: an outage starts unless one is under way. */
  lost(part: LinkPart): void {
    this.down.add(part);
    if (this.since !== undefined) return;
    this.since = Date.now();
    this.stats.outages++;
    this.stats.reconnecting = true;
    this.onEvent?.({ event: 'outage', lost: part, outages: this.stats.outages });
  }

  /** `part` is back: the outage ends once no part is down. */
  restored(part: LinkPart): void {
    if (!this.down.delete(part)) return;
    if (part === 'control') this.waiters.splice(0).forEach((wake) => wake());
    if (this.down.size > 0 || this.since === undefined) return;
    const downMs = Date.now() - this.since;
    this.since = undefined;
    this.stats.outageMs += downMs;
    this.stats.reconnecting = false;
    this.onEvent?.({ event: 'resumed', downMs, outages: this.stats.outages });
  }

  isDown(part: LinkPart): boolean {
    return this.down.has(part);
  }

  /** How long the outage under way has lasted; 0 when the link is up. */
  downForMs(): number {
    return this.since === undefined ? 0 : Date.now() - this.since;
  }

  /** Resolves once the control connection is up (at once when it is). */
  controlUp(): Promise<void> {
    if (!this.down.has('control')) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}
