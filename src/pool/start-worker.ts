// Starting a worker thread from this package's own entry files, whether they are the
// TypeScript sources (tests and benchmarks run under tsx) or the esbuild bundle. Node 20 does
// not apply tsx's --import hook to a worker's own entry file, so a .ts entry is loaded through
// tsx's API from a one-line eval'd module instead.
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** Starts a worker running `entry` (a file: URL or href; `.ts` needs tsx installed, as in development). */
export function startWorker(entry: URL | string, options: WorkerOptions = {}): Worker {
  const href = entry instanceof URL ? entry.href : entry;
  if (!href.endsWith('.ts')) return new Worker(new URL(href), options);
  const url = JSON.stringify(href);
  return new Worker(`import('tsx/esm/api').then((tsx) => tsx.tsImport(${url}, ${url}))`, { ...options, eval: true });
}
