// The receiver's round barrier. A round's packets arrive on every data channel, each channel
// ending its share with a SYNC; the sender then says on the control channel how many packets
// the round had (round-end). The round is over when every live channel synced it, every one of
// its packets is applied and the count agrees: only then is the next round read, so a page
// sent again in a later round can never be overwritten by an older copy still in a worker.
// The barrier also remembers the round's packets by sequence number, so that a packet resent
// after a channel broke is applied once however many times it arrives.
import { protocolError } from '../errors.js';
import type { FailureLatch } from './failure-latch.js';

/** A packet of the current round: applied yet, and where to acknowledge it once it is. */
export interface RoundPacket<Channel> {
  applied: boolean;
  ackTo: Channel[];
}

/** See the file comment. `Channel` is whatever the receiver acknowledges on. */
export class RoundBarrier<Channel> {
  /** The round being received, from 1. */
  round = 1;
  private appliedInRound = 0;
  private readonly packets = new Map<number, RoundPacket<Channel>>();
  private release: (() => void) | undefined;

  /** `synced()` says whether every live channel synced the round and nothing is in workers. */
  constructor(
    private readonly synced: () => boolean,
    private readonly failure: FailureLatch,
  ) {}

  /**
   * A packet of this round arrived on `channel`: a new entry, or the entry of the same
   * sequence number seen before (a resend; `duplicate`), which then owes `channel` an ack too.
   */
  admit(sequence: number, channel: Channel): { entry: RoundPacket<Channel>; duplicate: boolean } {
    const seen = this.packets.get(sequence);
    if (seen) {
      if (!seen.applied) seen.ackTo.push(channel);
      return { entry: seen, duplicate: true };
    }
    const entry: RoundPacket<Channel> = { applied: false, ackTo: [channel] };
    this.packets.set(sequence, entry);
    return { entry, duplicate: false };
  }

  /** A packet is in place. */
  applied(entry: RoundPacket<Channel>): void {
    entry.applied = true;
    this.appliedInRound++;
    this.check();
  }

  /** Releases a round-end that waits, if the round is over now. */
  check(): void {
    if (!this.release || !this.synced()) return;
    const release = this.release;
    this.release = undefined;
    release();
  }

  /**
   * The sender ended `round` with `packets` packets: waits until it is over here, checks the
   * count and moves on to the next round.
   * @throws ProtocolError `ERR_CONTROL_FIELD` for another round's end, `ERR_ROUND_PACKETS`
   * when the count differs (`channelsLost` says why it may).
   */
  async end(round: number, packets: number, channelsLost: () => number): Promise<void> {
    if (round !== this.round) {
      throw protocolError('ERR_CONTROL_FIELD', { channel: 'control', field: 'round-end.round', expected: this.round, got: round });
    }
    await this.failure.race(new Promise<void>((resolve) => {
      this.release = resolve;
      this.check();
    }));
    if (this.appliedInRound !== packets) {
      const lost = channelsLost() ? ` (${channelsLost()} data channel(s) lost)` : '';
      throw protocolError('ERR_ROUND_PACKETS', { channel: 'control', field: `round ${round} packets${lost}`, expected: packets, got: this.appliedInRound });
    }
    this.appliedInRound = 0;
    this.packets.clear();
    this.round++;
  }
}
