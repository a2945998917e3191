import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { channelStatsSchema, driftConfigSchema } from '../../src/drift/config.js';
import { nextBand } from '../../src/drift/bands.js';
import { DriftTracker } from '../../src/drift/tracker.js';
import { driftEvent, driftEventSchema, driftSnapshotSchema, type BandChange } from '../../src/drift/wire.js';

describe('drift config', () => {
  it('has a default for every key', () => {
    expect(driftConfigSchema.parse({})).toEqual({
      enabled: true,
      horizon: 500,
      minReadings: 250,
      bands: { moderate: 1, severe: 3 },
      hysteresis: 0.2,
      clip: 8,
      quality: { poorAbove: 0.05 },
      topN: 5,
      prefix: 'sentinel/drift',
    });
  });

  it('describes every key', () => {
    const undescribed: string[] = [];
    const walk = (schema: z.ZodType, path: string): void => {
      let inner: z.ZodType = schema;
      let described = schema.description !== undefined;
      while (inner instanceof z.ZodDefault || inner instanceof z.ZodPrefault || inner instanceof z.ZodOptional) {
        inner = inner.def.innerType as z.ZodType;
        described ||= inner.description !== undefined;
      }
      if (inner instanceof z.ZodObject) {
        for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) walk(child, path ? `${path}.${key}` : key);
      } else if (!described) undescribed.push(path);
    };
    walk(driftConfigSchema, '');
    expect(undescribed).toEqual([]);
  });

  it('refuses unknown keys and bands out of order, naming the field', () => {
    expect(driftConfigSchema.safeParse({ horizn: 100 }).success).toBe(false);
    expect(driftConfigSchema.safeParse({ bands: { moderat: 1 } }).success).toBe(false);
    const bad = driftConfigSchema.safeParse({ bands: { moderate: 3, severe: 3 } });
    expect(bad.success).toBe(false);
    expect(bad.error?.issues[0]?.path).toEqual(['bands', 'severe']);
    expect(driftConfigSchema.safeParse({ horizon: 5 }).success).toBe(false);
    expect(driftConfigSchema.safeParse({ quality: { poorAbove: 1 } }).success).toBe(false);
  });

  it('checks training statistics: one finite mean and std > 0 per channel', () => {
    expect(channelStatsSchema.safeParse({ channels: ['a', 'b'], mean: [0, 1], std: [1, 2] }).success).toBe(true);
    expect(channelStatsSchema.safeParse({ channels: ['a', 'b'], mean: [0], std: [1, 2] }).error?.issues[0]?.path).toEqual(['mean']);
    expect(channelStatsSchema.safeParse({ channels: ['a'], mean: [0], std: [0] }).success).toBe(false);
    expect(channelStatsSchema.safeParse({ channels: ['a'], mean: [Number.NaN], std: [1] }).success).toBe(false);
  });
});

describe('bands', () => {
  const thresholds = Float64Array.of(1, 3);
  it('goes up at a threshold, down only below (1 - hysteresis) × the threshold of the band it leaves', () => {
    expect(nextBand(1, 0.99, thresholds, 0.2)).toBe(1);
    expect(nextBand(1, 1, thresholds, 0.2)).toBe(2);
    expect(nextBand(1, 5, thresholds, 0.2)).toBe(3);
    expect(nextBand(2, 0.81, thresholds, 0.2)).toBe(2);
    expect(nextBand(2, 0.79, thresholds, 0.2)).toBe(1);
    expect(nextBand(3, 2.41, thresholds, 0.2)).toBe(3);
    expect(nextBand(3, 2.39, thresholds, 0.2)).toBe(2);
    expect(nextBand(3, 0.5, thresholds, 0.2)).toBe(1);
    expect(nextBand(3, 0.9, thresholds, 0.2)).toBe(2);
    expect(nextBand(2, 0.99, thresholds, 0)).toBe(1);
  });
});

describe('drift wire payloads', () => {
  const change: BandChange = {
    measure: 'drift',
    streamId: 'pump-1',
    from: 'ok',
    to: 'moderate',
    channel: 'pressure',
    drift: 1.00012345,
    shift: -0.98765,
    stdRatio: 1.1234567,
    rejectedShare: 0.0123456,
    nonFiniteShare: 0,
    ts: 1_700_000_000_000,
  };

  it('builds the drift event, rounded, with ISO times, and it passes its schema', () => {
    const event = driftEvent(change, 'node-a', { name: 'pumps', version: 'sha256:ab' }, 1_700_000_000_500);
    expect(event).toEqual({
      measure: 'drift',
      streamId: 'pump-1',
      from: 'ok',
      to: 'moderate',
      channel: 'pressure',
      drift: 1,
      shift: -0.988,
      stdRatio: 1.123,
      rejectedShare: 0.0123,
      nonFiniteShare: 0,
      nodeName: 'node-a',
      model: { name: 'pumps', version: 'sha256:ab' },
      recordTs: '2023-11-14T22:13:20.000Z',
      detectedAt: '2023-11-14T22:13:20.500Z',
    });
    expect(driftEventSchema.parse(event)).toEqual(event);
  });

  it('a quality change carries quality bands and null drift fields when there is no drift', () => {
    const quality: BandChange = { ...change, measure: 'quality', from: 'ok', to: 'poor', channel: null, drift: null, shift: null, stdRatio: null };
    const event = driftEvent(quality, 'node-a', { name: 'pumps', version: 'v' }, 0);
    expect(driftEventSchema.safeParse(event).success).toBe(true);
    expect(driftEventSchema.safeParse({ ...event, to: 'severe' }).success).toBe(false);
  });

  it('the snapshot for the status message passes its schema', () => {
    const tracker = new DriftTracker({
      maxStreams: 4,
      channels: ['a'],
      stats: { channels: ['a'], mean: [0], std: [1] },
      config: driftConfigSchema.parse({ minReadings: 2 }),
    });
    for (let i = 0; i < 10; i++) tracker.recordAccepted(1, { streamId: 's', ts: i, tsFromPayload: true, receivedAt: 0, channel: 0, value: i % 2, values: null });
    const snapshot = tracker.snapshot();
    expect(driftSnapshotSchema.parse(snapshot)).toEqual(snapshot);
    expect(snapshot.top[0]).toMatchObject({ streamId: 's', band: 'ok', channel: 'a', shift: 0.5, stdRatio: 0.5 });
  });
});

describe('docs/drift.md', () => {
  it('lists every config key with the schema\'s default', () => {
    const text = readFileSync(new URL('../../docs/drift.md', import.meta.url), 'utf8');
    const table = text.slice(text.indexOf('## Config'));
    const documented = new Map([...table.matchAll(/^\| `([\w.]+)` \| `([^`]*)` \|/gm)].map((m) => [m[1] as string, m[2] as string]));
    const flat = new Map<string, string>();
    const walk = (value: unknown, path: string): void => {
      if (typeof value === 'object' && value !== null) for (const [k, v] of Object.entries(value)) walk(v, path ? `${path}.${k}` : k);
      else flat.set(path, JSON.stringify(value));
    };
    walk(driftConfigSchema.parse({}), '');
    expect(documented).toEqual(flat);
  });
});
