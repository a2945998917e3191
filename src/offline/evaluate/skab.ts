/**
 * The SKAB protocol: for each labelled file, train on its first 400 rows, score the rest point by point
 * (earlier rows as history) through the daemon's decision path, and sum the counts over files.
 */
import { readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { readTable, type Table } from '../data/table.js';
import { createScorer } from '../../model/scorer.js';
import { DEFAULT_DETECTOR, type Family } from '../train/detector.js';
import { trainModel } from '../train/trainer.js';
import { evaluateTable, pooledFigures, replayScorerOptions, type FileFigures, type PooledFigures, type TableEvaluation } from './replay.js';

export const SKAB_TRAIN_ROWS = 400;

export function headOf(table: Table, rows: number): Table {
  return sliceOf(table, 0, rows);
}

/** Rows [from, from + rows) of a table, sharing its memory. */
export function sliceOf(table: Table, from: number, rows: number): Table {
  const cut = <T extends Float64Array | Uint8Array>(v: T) => v.subarray(from, from + rows) as T;
  return {
    ...table,
    rows,
    timestamps: table.timestamps ? cut(table.timestamps) : null,
    columns: table.columns.map(cut),
    labels: Object.fromEntries(Object.entries(table.labels).map(([k, v]) => [k, cut(v)])),
  };
}

/** Every CSV file under `folder`, in natural order (2.csv before 10.csv). */
export function csvFiles(folder: string): string[] {
  const out: string[] = [];
  for (const name of readdirSync(folder).sort((a, b) => a.localeCompare(b, 'en', { numeric: true }))) {
    const path = join(folder, name);
    if (statSync(path).isDirectory()) out.push(...csvFiles(path));
    else if (name.endsWith('.csv')) out.push(path);
  }
  return out;
}

export interface SkabFileResult extends FileFigures {
  trainMs: number;
}

/** Per file its figures (rows after the training rows) and what the report draws; the total pools the counts. `family`: what each file trains. */
export async function evaluateSkab(
  folder: string,
  label = 'anomaly',
  family: Family = DEFAULT_DETECTOR.family,
): Promise<{ files: SkabFileResult[]; total: PooledFigures; evaluations: TableEvaluation[] }> {
  const files: SkabFileResult[] = [];
  const evaluations: TableEvaluation[] = [];
  for (const file of csvFiles(folder)) {
    const table = readTable(file);
    if (!table.labels[label]) continue; // e.g. anomaly-free recordings: nothing to score
    if (table.rows <= SKAB_TRAIN_ROWS) throw new Error(`${file}: ${table.rows} rows, needs more than ${SKAB_TRAIN_ROWS}`);
    const started = performance.now();
    const trained = trainModel(headOf(table, SKAB_TRAIN_ROWS), { source: file, name: 'skab', detector: { family } });
    const trainMs = performance.now() - started;
    const scorer = await createScorer(trained.onnx, trained.manifest, file, replayScorerOptions);
    try {
      const evaluation = await evaluateTable(scorer, table, { file: relative(folder, file), label, from: SKAB_TRAIN_ROWS });
      evaluations.push(evaluation);
      files.push({ ...evaluation.figures, trainMs });
    } finally {
      await scorer.release();
    }
  }
  if (files.length === 0) throw new Error(`${folder}: no labelled CSV files (with a "${label}" column)`);
  return { files, total: pooledFigures(files), evaluations };
}
