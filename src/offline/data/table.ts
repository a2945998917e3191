/** Reads recorded telemetry from CSV into typed columns: channels, optional timestamps and labels. */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';

/** A CSV recording, column-major: one Float64Array per channel, all `rows` long. */
export interface Table {
  /** Where the data came from (file path, or a name given by the caller). */
  source: string;
  /** Hex sha256 of the file bytes, so a model can name exactly what it was trained on. */
  sha256: string;
  channels: string[];
  rows: number;
  /** Epoch ms per row, or null when the CSV has no time column. */
  timestamps: Float64Array | null;
  /** One column per channel, in `channels` order. */
  columns: Float64Array[];
  /** Label columns (0/1 per row) by name; never used as model inputs. */
  labels: Record<string, Uint8Array>;
}

/** A CSV that cannot be used, with a message that names the place and the fix. */
export class TableError extends Error {
  override readonly name = 'TableError';
}

const TIME_COLUMNS = ['datetime', 'timestamp', 'ts', 'time', 'date'];
const LABEL_COLUMNS = ['anomaly', 'changepoint', 'label'];
// ISO-8601 date-time; the SKAB files use a space instead of `T` and no zone.
const DATE_TIME = /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$/;

export function readTable(path: string): Table {
  let bytes: Buffer;
  try {
    bytes = readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const reason = code === 'ENOENT' ? 'no such file' : code === 'EISDIR' ? 'it is a directory' : String(err);
    throw new TableError(`cannot read ${path}: ${reason}; check the --input path`);
  }
  return parseTable(bytes, path);
}

/** Parses CSV bytes; `source` names the data in error messages. */
export function parseTable(bytes: Uint8Array, source: string): Table {
  const sha256 = createHash('sha256').update(bytes).digest('hex');
  const text = Buffer.from(bytes).toString('utf8').replace(/^\uFEFF/, '');
  const lines = text.split(/\r?\n/);
  while (lines.length > 0 && lines[lines.length - 1]?.trim() === '') lines.pop();
  const headerLine = lines[0];
  if (headerLine === undefined || headerLine.trim() === '') {
    throw new TableError(`${source} is empty; record some rows with a header line first`);
  }
  const delimiter = detectDelimiter(headerLine);
  const header = splitLine(headerLine, delimiter);
  if (new Set(header).size !== header.length) {
    throw new TableError(`${source}: the header repeats a column name (${header.join(', ')}); give each column a unique name`);
  }
  const rows = lines.length - 1;
  if (rows === 0) throw new TableError(`${source} has a header but no data rows`);

  const lower = header.map((h) => h.toLowerCase());
  const timeIndex = lower.findIndex((h) => TIME_COLUMNS.includes(h));
  const labelIndexes = lower.flatMap((h, i) => (LABEL_COLUMNS.includes(h) ? [i] : []));
  const channelIndexes = header.flatMap((_, i) => (i === timeIndex || labelIndexes.includes(i) ? [] : [i]));
  if (channelIndexes.length === 0) {
    throw new TableError(`${source}: no sensor columns besides time and labels (header: ${header.join(', ')})`);
  }

  const columns = channelIndexes.map(() => new Float64Array(rows));
  const labelColumns = labelIndexes.map(() => new Uint8Array(rows));
  const timestamps = timeIndex >= 0 ? new Float64Array(rows) : null;

  for (let r = 0; r < rows; r++) {
    const lineNo = r + 2;
    const cells = splitLine(lines[r + 1] ?? '', delimiter);
    if (cells.length !== header.length) {
      throw new TableError(
        `${source} line ${lineNo} (data row ${r}): ${cells.length} cells, the header has ${header.length}; fix the row or its delimiters`,
      );
    }
    const where = (col: number): string => `${source} line ${lineNo} (data row ${r}), column "${header[col]}"`;
    if (timestamps !== null) timestamps[r] = parseTime(cells[timeIndex] ?? '', () => where(timeIndex));
    for (let c = 0; c < channelIndexes.length; c++) {
      const col = channelIndexes[c] as number;
      (columns[c] as Float64Array)[r] = parseReading(cells[col] ?? '', () => where(col));
    }
    for (let l = 0; l < labelIndexes.length; l++) {
      const col = labelIndexes[l] as number;
      (labelColumns[l] as Uint8Array)[r] = parseReading(cells[col] ?? '', () => where(col)) !== 0 ? 1 : 0;
    }
  }

  const labels: Record<string, Uint8Array> = {};
  labelIndexes.forEach((col, l) => (labels[header[col] as string] = labelColumns[l] as Uint8Array));
  return {
    source,
    sha256,
    channels: channelIndexes.map((i) => header[i] as string),
    rows,
    timestamps,
    columns,
    labels,
  };
}

/** The column of one channel, or an error that lists the channels there are. */
export function channelColumn(table: Table, channel: string): Float64Array {
  const i = table.channels.indexOf(channel);
  if (i < 0) {
    throw new TableError(`${table.source} has no channel "${channel}"; it has ${table.channels.join(', ')}`);
  }
  return table.columns[i] as Float64Array;
}

function detectDelimiter(headerLine: string): ',' | ';' {
  const semicolons = headerLine.split(';').length;
  const commas = headerLine.split(',').length;
  return semicolons > commas ? ';' : ',';
}

function splitLine(line: string, delimiter: string): string[] {
  return line.split(delimiter).map((cell) => cell.trim().replace(/^"(.*)"$/, '$1'));
}

function parseReading(cell: string, where: () => string): number {
  if (cell === '') throw new TableError(`${where()}: empty cell; fill it in or drop the row`);
  const value = Number(cell);
  if (Number.isNaN(value)) {
    if (/^[+-]?nan$/i.test(cell)) throw new TableError(`${where()}: NaN is not a reading; drop the row or fill the gap`);
    throw new TableError(`${where()}: "${cell}" is not a number; fix the cell or drop the row`);
  }
  if (!Number.isFinite(value)) {
    throw new TableError(`${where()}: ${cell} is not a finite reading; drop the row or clip the value`);
  }
  return value;
}

function parseTime(cell: string, where: () => string): number {
  if (/^\d+(\.\d+)?$/.test(cell)) return Number(cell);
  if (DATE_TIME.test(cell)) {
    // A date-time without a zone is read as UTC, so the result does not depend on the host's TZ.
    const iso = cell.replace(' ', 'T');
    const zoned = /(Z|[+-]\d{2}:?\d{2})$/.test(iso) || !iso.includes('T') ? iso : `${iso}Z`;
    const ms = Date.parse(zoned);
    if (Number.isFinite(ms)) return ms;
  }
  throw new TableError(`${where()}: "${cell}" is neither an ISO-8601 date-time nor epoch milliseconds`);
}
