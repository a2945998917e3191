/** Offline schemas for the Prometheus Operator kinds the manifests use (monitoring.coreos.com/v1), strict so a misspelt field fails. */
import { z } from 'zod';

const relabel = z.object({
  sourceLabels: z.array(z.string()).optional(),
  targetLabel: z.string().optional(),
  action: z.enum(['replace', 'keep', 'drop', 'labelmap', 'labeldrop', 'labelkeep', 'hashmod', 'lowercase', 'uppercase']).optional(),
  regex: z.string().optional(),
  replacement: z.string().optional(),
});
const duration = z.string().regex(/^(\d+(ms|s|m|h|d|w|y))+$/);
const objectMeta = z.object({ name: z.string().min(1), namespace: z.string().optional(), labels: z.record(z.string(), z.string()).optional() });

export const serviceMonitorSchema = z.strictObject({
  apiVersion: z.literal('monitoring.coreos.com/v1'),
  kind: z.literal('ServiceMonitor'),
  metadata: objectMeta,
  spec: z.strictObject({
    selector: z.strictObject({ matchLabels: z.record(z.string(), z.string()) }),
    namespaceSelector: z.strictObject({ matchNames: z.array(z.string()).optional(), any: z.boolean().optional() }).optional(),
    podTargetLabels: z.array(z.string()).optional(),
    jobLabel: z.string().optional(),
    endpoints: z
      .array(
        z.strictObject({
          port: z.string(),
          path: z.string().startsWith('/'),
          interval: duration,
          scrapeTimeout: duration,
          relabelings: z.array(relabel.strict()).optional(),
          metricRelabelings: z.array(relabel.strict()).optional(),
        }),
      )
      .min(1),
  }),
});

export const prometheusRuleSchema = z.strictObject({
  apiVersion: z.literal('monitoring.coreos.com/v1'),
  kind: z.literal('PrometheusRule'),
  metadata: objectMeta,
  spec: z.strictObject({
    groups: z
      .array(
        z.strictObject({
          name: z.string().min(1),
          interval: duration.optional(),
          rules: z
            .array(
              z.strictObject({
                alert: z.string().regex(/^[A-Z][A-Za-z0-9]+$/),
                expr: z.string().min(1),
                for: duration.optional(),
                labels: z.strictObject({ severity: z.enum(['critical', 'warning', 'info']) }),
                annotations: z.strictObject({ summary: z.string().min(1), description: z.string().min(1), runbook_url: z.url({ protocol: /^https$/ }) }),
              }),
            )
            .min(1),
        }),
      )
      .min(1),
  }),
});
