// The sender's side of a resume: when its control connection is lost, it dials again with
// backoff (50 ms doubling to 1 s, as the data channels do) and opens each new connection with a
// `resume` that proves it knows the session's secret. The receiver answers `resume-ack` with
// its own proof and its count of the messages it read; the session then carries on over the
// new connection (src/migration/session-control.ts sends again what the receiver missed).
// Through the reconnect timeout of outage, then `ERR_LINK_DOWN`.
import type { Duplex } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { linkDown } from '../channel/send-channels.js';
import type { LinkOutage } from '../channel/link-outage.js';
import { TransportError } from '../errors.js';
import { sameBytes } from '../wire/channel-init.js';
import { ControlChannel } from './control-channel.js';
import type { FailureLatch } from './failure-latch.js';
import type { ResumeSecret } from './resume-secret.js';
import type { SessionControl } from './session-control.js';
import type { StatsTracker } from './stats.js';

/** How long a resume waits for its answer before the connection is given up and dialled again. */
export const RESUME_ANSWER_MS = 5000;
const FIRST_PAUSE_MS = 50;
const MAX_PAUSE_MS = 1000;

/** What the resumer works with. */
export interface ControlResumeOptions {
  sessionId: Uint8Array;
  secret: ResumeSecret;
  control: SessionControl;
  outage: LinkOutage;
  failure: FailureLatch;
  stats: StatsTracker;
  /** Opens one connection to the receiver (kept by the sender, to close with the migration). */
  connect: () => Promise<Duplex>;
  reconnectTimeoutMs: number;
  isFinished: () => boolean;
}

/** Resumes the sender's control connection each time it is lost; see the file comment. */
export class ControlResume {
  private attempts = 0;
  private running: Promise<void> | undefined;

  constructor(private readonly options: ControlResumeOptions) {}

  /** The control connection is lost: an outage starts (or goes on) and the resume begins, unless one is under way. */
  lost(): void {
    const { outage, failure } = this.options;
    outage.lost('control');
    this.running ??= this.redial()
      .catch((error: Error) => failure.fail(error))
      .finally(() => (this.running = undefined));
  }

  private async redial(): Promise<void> {
    const { failure, isFinished, outage, reconnectTimeoutMs } = this.options;
    for (let pause = 0; ; pause = Math.min(MAX_PAUSE_MS, Math.max(FIRST_PAUSE_MS, 2 * pause))) {
      if (isFinished() || failure.error) return;
      if (outage.downForMs() >= reconnectTimeoutMs) throw linkDown(outage.downForMs(), 'the control connection could not be resumed', reconnectTimeoutMs);
      // Not keeping the process alive: a migration that ends meanwhile leaves no timer behind.
      if (pause > 0) await failure.race(sleep(pause, undefined, { ref: false })).catch(() => undefined);
      if (await this.attempt()) return;
    }
  }

  /**
   * One resume on a new connection. True once the session goes on over it; false when it
   * could not be had (no connection, no answer in time, a peer that cannot prove it is the
   * receiver of the hello).
   * @throws TransportError with the receiver's code when the receiver refuses the resume,
   * `ERR_RECEIVER_GONE` when nothing listens at its address any more; ProtocolError
   * `ERR_RESUME_COUNT` when it claims to have read more than was sent.
   */
  private async attempt(): Promise<boolean> {
    const { control, outage, stats } = this.options;
    const resumed = await this.dial();
    if (!resumed) return false;
    control.replace(resumed.channel, resumed.received);
    stats.controlResumes++;
    outage.restored('control');
    return true;
  }

  /**
   * Dials and sends the resume; returns the new connection and the receiver's count of
   * messages read once it answered with a valid proof, else undefined.
   */
  private async dial(): Promise<{ channel: ControlChannel; received: number } | undefined> {
    const { sessionId, secret, control } = this.options;
    let socket: Duplex | undefined;
    try {
      socket = await this.options.connect();
      const channel = new ControlChannel(socket);
      const claim = { sessionId, attempt: ++this.attempts, received: control.received };
      await channel.send({ type: 'resume', ...claim, proof: secret.prove('resume', claim) });
      const answer = await channel.next(RESUME_ANSWER_MS);
      if (answer.type === 'error') throw new RefusedResume(answer.code, `the receiver refused to resume the session: ${answer.message}`);
      const valid =
        answer.type === 'resume-ack' &&
        answer.attempt === claim.attempt &&
        sameBytes(answer.sessionId, sessionId) &&
        secret.verify('resume-ack', { sessionId, attempt: answer.attempt, received: answer.received }, answer.proof);
      if (valid) return { channel, received: answer.received };
    } catch (error) {
      if (error instanceof RefusedResume) throw error;
      if (nobodyListens(error)) throw new TransportError('ERR_RECEIVER_GONE', `the receiver no longer listens at its address: its process has ended (a migration does not survive a restart of either side)`, { cause: error as Error });
    }
    socket?.destroy();
    return undefined;
  }
}

/**
 * A refused connection (ECONNREFUSED, or ENOENT for a unix socket): the host answered that no
 * process listens there. A link that is down does not answer at all, or resets what it
 * carries; a receiver still keeping the session still listens.
 */
function nobodyListens(error: unknown): boolean {
  const cause = (error as { cause?: { code?: string } }).cause;
  return (error as { code?: string }).code === 'ERR_CONNECT' && (cause?.code === 'ECONNREFUSED' || cause?.code === 'ENOENT');
}

/** The receiver answered a resume with its error frame: no later attempt will do better. */
class RefusedResume extends TransportError {}
