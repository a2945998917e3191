import { describe, expect, it } from 'vitest';
import { parseTable } from '../../src/offline/data/table.js';
import { PumpSimulator, type FaultPlan } from '../../src/offline/sim/pump.js';
import { simulateCsv } from '../../src/offline/sim/record.js';

const run = (sim: PumpSimulator, n: number) => Array.from({ length: n }, () => sim.next());

describe('PumpSimulator', () => {
  it('is reproducible for a seed and differs between seeds', () => {
    const a = run(new PumpSimulator({ seed: 1 }), 200);
    const b = run(new PumpSimulator({ seed: 1 }), 200);
    const c = run(new PumpSimulator({ seed: 2 }), 200);
    expect(a).toEqual(b);
    expect(a).not.toEqual(c);
  });

  it('steps time by periodMs from startTs and reports five channels', () => {
    const sim = new PumpSimulator({ seed: 3, startTs: 1000, periodMs: 250 });
    expect(sim.channels).toEqual(['vibration', 'current', 'pressure', 'temperature', 'flow']);
    expect(run(sim, 3).map((r) => r.ts)).toEqual([1000, 1250, 1500]);
  });

  it('moves current and flow together with the load', () => {
    const rows = run(new PumpSimulator({ seed: 4 }), 3000);
    const current = rows.map((r) => r.values[1]!);
    const flow = rows.map((r) => r.values[4]!);
    expect(correlation(current, flow)).toBeGreaterThan(0.8);
  });

  it.each<FaultPlan['kind']>(['spike', 'drift', 'stuck', 'noise'])('flags a %s fault only while it lasts', (kind) => {
    const plan: FaultPlan = { kind, channel: 2, start: 50, length: 20 };
    const faulty = run(new PumpSimulator({ seed: 5, faults: [plan] }), 100);
    const normal = run(new PumpSimulator({ seed: 5 }), 100);
    faulty.forEach((r, i) => expect(r.fault).toBe(i >= 50 && i < 70 ? kind : null));
    // Outside the fault, other channels are untouched by it.
    expect(faulty.slice(0, 50)).toEqual(normal.slice(0, 50));
    if (kind === 'stuck') expect(new Set(faulty.slice(50, 70).map((r) => r.values[2])).size).toBe(1);
    else expect(faulty[60]!.values[2]).not.toBe(normal[60]!.values[2]);
  });

  it('refuses a fault on a channel it does not have', () => {
    expect(() => new PumpSimulator({ seed: 1, faults: [{ kind: 'spike', channel: 5, start: 0, length: 1 }] })).toThrow(/out of range/);
  });
});

describe('simulateCsv', () => {
  it('writes a CSV that readTable reads back, with labels only when faults are planned', () => {
    const normal = parseTable(Buffer.from(simulateCsv({ seed: 1, rows: 10 })), 'sim');
    expect(normal.rows).toBe(10);
    expect(normal.channels).toEqual(['vibration', 'current', 'pressure', 'temperature', 'flow']);
    expect(normal.labels).toEqual({});
    const faulty = parseTable(
      Buffer.from(simulateCsv({ seed: 1, rows: 10, faults: [{ kind: 'drift', channel: 0, start: 5, length: 3 }] })),
      'sim',
    );
    expect(Array.from(faulty.labels.anomaly!)).toEqual([0, 0, 0, 0, 0, 1, 1, 1, 0, 0]);
  });
});

function correlation(a: number[], b: number[]): number {
  const mean = (x: number[]) => x.reduce((s, v) => s + v, 0) / x.length;
  const ma = mean(a);
  const mb = mean(b);
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < a.length; i++) {
    sab += (a[i]! - ma) * (b[i]! - mb);
    saa += (a[i]! - ma) ** 2;
    sbb += (b[i]! - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}
