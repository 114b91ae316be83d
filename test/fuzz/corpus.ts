// Fuzz corpora on disk: the committed seeds in test/fuzz/corpus/<target>/, and inputs a run
// keeps (new coverage, crashes, hangs), each file named by its content hash.
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/** The committed seed corpus of a target. */
export const corpusDir = (target: string): string => new URL(`./corpus/${target}/`, import.meta.url).pathname;

/** Reads a target's seed corpus in name order (empty when it has none). */
export function readCorpus(target: string): Uint8Array[] {
  const dir = corpusDir(target);
  let names: string[];
  try {
    names = readdirSync(dir).sort();
  } catch {
    return [];
  }
  return names.map((name) => new Uint8Array(readFileSync(join(dir, name))));
}

/** Writes `data` into `dir` under its content hash (a rerun does not duplicate it); returns the path. */
export function saveInput(dir: string, data: Uint8Array, prefix = ''): string {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, prefix + createHash('sha1').update(data).digest('hex'));
  writeFileSync(path, data);
  return path;
}
