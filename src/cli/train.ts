/** `sentinel train`: fits a model from a CSV of normal readings and writes the ONNX file and its manifest. */
import { basename } from 'node:path';
import { TableError, readTable } from '../offline/data/table.js';
import { DEFAULT_DETECTOR, FAMILIES, isFamily, type Family } from '../offline/train/detector.js';
import { FitError, trainModel } from '../offline/train/trainer.js';
import { writeModelFiles } from '../offline/train/write-model.js';
import { UsageError, consoleIO, numberOption, runCommandLine, type CommandIO } from './args.js';
import { trainSpec } from './commands.js';

export type { CommandIO } from './args.js';

/** Returns the exit code: 0 trained (or --help), 1 unusable data or an I/O failure, 2 bad arguments. */
export async function runTrainCommand(argv: string[], io: CommandIO = consoleIO): Promise<number> {
  return runCommandLine(trainSpec, argv, io, async ({ values }) => {
    if (values.input === undefined || values.out === undefined) throw new UsageError('--input and --out are required');
    if (!values.out.toLowerCase().endsWith('.onnx')) {
      throw new UsageError(`--out ${values.out} must end in .onnx (the manifest goes beside it as .json)`);
    }
    const window = numberOption('window', values.window, { integer: true, min: 1, max: 4096 });
    const cooldown = numberOption('cooldown', values.cooldown, { min: 0, unit: 'seconds' });
    const family = values.family ?? DEFAULT_DETECTOR.family;
    if (!isFamily(family)) throw new UsageError(`--family ${family} must be one of ${FAMILIES.join(', ')}`);
    return train(values.input, values.out, window, values.channels, cooldown, family, io);
  });
}

const quantileName = (q: number): string => (q === 1 ? 'max' : `p${+(q * 100).toFixed(2)}`);

async function train(
  input: string,
  out: string,
  window: number | undefined,
  channelList: string | undefined,
  cooldown: number | undefined,
  family: Family,
  io: CommandIO,
): Promise<number> {
  const channels = channelList?.split(',').map((c) => c.trim()).filter((c) => c !== '');

  try {
    const table = readTable(input);
    io.err(`train: read ${table.rows} rows × ${table.channels.length} channels from ${input}`);
    let lastTenth = -1;
    const started = performance.now();
    const trained = trainModel(table, {
      window,
      channels,
      cooldownMs: cooldown === undefined ? undefined : cooldown * 1000,
      detector: { family },
      name: basename(out).replace(/\.onnx$/i, ''),
      source: basename(input),
      onProgress: (fraction, note) => {
        // One line per tenth at most, so a long fit shows it is alive without flooding the terminal.
        const tenth = Math.floor(fraction * 10);
        if (tenth > lastTenth) {
          lastTenth = tenth;
          io.err(`train: ${String(Math.round(fraction * 100)).padStart(3)}% ${note}`);
        }
      },
    });
    const seconds = (performance.now() - started) / 1000;
    const { modelPath, manifestPath } = writeModelFiles(out, trained.onnx, trained.manifest);
    const m = trained.manifest;
    const cal = m.calibration;
    const split =
      m.baseline === undefined
        ? `${cal.fitRows} fit, ${cal.heldOutRows} held out`
        : `a ${m.baseline.warmupRows}-row baseline warm-up, then ${cal.fitWindows} windows fit, ${cal.heldOutWindows} held out`;
    io.out(
      [
        `trained ${m.family} in ${seconds.toFixed(2)} s on ${m.training.rows} rows (${split})`,
        `  channels   ${m.channels.join(', ')}`,
        `  window     ${m.window} rows; ${cal.components} principal components explain ${(Number(cal.explainedVariance) * 100).toFixed(1)}%`,
        `  policy     raise at score >= ${m.policy.raiseThreshold.toPrecision(4)} (${cal.thresholdMultiplier} × held-out ${quantileName(Number(cal.thresholdQuantile))}), clear below ${m.policy.clearThreshold.toPrecision(4)} for ${m.policy.resolveAfter} windows`,
        `  held out   ${(Number(cal.heldOutFalseAlarmRate) * 100).toFixed(2)}% of windows at/above the raise threshold`,
        `  wrote      ${modelPath} (${m.version})`,
        `             ${manifestPath}`,
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    if (err instanceof TableError || err instanceof FitError) {
      io.err(`sentinel train: ${err.message}`);
      return 1;
    }
    // Only file-system failures are expected here; anything else is a bug and should surface as one.
    if (typeof (err as NodeJS.ErrnoException).code === 'string') {
      io.err(`sentinel train: cannot write the model: ${(err as Error).message}; check that the --out folder is writable`);
      return 1;
    }
    throw err;
  }
}
