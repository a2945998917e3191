/**
 * The fleet case of issue 12: many identical single-value sensors at different operating points
 * (base 20…69, uniform noise ±1), with single-reading spikes of 10–20 units, spaced apart.
 */
import { SeededRandom } from './random.js';

export interface FleetOptions {
  streams: number;
  rows: number;
  seed: number;
  /** Spikes per stream, placed at random after `quietRows` and at least `spacing` rows apart. */
  spikesPerStream: number;
  quietRows: number;
  spacing: number;
  /** Distinct operating points (stream s runs at 20 + s mod this). */
  operatingPoints?: number;
  startTs?: number;
}

export interface FleetData {
  /** values[s][i]: stream s, row i. */
  values: Float64Array[];
  /** Per stream, the spike rows in ascending order. */
  spikes: number[][];
  ts(row: number): number;
  streamId(s: number): string;
}

export function simulateFleet(o: FleetOptions): FleetData {
  const random = new SeededRandom(o.seed);
  const points = o.operatingPoints ?? 50;
  const values: Float64Array[] = [];
  const spikes: number[][] = [];
  for (let s = 0; s < o.streams; s++) {
    const base = 20 + (s % points);
    const column = new Float64Array(o.rows);
    for (let i = 0; i < o.rows; i++) column[i] = base + (2 * random.uniform() - 1);
    const rows: number[] = [];
    // Evenly spread slots, each spike at a random place inside its slot, so spikes never crowd.
    const span = o.rows - o.quietRows;
    const slot = Math.floor(span / o.spikesPerStream);
    for (let k = 0; k < o.spikesPerStream && slot > o.spacing; k++) {
      const row = o.quietRows + k * slot + Math.floor(random.uniform() * (slot - o.spacing));
      column[row] = column[row]! + (random.uniform() < 0.5 ? -1 : 1) * (10 + 10 * random.uniform());
      rows.push(row);
    }
    values.push(column);
    spikes.push(rows);
  }
  const start = o.startTs ?? Date.UTC(2024, 0, 1);
  return { values, spikes, ts: (row) => start + row * 1000, streamId: (s) => `pump-${String(s).padStart(4, '0')}` };
}
