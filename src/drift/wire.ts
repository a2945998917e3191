/** Wire payloads of drift tracking: the `drift` event published on a band change, and the status block. */
import { z } from 'zod';
import { isoTime } from '../alert/alert.js';
import { driftBands, qualityBands } from './bands.js';
import { driftSummarySchema } from './snapshot.js';

export { driftSnapshotSchema, driftSummarySchema, type DriftSnapshot, type DriftSummary } from './snapshot.js';

const eventFields = {
  streamId: z.string().min(1),
  nodeName: z.string().min(1),
  model: z.object({ name: z.string(), version: z.string() }),
  channel: driftSummarySchema.shape.channel,
  drift: driftSummarySchema.shape.drift,
  shift: driftSummarySchema.shape.shift,
  stdRatio: driftSummarySchema.shape.stdRatio,
  rejectedShare: driftSummarySchema.shape.rejectedShare,
  nonFiniteShare: driftSummarySchema.shape.nonFiniteShare,
  recordTs: z.string().describe('record time of the reading that moved the stream (ISO-8601; receive time for a rejection without one)'),
  detectedAt: z.string().describe('wall-clock time of the band change (ISO-8601)'),
};

/** The `drift` event: a stream moved to another drift band (`measure: drift`) or input-quality band (`measure: quality`). */
export const driftEventSchema = z.discriminatedUnion('measure', [
  z.object({ measure: z.literal('drift'), from: z.enum(driftBands), to: z.enum(driftBands), ...eventFields }),
  z.object({ measure: z.literal('quality'), from: z.enum(qualityBands), to: z.enum(qualityBands), ...eventFields }),
]);
export type DriftEvent = z.infer<typeof driftEventSchema>;

type DistributiveOmit<T, K extends PropertyKey> = T extends unknown ? Omit<T, K> : never;

/** A band change as the tracker reports it in-process (record time in epoch ms). */
export type BandChange = DistributiveOmit<DriftEvent, 'nodeName' | 'model' | 'recordTs' | 'detectedAt'> & { ts: number };

/** Rounds a measure for the wire; null stays null. */
export function rounded(value: number | null, digits: number): number | null {
  if (value === null) return null;
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

/** The wire payload of a band change. */
export function driftEvent(change: BandChange, nodeName: string, model: DriftEvent['model'], detectedAt: number): DriftEvent {
  const { ts, ...rest } = change;
  return {
    ...rest,
    drift: rounded(change.drift, 3),
    shift: rounded(change.shift, 3),
    stdRatio: rounded(change.stdRatio, 3),
    rejectedShare: rounded(change.rejectedShare, 4) as number,
    nonFiniteShare: rounded(change.nonFiniteShare, 4) as number,
    nodeName,
    model,
    recordTs: isoTime(ts),
    detectedAt: isoTime(detectedAt),
  };
}
