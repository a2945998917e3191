/** The `tracing` config section: OpenTelemetry traces over OTLP/HTTP, off by default (a leaf module: zod only). */
import { z } from 'zod';

export const tracingConfigSchema = z.strictObject({
  enabled: z
    .boolean()
    .default(false)
    .describe('export OpenTelemetry traces of batch inference, decisions and alert publishing over OTLP/HTTP (docs/tracing.md); off: no tracing code runs'),
  endpoint: z
    .string()
    .regex(/^https?:\/\/[^\s]+$/, 'must look like http://otel-collector:4318/v1/traces')
    .optional()
    .describe('OTLP/HTTP traces URL; unset: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, else OTEL_EXPORTER_OTLP_ENDPOINT + /v1/traces, else http://localhost:4318/v1/traces'),
  serviceName: z.string().min(1).default('sentinel').describe('the service.name resource attribute (service.instance.id is the node name)'),
  batchSampleRatio: z
    .number()
    .min(0)
    .max(1)
    .default(1)
    .describe('share of micro-batches traced (model run and decisions); alert publishing is always traced'),
  maxQueueSize: z
    .number()
    .int()
    .min(16)
    .max(65_536)
    .default(2_048)
    .describe('ended spans waiting for export; more are dropped, so a collector that is down costs bounded memory'),
  exportIntervalMs: z.number().int().min(100).max(60_000).default(2_000).describe('how often waiting spans are sent'),
  exportTimeoutMs: z.number().int().min(100).max(60_000).default(10_000).describe('an export that takes longer is abandoned (counted as failed)'),
});
export type TracingConfig = z.infer<typeof tracingConfigSchema>;
