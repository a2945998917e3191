/** Every subcommand's options and usage text, in one light module: `sentinel --help` lists them without loading any. */
import type { CommandSpec } from './args.js';

const config = {
  options: { config: { type: 'string', short: 'c' } },
  help: [['-c, --config FILE', 'config file (default: $SENTINEL_CONFIG, else config/sentinel.yaml)']],
} as const;

export const runSpec = {
  name: 'run',
  synopsis: '[--config FILE]',
  summary: 'start the daemon; SIGTERM or SIGINT drains and stops it, SIGHUP re-reads the model file',
  ...config,
} satisfies CommandSpec<typeof config.options>;

export const checkConfigSpec = {
  name: 'check-config',
  synopsis: '[--config FILE]',
  summary: 'validate the config and the model manifest, print the effective config (secrets redacted)',
  ...config,
} satisfies CommandSpec<typeof config.options>;

const trainOptions = {
  input: { type: 'string' },
  out: { type: 'string' },
  window: { type: 'string' },
  channels: { type: 'string' },
  cooldown: { type: 'string' },
  family: { type: 'string' },
} as const;
export const trainSpec = {
  name: 'train',
  synopsis: '--input CSV --out MODEL.onnx [options]',
  summary: 'fit a model on normal data; writes MODEL.onnx and its manifest MODEL.json',
  options: trainOptions,
  help: [
    ['--input CSV', 'normal readings: a ts column and one column per channel (required)'],
    ['--out MODEL.onnx', 'where to write the model; the manifest goes beside it (required)'],
    ['--window N', 'rows per window, a whole number in 1..4096 (default 20)'],
    ['--channels a,b,...', 'the channels to use, in this order (default: every sensor column)'],
    ['--cooldown SECONDS', "after a resolve, no new alert on the stream for this long, >= 0 (default: the family's, 300 for baseline-tests, 0 for window-pca-t2q)"],
    ['--family NAME', 'baseline-tests (default: per-stream baselines and a test per fault kind) or window-pca-t2q (the default before issue 12); docs/models.md'],
  ],
} satisfies CommandSpec<typeof trainOptions>;

const evaluateOptions = {
  model: { type: 'string' },
  input: { type: 'string' },
  label: { type: 'string', default: 'anomaly' },
  decisions: { type: 'string' },
  report: { type: 'string' },
  json: { type: 'boolean', default: false },
} as const;
export const evaluateSpec = {
  name: 'evaluate',
  synopsis: '--model MODEL.onnx --input CSV|FOLDER [options]',
  summary: "replay labelled data through the daemon's windowing and decisions; print detection figures per file and pooled",
  options: evaluateOptions,
  help: [
    ['--model MODEL.onnx', 'the model to evaluate (required)'],
    ['--input CSV|FOLDER', 'labelled readings: one CSV, or a folder whose CSV files are each replayed (required)'],
    ['--label COLUMN', 'the 0/1 label column (default anomaly)'],
    ['--decisions OUT.csv', 'also write every row with its score, decision (raised) and label'],
    ['--report OUT.html', 'also write a self-contained HTML page: the table and, per file, score, thresholds, labels and alerts'],
    ['--json', 'print the per-file figures and the pooled total as JSON'],
  ],
} satisfies CommandSpec<typeof evaluateOptions>;

const skabOptions = {
  json: { type: 'boolean', default: false },
  label: { type: 'string', default: 'anomaly' },
  report: { type: 'string' },
  loo: { type: 'boolean', default: false },
  normal: { type: 'string' },
  'choose-by-normal': { type: 'boolean', default: false },
  family: { type: 'string' },
} as const;
export const evalSkabSpec = {
  name: 'eval-skab',
  synopsis: 'FOLDER [options]',
  summary: 'the SKAB protocol over a folder of labelled CSV files (train on the first rows of each)',
  options: skabOptions,
  help: [
    ['--label COLUMN', 'the 0/1 label column (default anomaly)'],
    ['--family NAME', 'the family each file trains (default baseline-tests); with --loo, the only family searched (default: every family)'],
    ['--loo', 'leave one file out: choose every hyperparameter on the other files, score the one left out'],
    ['--normal CSV', 'with --loo: a long normal recording, for false alarms over long running'],
    ['--choose-by-normal', "with --loo and --normal: the normal recording's false alarms count in each choice"],
    ['--report OUT.html', 'also write a self-contained HTML page: the table and, per file, score, thresholds, labels and alerts (not with --loo)'],
    ['--json', 'print the per-file figures and the pooled total as JSON'],
  ],
  positionals: 1,
} satisfies CommandSpec<typeof skabOptions>;

const demoOptions = {
  seed: { type: 'string', default: '7' },
  rows: { type: 'string', default: '800' },
  rate: { type: 'string', default: '100' },
  duration: { type: 'string' },
  port: { type: 'string', default: '0' },
  'http-port': { type: 'string', default: '9464' },
  model: { type: 'string', default: 'models/default.onnx' },
} as const;
export const demoSpec = {
  name: 'demo',
  synopsis: '[options]',
  summary: 'embedded broker + daemon + three simulated pumps with injected faults; prints alerts live, then which faults raised an alert and how soon',
  options: demoOptions,
  help: [
    ['--seed N', 'simulator seed, a whole number (default 7)'],
    ['--rows N', 'rows per pump, >= 1 (default 800)'],
    ['--rate R', 'rows per second per pump, > 0 (default 100)'],
    ['--duration S', 'stop sending after S seconds, then shut down cleanly (default: once every row is sent)'],
    ['--port N', 'embedded broker port (default 0: any free port)'],
    ['--http-port N', 'metrics and probes port (default 9464; 0: any free port)'],
    ['--model FILE', 'the model (default models/default.onnx)'],
  ],
} satisfies CommandSpec<typeof demoOptions>;

const promotionOptions = {
  ...config.options,
  model: { type: 'string', short: 'm' },
} as const;
const promotionHelp = [
  ...config.help,
  ['-m, --model NAME', 'which model (model.name or a models[].name; default: the only one)'],
] as const;
export const promoteSpec = {
  name: 'promote',
  synopsis: '[--config FILE] [--model NAME]',
  summary: 'make the candidate scoring in shadow (<model>.candidate.onnx) the live model; the old one is kept for rollback',
  options: promotionOptions,
  help: promotionHelp,
} satisfies CommandSpec<typeof promotionOptions>;
export const rollbackSpec = {
  name: 'rollback',
  synopsis: '[--config FILE] [--model NAME]',
  summary: 'put back the model that the last promote replaced (<model>.previous.onnx)',
  options: promotionOptions,
  help: promotionHelp,
} satisfies CommandSpec<typeof promotionOptions>;

export const commandSpecs = [runSpec, checkConfigSpec, trainSpec, evaluateSpec, evalSkabSpec, demoSpec, promoteSpec, rollbackSpec] as const;
