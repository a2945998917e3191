/** Records simulated pump telemetry to CSV, e.g. the normal data a default model is trained on. */
import { writeFileSync } from 'node:fs';
import { PumpSimulator, type PumpSimulatorOptions } from './pump.js';

export interface RecordOptions extends PumpSimulatorOptions {
  rows: number;
  /** Add an `anomaly` column (1 where a fault is active); default: only when faults are planned. */
  labels?: boolean;
}

/** The CSV text of `rows` simulated readings: `timestamp` (ISO-8601), one column per channel. */
export function simulateCsv(opts: RecordOptions): string {
  const sim = new PumpSimulator(opts);
  const labels = opts.labels ?? (opts.faults !== undefined && opts.faults.length > 0);
  const lines = [['timestamp', ...sim.channels, ...(labels ? ['anomaly'] : [])].join(',')];
  for (let i = 0; i < opts.rows; i++) {
    const { ts, values, fault } = sim.next();
    // Six decimals keep the file small and the text identical across platforms.
    const cells = [new Date(ts).toISOString(), ...values.map((v) => v.toFixed(6))];
    if (labels) cells.push(fault === null ? '0' : '1');
    lines.push(cells.join(','));
  }
  return lines.join('\n') + '\n';
}

export function writeCsv(path: string, opts: RecordOptions): void {
  writeFileSync(path, simulateCsv(opts));
}
