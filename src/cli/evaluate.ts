/** `sentinel evaluate`: replay a labelled CSV through the daemon's decision path and print detection figures. */
import { writeFileSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadModel } from '../model/scorer.js';
import { readTable } from '../offline/data/table.js';
import { countConfusion, decisionsCsv, formatReport, replayTable, replayScorerOptions, report } from '../offline/evaluate/replay.js';

export async function runEvaluateCommand(argv: string[]): Promise<number> {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        model: { type: 'string' },
        input: { type: 'string' },
        label: { type: 'string', default: 'anomaly' },
        decisions: { type: 'string' },
        json: { type: 'boolean', default: false },
      },
    }));
  } catch (err) {
    process.stderr.write(`evaluate: ${(err as Error).message}\n`);
    return 2;
  }
  if (!values.model || !values.input) {
    process.stderr.write('evaluate: --model MODEL.onnx and --input CSV are required\n');
    return 2;
  }
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
    if (values.json) process.stdout.write(`${JSON.stringify({ model: scorer.manifest.name, rows: table.rows, rejectedRows: result.rejectedRows, ...figures })}\n`);
    else process.stdout.write(`${values.input}: ${table.rows} rows, model ${scorer.manifest.name}\n${formatReport(figures)}\n`);
    return 0;
  } catch (err) {
    process.stderr.write(`evaluate: ${(err as Error).message}\n`);
    return 1;
  }
}
