/** `sentinel train`: fits a model from a CSV of normal readings and writes the ONNX file and its manifest. */
import { basename } from 'node:path';
import { parseArgs } from 'node:util';
import { TableError, readTable } from '../offline/data/table.js';
import { FitError, trainModel } from '../offline/train/trainer.js';
import { writeModelFiles } from '../offline/train/write-model.js';

const USAGE = 'usage: sentinel train --input normal.csv --out models/pump.onnx [--window N] [--channels a,b,...] [--cooldown SECONDS]';

export interface CommandIO {
  out: (line: string) => void;
  err: (line: string) => void;
}

const consoleIO: CommandIO = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Returns the exit code: 0 trained, 1 unusable data or an I/O failure, 2 bad arguments. */
export async function runTrainCommand(argv: string[], io: CommandIO = consoleIO): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        input: { type: 'string' },
        out: { type: 'string' },
        window: { type: 'string' },
        channels: { type: 'string' },
        cooldown: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
      },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(`sentinel train: ${(err as Error).message}\n${USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(USAGE);
    return 0;
  }
  if (values.input === undefined || values.out === undefined) {
    io.err(`sentinel train: --input and --out are required\n${USAGE}`);
    return 2;
  }
  if (!values.out.toLowerCase().endsWith('.onnx')) {
    io.err(`sentinel train: --out ${values.out} must end in .onnx (the manifest goes beside it as .json)`);
    return 2;
  }
  let window: number | undefined;
  if (values.window !== undefined) {
    window = Number(values.window);
    if (!/^\d+$/.test(values.window) || window < 1) {
      io.err(`sentinel train: --window ${values.window} must be a whole number of rows >= 1`);
      return 2;
    }
  }
  const channels = values.channels?.split(',').map((c) => c.trim()).filter((c) => c !== '');

  try {
    let cooldownMs: number | undefined;
    if (values.cooldown !== undefined) {
      cooldownMs = Number(values.cooldown) * 1000;
      if (!Number.isFinite(cooldownMs) || cooldownMs < 0) {
        io.err(`sentinel train: --cooldown ${values.cooldown} must be a number of seconds >= 0`);
        return 2;
      }
    }
    const table = readTable(values.input);
    io.err(`train: read ${table.rows} rows × ${table.channels.length} channels from ${values.input}`);
    let lastTenth = -1;
    const started = performance.now();
    const trained = trainModel(table, {
      window,
      channels,
      cooldownMs,
      name: basename(values.out).replace(/\.onnx$/i, ''),
      source: basename(values.input),
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
    const { modelPath, manifestPath } = writeModelFiles(values.out, trained.onnx, trained.manifest);
    const m = trained.manifest;
    const cal = m.calibration;
    io.out(
      [
        `trained ${m.family} in ${seconds.toFixed(2)} s on ${m.training.rows} rows (${cal.fitRows} fit, ${cal.heldOutRows} held out)`,
        `  channels   ${m.channels.join(', ')}`,
        `  window     ${m.window} rows; ${cal.components} principal components explain ${(Number(cal.explainedVariance) * 100).toFixed(1)}%`,
        `  policy     raise at score >= ${m.policy.raiseThreshold.toPrecision(4)} (${cal.thresholdMultiplier} × held-out p99 ${Number(cal.heldOutScoreP99).toPrecision(4)}), resolve after ${m.policy.resolveAfter} quiet windows`,
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
