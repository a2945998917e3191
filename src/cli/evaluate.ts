/** `sentinel evaluate`: replay a labelled CSV through the daemon's decision path and print detection figures. */
import { writeFileSync } from 'node:fs';
import { loadModel } from '../model/scorer.js';
import { readTable } from '../offline/data/table.js';
import { countConfusion, decisionsCsv, formatReport, replayTable, replayScorerOptions, report } from '../offline/evaluate/replay.js';
import { UsageError, consoleIO, runCommandLine, type CommandIO } from './args.js';
import { evaluateSpec } from './commands.js';

export async function runEvaluateCommand(argv: string[], io: CommandIO = consoleIO): Promise<number> {
  return runCommandLine(evaluateSpec, argv, io, async ({ values }) => {
    if (!values.model || !values.input) throw new UsageError('--model MODEL.onnx and --input CSV are required');
    return evaluate({ ...values, model: values.model, input: values.input }, io);
  });
}

async function evaluate(values: { model: string; input: string; label: string; decisions?: string; json: boolean }, io: CommandIO): Promise<number> {
  try {
    const table = readTable(values.input);
    const labels = table.labels[values.label];
    if (!labels) {
      throw new Error(`${values.input} has no label column "${values.label}" (labels: ${Object.keys(table.labels).join(', ') || 'none'}); pass --label`);
    }
    const scorer = await loadModel(values.model, replayScorerOptions);
    const result = await replayTable(scorer, table);
    await scorer.release();
    const figures = report(countConfusion(result.anomaly, labels));
    if (values.decisions) writeFileSync(values.decisions, decisionsCsv(table, result));
    if (values.json) io.out(JSON.stringify({ model: scorer.manifest.name, rows: table.rows, rejectedRows: result.rejectedRows, ...figures }));
    else io.out(`${values.input}: ${table.rows} rows, model ${scorer.manifest.name}\n${formatReport(figures)}`);
    return 0;
  } catch (err) {
    io.err(`sentinel evaluate: ${(err as Error).message}`);
    return 1;
  }
}
