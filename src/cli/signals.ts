// Ctrl-C and SIGTERM during a migration: cancel it through its AbortSignal, let it clean up
// (no `.partial` file stays behind on either side), then exit 128 + the signal number with one
// line. Outside a migration the handlers are not installed, so Node's default applies.
import { UsageError } from './usage.js';

const EXIT_STATUS = { SIGINT: 130, SIGTERM: 143 } as const;
type HandledSignal = keyof typeof EXIT_STATUS;

/** A command stopped by SIGINT or SIGTERM after its cleanup; exits 130 or 143. */
export class InterruptedError extends Error {
  readonly exitStatus: number;

  constructor(readonly signal: HandledSignal, detail?: string) {
    super(`interrupted by ${signal}: migration cancelled${detail ? `, ${detail}` : ''}`);
    this.exitStatus = EXIT_STATUS[signal];
  }
}

/**
 * Runs `work` with SIGINT and SIGTERM turned into an abort of the signal it is given; once
 * `work` has settled after such an abort, throws {@link InterruptedError} with `detail()` (what
 * was cleaned up). A second signal while cleaning up exits at once, as a user pressing Ctrl-C
 * twice expects. The handlers are removed when `work` settles.
 */
export async function interruptible<T>(work: (signal: AbortSignal) => Promise<T>, detail?: () => string | undefined): Promise<T> {
  const controller = new AbortController();
  let received: HandledSignal | undefined;
  const onSignal = (signal: HandledSignal) => {
    if (received) {
      process.stderr.write(`multifd: ${signal} again: exiting without waiting for the cleanup\n`);
      process.exit(EXIT_STATUS[signal]);
    }
    received = signal;
    controller.abort(new InterruptedError(signal));
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await work(controller.signal);
  } catch (error) {
    if (received && !(error instanceof UsageError)) throw new InterruptedError(received, detail?.());
    throw error;
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
  }
}
