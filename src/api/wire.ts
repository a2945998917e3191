/** The scoring API's wire format: the request schema (the one source of its types), the answers, and packing windows for the model. */
import { z } from 'zod';
import type { Manifest } from '../model/manifest.js';

/** Windows are scored as float32, as MQTT readings are: a larger finite double would become Infinity there. */
const FLOAT32_MAX = 3.4028234663852886e38;

const reading = z
  .number({ error: 'must be a finite number' })
  .refine((v) => v <= FLOAT32_MAX && v >= -FLOAT32_MAX, { message: 'must be a finite number within float32 range' });

export const windowSchema = z
  .strictObject({
    values: z
      .array(z.array(reading))
      .optional()
      .describe('the window as rows, oldest first: `window` rows of one value per channel, in the manifest\'s channel order'),
    channels: z
      .record(z.string(), z.array(reading))
      .optional()
      .describe('the window by channel name: each of the model\'s channels with its `window` values, oldest first'),
  })
  .superRefine((w, ctx) => {
    if ((w.values === undefined) === (w.channels === undefined)) {
      ctx.addIssue({ code: 'custom', message: 'give exactly one of "values" (rows) or "channels" (by name)' });
    }
  });
export type ScoreWindow = z.infer<typeof windowSchema>;

export const scoreRequestSchema = z.strictObject({
  model: z.string().min(1).max(256).optional().describe('the model\'s name in the config (model.name or models[].name); may be left out when one model is loaded'),
  input: z
    .enum(['raw', 'normalized'])
    .default('raw')
    .describe('raw: readings as sent over MQTT, normalised as the daemon does (manifest zscore); normalized: values fed to the model as they are'),
  windows: z.array(windowSchema).min(1).describe('one or more windows to score'),
});
export type ScoreRequest = z.infer<typeof scoreRequestSchema>;

export const windowResultSchema = z.object({
  score: z.number().describe('the anomaly score (an overflow is reported as the largest float32, as in alerts)'),
  atOrAboveRaise: z.boolean().describe('score >= thresholds.raise: the window counts towards raising an alert'),
  contributions: z.record(z.string(), z.number()).nullable().describe('per channel, its share of the score; null when the model has none'),
});

export const modelRefSchema = z.object({
  name: z.string().describe('the model\'s name in the config'),
  manifestName: z.string().describe('the name in its manifest'),
  version: z.string().describe('sha256 of the ONNX file that scored the windows'),
  provider: z.string().describe('execution provider of the session: cpu or cuda'),
});

export const thresholdsSchema = z.object({ raise: z.number(), clear: z.number() });

export const scoreResponseSchema = z.object({
  model: modelRefSchema,
  thresholds: thresholdsSchema,
  results: z.array(windowResultSchema).describe('one per window, in request order'),
});
export type ScoreResponse = z.infer<typeof scoreResponseSchema>;

export const modelsResponseSchema = z.object({
  models: z.array(
    z.object({
      name: z.string(),
      loaded: z.boolean().describe('false until the model is loaded and warmed up; the other fields are then null'),
      manifestName: z.string().nullable(),
      version: z.string().nullable(),
      provider: z.string().nullable(),
      channels: z.array(z.string()).nullable(),
      window: z.number().nullable(),
      normalization: z.string().nullable().describe('graph, zscore, or baseline (per-stream: send input "normalized")'),
      thresholds: thresholdsSchema.nullable(),
    }),
  ),
});
export type ModelsResponse = z.infer<typeof modelsResponseSchema>;

export interface FieldIssue {
  path: string;
  message: string;
}

/** At most this many issues per answer: a hostile body can have millions. */
export const MAX_ISSUES = 10;

/** `['windows', 2, 'values', 5, 1]` → `windows[2].values[5][1]`. */
export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const key of path) {
    if (typeof key === 'number') out += `[${key}]`;
    else {
      const name = String(key);
      out += /^[A-Za-z_$][\w$]*$/.test(name) ? (out === '' ? name : `.${name}`) : `[${JSON.stringify(name)}]`;
    }
  }
  return out === '' ? '(body)' : out;
}

export function zodIssues(error: z.ZodError): FieldIssue[] {
  return error.issues.slice(0, MAX_ISSUES).map((i) => ({ path: formatPath(i.path), message: i.message }));
}

/** How a model reads its input, from the manifest: what `input: "raw"` needs done to the readings. */
export function normalizationOf(manifest: Manifest): 'graph' | 'zscore' | 'baseline' {
  if (manifest.baseline !== undefined) return 'baseline';
  return manifest.normalization.kind;
}

/**
 * Checks every window against the model's shape and writes them, row-major, into a new Float32Array
 * (normalised as the window store does when the input is raw). Returns the issues instead when any.
 */
export function packWindows(request: ScoreRequest, modelName: string, manifest: Manifest): Float32Array | FieldIssue[] {
  const { window, channels } = manifest;
  const width = channels.length;
  const issues: FieldIssue[] = [];
  const add = (path: string, message: string): boolean => {
    issues.push({ path, message });
    return issues.length >= MAX_ISSUES;
  };
  const norm = normalizationOf(manifest);
  if (request.input === 'raw' && norm === 'baseline') {
    add(
      'input',
      `model "${modelName}" normalises each stream by the baseline it learned from that stream's past readings, which a request does not carry — send input "normalized" with (reading − location) / scale`,
    );
    return issues;
  }
  const out = new Float32Array(request.windows.length * window * width);
  const named = channels.join(', ');
  request.windows.forEach((w, i) => {
    if (issues.length >= MAX_ISSUES) return;
    const base = i * window * width;
    if (w.values !== undefined) {
      if (w.values.length !== window) {
        add(`windows[${i}].values`, `has ${w.values.length} rows, model "${modelName}" has a window of ${window}`);
        return;
      }
      for (let r = 0; r < window; r++) {
        const row = w.values[r] as number[];
        if (row.length !== width) {
          if (add(`windows[${i}].values[${r}]`, `has ${row.length} values, model "${modelName}" has ${width} channels (${named})`)) return;
          continue;
        }
        for (let c = 0; c < width; c++) out[base + r * width + c] = row[c] as number;
      }
      return;
    }
    const byName = w.channels as Record<string, number[]>;
    for (const key of Object.keys(byName)) {
      if (!channels.includes(key) && add(formatPath(['windows', i, 'channels', key]), `unknown channel — model "${modelName}" has ${named}`)) return;
    }
    for (let c = 0; c < width; c++) {
      const name = channels[c] as string;
      const series = Object.hasOwn(byName, name) ? byName[name] : undefined;
      if (series === undefined) {
        if (add(`windows[${i}].channels`, `missing channel "${name}" — model "${modelName}" has ${named}`)) return;
        continue;
      }
      if (series.length !== window) {
        if (add(formatPath(['windows', i, 'channels', name]), `has ${series.length} values, model "${modelName}" has a window of ${window}`)) return;
        continue;
      }
      for (let r = 0; r < window; r++) out[base + r * width + c] = series[r] as number;
    }
  });
  if (issues.length > 0) return issues;
  if (request.input === 'raw' && manifest.normalization.kind === 'zscore') {
    // The same float32 arithmetic as WindowStore.copyWindow, so a window scores as it would from MQTT.
    const mean = Float32Array.from(manifest.normalization.mean);
    const invStd = Float32Array.from(manifest.normalization.std, (s) => 1 / s);
    for (let k = 0, c = 0; k < out.length; k++) {
      out[k] = ((out[k] as number) - (mean[c] as number)) * (invStd[c] as number);
      if (++c === width) c = 0;
    }
  }
  return out;
}
