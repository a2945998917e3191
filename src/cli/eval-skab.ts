/** `sentinel eval-skab`: the SKAB protocol over a folder of labelled CSV files; prints per-file counts and the totals. */
import { parseArgs } from 'node:util';
import { formatReport } from '../offline/evaluate/replay.js';
import { SKAB_TRAIN_ROWS, evaluateSkab } from '../offline/evaluate/skab.js';

export async function runSkabCommand(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({ args: argv, allowPositionals: true, options: { json: { type: 'boolean', default: false }, label: { type: 'string', default: 'anomaly' } } });
  } catch (err) {
    process.stderr.write(`eval-skab: ${(err as Error).message}\n`);
    return 2;
  }
  const folder = parsed.positionals[0];
  if (!folder) {
    process.stderr.write('usage: sentinel eval-skab FOLDER [--json]\n');
    return 2;
  }
  try {
    const { files, total } = await evaluateSkab(folder, parsed.values.label);
    if (parsed.values.json) {
      process.stdout.write(`${JSON.stringify({ files, total }, null, 2)}\n`);
      return 0;
    }
    for (const f of files) {
      process.stdout.write(`${f.file}: TP ${f.tp} FP ${f.fp} FN ${f.fn} TN ${f.tn} (trained in ${f.trainMs.toFixed(0)} ms)\n`);
    }
    process.stdout.write(`\n${files.length} files, SKAB protocol (train on the first ${SKAB_TRAIN_ROWS} rows of each):\n${formatReport(total)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`eval-skab: ${(err as Error).message}\n`);
    return 1;
  }
}
