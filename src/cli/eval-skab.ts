/** `sentinel eval-skab`: the SKAB protocol over a folder of labelled CSV files; prints per-file counts and the totals. */
import { formatReport } from '../offline/evaluate/replay.js';
import { formatLoo, leaveOneFileOut } from '../offline/evaluate/loo.js';
import { SKAB_TRAIN_ROWS, evaluateSkab } from '../offline/evaluate/skab.js';
import { UsageError, consoleIO, runCommandLine, type CommandIO } from './args.js';
import { evalSkabSpec } from './commands.js';

export async function runSkabCommand(argv: string[], io: CommandIO = consoleIO): Promise<number> {
  return runCommandLine(evalSkabSpec, argv, io, async ({ values, positionals }) => {
    const folder = positionals[0];
    if (folder === undefined) throw new UsageError('FOLDER is required');
    if (!values.loo && (values.normal !== undefined || values['choose-by-normal'])) throw new UsageError('--normal and --choose-by-normal go with --loo');
    if (values['choose-by-normal'] && values.normal === undefined) throw new UsageError('--choose-by-normal needs --normal CSV');
    try {
      if (values.loo) {
        const result = await leaveOneFileOut(folder, {
          label: values.label,
          normalFile: values.normal,
          normalRule: values['choose-by-normal'] ? 'select' : 'report',
          onProgress: (note) => io.err(`eval-skab: ${note}`),
        });
        io.out(values.json ? JSON.stringify(result, null, 2) : formatLoo(result));
        return 0;
      }
      const { files, total } = await evaluateSkab(folder, values.label);
      if (values.json) {
        io.out(JSON.stringify({ files, total }, null, 2));
        return 0;
      }
      for (const f of files) io.out(`${f.file}: TP ${f.tp} FP ${f.fp} FN ${f.fn} TN ${f.tn} (trained in ${f.trainMs.toFixed(0)} ms)`);
      io.out(`\n${files.length} files, SKAB protocol (train on the first ${SKAB_TRAIN_ROWS} rows of each):\n${formatReport(total)}`);
      return 0;
    } catch (err) {
      io.err(`sentinel eval-skab: ${(err as Error).message}`);
      return 1;
    }
  });
}
