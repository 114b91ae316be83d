// The benchmark's receiving peer: a child process running bench-receiver.ts, driven by one
// JSON line per command. Keeping one child for a whole run saves its start-up per migration.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { migrate, type MigrateOptions } from '../src/migration/sender.js';
import type { MigrationStats } from '../src/migration/stats.js';
import { connect, parseEndpoint, parsePskFile } from '../src/transport/index.js';
import { packageRoot } from '../src/wasm/load.js';

/** The child's answers, in order. */
type Answer = { address?: string; received?: { normalPages: number; zeroPages: number }; cpuMicros?: number; rawMs?: number; error?: string };

/** A receiver in another process. */
export class BenchPeer {
  private readonly child: ChildProcessWithoutNullStreams;
  private readonly answers: Answer[] = [];
  /** Who waits for the next answers, in the order they asked. */
  private readonly waiting: Array<(answer: Answer) => void> = [];

  constructor() {
    this.child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', join(packageRoot(), 'benchmarks', 'bench-receiver.ts')], { stdio: ['pipe', 'pipe', 'pipe'] });
    this.child.stderr.pipe(process.stderr);
    createInterface({ input: this.child.stdout }).on('line', (line) => {
      const answer = JSON.parse(line) as Answer;
      const waiting = this.waiting.shift();
      if (waiting) waiting(answer);
      else this.answers.push(answer);
    });
  }

  /** Starts a receiver with `threads` workers (under TLS with `psk`, hex); returns its address and its outcome to come. */
  async receive(threads: number, psk?: string): Promise<{ address: string; done: Promise<Answer> }> {
    this.child.stdin.write(JSON.stringify({ op: 'receive', threads, psk }) + '\n');
    const { address } = await this.next();
    return { address: address!, done: this.next() };
  }

  /**
   * One migration to a fresh receiver with `threads` workers in the child (every connection
   * under TLS with `psk`, hex, when given): the sender's statistics and the receiver's CPU time.
   * @throws Error when the receiver failed; the sender's error when it failed (once the
   * receiver answered too, so that its answer is not taken for the next command's).
   */
  async migrate(threads: number, options: Omit<MigrateOptions, 'connect'>, psk?: string): Promise<{ stats: MigrationStats; recvCpuMicros: number }> {
    const tls = psk ? { psk: parsePskFile(`bench:${psk}`) } : undefined;
    const receiver = await this.receive(threads, psk);
    const sending = migrate({ ...options, connect: () => connect(parseEndpoint(receiver.address), { tls }) });
    const [sent, answer] = await Promise.all([sending.then((stats) => ({ stats }), (error: Error) => ({ error })), receiver.done]);
    if ('error' in sent) throw sent.error;
    const { stats } = sent;
    if (answer.error) throw new Error(`receiver failed: ${answer.error}`);
    return { stats, recvCpuMicros: answer.cpuMicros! };
  }

  /** Starts a plain TCP sink for `bytes`; returns its address and the receive time to come. */
  async raw(bytes: number): Promise<{ address: string; done: Promise<Answer> }> {
    this.child.stdin.write(JSON.stringify({ op: 'raw', bytes }) + '\n');
    const { address } = await this.next();
    return { address: address!, done: this.next() };
  }

  /** Ends the child. */
  async close(): Promise<void> {
    this.child.stdin.end();
    await new Promise((resolve) => this.child.once('exit', resolve));
  }

  private next(): Promise<Answer> {
    const queued = this.answers.shift();
    if (queued) return Promise.resolve(queued);
    return new Promise((resolve) => this.waiting.push(resolve));
  }
}
