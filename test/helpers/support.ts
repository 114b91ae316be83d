// Test support: a temp dir per suite, and failures checked by their stable code.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Test } from 'uvu';
import * as assert from 'uvu/assert';

/** A coded error as tests inspect it. */
export type CodedError = Error & { code: string; cause?: unknown };

/**
 * Runs `run` (sync or async) and returns what it threw or rejected with, after checking its
 * `code`: `code` itself, or one of several where the failure may surface in more than one way.
 */
export async function failure(run: () => unknown, code: string | readonly string[]): Promise<CodedError> {
  let caught: unknown;
  try {
    await run();
  } catch (error) {
    caught = error;
  }
  const codes = typeof code === 'string' ? [code] : code;
  assert.instance(caught, Error, `expected a failure with ${codes.join(' or ')}, got ${String(caught)}`);
  const got = (caught as Partial<CodedError>).code;
  if (typeof code === 'string') assert.is(got, code, (caught as Error).message);
  else assert.ok(got !== undefined && codes.includes(got), `expected ${codes.join(' or ')}, got ${got}: ${(caught as Error).message}`);
  return caught as CodedError;
}

/** Resolves once `condition()` holds, or after `timeoutMs` (the caller asserts what it needs). */
export async function until(condition: () => boolean, timeoutMs = 5000): Promise<void> {
  for (let waited = 0; !condition() && waited < timeoutMs; waited += 5) await new Promise((resolve) => setTimeout(resolve, 5));
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
