/**
 * Where streams stand on drift and input quality, as the status message and logs carry it. A leaf module
 * (zod and the band names only), so that the status schema in src/alert can use it.
 */
import { z } from 'zod';
import { driftBands, qualityBands } from './bands.js';

const share = z.number().min(0).max(1);

/** Where a stream stands; drift fields are null while it is warming or when the model has no training statistics. */
export const driftSummarySchema = z.object({
  streamId: z.string().min(1),
  band: z.enum(driftBands).describe('drift band'),
  quality: z.enum(qualityBands).describe('input-quality band'),
  channel: z.string().nullable().describe('the channel that drifts most'),
  drift: z.number().nullable().describe('that channel\'s drift: 2-Wasserstein distance to the training distribution, in training σ'),
  shift: z.number().nullable().describe('that channel\'s mean shift, in training σ, signed'),
  stdRatio: z.number().nullable().describe('that channel\'s standard deviation over the training one'),
  rejectedShare: share.describe('share of the stream\'s recent readings rejected (any reason)'),
  nonFiniteShare: share.describe('share of the stream\'s recent readings that were NaN or infinite'),
});
export type DriftSummary = z.infer<typeof driftSummarySchema>;

/** For the status message and logs: streams by band, and the most drifting ones. */
export const driftSnapshotSchema = z.object({
  bands: z.record(z.enum(driftBands), z.number().int().min(0)).describe('streams by drift band (all 0 when the model has no training statistics)'),
  quality: z.record(z.enum(qualityBands), z.number().int().min(0)).describe('streams by input-quality band'),
  top: z.array(driftSummarySchema).describe('the most drifting streams, most first; then those with the most rejected readings'),
});
export type DriftSnapshot = z.infer<typeof driftSnapshotSchema>;

