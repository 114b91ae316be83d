#!/usr/bin/env node
// The `multifd` command: dispatches to one module per subcommand. Exit codes: 0 success,
// 1 runtime failure, 2 usage error.
import { runBench } from './bench.js';
import { runCodecs } from './codecs.js';
import { runDemo } from './demo.js';
import { runReceive } from './receive.js';
import { runSend } from './send.js';
import { UsageError } from './usage.js';

const COMMANDS: Record<string, { summary: string; run: (args: string[]) => Promise<void> }> = {
  demo: { summary: 'a live migration over loopback with a writing guest, verified at the end', run: runDemo },
  send: { summary: 'migrate a memory image to a receiver or into a migration stream file', run: runSend },
  receive: { summary: 'receive one migration and write the image', run: runReceive },
  codecs: { summary: 'list codecs, their backend in this process and whether they can run', run: runCodecs },
  bench: { summary: 'run a benchmark suite (codecs, migrate, live, seeds, hw) or write the HTML report', run: runBench },
};

function help(): string {
  const lines = Object.entries(COMMANDS).map(([name, c]) => `  ${name.padEnd(8)} ${c.summary}`);
  return `usage: multifd <command> [options]\n\ncommands:\n${lines.join('\n')}\n\nRun "multifd <command> --help" for a command's options.`;
}

async function main(argv: string[]): Promise<number> {
  const [name, ...rest] = argv;
  if (!name || name === '--help' || name === '-h') {
    console.log(help());
    return name ? 0 : 2;
  }
  const command = COMMANDS[name];
  if (!command) {
    console.error(`multifd: unknown command "${name}"\n\n${help()}`);
    return 2;
  }
  try {
    await command.run(rest);
    return 0;
  } catch (error) {
    if (error instanceof UsageError) {
      console.error(`multifd ${name}: ${error.message}`);
      return 2;
    }
    console.error(`multifd ${name}: ${(error as Error).message}`);
    return 1;
  }
}

process.exitCode = await main(process.argv.slice(2));
