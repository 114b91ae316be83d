// Option parsing shared by the subcommands: node:util parseArgs, with --help text generated
// from the same option table, and usage errors that exit with status 2. parseArgs runs
// non-strict and the tokens are checked here, so that every mistake reads as one plain line
// ("unknown option --multifd-chanels (did you mean --multifd-channels?)") instead of Node's
// boilerplate about positionals.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in the command line (exit status 2). */
export class UsageError extends Error {}

/** One option of a subcommand: parseArgs' fields plus the help text. */
export type OptionSpec = NonNullable<ParseArgsConfig['options']>[string] & { description: string; valueName?: string };

/**
 * Parses `args` against `options`; prints help and returns undefined on --help.
 * @throws UsageError on unknown options (with the closest known one as a suggestion), missing
 * values, or a value given to a flag that takes none.
 */
export function parseCommand<T extends Record<string, OptionSpec>>(
  usage: string,
  options: T,
  args: string[],
): { values: Record<string, string | boolean | undefined>; positionals: string[] } | undefined {
  const config = { ...options, help: { type: 'boolean', short: 'h', description: 'show this help' } } as Record<string, OptionSpec>;
  const parsed = parseArgs({ args, options: config, allowPositionals: true, strict: false, tokens: true });
  for (const token of parsed.tokens) {
    if (token.kind !== 'option') continue;
    const spec = Object.hasOwn(config, token.name) ? config[token.name] : undefined;
    if (!spec) {
      const close = token.rawName.startsWith('--') ? closest(token.name, Object.keys(config)) : undefined;
      throw new UsageError(`unknown option ${token.rawName}${close ? ` (did you mean --${close}?)` : ''}`);
    }
    const shape = `${token.rawName} <${spec.valueName ?? 'value'}>`;
    if (spec.type === 'string' && token.value === undefined) throw new UsageError(`${token.rawName} needs a value: ${shape}`);
    // Non-strict parsing takes the next argument as the value whatever it is: `--out --json`
    // would write to a file named "--json". A negative number (`--multifd-zstd-level -3`) is fine.
    if (spec.type === 'string' && !token.inlineValue && token.value?.startsWith('--')) throw new UsageError(`${token.rawName} needs a value: ${shape}, got the option ${token.value}`);
    if (spec.type === 'boolean' && token.inlineValue) throw new UsageError(`${token.rawName} takes no value`);
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

/**
 * The candidate closest to `typed` by edit distance (a swap of two neighbours counts as one
 * edit), or undefined when none is within a third of its length: a suggestion that is far
 * off misleads more than none.
 */
export function closest(typed: string, candidates: readonly string[]): string | undefined {
  const limit = Math.max(1, Math.floor(typed.length / 3));
  let best: string | undefined;
  let bestDistance = limit + 1;
  for (const candidate of candidates) {
    const distance = editDistance(typed, candidate);
    if (distance < bestDistance) {
      best = candidate;
      bestDistance = distance;
    }
  }
  return best;
}

/** Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps. */
function editDistance(a: string, b: string): number {
  const rows = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      let d = Math.min(rows[i - 1]![j]! + 1, rows[i]![j - 1]! + 1, rows[i - 1]![j - 1]! + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d = Math.min(d, rows[i - 2]![j - 2]! + 1);
      rows[i]![j] = d;
    }
  }
  return rows[a.length]![b.length]!;
}
