/** Drift and input-quality settings, and the training statistics drift is measured against. */
import { z } from 'zod';

const finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });

/** Per-channel training mean and standard deviation (the manifest's `training.stats`), by channel name. */
export const channelStatsSchema = z
  .strictObject({
    channels: z.array(z.string().min(1)).min(1).describe('channel names, each with one mean and one std'),
    mean: z.array(finite).describe('training mean of each channel, in the order of `channels`'),
    std: z.array(finite.refine((v) => v > 0, { message: 'std must be > 0' })).describe('training standard deviation of each channel (> 0)'),
  })
  .superRefine((s, ctx) => {
    for (const key of ['mean', 'std'] as const) {
      if (s[key].length !== s.channels.length) {
        ctx.addIssue({ code: 'custom', path: [key], message: `has ${s[key].length} entries, expected one per channel (${s.channels.length})` });
      }
    }
  });
export type ChannelStats = z.infer<typeof channelStatsSchema>;

export const driftConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(true).describe('track drift and input quality per stream'),
    horizon: z
      .number()
      .int()
      .min(10)
      .max(100_000)
      .default(500)
      .describe('readings: span of the exponential averages (the variance and mean age of a moving average of this many readings)'),
    minReadings: z
      .number()
      .int()
      .min(1)
      .default(250)
      .describe('readings a channel (drift) or stream (quality) needs before it is given a band; until then it is "warming"'),
    bands: z
      .strictObject({
        moderate: z.number().gt(0).default(1).describe('drift (training σ, see docs/drift.md) at or above which a stream is "moderate"'),
        severe: z.number().gt(0).default(3).describe('drift at or above which a stream is "severe"'),
      })
      .prefault({}),
    hysteresis: z
      .number()
      .min(0)
      .max(0.9)
      .default(0.2)
      .describe('a stream leaves a band downwards only once its measure is below (1 - hysteresis) × the band\'s lower threshold'),
    clip: z
      .number()
      .min(1)
      .default(8)
      .describe('readings are clipped to mean ± clip × std before they are averaged, so one broken value cannot hold a stream in a band'),
    quality: z
      .strictObject({
        poorAbove: z
          .number()
          .gt(0)
          .lt(1)
          .default(0.05)
          .describe('share of a stream\'s readings rejected (any reason, non-finite included) at or above which its quality is "poor"'),
      })
      .prefault({}),
    topN: z.number().int().min(0).max(100).default(5).describe('how many of the most drifting streams the status message and logs name'),
    prefix: z.string().min(1).default('sentinel/drift').describe('a stream that changes band is announced on <prefix>/<streamId> (QoS 1, not retained)'),
  })
  .superRefine((c, ctx) => {
    if (c.bands.severe <= c.bands.moderate) {
      ctx.addIssue({
        code: 'custom',
        path: ['bands', 'severe'],
        message: `${c.bands.severe} is not above bands.moderate (${c.bands.moderate})`,
        params: { fix: 'raise bands.severe or lower bands.moderate' },
      });
    }
  });
export type DriftConfig = z.infer<typeof driftConfigSchema>;
