// Option parsing shared by the subcommands: node:util parseArgs, with --help text generated
// from the same option table, and usage errors that exit with status 2.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in the command line (exit status 2). */
export class UsageError extends Error {}

/** One option of a subcommand: parseArgs' fields plus the help text. */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & { description: string; valueName?: string };

/**
 * Parses `args` against `options`; prints help and returns undefined on --help.
 * @throws UsageError on unknown options or missing values.
 */
export function parseCommand<T extends Record<string, OptionSpec>>(
  usage: string,
  options: T,
  args: string[],
): { values: Record<string, string | boolean | undefined>; positionals: string[] } | undefined {
  const config = { ...options, help: { type: 'boolean', short: 'h', description: 'show this help' } } as Record<string, OptionSpec>;
  let parsed;
  try {
    parsed = parseArgs({ args, options: config, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
  if (parsed.values.help) {
    const rows = Object.entries(config).map(([name, o]) => {
      const flag = `--${name}${o.type === 'string' ? ` <${o.valueName ?? 'value'}>` : ''}`;
      return `  ${flag.padEnd(24)} ${o.description}`;
    });
    console.log(`usage: ${usage}\n\noptions:\n${rows.join('\n')}`);
    return undefined;
  }
  return { values: parsed.values as Record<string, string | boolean | undefined>, positionals: parsed.positionals };
}
