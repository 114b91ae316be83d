// Test support: a temp dir per suite, and failures checked by their stable code.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';

/** A coded error as tests inspect it. */
export type CodedError = Error & { code: string; cause?: unknown };

/** Runs `run` (sync or async) and returns what it threw or rejected with, after checking its `code`. */
export async function failure(run: () => unknown, code: string): Promise<CodedError> {
  let caught: unknown;
  try {
    await run();
  } catch (error) {
    caught = error;
  }
  assert.instance(caught, Error, `expected a failure with ${code}, got ${String(caught)}`);
  assert.is((caught as Partial<CodedError>).code, code, (caught as Error).message);
  return caught as CodedError;
}

/** A temp dir made before the suite and removed after it; `path(name)` names a file in it. */
export function useTempDir(test: Test, prefix: string): { path(name: string): string } {
  let dir = '';
  test.before(async () => {
    dir = await mkdtemp(join(tmpdir(), `multifd-${prefix}-`));
  });
  test.after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  return { path: (name) => join(dir, name) };
}
