// The seeds suite's CLI rows: one migration as a user runs it, file to file, through the built
// command (dist/cli/main.js) in two processes, `multifd receive --listen … --out FILE` and
// `multifd send --in IMAGE --to …`. The wall time counts from spawning the receiver to both
// processes' exit, start-up included, which is what the in-memory row leaves out. CPU comes
// from GNU time (`/usr/bin/time`, Debian package `time`) wrapped around each command: Node
// reports no resource usage for a child, and time's wait4() counts every thread of it.
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot } from '../src/wasm/load.js';

/** The built CLI the rows run; `npm run build` makes it. */
export const CLI_BUNDLE = join(packageRoot(), 'dist', 'cli', 'main.js');
const GNU_TIME = '/usr/bin/time';
/** A receiver whose sender never came (it failed to start) gives up after this long. */
const ACCEPT_TIMEOUT_MS = 30_000;

/** One file-to-file migration's parameters, as the in-memory row of the same cell has them. */
export interface CliFileOptions {
  /** The memory image the in-memory row fills its memory from. */
  readonly image: string;
  readonly bytes: number;
  readonly codec: string;
  readonly level?: number;
  readonly channels: number;
  /** Worker threads on each side (`--threads`). */
  readonly threads: number;
  readonly zeroPageDetection: string;
  /** Bytes per second, 0 for unlimited. */
  readonly maxBandwidth: number;
}

/** What one run measured; CPU is null without GNU time. */
export interface CliFileRun {
  readonly wallMs: number;
  readonly sendCpuSeconds: number | null;
  readonly recvCpuSeconds: number | null;
}

/**
 * Whether the CLI rows can run here (the bundle is built), and what the run's notes should say:
 * no bundle, a bundle older than the sources (`npm run bench` runs the sources, the rows the
 * last build), no GNU time (no CPU figures).
 */
export function cliFileCheck(): { available: boolean; notes: string[] } {
  if (!existsSync(CLI_BUNDLE)) return { available: false, notes: [`${CLI_BUNDLE} not found: no CLI file-to-file rows (run npm run build first)`] };
  const notes: string[] = [];
  const sources = join(packageRoot(), 'src');
  const built = statSync(CLI_BUNDLE).mtimeMs;
  const newer = readdirSync(sources, { recursive: true, encoding: 'utf8' }).filter((name) => name.endsWith('.ts') && statSync(join(sources, name)).mtimeMs > built);
  if (newer.length) notes.push(`${CLI_BUNDLE} is older than ${newer.length} file(s) in src/ (e.g. src/${newer[0]}): the CLI rows measure the last npm run build`);
  if (!cliCpuMeasured()) notes.push(`${GNU_TIME} not found (Debian package time): the CLI rows have no CPU figures`);
  return { available: true, notes };
}

/** Whether /usr/bin/time is there to count a command's CPU time. */
export function cliCpuMeasured(): boolean {
  return existsSync(GNU_TIME);
}

/**
 * Migrates `image` to a temporary file through the built CLI and checks the copy.
 * @throws Error with both commands' exit status and output when either failed.
 */
export async function cliFileMigrate(options: CliFileOptions): Promise<CliFileRun> {
  const dir = mkdtempSync(join(tmpdir(), 'multifd-bench-cli-'));
  const out = join(dir, 'image.out');
  try {
    const started = performance.now();
    const receiver = command(dir, 'receive', ['--listen', 'tcp:127.0.0.1:0', '--out', out, '--threads', String(options.threads), '--accept-timeout', String(ACCEPT_TIMEOUT_MS)]);
    // The sender can connect only once the receiver listens; the wait is part of the wall time
    // (a user's script waits for the same line).
    const listening = await receiver.printed(/listening on (tcp:\S+)/);
    if (!listening) {
      const { code, signal, output } = await receiver.exited;
      throw new Error(`CLI file to file: receive exited ${code ?? signal} before listening\n${output}`);
    }
    const sender = command(dir, 'send', [
      '--in', options.image,
      '--to', listening[1]!,
      '--multifd-channels', String(options.channels),
      '--multifd-compression', options.codec,
      // QEMU's level parameters are named after the method: multifd-zlib-level, multifd-zstd-level.
      ...(options.level === undefined ? [] : [`--multifd-${options.codec}-level`, String(options.level)]),
      '--zero-page-detection', options.zeroPageDetection,
      ...(options.maxBandwidth ? ['--max-bandwidth', String(options.maxBandwidth)] : []),
      '--threads', String(options.threads),
      '--quiet',
    ]);
    const [received, sent] = await Promise.all([receiver.exited, sender.exited]);
    const wallMs = Math.round(performance.now() - started);
    if (received.code !== 0 || sent.code !== 0) {
      throw new Error(`CLI file to file failed: receive exited ${received.code ?? received.signal}, send exited ${sent.code ?? sent.signal}\n${received.output}\n${sent.output}`);
    }
    // The copy is checked by the CLI itself: the receiver compares the whole image's checksum
    // with the sender's, exits 0 only when they match, and only then gives OUT its final name
    // (it is OUT.partial until then). Here: that name, and the size, outside the timed span.
    const size = existsSync(out) ? statSync(out).size : -1;
    if (size !== options.bytes) throw new Error(`CLI file to file: ${out} holds ${size} bytes, the image ${options.bytes}`);
    return { wallMs, sendCpuSeconds: sent.cpuSeconds, recvCpuSeconds: received.cpuSeconds };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** How a command ended, with its output for an error message and its CPU time. */
export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
  output: string;
  cpuSeconds: number | null;
}

/**
 * `node dist/cli/main.js NAME ARGS` under GNU time when it is installed (its figures go to a
 * file in `dir`, so the command's own stderr stays its own; one command per `dir`). `pid` is the
 * spawned process's: GNU time's when it wraps the command, node's otherwise.
 */
export function command(dir: string, name: string, args: string[]): { pid: number; exited: Promise<Exit>; printed: (pattern: RegExp) => Promise<RegExpExecArray | null> } {
  const timeFile = join(dir, `${name}.time`);
  const node = [process.execPath, CLI_BUNDLE, name, ...args];
  const [file, ...argv] = cliCpuMeasured() ? [GNU_TIME, '-f', '%U %S', '-o', timeFile, ...node] : node;
  const child = spawn(file!, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const watchers = new Set<() => void>();
  for (const stream of [child.stdout, child.stderr]) stream.on('data', (chunk: Buffer) => ((output += chunk), watchers.forEach((check) => check())));
  const exited = new Promise<Exit>((resolve) =>
    child.on('close', (code, signal) => resolve({ code, signal, output: `[${name}] ${output.trim()}`, cpuSeconds: cpuSecondsOf(timeFile) })),
  );
  // Resolves with the first match in the output so far, or null once the command has exited.
  const printed = (pattern: RegExp) =>
    new Promise<RegExpExecArray | null>((resolve) => {
      const check = () => {
        const match = pattern.exec(output);
        if (match && watchers.delete(check)) resolve(match);
      };
      watchers.add(check);
      check();
      void exited.then(() => watchers.delete(check) && resolve(null));
    });
  return { pid: child.pid!, exited, printed };
}

/** User + system seconds from GNU time's `-o` file: its last line (a failed command's status comes first). */
function cpuSecondsOf(timeFile: string): number | null {
  if (!existsSync(timeFile)) return null;
  const [user, system] = readFileSync(timeFile, 'utf8').trim().split('\n').at(-1)!.split(' ').map(Number);
  return user !== undefined && system !== undefined && Number.isFinite(user + system) ? Number((user + system).toFixed(2)) : null;
}
