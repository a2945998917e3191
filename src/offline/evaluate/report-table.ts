/** The per-file table that `evaluate` and `eval-skab` print: one row per file and the pooled total. */
import type { FileFigures, PooledFigures } from './replay.js';

interface Column {
  head: string;
  cell: (f: Omit<FileFigures, 'file'>) => string;
}

const COLUMNS: readonly Column[] = [
  { head: 'rows', cell: (f) => String(f.rows) },
  { head: 'TP', cell: (f) => String(f.tp) },
  { head: 'FP', cell: (f) => String(f.fp) },
  { head: 'FN', cell: (f) => String(f.fn) },
  { head: 'TN', cell: (f) => String(f.tn) },
  { head: 'precision', cell: (f) => f.precision.toFixed(3) },
  { head: 'recall', cell: (f) => f.recall.toFixed(3) },
  { head: 'F1', cell: (f) => f.f1.toFixed(3) },
  { head: 'FAR %', cell: (f) => f.far.toFixed(2) },
  { head: 'MAR %', cell: (f) => f.mar.toFixed(2) },
  { head: 'raised', cell: (f) => String(f.raised) },
  { head: 'resolved', cell: (f) => String(f.resolved) },
];

/** The header and the cells of every row (the total last), as text: for the terminal and the HTML report alike. */
export function tableCells(files: readonly FileFigures[], total: PooledFigures | null): { head: string[]; rows: string[][] } {
  const head = ['file', ...COLUMNS.map((c) => c.head)];
  const rows = files.map((f) => [f.file, ...COLUMNS.map((c) => c.cell(f))]);
  if (total !== null) rows.push([totalName(total), ...COLUMNS.map((c) => c.cell(total))]);
  return { head, rows };
}

export function totalName(total: PooledFigures): string {
  return `total (${total.files} file${total.files === 1 ? '' : 's'})`;
}

/** A fixed-width table: the file left-aligned, numbers right-aligned, a rule above the total. */
export function formatFileTable(files: readonly FileFigures[], total: PooledFigures | null): string {
  const { head, rows } = tableCells(files, total);
  const widths = head.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] as string).length)));
  const line = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 0 ? c.padEnd(widths[i] as number) : c.padStart(widths[i] as number)))
      .join('  ')
      .trimEnd();
  const out = [line(head), ...rows.slice(0, files.length).map(line)];
  if (total !== null) out.push(widths.map((w) => '-'.repeat(w)).join('  '), line(rows[rows.length - 1] as string[]));
  return out.join('\n');
}
