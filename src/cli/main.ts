#!/usr/bin/env node
// The `multifd` command: dispatches to one module per subcommand. Exit codes: 0 success,
// 1 runtime failure, 2 usage error, 130 / 143 interrupted by SIGINT / SIGTERM (after cleanup).
// Every failure is one line on stderr, `multifd <command>: <message>`, never a stack trace:
// the messages are written for the user, a trace would bury them.
import { readFileSync } from 'node:fs';
import { runBench } from './bench.js';
import { runCodecs } from './codecs.js';
import { runDemo } from './demo.js';
import { runProxy } from './proxy.js';
import { runReceive } from './receive.js';
import { runSend } from './send.js';
import { InterruptedError } from './signals.js';
import { closest, UsageError } from './usage.js';

const COMMANDS: Record<string, { summary: string; run: (args: string[]) => Promise<void> }> = {
  demo: { summary: 'a live migration over loopback with a writing guest, verified at the end', run: runDemo },
  send: { summary: 'migrate a memory image to a receiver or into a migration stream file', run: runSend },
  receive: { summary: 'receive one migration and write the image', run: runReceive },
  codecs: { summary: 'list codecs, their backend in this process and whether they can run', run: runCodecs },
  proxy: { summary: 'carry a real QEMU multifd migration over multifd channels (one proxy per side)', run: runProxy },
  bench: { summary: 'run a benchmark suite (codecs, migrate, live, seeds, hw) or write the HTML report', run: runBench },
};

function help(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `usage: multifd <command> [options]\n       multifd --version\n\ncommands:\n${lines.join('\n')}\n\nRun "multifd <command> --help" for a command's options.`;
}

/**
 * The package version. package.json is two folders up both from src/cli/main.ts (run by tsx)
 * and from the bundle dist/cli/main.js, and npm always ships it, so it is read at run time
 * rather than bundled.
 */
function version(): string {
  const manifest = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return manifest.version;
}

/** One line for the user: the first line of the message (a multi-line one is a foreign error's dump). */
function oneLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0]!.trim() || String((error as Error)?.name ?? 'error');
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(help());
    return name ? 0 : 2;
  }
  if (name === '--version' || name === '-V') {
    console.log(version());
    return 0;
  }
  const command = COMMANDS[name];
  if (!command) {
    const close = closest(name.replace(/^-+/, ''), Object.keys(COMMANDS));
    console.error(`multifd: unknown command "${name}"${close ? ` (did you mean "${close}"?)` : ''}\n\n${help()}`);
    return 2;
  }
  // A failure that escapes every await (a late socket error, a rejection nobody awaited) would
  // otherwise print Node's stack trace and exit 1 or hang: report it like any other failure.
  const escaped = (error: unknown) => {
    console.error(`multifd ${name}: ${oneLine(error)}`);
    process.exit(1);
  };
  process.on('uncaughtException', escaped);
  process.on('unhandledRejection', escaped);
  try {
    await command.run(rest);
    return 0;
  } catch (error) {
    console.error(`multifd ${name}: ${oneLine(error)}`);
    if (error instanceof UsageError) return 2;
    if (error instanceof InterruptedError) return error.exitStatus;
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
// The command is over; whatever still holds the event loop (a worker thread winding down, a
// socket the peer keeps open) must not keep a finished command on screen. The timer does not
// itself keep the process alive: a clean exit happens as soon as the loop is empty.
setTimeout(() => process.exit(), 2000).unref();
