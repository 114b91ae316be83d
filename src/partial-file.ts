// Files that must never look complete before they are: an image being received and a
// migration stream being written both go to `PATH.partial` and take their final name only once
// they are whole and on disk. The rename is atomic, so a reader sees either no PATH or a whole
// one; a crash, an abort or a failure leaves at most a `.partial` behind, never a short PATH.
import { accessSync, closeSync, constants, fsyncSync, openSync, statSync } from 'node:fs';
import { rename, unlink } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { MultifdError } from './errors.js';

/** The name a file carries until it is complete: `path + '.partial'`. */
export function partialPathOf(path: string): string {
  return `${path}.partial`;
}

/**
 * Gives a flushed and closed `.partial` file its final name, replacing any file there, and
 * makes the rename itself durable (best effort: some platforms cannot fsync a folder).
 */
export async function commitPartial(partialPath: string, path: string): Promise<void> {
  await rename(partialPath, path);
  try {
    const fd = openSync(dirname(path), 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // The file is complete and renamed; only its durability across a power cut is weaker.
  }
}

/** Removes a `.partial` file; one that is not there (never created, removed already) is fine. */
export async function removePartial(partialPath: string): Promise<void> {
  await unlink(partialPath).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'ENOENT') throw error;
  });
}

/**
 * Checks up front that `path` and its `.partial` can be created: the folder exists, is a folder
 * and is writable, and `path` is not something a rename would clobber (a folder, a device).
 * Lets a command fail at start-up instead of when the data arrives.
 * @throws MultifdError `ERR_OUTPUT_PATH` saying what is wrong, naming `what` (e.g. `--out`).
 */
export function checkOutputPath(path: string, what: string): void {
  const folder = dirname(resolve(path));
  const fail = (why: string) => {
    throw new MultifdError('ERR_OUTPUT_PATH', `${what} ${path}: ${why}`, { context: { path } });
  };
  const folderStats = statSync(folder, { throwIfNoEntry: false });
  if (!folderStats) fail(`the folder ${folder} does not exist`);
  if (!folderStats!.isDirectory()) fail(`${folder} is not a folder`);
  try {
    accessSync(folder, constants.W_OK | constants.X_OK);
  } catch {
    fail(`the folder ${folder} is not writable`);
  }
  const existing = statSync(path, { throwIfNoEntry: false });
  if (existing && !existing.isFile()) fail('exists and is not a regular file (writing there would replace it)');
}
