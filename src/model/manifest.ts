/** The model manifest: the JSON file beside every ONNX model that states its contract. */
import { z } from 'zod';

const finite = z.number().refine(Number.isFinite, { message: 'must be a finite number' });

export const decisionPolicySchema = z
  .object({
    raiseThreshold: finite.describe('score at or above which a window counts towards raising an alert'),
    clearThreshold: finite.describe('score below which a window counts towards resolving an alert'),
    raiseAfter: z.number().int().min(1).describe('consecutive windows at/above raiseThreshold that raise an alert'),
    resolveAfter: z.number().int().min(1).describe('consecutive windows below clearThreshold that resolve it'),
    cooldownMs: z.number().int().min(0).describe('after a resolve, no new alert for this long (record time)'),
  })
  .refine((p) => p.clearThreshold <= p.raiseThreshold, {
    message: 'clearThreshold must not exceed raiseThreshold (hysteresis needs clear <= raise)',
    path: ['clearThreshold'],
  });
export type DecisionPolicy = z.infer<typeof decisionPolicySchema>;

export const normalizationSchema = z.discriminatedUnion('kind', [
  z.object({ kind: z.literal('graph').describe('the ONNX graph normalises raw readings itself') }),
  z.object({
    kind: z.literal('zscore'),
    mean: z.array(finite),
    std: z.array(finite.refine((v) => v > 0, { message: 'std must be > 0' })),
  }),
]);
export type Normalization = z.infer<typeof normalizationSchema>;

export const baselineSchema = z
  .object({
    version: z.literal(1).describe('version of the baseline rule (src/window/baseline.ts)'),
    warmupRows: z.number().int().min(2).max(1_000_000).describe('rows each stream learns its location and scale from before its windows are scored'),
    halfLifeRows: z
      .number()
      .int()
      .min(1)
      .nullable()
      .describe('after warm-up, rows leaving the window update the baseline with this half-life (null: it stays as warm-up left it)'),
    clip: finite.refine((v) => v > 0, { message: 'must be > 0' }).describe('a deviation updates the baseline by at most clip × scale'),
    minScale: z.array(finite.refine((v) => v > 0, { message: 'must be > 0' })).describe('per channel: the smallest scale readings are divided by'),
    maxHoldRows: z
      .number()
      .int()
      .min(0)
      .nullable()
      .optional()
      .describe('an open alert holds the baseline for at most this many rows, then it follows again (null or absent: as long as the alert is open)'),
  })
  .describe('per-stream baseline: the daemon keeps each stream\'s location and scale per channel and feeds the model (reading - location) / scale');
export type BaselineSpec = z.infer<typeof baselineSchema>;

/** Whether two baselines follow the same rule (warm-up, half-life, clip, hold), scale floors aside. */
export function sameBaselineRule(a: BaselineSpec | undefined, b: BaselineSpec | undefined): boolean {
  if (a === undefined || b === undefined) return a === b;
  return (
    a.version === b.version &&
    a.warmupRows === b.warmupRows &&
    a.halfLifeRows === b.halfLifeRows &&
    a.clip === b.clip &&
    (a.maxHoldRows ?? null) === (b.maxHoldRows ?? null) &&
    a.minScale.length === b.minScale.length
  );
}


/** Optional per-test outputs: each test's score and its per-channel evidence, for the alert's evidence. */
export const testOutputsSchema = z.object({
  names: z.array(z.string().min(1)).min(1).describe('test names, in output order (e.g. level, spike, noise, stuck)'),
  scores: z.string().min(1).describe('output float32 [batch, tests]: each test\'s score, on the scale of the policy thresholds'),
  channels: z.string().min(1).describe('output float32 [batch, tests, channels]: each test\'s score per channel'),
});
export type TestOutputs = z.infer<typeof testOutputsSchema>;

export const manifestSchema = z
  .object({
    schemaVersion: z.literal(1),
    name: z.string().min(1),
    version: z
      .string()
      .regex(/^sha256:[0-9a-f]{64}$/, 'version must be "sha256:<hex>" of the ONNX file'),
    family: z.string().min(1).describe('model family, e.g. pca-t2-spe'),
    createdAt: z.string(),
    channels: z.array(z.string().min(1)).min(1),
    window: z.number().int().min(1).max(4096),
    input: z.object({ name: z.string().min(1) }),
    outputs: z.object({
      score: z.string().min(1),
      contributions: z.string().min(1).optional(),
      tests: testOutputsSchema.optional(),
    }),
    normalization: normalizationSchema,
    policy: decisionPolicySchema,
    training: z.object({
      rows: z.number().int().min(1),
      from: z.string().nullable(),
      to: z.string().nullable(),
      sha256: z.string().regex(/^[0-9a-f]{64}$/),
      source: z.string(),
      stats: z
        .object({
          mean: z.array(finite).describe('per channel, in `channels` order: mean of the raw training readings'),
          std: z.array(finite.refine((v) => v >= 0, { message: 'std must be >= 0' })).describe('per channel: their standard deviation'),
        })
        .optional()
        .describe('what the model was trained on, per channel; the daemon measures input drift against it (absent: no drift measure)'),
    }),
    calibration: z.record(z.string(), z.union([z.number(), z.string()])),
    baseline: baselineSchema.optional(),
  })
  .superRefine((m, ctx) => {
    if (new Set(m.channels).size !== m.channels.length) {
      ctx.addIssue({ code: 'custom', path: ['channels'], message: 'channel names must be unique' });
    }
    if (m.training.stats !== undefined) {
      for (const key of ['mean', 'std'] as const) {
        if (m.training.stats[key].length !== m.channels.length) {
          ctx.addIssue({
            code: 'custom',
            path: ['training', 'stats', key],
            message: `has ${m.training.stats[key].length} entries, expected one per channel (${m.channels.length})`,
          });
        }
      }
    }
    if (m.baseline !== undefined) {
      if (m.baseline.minScale.length !== m.channels.length) {
        ctx.addIssue({
          code: 'custom',
          path: ['baseline', 'minScale'],
          message: `has ${m.baseline.minScale.length} entries, expected one per channel (${m.channels.length})`,
        });
      }
      if (m.normalization.kind !== 'graph') {
        ctx.addIssue({ code: 'custom', path: ['baseline'], message: 'a per-stream baseline needs normalization {"kind": "graph"} (it replaces a fixed z-score)' });
      }
    }
    if (m.normalization.kind === 'zscore') {
      for (const key of ['mean', 'std'] as const) {
        if (m.normalization[key].length !== m.channels.length) {
          ctx.addIssue({
            code: 'custom',
            path: ['normalization', key],
            message: `has ${m.normalization[key].length} entries, expected one per channel (${m.channels.length})`,
          });
        }
      }
    }
  });
export type Manifest = z.infer<typeof manifestSchema>;

/** The manifest path that belongs to a model file: same base name, `.json`. */
export function manifestPathFor(modelPath: string): string {
  return modelPath.replace(/\.onnx$/i, '') + '.json';
}

/** One way a manifest breaks the contract, by field path. */
export interface ManifestProblem {
  path: string;
  message: string;
}

/** Reads manifest JSON text against the contract: the manifest, or every problem found (not only the first). */
export function parseManifest(text: string): { ok: true; manifest: Manifest } | { ok: false; problems: ManifestProblem[] } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    return { ok: false, problems: [{ path: '', message: `not valid JSON: ${(err as Error).message}` }] };
  }
  const parsed = manifestSchema.safeParse(json);
  if (parsed.success) return { ok: true, manifest: parsed.data };
  return { ok: false, problems: parsed.error.issues.map((issue) => ({ path: issue.path.join('.') || '(root)', message: issue.message })) };
}

/**
 * Readings of a stream that complete no scored window: the window filling (window − 1), or a
 * per-stream baseline's warm-up when that is longer (a stream is not scored while it learns it).
 */
export function unscoredRows(manifest: { window: number; baseline?: { warmupRows: number } | undefined }): number {
  return Math.max(manifest.window - 1, manifest.baseline?.warmupRows ?? 0);
}
