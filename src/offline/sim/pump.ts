/** A seeded simulator of centrifugal-pump telemetry with faults injected on request. */
import { SeededRandom } from './random.js';

export type FaultKind = 'spike' | 'drift' | 'stuck' | 'noise';

/** One fault: on `channel` (index into `channels`) from row `start` for `length` rows. */
export interface FaultPlan {
  kind: FaultKind;
  channel: number;
  start: number;
  length: number;
  /** Size in units of the channel's normal spread (FAULT_UNIT); defaults per kind (DEFAULT_MAGNITUDE). */
  magnitude?: number;
}

export interface PumpSimulatorOptions {
  seed: number;
  /** Time of the first row, epoch ms (default 2024-01-01T00:00:00Z). */
  startTs?: number;
  /** Time between rows in ms (default 1000). */
  periodMs?: number;
  faults?: FaultPlan[];
}

export interface PumpReading {
  ts: number;
  values: number[];
  fault: FaultKind | null;
}

export const PUMP_CHANNELS = ['vibration', 'current', 'pressure', 'temperature', 'flow'] as const;

// Per channel: level at nominal load, gain per unit of load, white-noise sd.
const BASE = [2.0, 10.0, 4.0, 40.0, 30.0];
const LOAD_GAIN = [0.6, 3.0, 0.8, 6.0, 8.0];
const NOISE_SD = [0.08, 0.15, 0.05, 0.1, 0.4];
// A fault's unit is the channel's normal spread (noise or load swing, whichever is larger), so one
// magnitude means a comparable fault on every channel.
const FAULT_UNIT = NOISE_SD.map((sd, c) => Math.max(sd, 0.15 * (LOAD_GAIN[c] as number)));
// Sized so that the default model (window means) sees spikes, drifts and noise bursts in the demo.
const DEFAULT_MAGNITUDE: Record<FaultKind, number> = { spike: 40, drift: 25, stuck: 0, noise: 25 };
// The demand cycle is a compressed "day" so that short recordings still cover a whole cycle.
const CYCLE_ROWS = 1440;
const DEFAULT_START_TS = Date.UTC(2024, 0, 1);

export class PumpSimulator {
  readonly channels: readonly string[] = PUMP_CHANNELS;
  private readonly random: SeededRandom;
  private readonly periodMs: number;
  private readonly startTs: number;
  private readonly faults: FaultPlan[];
  private row = 0;
  private wander = 0;
  private heat = 0;
  private readonly last: number[] = [];
  private readonly stuckAt = new Map<FaultPlan, number>();

  constructor(opts: PumpSimulatorOptions) {
    this.random = new SeededRandom(opts.seed);
    this.startTs = opts.startTs ?? DEFAULT_START_TS;
    this.periodMs = opts.periodMs ?? 1000;
    this.faults = opts.faults ?? [];
    for (const f of this.faults) {
      if (!Number.isInteger(f.channel) || f.channel < 0 || f.channel >= PUMP_CHANNELS.length) {
        throw new RangeError(`fault channel ${f.channel} is out of range 0..${PUMP_CHANNELS.length - 1}`);
      }
    }
  }

  next(): PumpReading {
    const r = this.random;
    const i = this.row++;
    // Load: a slow demand cycle plus a mean-reverting wander, shared by all channels.
    this.wander = 0.995 * this.wander + 0.01 * r.normal();
    const load = 0.15 * Math.sin((2 * Math.PI * i) / CYCLE_ROWS) + this.wander;
    // Temperature follows load through a first-order lag, as a motor warms up.
    this.heat += 0.02 * (load - this.heat);
    const drivers = [load, load, load, this.heat, load];
    const values = BASE.map((base, c) => base + (LOAD_GAIN[c] as number) * (drivers[c] as number) + (NOISE_SD[c] as number) * r.normal());

    let fault: FaultKind | null = null;
    for (const f of this.faults) {
      const k = i - f.start;
      if (k < 0 || k >= f.length) continue;
      fault = f.kind;
      const sd = FAULT_UNIT[f.channel] as number;
      const magnitude = f.magnitude ?? DEFAULT_MAGNITUDE[f.kind];
      const c = f.channel;
      if (f.kind === 'spike') values[c] = (values[c] as number) + magnitude * sd;
      else if (f.kind === 'drift') values[c] = (values[c] as number) + (magnitude * sd * (k + 1)) / f.length;
      else if (f.kind === 'noise') values[c] = (values[c] as number) + magnitude * sd * r.normal();
      else {
        if (!this.stuckAt.has(f)) this.stuckAt.set(f, this.last[c] ?? (values[c] as number));
        values[c] = this.stuckAt.get(f) as number;
      }
    }
    for (let c = 0; c < values.length; c++) this.last[c] = values[c] as number;
    return { ts: this.startTs + i * this.periodMs, values, fault };
  }
}
