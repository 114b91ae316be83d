// The `multifd` command as a child process, the way a user runs it: spawn it from the sources
// (node --import tsx src/cli/main.ts), watch its output as it comes, and check how it ended.
import { spawn, type ChildProcess } from 'node:child_process';
import * as assert from 'uvu/assert';

/** The CLI's entry point in the sources. */
export const MAIN = new URL('../../src/cli/main.ts', import.meta.url).pathname;

/** How a run ended. */
export interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  /** From spawn to exit, in ms; from the signal to exit when it was stopped with {@link Running.kill}. */
  ms: number;
  /** The signal {@link Running.kill} sent, if any. */
  killedWith?: NodeJS.Signals;
}

/** A run in progress. */
export interface Running {
  child: ChildProcess;
  /** Settles when the process has exited and its output is closed. */
  done: Promise<Run>;
  /**
   * Resolves with the first match of `pattern` in stdout or stderr, as soon as it appears;
   * rejects if the process exits first, or after `timeoutMs` (with what it printed).
   */
  waitFor(pattern: RegExp, timeoutMs?: number): Promise<RegExpExecArray>;
  /** Sends `signal`; the run's `ms` then counts from here. */
  kill(signal: NodeJS.Signals): void;
}

/** Starts `multifd ARGS`. */
export function startMultifd(args: string[]): Running {
  let started = performance.now();
  let killedWith: NodeJS.Signals | undefined;
  const child = spawn(process.execPath, ['--import', 'tsx', MAIN, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  const watchers = new Set<() => void>();
  const changed = () => watchers.forEach((check) => check());
  child.stdout!.on('data', (chunk: Buffer) => ((stdout += chunk), changed()));
  child.stderr!.on('data', (chunk: Buffer) => ((stderr += chunk), changed()));
  const done = new Promise<Run>((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr, ms: Math.round(performance.now() - started), killedWith })));
  const waitFor = (pattern: RegExp, timeoutMs = 20_000) =>
    new Promise<RegExpExecArray>((resolve, reject) => {
      const give = (error: Error) => {
        if (!watchers.delete(check)) return;
        clearTimeout(timer);
        reject(error);
      };
      const check = () => {
        const match = pattern.exec(stdout) ?? pattern.exec(stderr);
        if (!match || !watchers.delete(check)) return;
        clearTimeout(timer);
        resolve(match);
      };
      const timer = setTimeout(() => give(new Error(`multifd did not print ${pattern} within ${timeoutMs} ms:\n${stderr}${stdout}`)), timeoutMs);
      watchers.add(check);
      check();
      void done.then((run) => give(new Error(`multifd exited (${run.code ?? run.signal}) before printing ${pattern}:\n${run.stderr}${run.stdout}`)));
    });
  const kill = (signal: NodeJS.Signals) => {
    started = performance.now();
    killedWith = signal;
    child.kill(signal);
  };
  return { child, done, waitFor, kill };
}

/** Runs `multifd ARGS` to the end. */
export function multifd(args: string[]): Promise<Run> {
  return startMultifd(args).done;
}

/** A receiver listening on an ephemeral loopback port, once it said where. */
export async function receiver(out: string, extra: string[] = []): Promise<Running & { address: string }> {
  const running = startMultifd(['receive', '--listen', 'tcp:127.0.0.1:0', '--out', out, '--threads', '2', ...extra]);
  const [, address] = await running.waitFor(/listening on (tcp:\S+)/);
  return { ...running, address: address! };
}

/**
 * Checks that a run failed the way a user should see it: exit status `code`, exactly one line
 * `multifd <command>: …` matching `message`, no stack trace, and an exit within `withinMs` of
 * its start, or of the signal that stopped it (generous: it tells "at once" from a 30 s hang,
 * not fast from slow). Logs the time taken.
 */
export function failedCleanly(run: Run, command: string, code: number, message: RegExp, withinMs = 10_000, label = command): void {
  const lines = run.stderr.split('\n').filter((line) => line.startsWith(`multifd ${command}:`));
  console.log(`    ${label}: exit ${run.code ?? run.signal} ${run.ms} ms after ${run.killedWith ?? 'starting'}`);
  assert.is(run.code, code, `exit status\n${run.stderr}`);
  assert.is(lines.length, 1, `one "multifd ${command}:" line\n${run.stderr}`);
  assert.match(lines[0]!, message);
  assert.not.match(run.stderr, /^ {4}at /m, `a stack trace\n${run.stderr}`);
  assert.not.match(run.stderr, /node:internal/, `a stack trace\n${run.stderr}`);
  assert.ok(run.ms < withinMs, `exited after ${run.ms} ms, expected under ${withinMs} ms`);
}
