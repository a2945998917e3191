/** `sentinel evaluate`: replay labelled CSV files through the daemon's decision path and print detection figures per file. */
import { statSync, writeFileSync } from 'node:fs';
import { relative } from 'node:path';
import { loadModel } from '../model/scorer.js';
import { readTable, type Table } from '../offline/data/table.js';
import { decisionsCsv, evaluateTable, labelColumn, pooledFigures, replayScorerOptions, type TableEvaluation } from '../offline/evaluate/replay.js';
import { reportHtml } from '../offline/evaluate/report-html.js';
import { formatFileTable } from '../offline/evaluate/report-table.js';
import { csvFiles } from '../offline/evaluate/skab.js';
import { UsageError, consoleIO, runCommandLine, type CommandIO } from './args.js';
import { evaluateSpec } from './commands.js';

export async function runEvaluateCommand(argv: string[], io: CommandIO = consoleIO): Promise<number> {
  return runCommandLine(evaluateSpec, argv, io, async ({ values }) => {
    if (!values.model || !values.input) throw new UsageError('--model MODEL.onnx and --input CSV are required');
    return evaluate({ ...values, model: values.model, input: values.input }, io);
  });
}

interface EvaluateValues {
  model: string;
  input: string;
  label: string;
  decisions?: string;
  report?: string;
  json: boolean;
}

/** The files to replay with their names in the table: a folder's CSV files in natural order, or the one file. */
function inputFiles(input: string): Array<{ path: string; name: string }> {
  let folder = false;
  try {
    folder = statSync(input).isDirectory();
  } catch {
    // A missing path is reported by readTable, with the fix.
  }
  if (!folder) return [{ path: input, name: input }];
  const files = csvFiles(input).map((path) => ({ path, name: relative(input, path) }));
  if (files.length === 0) throw new Error(`${input} holds no .csv files; pass a labelled CSV or a folder of them as --input`);
  return files;
}

async function evaluate(values: EvaluateValues, io: CommandIO): Promise<number> {
  try {
    const files = inputFiles(values.input);
    // Every file is read and its label checked before any replay, so a bad file fails the run at once.
    const tables: Array<{ name: string; table: Table }> = files.map(({ path, name }) => {
      const table = readTable(path);
      labelColumn(table, values.label);
      return { name, table };
    });
    const scorer = await loadModel(values.model, replayScorerOptions);
    const runs: Array<{ table: Table; evaluation: TableEvaluation }> = [];
    try {
      for (const { name, table } of tables) runs.push({ table, evaluation: await evaluateTable(scorer, table, { file: name, label: values.label }) });
    } finally {
      await scorer.release();
    }
    const evaluations = runs.map((r) => r.evaluation);
    const figures = evaluations.map((e) => e.figures);
    const total = pooledFigures(figures);
    const { name, family } = scorer.manifest;
    const several = files.length > 1;
    if (values.decisions) writeFileSync(values.decisions, decisionsCsv(runs, values.label, several));
    if (values.report) {
      const notes = [`model ${name} (${family}, ${values.model}), input ${values.input}, label column "${values.label}"; every row counted`];
      writeFileSync(values.report, reportHtml({ title: `Sentinel evaluate: ${name}`, notes, label: values.label, files: evaluations, total: several ? total : null }));
    }
    if (values.json) {
      const perFile = evaluations.map((e) => ({ ...e.figures, rejectedRows: e.rejectedRows }));
      io.out(JSON.stringify({ model: name, label: values.label, files: perFile, total }, null, 2));
      return 0;
    }
    io.out(`model ${name} (${family}), ${files.length} file${several ? 's' : ''} from ${values.input}, label column "${values.label}"\n`);
    io.out(formatFileTable(figures, several ? total : null));
    const rejected = evaluations.filter((e) => e.rejectedRows > 0);
    for (const e of rejected) io.out(`${e.figures.file}: ${e.rejectedRows} rows turned away (timestamps repeated or going backwards)`);
    return 0;
  } catch (err) {
    io.err(`sentinel evaluate: ${(err as Error).message}`);
    return 1;
  }
}
