// The first failure of a migration, wherever it happens (a socket, the peer's error frame, a
// worker, cancellation), latched once so every waiting step stops with that same error
// instead of hanging on a drain or a reply that will never come.

/** Holds the first error; `race` makes any wait give up as soon as one is latched. */
export class FailureLatch {
  error: Error | undefined;
  private settled = false;
  // One entry per wait in progress, removed when the wait ends: racing against a shared
  // never-settling promise instead would leave a reaction behind on it for every wait.
  private readonly waiters = new Set<(error: Error) => void>();

  /** Latches `error` unless a failure is latched already or the work has settled. */
  fail(error: Error): void {
    if (this.error || this.settled) return;
    this.error = error;
    for (const reject of this.waiters) reject(error);
    this.waiters.clear();
  }

  /** Throws the latched error, if any. */
  check(): void {
    if (this.error) throw this.error;
  }

  /**
   * `promise`, or the latched failure if that comes first. Either way `promise` gets a
   * handler: when the latch wins, its own later rejection (a drain wait failing as the socket
   * closes) is expected and must not surface as an unhandled rejection.
   */
  race<T>(promise: Promise<T>): Promise<T> {
    if (this.error) {
      promise.catch(() => {});
      return Promise.reject(this.error);
    }
    return new Promise<T>((resolve, reject) => {
      this.waiters.add(reject);
      promise.then(
        (value) => {
          this.waiters.delete(reject);
          resolve(value);
        },
        (error: unknown) => {
          this.waiters.delete(reject);
          reject(error);
        },
      );
    });
  }

  /** The work finished: later events (a peer closing) are no longer failures. */
  settle(): void {
    this.settled = true;
  }
}
