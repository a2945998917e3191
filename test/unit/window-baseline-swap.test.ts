/**
 * Per-stream baselines across a hot swap: a retrained model (same rule, its own scale floors) swaps in
 * without the streams warming up again; a model with another rule is refused. And an open alert holds
 * the stream's baseline still.
 */
import { describe, expect, it } from 'vitest';
import type { Reading } from '../../src/ingest/reading.js';
import type { BaselineSpec } from '../../src/model/manifest.js';
import { swapIncompatibility } from '../../src/model/scorer.js';
import { parseTable } from '../../src/offline/data/table.js';
import { simulateCsv } from '../../src/offline/sim/record.js';
import { trainModel } from '../../src/offline/train/trainer.js';
import { WindowStore } from '../../src/window/window-store.js';

const train = (seed: number) => trainModel(parseTable(Buffer.from(simulateCsv({ seed, rows: 1200 }), 'utf8'), `sim ${seed}`), { window: 10, createdAt: '2026-01-01T00:00:00.000Z', detector: { family: 'baseline-tests' } }).manifest;

const spec = (overrides: Partial<BaselineSpec> = {}): BaselineSpec => ({ version: 1, warmupRows: 20, halfLifeRows: 50, clip: 3, minScale: [0.01, 0.01], maxHoldRows: null, ...overrides });

function store(baseline: BaselineSpec): WindowStore {
  return new WindowStore({ window: 5, channels: 2, maxStreams: 10, staleAfterMs: 60_000, idleTtlMs: 3_600_000, normalization: { kind: 'graph' }, baseline });
}

let ts = 0;
const reading = (streamId: string, a: number, b: number): Reading => ({ streamId, ts: (ts += 1000), tsFromPayload: true, receivedAt: ts, channel: -1, value: 0, values: Float32Array.of(a, b) });

describe('per-stream baselines across a hot swap', () => {
  it('a model retrained on other data (same rule, other scale floors) may swap in; another rule may not', () => {
    const a = train(1);
    const b = train(2);
    expect(a.baseline).toBeDefined();
    expect(a.baseline?.minScale).not.toEqual(b.baseline?.minScale);
    expect(swapIncompatibility(a, b)).toBeNull();
    const otherRule = { ...b, baseline: { ...(b.baseline as BaselineSpec), warmupRows: (b.baseline as BaselineSpec).warmupRows + 1 } };
    expect(swapIncompatibility(a, otherRule)).toBe('per-stream baseline rule differs from the running model');
    const none = { ...b, baseline: undefined };
    expect(swapIncompatibility(a, none)).toBe('per-stream baseline rule differs from the running model');
  });

  it('new scale floors keep every stream\'s learned location and scale; another rule throws', () => {
    const windows = store(spec());
    for (let i = 0; i < 40; i++) windows.push(reading('s', 10 + (i % 3), 5 + (i % 2)), 0);
    const before = windows.baselineOf('s');
    expect(before?.learned).toBe(20);
    windows.setBaselineFloors(spec({ minScale: [0.02, 0.03] }));
    expect(windows.baselineOf('s')).toEqual(before);
    // A floor above the learned scale takes effect at once.
    windows.setBaselineFloors(spec({ minScale: [100, 0.03] }));
    expect(windows.baselineOf('s')?.scale[0]).toBe(100);
    expect(() => windows.setBaselineFloors(spec({ warmupRows: 21 }))).toThrow(/rule itself differs/);
  });

  it('an open alert holds the stream\'s baseline; resolving lets it follow again', () => {
    const windows = store(spec());
    for (let i = 0; i < 40; i++) windows.push(reading('s', 10 + (i % 3), 5), 0);
    windows.holdBaseline('s', true);
    const held = windows.baselineOf('s');
    expect(held?.held).toBe(true);
    // A fault: readings far off. Held, the baseline does not learn them.
    for (let i = 0; i < 30; i++) windows.push(reading('s', 50, 5), 0);
    expect(windows.baselineOf('s')?.loc).toEqual(held?.loc);
    windows.holdBaseline('s', false);
    for (let i = 0; i < 30; i++) windows.push(reading('s', 50, 5), 0);
    expect((windows.baselineOf('s')?.loc[0] as number) > (held?.loc[0] as number)).toBe(true);
  });
});
