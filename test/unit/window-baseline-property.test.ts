/**
 * Properties of the window store with per-stream baselines (fast-check): whatever the interleaving of
 * streams, each stream's normalised windows are exactly what the trainer's baselineTrack computes for
 * that stream alone; a held baseline does not move for as long as the hold (at most maxHoldRows) lasts
 * and follows again after; the state per stream is bounded (it does not grow with the rows seen).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { BaselineSpec } from '../../src/model/manifest.js';
import { BaselineRule, baselineTrack } from '../../src/window/baseline.js';
import { WindowStore } from '../../src/window/window-store.js';

const CHANNELS = 2;
const WINDOW = 4;

function store(spec: BaselineSpec, maxStreams = 8): WindowStore {
  return new WindowStore({
    window: WINDOW,
    channels: CHANNELS,
    maxStreams,
    staleAfterMs: Number.POSITIVE_INFINITY,
    idleTtlMs: Number.POSITIVE_INFINITY,
    normalization: { kind: 'graph' },
    baseline: spec,
  });
}

const specArb: fc.Arbitrary<BaselineSpec> = fc.record({
  version: fc.constant(1 as const),
  warmupRows: fc.integer({ min: 2, max: 12 }),
  halfLifeRows: fc.option(fc.integer({ min: 1, max: 50 }), { nil: null }),
  clip: fc.double({ min: 0.5, max: 5, noNaN: true }),
  minScale: fc.constant([0.01, 0.5]),
  maxHoldRows: fc.option(fc.integer({ min: 0, max: 20 }), { nil: null }),
});

/** Readings of a few streams at their own operating points, in a random interleaving. */
const streamsArb = fc
  .array(
    fc.record({
      base: fc.double({ min: -1e3, max: 1e3, noNaN: true }),
      values: fc.array(fc.tuple(fc.double({ min: -5, max: 5, noNaN: true }), fc.double({ min: -5, max: 5, noNaN: true })), { minLength: 1, maxLength: 60 }),
    }),
    { minLength: 1, maxLength: 4 },
  )
  .chain((streams) => {
    const total = streams.reduce((n, s) => n + s.values.length, 0);
    // Which stream each push goes to: any order that keeps every stream's own order.
    return fc.tuple(fc.constant(streams), fc.shuffledSubarray([...Array(total).keys()], { minLength: total, maxLength: total }));
  });

describe('window store with per-stream baselines (properties)', () => {
  it('every stream\'s normalised windows equal baselineTrack on that stream alone, whatever the interleaving', () => {
    fc.assert(
      fc.property(specArb, streamsArb, (spec, [streams, order]) => {
        const windows = store(spec);
        const owner: number[] = [];
        streams.forEach((s, k) => s.values.forEach(() => owner.push(k)));
        const next = streams.map(() => 0);
        const got: Array<Map<number, Float32Array>> = streams.map(() => new Map());
        const target = new Float32Array(WINDOW * CHANNELS);
        for (const slot of order) {
          const k = owner[slot] as number;
          const row = next[k] as number;
          next[k] = row + 1;
          const s = streams[k] as (typeof streams)[number];
          const [a, b] = s.values[row] as [number, number];
          const outcome = windows.push({ streamId: `s${k}`, ts: 1_000 + row, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values: Float32Array.of(s.base + a, s.base * 0.5 + b) }, 0);
          if (typeof outcome === 'number') {
            windows.copyWindow(outcome, target, 0);
            got[k]?.set(row, target.slice());
          }
        }
        const rule = new BaselineRule(spec);
        streams.forEach((s, k) => {
          const columns = [Float64Array.from(s.values, ([a]) => Math.fround(s.base + a)), Float64Array.from(s.values, ([, b]) => Math.fround(s.base * 0.5 + b))];
          const track = baselineTrack(rule, columns, WINDOW, s.values.length);
          for (let row = 0; row < s.values.length; row++) {
            const window = got[k]?.get(row);
            const scored = !Number.isNaN(track.loc[0]?.[row] as number);
            expect(window !== undefined, `stream ${k} row ${row} scored`).toBe(scored);
            if (window === undefined) continue;
            for (let j = 0; j < WINDOW; j++) {
              for (let c = 0; c < CHANNELS; c++) {
                const x = columns[c]?.[row - WINDOW + 1 + j] as number;
                const want = Math.fround((Math.fround(x) - (track.loc[c]?.[row] as number)) * (track.invScale[c]?.[row] as number));
                expect(window[j * CHANNELS + c]).toBe(want);
              }
            }
          }
        });
      }),
      { numRuns: 150 },
    );
  });

  it('a held baseline stays put for maxHoldRows rows (or for good), then follows again; state per stream is bounded', () => {
    fc.assert(
      fc.property(
        specArb.filter((s) => s.halfLifeRows !== null),
        fc.integer({ min: 0, max: 40 }),
        fc.integer({ min: 1, max: 60 }),
        (spec, before, held) => {
          const windows = store(spec, 2);
          let ts = 0;
          const push = (v: number): void => {
            windows.push({ streamId: 'a', ts: ++ts, tsFromPayload: true, receivedAt: 0, channel: -1, value: 0, values: Float32Array.of(v, -v) }, 0);
          };
          const warm = spec.warmupRows + WINDOW + before;
          for (let i = 0; i < warm; i++) push(10 + (i % 3));
          const bytes = windows.bytes;
          windows.holdBaseline('a', true);
          const atHold = windows.baselineOf('a');
          const cap = spec.maxHoldRows ?? Number.POSITIVE_INFINITY;
          // A large lasting step: anything that learns it moves the location.
          for (let i = 0; i < held; i++) {
            push(500);
            const now = windows.baselineOf('a');
            if (i < cap) expect(now?.loc).toEqual(atHold?.loc);
          }
          // Past the cap the baseline follows again: once a step row has left the window, it has moved up.
          if (held > cap + WINDOW) expect(windows.baselineOf('a')?.loc[0]).toBeGreaterThan(atHold?.loc[0] as number);
          windows.holdBaseline('a', false);
          for (let i = 0; i < WINDOW + 1; i++) push(500);
          expect(windows.baselineOf('a')?.loc[0]).toBeGreaterThan(atHold?.loc[0] as number);
          // Bounded: rows seen do not grow the stream's state.
          expect(windows.bytes).toBe(bytes);
        },
      ),
      { numRuns: 150 },
    );
  });
});
