import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { commandSpecs } from '../../src/cli/commands.js';
import { runCli } from '../support/cli.js';
import { DEFAULT_MODEL } from '../support/model.js';

const packageVersion = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;
const onnxruntimeVersion = (JSON.parse(readFileSync(createRequire(import.meta.url).resolve('onnxruntime-node/package.json'), 'utf8')) as { version: string }).version;
const commands = ['run', 'check-config', 'train', 'evaluate', 'eval-skab', 'demo', 'promote', 'rollback'];

describe('sentinel CLI: version, usage and argument errors', () => {
  it.each(['--version', '-V'])('%s prints the version, the revision and the onnxruntime-node version, exit 0', async (flag) => {
    const { code, stdout } = await runCli([flag]);
    expect(code).toBe(0);
    // dist/ from `npm run build` has no REVISION file: only an image build writes one.
    expect(stdout).toBe(`sentinel ${packageVersion} (revision unknown, onnxruntime-node ${onnxruntimeVersion})\n`);
  });

  it('the top-level usage lists every command', async () => {
    const { code, stdout } = await runCli(['--help']);
    expect(code).toBe(0);
    expect(commandSpecs.map((c) => c.name)).toEqual(commands);
    for (const command of commands) expect(stdout).toMatch(new RegExp(`^  ${command} +\\S`, 'm'));
    expect(stdout).toContain('sentinel --version');
  });

  it.each(commands.flatMap((c) => [[c, '--help'], [c, '-h']]))('%s %s prints its usage and exits 0 (doing nothing else)', async (command, flag) => {
    // check-config would print "config OK" and run would start a daemon if --help were not honoured first.
    const { code, stdout, stderr } = await runCli([command, flag, '--config', '/nonexistent.yaml']);
    expect(code, stderr).toBe(0);
    expect(stdout).toMatch(new RegExp(`^usage: sentinel ${command} `));
    expect(stdout).toContain('-h, --help');
    expect(stderr).toBe('');
  });

  it("each command's usage documents exactly the options it accepts", async () => {
    for (const spec of commandSpecs) {
      const { stdout } = await runCli([spec.name, '--help']);
      const documented = [...stdout.matchAll(/^ {2}(?:-\w, )?--([\w-]+)/gm)].map((m) => m[1]).sort();
      expect(documented, spec.name).toEqual([...Object.keys(spec.options), 'help'].sort());
    }
  });

  it.each([
    [['run', '--bogus'], /sentinel run: Unknown option '--bogus'/],
    [['run', 'extra'], /sentinel run: unexpected argument "extra"/],
    [['check-config', '--confg', 'x.yaml'], /sentinel check-config: Unknown option '--confg'/],
    [['evaluate', '--model', 'm.onnx', '--input', 'x.csv', '--threshold', '3'], /sentinel evaluate: Unknown option '--threshold'/],
    [['evaluate', '--input', 'x.csv'], /--model MODEL.onnx and --input CSV are required/],
    [['eval-skab'], /sentinel eval-skab: FOLDER is required/],
    [['eval-skab', 'a', 'b'], /sentinel eval-skab: unexpected argument "b"/],
    [['train', '--input', 'a.csv', '--out', 'm.onnx', '--window', '2.5'], /--window 2.5 must be a whole number/],
    [['train', '--input', 'a.csv', '--out', 'm.onnx', '--window', '0'], /--window 0 must be a whole number .*>= 1/],
    [['train', '--input', 'a.csv', '--out', 'm.onnx', '--cooldown=-5'], /--cooldown -5 must be a number of seconds >= 0/],
    [['train', '--input', 'a.csv', '--out', 'm.onnx', '--cooldown', ''], /--cooldown "" must be a number of seconds/],
    [['demo', '--rows', 'abc'], /sentinel demo: --rows abc must be a whole number >= 1/],
    [['demo', '--rows', '0'], /--rows 0 must be a whole number >= 1/],
    [['demo', '--rate', 'fast'], /--rate fast must be a number of rows per second > 0/],
    [['demo', '--rate', '0'], /--rate 0 must be a number of rows per second > 0/],
    [['demo', '--seed', 'x'], /--seed x must be a whole number/],
    [['demo', '--duration', 'NaN'], /--duration NaN must be a number of seconds > 0/],
    [['demo', '--port', '70000'], /--port 70000 must be a whole number >= 0 and <= 65535/],
    [['demo', '--http-port=-1'], /--http-port -1 must be a whole number >= 0/],
  ])('%j is refused before doing anything: the option named, the usage, exit 2', async (argv, message) => {
    const { code, stdout, stderr } = await runCli(argv);
    expect(code).toBe(2);
    expect(stderr).toMatch(message);
    expect(stderr).toContain(`usage: sentinel ${argv[0]} `);
    expect(stdout).toBe('');
  });

  it('demo --duration S stops sending after S seconds, shuts down cleanly and exits 0', async () => {
    const started = performance.now();
    // 100 000 rows at 20/s would take well over an hour: only --duration ends this run.
    const { code, stdout, stderr } = await runCli(['demo', '--duration', '1.5', '--rows', '100000', '--rate', '20', '--http-port', '0', '--model', DEFAULT_MODEL]);
    const seconds = (performance.now() - started) / 1000;
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('for at most 1.5 s');
    expect(stdout).toMatch(/^done: \d+ alert events$/m);
    expect(seconds).toBeGreaterThan(1.5);
    expect(seconds).toBeLessThan(20);
  }, 30_000);
});
