/**
 * Bench telemetry: normal readings for many streams, cheap to produce so the publisher is not the
 * bottleneck. Each stream reads a contiguous stretch of one pre-rendered simulator recording, so every
 * window the daemon scores is a real stretch of normal data (no alerts unless a fault is injected).
 */
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { SeededRandom } from '../../src/offline/sim/random.js';
import type { PayloadFormat } from './agent.js';

/** Added to vibration for one reading: far above the default model's raise threshold. */
const SPIKE = 100;

export class TelemetrySource {
  private readonly rows: string[];
  private readonly spikes: string[];
  private readonly offsets: Uint32Array;

  constructor(
    readonly format: PayloadFormat,
    streams: number,
    rounds: number,
    seed: number,
  ) {
    // Enough spare rows that streams start at different points of the load cycle.
    const length = rounds + 1500;
    this.rows = new Array<string>(length);
    this.spikes = new Array<string>(length);
    if (format === 'json-values') {
      const sim = new PumpSimulator({ seed });
      for (let i = 0; i < length; i++) {
        const v = sim.next().values;
        const rest = `"current":${f(v[1])},"pressure":${f(v[2])},"temperature":${f(v[3])},"flow":${f(v[4])}}`;
        this.rows[i] = `{"vibration":${f(v[0])},${rest}`;
        this.spikes[i] = `{"vibration":${f((v[0] as number) + SPIKE)},${rest}`;
      }
    } else {
      // The shape the bench's one-channel model is trained on (see lib/models.ts).
      const random = new SeededRandom(seed);
      for (let i = 0; i < length; i++) {
        const value = Math.sin(i / 10) + (random.uniform() - 0.5) * 0.2;
        this.rows[i] = f(value);
        this.spikes[i] = f(value + SPIKE);
      }
    }
    this.offsets = new Uint32Array(streams);
    const span = length - rounds;
    for (let s = 0; s < streams; s++) this.offsets[s] = (s * 7919) % span;
  }

  payload(stream: number, round: number, ts: number, spike = false): string {
    const row = (this.offsets[stream] as number) + round;
    const body = (spike ? this.spikes : this.rows)[row] as string;
    return this.format === 'json-values' ? `{"ts":${ts},"values":${body}}` : `{"ts":${ts},"value":${body}}`;
  }
}

function f(value: number | undefined): string {
  return (value as number).toFixed(4);
}
