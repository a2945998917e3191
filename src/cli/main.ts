#!/usr/bin/env node
/** The `sentinel` command line: run, check-config, train, evaluate, eval-skab, demo. */
import { parseArgs } from 'node:util';
import { checkConfigCommand, runCommand } from './run.js';

const usage = `usage: sentinel <command> [options]

commands:
  run [--config FILE]            start the daemon (default config: config/sentinel.yaml, or $SENTINEL_CONFIG)
  check-config [--config FILE]   validate the config and the model manifest, print the effective config
  train --input CSV --out MODEL.onnx [--window N] [--channels a,b,...]
                                 fit a model on normal data; writes MODEL.onnx and MODEL.json
  evaluate --model MODEL.onnx --input CSV [--label anomaly] [--decisions OUT.csv] [--json]
                                 replay labelled data through the daemon's windowing and decisions
  eval-skab FOLDER [--json]      the SKAB protocol over a folder of labelled CSV files
  demo [--seed N] [--duration S] embedded broker + daemon + simulated pump with injected faults
`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  const configOption = { config: { type: 'string' as const, short: 'c' } };
  switch (command) {
    case 'run': {
      const { values } = parseArgs({ args: rest, options: configOption });
      return runCommand(values.config);
    }
    case 'check-config': {
      const { values } = parseArgs({ args: rest, options: configOption });
      return checkConfigCommand(values.config);
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
    case undefined:
    case 'help':
    case '--help':
    case '-h':
      process.stdout.write(usage);
      return command === undefined ? 2 : 0;
    default:
      process.stderr.write(`unknown command "${command}"\n${usage}`);
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
