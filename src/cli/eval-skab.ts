/** `sentinel eval-skab`: the SKAB protocol over a folder of labelled CSV files; prints the per-file table and the pooled total. */
import { writeFileSync } from 'node:fs';
import { reportHtml } from '../offline/evaluate/report-html.js';
import { formatFileTable } from '../offline/evaluate/report-table.js';
import { formatLoo, leaveOneFileOut } from '../offline/evaluate/loo.js';
import { SKAB_TRAIN_ROWS, evaluateSkab } from '../offline/evaluate/skab.js';
import { DEFAULT_DETECTOR, FAMILIES, isFamily } from '../offline/train/detector.js';
import { UsageError, consoleIO, runCommandLine, type CommandIO } from './args.js';
import { evalSkabSpec } from './commands.js';

export async function runSkabCommand(argv: string[], io: CommandIO = consoleIO): Promise<number> {
  return runCommandLine(evalSkabSpec, argv, io, async ({ values, positionals }) => {
    const folder = positionals[0];
    if (folder === undefined) throw new UsageError('FOLDER is required');
    if (!values.loo && (values.normal !== undefined || values['choose-by-normal'])) throw new UsageError('--normal and --choose-by-normal go with --loo');
    if (values['choose-by-normal'] && values.normal === undefined) throw new UsageError('--choose-by-normal needs --normal CSV');
    if (values.loo && values.report !== undefined) throw new UsageError('--report goes without --loo');
    const family = values.family;
    if (family !== undefined && !isFamily(family)) throw new UsageError(`--family ${family} must be one of ${FAMILIES.join(', ')}`);
    try {
      if (values.loo) {
        const result = await leaveOneFileOut(folder, {
          label: values.label,
          normalFile: values.normal,
          normalRule: values['choose-by-normal'] ? 'select' : 'report',
          family,
          onProgress: (note) => io.err(`eval-skab: ${note}`),
        });
        io.out(values.json ? JSON.stringify(result, null, 2) : formatLoo(result));
        return 0;
      }
      const trained = family ?? DEFAULT_DETECTOR.family;
      const { files, total, evaluations } = await evaluateSkab(folder, values.label, trained);
      const protocol = `SKAB protocol: each file trains a ${trained} model on its first ${SKAB_TRAIN_ROWS} rows; the rows after them are counted`;
      if (values.report) {
        const notes = [`${files.length} files from ${folder}, label column "${values.label}"`, protocol];
        writeFileSync(values.report, reportHtml({ title: 'Sentinel eval-skab', notes, label: values.label, files: evaluations, total }));
      }
      if (values.json) {
        io.out(JSON.stringify({ files, total }, null, 2));
        return 0;
      }
      const slowest = Math.max(...files.map((f) => f.trainMs));
      io.out(`${files.length} files from ${folder}, ${protocol} (slowest training ${slowest.toFixed(0)} ms)\n`);
      io.out(formatFileTable(files, total));
      return 0;
    } catch (err) {
      io.err(`sentinel eval-skab: ${(err as Error).message}`);
      return 1;
    }
  });
}
