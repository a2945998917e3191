#!/usr/bin/env node
/** The `sentinel` command line: run, check-config, train, evaluate, eval-skab, demo, promote, rollback. */
import { buildInfo } from '../observe/build-info.js';
import { consoleIO, runCommandLine } from './args.js';
import { checkConfigSpec, commandSpecs, promoteSpec, rollbackSpec, runSpec } from './commands.js';

function usage(): string {
  const width = Math.max(...commandSpecs.map((c) => c.name.length)) + 2;
  return [
    'usage: sentinel <command> [options]',
    '       sentinel --version',
    '',
    'commands:',
    ...commandSpecs.map((c) => `  ${c.name.padEnd(width)}${c.synopsis}\n  ${' '.repeat(width)}${c.summary}`),
    '',
    '`sentinel <command> --help` prints the options of one command.',
    '',
  ].join('\n');
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'run': {
      const { runCommand } = await import('./run.js');
      return runCommandLine(runSpec, rest, consoleIO, ({ values }) => runCommand(values.config));
    }
    case 'check-config': {
      const { checkConfigCommand } = await import('./run.js');
      return runCommandLine(checkConfigSpec, rest, consoleIO, ({ values }) => checkConfigCommand(values.config));
    }
    case 'train': {
      const { runTrainCommand } = await import('./train.js');
      return runTrainCommand(rest);
    }
    case 'evaluate': {
      const { runEvaluateCommand } = await import('./evaluate.js');
      return runEvaluateCommand(rest);
    }
    case 'eval-skab': {
      const { runSkabCommand } = await import('./eval-skab.js');
      return runSkabCommand(rest);
    }
    case 'demo': {
      const { runDemoCommand } = await import('./demo.js');
      return runDemoCommand(rest);
    }
    case 'promote':
    case 'rollback': {
      const { promotionCommand } = await import('./promote.js');
      const spec = command === 'promote' ? promoteSpec : rollbackSpec;
      return runCommandLine(spec, rest, consoleIO, ({ values }) => promotionCommand(command, values.config, values.model, consoleIO));
    }
    case '--version':
    case '-V': {
      const { version, revision, onnxruntime } = buildInfo();
      process.stdout.write(`sentinel ${version} (revision ${revision}, onnxruntime-node ${onnxruntime})\n`);
      return 0;
    }
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage());
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${command}"\n${usage()}`);
      return 2;
  }
}

const longRunning = new Set(['run', 'demo']);

main(process.argv.slice(2)).then(
  (code) => {
    // A daemon that has stopped (or failed to start) exits now, whatever library timers remain.
    if (longRunning.has(process.argv[2] ?? '')) process.exit(code);
    process.exitCode = code;
  },
  (err: unknown) => {
    process.stderr.write(`${err instanceof Error ? err.message : String(err)}\n`);
    process.exitCode = 1;
  },
);
