/** Wire payloads out: the alert and status schemas, and the alert builder. */
import { createHash } from 'node:crypto';
import { z } from 'zod';
import { driftSnapshotSchema } from '../drift/snapshot.js';

export const alertSchema = z.object({
  eventId: z.string().regex(/^[0-9a-f]{32}$/).describe('dedup key: the same decision always has the same id'),
  type: z.enum(['raised', 'resolved']),
  streamId: z.string().min(1),
  nodeName: z.string().min(1),
  recordTs: z.string().describe('record time of the window that caused the decision (ISO-8601)'),
  detectedAt: z.string().describe('wall-clock time of the decision (ISO-8601)'),
  score: z.number(),
  peakScore: z.number().optional().describe('highest score while raised (resolved only)'),
  reason: z
    .enum(['score', 'stale', 'evicted'])
    .optional()
    .describe('resolved only: why the alert closed — scores fell below the clear threshold, the stream went silent (data gap), or it was evicted'),
  thresholds: z.object({ raise: z.number(), clear: z.number() }),
  model: z.object({ name: z.string(), version: z.string() }),
  topChannels: z.array(z.object({ channel: z.string(), contribution: z.number() })),
  evidence: z
    .array(
      z.object({
        test: z.string().describe('the model\'s test that fired, e.g. level, spike, noise, stuck'),
        score: z.number().describe('its score, on the scale of the thresholds'),
        channels: z.array(z.string()).describe('the channels it fired on (at or above the raise threshold), or its largest one'),
      }),
    )
    .optional()
    .describe('raised only, for models that declare per-test outputs: every test at or above the raise threshold, largest first'),
});
export type Alert = z.infer<typeof alertSchema>;

export const statusSchema = z.object({
  state: z.enum(['online', 'offline']),
  version: z.string().describe('the Sentinel version (package.json) of the daemon that sent it'),
  nodeName: z.string(),
  clientId: z.string(),
  model: z.object({ name: z.string(), version: z.string() }).nullable().describe('the first model (all of a single-model node\'s)'),
  provider: z.string().nullable(),
  models: z
    .array(z.object({ model: z.string(), name: z.string(), version: z.string(), provider: z.string() }))
    .optional()
    .describe('every model by its name in the config (`model`), with its manifest name, version and execution provider'),
  drift: z
    .record(z.string(), driftSnapshotSchema)
    .optional()
    .describe('per model (its name in the config): streams by drift and input-quality band, and the most drifting ones'),
  startedAt: z.string(),
  updatedAt: z.string(),
});
export type Status = z.infer<typeof statusSchema>;

export function alertEventId(streamId: string, type: string, recordTs: number, modelVersion: string): string {
  return createHash('sha256').update(`${streamId}\n${type}\n${recordTs}\n${modelVersion}`).digest('hex').slice(0, 32);
}

/** The largest float32: what an overflowed (infinite or NaN) score or contribution is reported as. */
export const SATURATED = 3.4028234663852886e38;

/** A score as JSON can carry it: extreme inputs overflow float32 to Infinity or NaN, which mean "off the scale". */
export function finiteScore(score: number): number {
  if (Number.isFinite(score)) return score;
  return score === Number.NEGATIVE_INFINITY ? -SATURATED : SATURATED;
}

/** ISO-8601 of an epoch-ms time; never throws (the ingest door keeps ts inside the Date range, this is the backstop). */
export function isoTime(ms: number): string {
  const date = new Date(ms);
  return Number.isNaN(date.getTime()) ? new Date(ms > 0 ? 8.64e15 : -8.64e15).toISOString() : date.toISOString();
}

/**
 * The tests of window `b` at or above `raise`, largest first, each with the channels it fired on (or
 * its largest channel, for a test that fires on a sum, such as T² + Q). Empty when none reaches it.
 */
export function testEvidence(
  names: readonly string[],
  channels: readonly string[],
  tests: Float32Array,
  testChannels: Float32Array,
  b: number,
  raise: number,
): NonNullable<Alert['evidence']> {
  const t = names.length;
  const c = channels.length;
  const out: NonNullable<Alert['evidence']> = [];
  for (let k = 0; k < t; k++) {
    const score = finiteScore(tests[b * t + k] as number);
    if (!(score >= raise)) continue;
    const base = (b * t + k) * c;
    const fired: string[] = [];
    let top = 0;
    for (let j = 0; j < c; j++) {
      const v = testChannels[base + j] as number;
      if (v >= raise) fired.push(channels[j] as string);
      if (v > (testChannels[base + top] as number)) top = j;
    }
    out.push({ test: names[k] as string, score: Math.round(score * 1e6) / 1e6, channels: fired.length > 0 ? fired : [channels[top] as string] });
  }
  return out.sort((x, y) => y.score - x.score);
}

/** The `count` channels with the largest contribution, largest first. */
export function topChannels(
  channels: readonly string[],
  contributions: Float32Array | null,
  offset: number,
  count: number,
): Alert['topChannels'] {
  if (contributions === null || count === 0) return [];
  const ranked = channels.map((channel, i) => ({ channel, contribution: finiteScore(contributions[offset + i] as number) }));
  ranked.sort((a, b) => b.contribution - a.contribution);
  return ranked.slice(0, count).map((c) => ({ channel: c.channel, contribution: Math.round(c.contribution * 1e6) / 1e6 }));
}
