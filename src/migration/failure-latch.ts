// The first failure of a migration, wherever it happens (a socket, the peer's error frame, a
// worker, cancellation), latched once so every waiting step stops with that same error
// instead of hanging on a drain or a reply that will never come.

/** Holds the first error; `race` makes any wait give up as soon as one is latched. */
export class FailureLatch {
  error: Error | undefined;
  private settled = false;
  private reject!: (error: Error) => void;
  private readonly failed = new Promise<never>((_, reject) => (this.reject = reject));

  constructor() {
    this.failed.catch(() => {}); // observed through race(); never an unhandled rejection
  }

  /** Latches `error` unless a failure is latched already or the work has settled. */
  fail(error: Error): void {
    if (this.error || this.settled) return;
    this.error = error;
    this.reject(error);
  }

  /** Throws the latched error, if any. */
  check(): void {
    if (this.error) throw this.error;
  }

  /** `promise`, or the latched failure if that comes first. */
  race<T>(promise: Promise<T>): Promise<T> {
    return Promise.race([promise, this.failed]);
  }

  /** The work finished: later events (a peer closing) are no longer failures. */
  settle(): void {
    this.settled = true;
  }
}
