// Page runs: how the wire names pages. A run (first, count) covers pages first .. first+count-1
// of one block, so a long stretch of zero pages costs 8 bytes however long it is. The same
// rules hold for packets and for legacy zero-page control frames, so both check here.
import type { ByteReader, ByteWriter } from './byte-cursor.js';

/** Pages `first` to `first + count - 1` of a block (page indices, not byte offsets). */
export interface PageRun {
  first: number;
  count: number;
}

/** Total pages covered by `runs`. */
export function runsPageCount(runs: readonly PageRun[]): number {
  let pages = 0;
  for (const run of runs) pages += run.count;
  return pages;
}

/** What is wrong with a run: outside its block (or empty), or overlapping/out of order. */
export type RunFault = 'page-index' | 'overlap';

/** Builds the error for a bad run; `field` names the run, e.g. `zeroRuns[3].first`. */
export type RunError = (fault: RunFault, field: string, expected: string | number, got: string | number) => Error;

/** Whether `page` directly follows the last run of `runs` (so appending it extends that run). */
export function extendsLastRun(runs: readonly PageRun[], page: number): boolean {
  const last = runs[runs.length - 1];
  return last !== undefined && last.first + last.count === page;
}

/** Appends `page` to ascending `runs`, extending the last run when it follows it. */
export function appendPage(runs: PageRun[], page: number): void {
  if (extendsLastRun(runs, page)) runs[runs.length - 1]!.count++;
  else runs.push({ first: page, count: 1 });
}

/**
 * Checks that every run is non-empty, ends within `pageCount` pages, and starts after the
 * previous one ends (ascending, non-overlapping). `label` names the list in errors.
 */
export function checkRuns(runs: readonly PageRun[], label: string, pageCount: number, fail: RunError): void {
  let previousEnd = 0;
  for (let i = 0; i < runs.length; i++) {
    const { first, count } = runs[i]!;
    if (count < 1) throw fail('page-index', `${label}[${i}].count`, '>= 1', count);
    if (first + count > pageCount) {
      throw fail('page-index', `${label}[${i}].first + ${label}[${i}].count`, `<= ${pageCount}`, first + count);
    }
    if (i > 0 && first < previousEnd) throw fail('overlap', `${label}[${i}].first`, `>= ${previousEnd}`, first);
    previousEnd = first + count;
  }
}

/**
 * Checks that two lists, each already ascending and non-overlapping, share no page: one walk
 * over both, as in a merge, so a packet's 5120 runs cost linear time.
 */
export function checkDisjoint(
  a: readonly PageRun[],
  aLabel: string,
  b: readonly PageRun[],
  bLabel: string,
  fail: RunError,
): void {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    if (x.first + x.count <= y.first) i++;
    else if (y.first + y.count <= x.first) j++;
    else {
      throw fail('overlap', `${bLabel}[${j}]`, `no page shared with ${aLabel}[${i}] (${x.first}+${x.count})`, `${y.first}+${y.count}`);
    }
  }
}

/** Writes `runs` as (u32 first, u32 count) pairs. */
export function writeRuns(w: ByteWriter, runs: readonly PageRun[], label: string): void {
  for (let i = 0; i < runs.length; i++) {
    const run = runs[i]!;
    w.u32(run.first, `${label}[${i}].first`);
    w.u32(run.count, `${label}[${i}].count`);
  }
}

/** Reads `count` runs written by {@link writeRuns}. */
export function readRuns(r: ByteReader, count: number, label: string): PageRun[] {
  const runs: PageRun[] = [];
  for (let i = 0; i < count; i++) runs.push({ first: r.u32(`${label}[${i}].first`), count: r.u32(`${label}[${i}].count`) });
  return runs;
}
