import { describe, expect, it } from 'vitest';
import { UsageError, numberOption, runCommandLine, type CommandIO } from '../../src/cli/args.js';

function capture(): { io: CommandIO; out: string[]; err: string[] } {
  const out: string[] = [];
  const err: string[] = [];
  return { io: { out: (l) => out.push(l), err: (l) => err.push(l) }, out, err };
}

const spec = {
  name: 'probe',
  synopsis: '[options] THING',
  summary: 'a command for the test',
  options: { count: { type: 'string' }, loud: { type: 'boolean' } },
  help: [
    ['--count N', 'how many'],
    ['--loud', 'louder'],
  ],
  positionals: 1,
} as const;

describe('command-line numbers', () => {
  it.each([
    ['12', { integer: true, min: 1 }, 12],
    ['0', { integer: true, min: 0, max: 65_535 }, 0],
    ['2.5', { above: 0 }, 2.5],
    ['1e3', {}, 1000],
  ] as const)('%s with %j is %d', (raw, rule, value) => {
    expect(numberOption('n', raw, rule)).toBe(value);
  });

  it.each([
    ['abc', { integer: true }, '--n abc must be a whole number'],
    ['', {}, '--n "" must be a number'],
    [' ', {}, '--n   must be a number'],
    ['NaN', {}, '--n NaN must be a number'],
    ['Infinity', {}, '--n Infinity must be a number'],
    ['1.5', { integer: true }, '--n 1.5 must be a whole number'],
    ['-1', { integer: true, min: 0 }, '--n -1 must be a whole number >= 0'],
    ['0x10', { integer: true }, '--n 0x10 must be a whole number'],
    ['0', { above: 0, unit: 'seconds' }, '--n 0 must be a number of seconds > 0'],
    ['65536', { integer: true, min: 0, max: 65_535 }, '--n 65536 must be a whole number >= 0 and <= 65535'],
  ] as const)('%j with %j is refused: %s', (raw, rule, message) => {
    expect(() => numberOption('n', raw, rule)).toThrow(UsageError);
    expect(() => numberOption('n', raw, rule)).toThrow(message);
  });

  it('an option not given is undefined, never 0 or NaN', () => {
    expect(numberOption('n', undefined, { integer: true, min: 1 })).toBeUndefined();
  });
});

describe('runCommandLine', () => {
  const ran: unknown[] = [];
  const body = async (args: { values: unknown; positionals: string[] }): Promise<number> => {
    ran.push(args);
    if ((args.values as { count?: string }).count !== undefined) numberOption('count', (args.values as { count: string }).count, { integer: true });
    return 0;
  };

  it('--help prints the usage with every option and exits 0 without running the command', async () => {
    const { io, out, err } = capture();
    ran.length = 0;
    expect(await runCommandLine(spec, ['--count', 'x', '--help'], io, body)).toBe(0);
    expect(ran).toEqual([]);
    expect(err).toEqual([]);
    expect(out.join('\n')).toMatch(/^usage: sentinel probe \[options\] THING\n\na command for the test\n\noptions:\n {2}--count N +how many\n {2}--loud +louder\n {2}-h, --help +print this usage and exit$/);
  });

  it.each([
    [['--nope'], /^sentinel probe: Unknown option '--nope'\nusage: sentinel probe/],
    [['a', 'b'], /^sentinel probe: unexpected argument "b"\nusage:/],
    [['--count', 'many', 'a'], /^sentinel probe: --count many must be a whole number\nusage:/],
  ])('%j: the reason and the usage on stderr, exit 2', async (argv, message) => {
    const { io, out, err } = capture();
    expect(await runCommandLine(spec, argv, io, body)).toBe(2);
    expect(out).toEqual([]);
    expect(err.join('\n')).toMatch(message);
  });

  it('runs the command with the parsed values otherwise', async () => {
    ran.length = 0;
    expect(await runCommandLine(spec, ['--loud', 'thing'], capture().io, body)).toBe(0);
    expect(ran).toEqual([{ values: { loud: true }, positionals: ['thing'] }]);
  });
});
