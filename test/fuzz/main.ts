// `npm run fuzz -- --target packet --seconds 240`: runs one fuzz target (or `all`, one after
// another) from its seed corpus in test/fuzz/corpus/<target>/. The fuzzer runs on a worker
// thread and this thread is its watchdog: an input that keeps the target busy longer than
// --hang-seconds is saved and reported as a hang, as libFuzzer's -timeout does, and so is one
// that takes the thread down. New corpus inputs, crashes and hangs go under --out (default: a
// temp dir), never into the repository; copy a crash into the seed corpus once it is fixed.
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, workerData } from 'node:worker_threads';
import { startWorker } from '../../src/pool/start-worker.js';
import { readCorpus, saveInput } from './corpus.js';
import { fuzz, type FuzzStats } from './engine.js';
import { fuzzTargets } from './targets.js';

/** The largest input any target makes; the watchdog's copy of the current input has this room. */
const MAX_INPUT_BYTES = 1 << 20;

interface Job {
  target: string;
  seconds: number;
  seed: number;
  out: string;
  /** [executions, current input length] then the current input's bytes. */
  shared: SharedArrayBuffer;
}

type WorkerMessage = { progress: FuzzStats } | { done: FuzzStats };

function summary(stats: FuzzStats): string {
  const rate = stats.seconds ? Math.round(stats.executions / stats.seconds) : 0;
  return `${stats.target}: ${stats.seconds} s, ${stats.executions} executions (${rate}/s), ${stats.features} features, ` +
    `${stats.blocksCovered}/${stats.blocksKnown} blocks, corpus ${stats.corpus}, crashes ${stats.crash ? 1 : 0}`;
}

/** Runs one target on a worker under the watchdog; resolves with its figures (a hang counts as a crash). */
function runJob(job: Job, hangSeconds: number): Promise<FuzzStats> {
  const worker = startWorker(new URL(import.meta.url), { workerData: job });
  const counters = new Int32Array(job.shared, 0, 2);
  return new Promise((resolveJob, rejectJob) => {
    let settled = false;
    const resolve = (stats: FuzzStats) => ((settled = true), resolveJob(stats));
    const reject = (error: Error) => ((settled = true), rejectJob(error));
    let lastCount = -1;
    let stuckSince = Date.now();
    /** Ends the job on the input the worker is running: it hangs, or took the worker down. */
    const stopOnCurrentInput = (kind: 'hang' | 'crash', why: string) => {
      clearInterval(watchdog);
      const input = new Uint8Array(job.shared, 8, Atomics.load(counters, 1)).slice();
      resolve({ target: job.target, seconds: 0, executions: Atomics.load(counters, 0), features: 0, blocksCovered: 0, blocksKnown: 0, corpus: 0, refusals: {}, crash: { error: `${kind}: ${why}`, input } });
    };
    const watchdog = setInterval(() => {
      const count = Atomics.load(counters, 0);
      if (count !== lastCount) {
        lastCount = count;
        stuckSince = Date.now();
      } else if (Date.now() - stuckSince >= hangSeconds * 1000) {
        stopOnCurrentInput('hang', `one input ran over ${hangSeconds} s`);
        void worker.terminate();
      }
    }, 1000);
    worker.on('message', (message: WorkerMessage) => {
      if ('progress' in message) {
        process.stderr.write(`\r${summary(message.progress)}   `);
        return;
      }
      clearInterval(watchdog);
      process.stderr.write('\n');
      resolve(message.done);
    });
    worker.on('error', (error) => {
      clearInterval(watchdog);
      reject(error);
    });
    // After its last message a worker exits; exiting before it means an input killed it.
    worker.on('exit', (code) => settled || stopOnCurrentInput('crash', `the fuzzing thread died (exit code ${code})`));
  });
}

/** Worker side: fuzz one target, mirroring progress into the shared buffer for the watchdog. */
function fuzzInWorker(job: Job): void {
  const factory = fuzzTargets().get(job.target);
  if (!factory) throw new Error(`unknown target ${job.target}`);
  const counters = new Int32Array(job.shared, 0, 2);
  const current = new Uint8Array(job.shared, 8);
  const stats = fuzz(factory(), {
    seconds: job.seconds,
    seed: job.seed,
    corpus: readCorpus(job.target),
    onNewInput: (data) => saveInput(join(job.out, job.target, 'corpus'), data),
    beforeRun(data) {
      current.set(data.subarray(0, MAX_INPUT_BYTES));
      Atomics.store(counters, 1, Math.min(data.byteLength, MAX_INPUT_BYTES));
      Atomics.add(counters, 0, 1);
    },
    onProgress: (progress) => parentPort!.postMessage({ progress }),
  });
  parentPort!.postMessage({ done: stats });
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      target: { type: 'string', default: 'all' },
      seconds: { type: 'string', default: '60' },
      seed: { type: 'string' },
      out: { type: 'string', default: join(tmpdir(), 'multifd-fuzz') },
      'hang-seconds': { type: 'string', default: '10' },
      list: { type: 'boolean', default: false },
    },
  });
  const names = [...fuzzTargets().keys()];
  if (values.list) return void console.log(names.join('\n'));
  const targets = values.target === 'all' ? names : values.target.split(',');
  for (const target of targets) if (!names.includes(target)) throw new Error(`unknown target ${target} (known: ${names.join(', ')})`);
  let crashes = 0;
  for (const target of targets) {
    const seed = Number(values.seed ?? Date.now() % 2 ** 31);
    const job: Job = { target, seconds: Number(values.seconds), seed, out: values.out, shared: new SharedArrayBuffer(8 + MAX_INPUT_BYTES) };
    const stats = await runJob(job, Number(values['hang-seconds']));
    console.log(summary(stats));
    console.log(JSON.stringify({ ...stats, crash: stats.crash?.error, seed, corpusOut: join(values.out, target, 'corpus') }));
    if (stats.crash) {
      crashes++;
      console.log(`crash input: ${saveInput(join(values.out, target), stats.crash.input, 'crash-')}\n${stats.crash.error}`);
    }
  }
  process.exitCode = crashes ? 1 : 0;
}

if (isMainThread) await main();
else fuzzInWorker(workerData as Job);
