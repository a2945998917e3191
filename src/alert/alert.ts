/** Wire payloads out: the alert and status schemas, and the alert builder. */
import { createHash } from 'node:crypto';
import { z } from 'zod';

export const alertSchema = z.object({
  eventId: z.string().regex(/^[0-9a-f]{32}$/).describe('dedup key: the same decision always has the same id'),
  type: z.enum(['raised', 'resolved']),
  streamId: z.string().min(1),
  nodeName: z.string().min(1),
  recordTs: z.string().describe('record time of the window that caused the decision (ISO-8601)'),
  detectedAt: z.string().describe('wall-clock time of the decision (ISO-8601)'),
  score: z.number(),
  peakScore: z.number().optional().describe('highest score while raised (resolved only)'),
  thresholds: z.object({ raise: z.number(), clear: z.number() }),
  model: z.object({ name: z.string(), version: z.string() }),
  topChannels: z.array(z.object({ channel: z.string(), contribution: z.number() })),
});
export type Alert = z.infer<typeof alertSchema>;

export const statusSchema = z.object({
  state: z.enum(['online', 'offline']),
  nodeName: z.string(),
  clientId: z.string(),
  model: z.object({ name: z.string(), version: z.string() }).nullable(),
  provider: z.string().nullable(),
  startedAt: z.string(),
  updatedAt: z.string(),
});
export type Status = z.infer<typeof statusSchema>;

export function alertEventId(streamId: string, type: string, recordTs: number, modelVersion: string): string {
  return createHash('sha256').update(`${streamId}\n${type}\n${recordTs}\n${modelVersion}`).digest('hex').slice(0, 32);
}

/** The `count` channels with the largest contribution, largest first. */
export function topChannels(
  channels: readonly string[],
  contributions: Float32Array | null,
  offset: number,
  count: number,
): Alert['topChannels'] {
  if (contributions === null || count === 0) return [];
  const ranked = channels.map((channel, i) => ({ channel, contribution: contributions[offset + i] as number }));
  ranked.sort((a, b) => b.contribution - a.contribution);
  return ranked.slice(0, count).map((c) => ({ channel: c.channel, contribution: Math.round(c.contribution * 1e6) / 1e6 }));
}
