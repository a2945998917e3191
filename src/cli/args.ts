/** Command-line arguments of every subcommand: --help, unknown options and bad numbers answered alike (usage, exit 2). */
import { parseArgs, type ParseArgsConfig } from 'node:util';

type ParseArgsOptionsConfig = NonNullable<ParseArgsConfig['options']>;

/** A mistake in the arguments: printed with the command's usage, exit 2. */
export class UsageError extends Error {}

export interface CommandIO {
  out: (line: string) => void;
  err: (line: string) => void;
}

export const consoleIO: CommandIO = {
  out: (line) => void process.stdout.write(`${line}\n`),
  err: (line) => void process.stderr.write(`${line}\n`),
};

export interface CommandSpec<O extends ParseArgsOptionsConfig> {
  /** The subcommand, e.g. `train`. */
  name: string;
  /** Arguments after the subcommand, e.g. `FOLDER [options]`. */
  synopsis: string;
  /** What the command does, in one line. */
  summary: string;
  options: O;
  /** The option lines of the usage text: [flags, description]. */
  help: ReadonlyArray<readonly [string, string]>;
  /** How many positional arguments the command takes (default 0). */
  positionals?: number;
}

type Parsed<O extends ParseArgsOptionsConfig> = ReturnType<typeof parseArgs<{ args: string[]; options: O; allowPositionals: true; strict: true }>>;

export function usageOf(spec: CommandSpec<ParseArgsOptionsConfig>): string {
  const rows = [...spec.help, ['-h, --help', 'print this usage and exit']] as const;
  const width = Math.max(...rows.map(([flags]) => flags.length)) + 2;
  return [
    `usage: sentinel ${spec.name} ${spec.synopsis}`,
    '',
    spec.summary,
    '',
    'options:',
    ...rows.map(([flags, text]) => `  ${flags.padEnd(width)}${text}`),
  ].join('\n');
}

/**
 * Parses argv for `spec` and runs `body` with the result. `--help` prints the usage (exit 0); an unknown
 * option, a missing or extra positional, or a UsageError thrown by `body` prints the reason and the usage
 * on stderr (exit 2).
 */
export async function runCommandLine<O extends ParseArgsOptionsConfig>(
  spec: CommandSpec<O>,
  argv: string[],
  io: CommandIO,
  body: (args: Parsed<O>) => Promise<number>,
): Promise<number> {
  const usage = usageOf(spec as CommandSpec<ParseArgsOptionsConfig>);
  const fail = (message: string): number => {
    io.err(`sentinel ${spec.name}: ${message}\n${usage}`);
    return 2;
  };
  if (argv.includes('--help') || argv.includes('-h')) {
    io.out(usage);
    return 0;
  }
  let parsed: Parsed<O>;
  try {
    parsed = parseArgs({ args: argv, options: spec.options, allowPositionals: true, strict: true });
  } catch (err) {
    // Node's advice on positionals that start with '-' does not apply to these commands.
    return fail((err as Error).message.replace(/\. To specify a positional argument[^]*$/, ''));
  }
  const allowed = spec.positionals ?? 0;
  if (parsed.positionals.length > allowed) return fail(`unexpected argument "${parsed.positionals[allowed]}"`);
  try {
    return await body(parsed);
  } catch (err) {
    if (err instanceof UsageError) return fail(err.message);
    throw err;
  }
}

export interface NumberRule {
  /** Whole numbers only (digits, no sign, no exponent). */
  integer?: boolean;
  min?: number;
  /** Exclusive lower bound: `> above` (a rate or a duration of 0 means nothing). */
  above?: number;
  max?: number;
  /** What the number counts, for the message: "seconds", "rows per second". */
  unit?: string;
}

/**
 * An option's value as a number, or undefined when it was not given; throws a UsageError naming the
 * option when it is not a number within the rule (`--rows abc` must not run with NaN).
 */
export function numberOption(name: string, raw: string | undefined, rule: NumberRule = {}): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  const wellFormed = rule.integer ? /^\d+$/.test(raw) : raw.trim() !== '' && Number.isFinite(value);
  const inRange =
    value >= (rule.min ?? Number.NEGATIVE_INFINITY) && value > (rule.above ?? Number.NEGATIVE_INFINITY) && value <= (rule.max ?? Number.POSITIVE_INFINITY);
  if (wellFormed && inRange) return value;
  const kind = rule.integer ? `a whole number${rule.unit ? ` of ${rule.unit}` : ''}` : `a number${rule.unit ? ` of ${rule.unit}` : ''}`;
  const bounds = [rule.min === undefined ? '' : `>= ${rule.min}`, rule.above === undefined ? '' : `> ${rule.above}`, rule.max === undefined ? '' : `<= ${rule.max}`].filter((b) => b !== '').join(' and ');
  throw new UsageError(`--${name} ${raw === '' ? '""' : raw} must be ${kind}${bounds ? ` ${bounds}` : ''}`);
}

/** numberOption for an option that has a default. */
export function numberOr(name: string, raw: string | undefined, fallback: number, rule: NumberRule = {}): number {
  return numberOption(name, raw, rule) ?? fallback;
}
