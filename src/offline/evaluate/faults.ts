/**
 * Detection rate and delay per fault kind on generated data: runs of the pump simulator, each with one
 * fault after the baseline's warm-up, replayed as separate streams through the daemon's stages.
 */
import type { Scorer } from '../../model/scorer.js';
import { PumpSimulator, type FaultKind } from '../sim/pump.js';
import { replayStreams, type StreamRow } from './replay.js';

export interface FaultKindOptions {
  kind: FaultKind;
  runs: number;
  /** Rows per run; the fault starts at `start` and lasts `length` rows. */
  rows: number;
  start: number;
  length: number;
  magnitude?: number;
  seed: number;
}

export interface FaultKindReport {
  kind: FaultKind;
  runs: number;
  /** Runs with a `raised` alert from the fault's first row to `window` rows after its last. */
  detected: number;
  /** Rows from the fault's first row to the raise, over detected runs. */
  meanDelayRows: number;
  maxDelayRows: number;
  /** `raised` alerts outside that span, over all runs. */
  falseAlerts: number;
  /** How often each test was named in the evidence of the detecting alerts. */
  tests: Record<string, number>;
}

export async function faultKindReport(scorer: Scorer, o: FaultKindOptions): Promise<FaultKindReport> {
  const channels = scorer.manifest.channels.length;
  const sims = Array.from({ length: o.runs }, (_, r) => new PumpSimulator({ seed: o.seed + r, faults: [{ kind: o.kind, channel: r % channels, start: o.start, length: o.length, magnitude: o.magnitude }] }));
  const stamps: number[] = [];
  function* rows(): Generator<StreamRow> {
    for (let i = 0; i < o.rows; i++) {
      for (let r = 0; r < o.runs; r++) {
        const reading = sims[r]!.next();
        if (r === 0) stamps.push(reading.ts);
        yield { streamId: `run-${r}`, ts: reading.ts, values: Float32Array.from(reading.values) };
      }
    }
  }
  const alerts = await replayStreams(scorer, rows());
  const rowOf = new Map(stamps.map((ts, i) => [new Date(ts).toISOString(), i]));
  const window = scorer.manifest.window;
  const first = new Map<string, { row: number; tests: string[] }>();
  let falseAlerts = 0;
  for (const a of alerts) {
    if (a.type !== 'raised') continue;
    const row = rowOf.get(a.recordTs) ?? -1;
    if (row >= o.start && row < o.start + o.length + window) {
      if (!first.has(a.streamId)) first.set(a.streamId, { row, tests: (a.evidence ?? []).map((e) => e.test) });
    } else falseAlerts++;
  }
  const delays = [...first.values()].map((f) => f.row - o.start);
  const tests: Record<string, number> = {};
  for (const f of first.values()) for (const t of f.tests) tests[t] = (tests[t] ?? 0) + 1;
  return {
    kind: o.kind,
    runs: o.runs,
    detected: first.size,
    meanDelayRows: delays.length === 0 ? Number.NaN : delays.reduce((s, d) => s + d, 0) / delays.length,
    maxDelayRows: delays.length === 0 ? Number.NaN : Math.max(...delays),
    falseAlerts,
    tests,
  };
}
