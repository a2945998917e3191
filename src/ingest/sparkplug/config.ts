/** The `sparkplug` config section: which Sparkplug B edge nodes to follow as a host application, and how their metrics map to the model's channels. */
import { z } from 'zod';

/** Sparkplug ids (group, edge node, device, host) are one topic level without the MQTT reserved characters. */
const RESERVED = /[/+#]/;

const sparkplugId = z.string().min(1).max(256).refine((id) => !RESERVED.test(id) && !id.includes('\u0000'), {
  error: (issue) => `${JSON.stringify(issue.input)} is not a Sparkplug id`,
  params: { fix: 'use one topic level without "/", "+" or "#"' },
});

/** An id, or "+" for any. */
const idOrAny = z.union([z.literal('+'), sparkplugId]);

export const edgeNodeFilterSchema = z.strictObject({
  group: idOrAny.describe('Sparkplug group id, or "+" for every group'),
  edgeNode: idOrAny.default('+').describe('edge node id, or "+" for every edge node of the group'),
});
export type EdgeNodeFilter = z.infer<typeof edgeNodeFilterSchema>;

export const sparkplugConfigSchema = z
  .strictObject({
    enabled: z.boolean().default(false).describe('follow Sparkplug B edge nodes as a host application (a broker connection of its own)'),
    model: z
      .string()
      .min(1)
      .optional()
      .describe('the model (model.name or a models[].name) that scores the Sparkplug streams; default: model.name'),
    hostId: sparkplugId
      .default('sentinel')
      .describe('Sparkplug host id: STATE is published retained at spBv1.0/STATE/<hostId>; unique among the hosts on the broker'),
    edgeNodes: z
      .array(edgeNodeFilterSchema)
      .max(256)
      .default([])
      .describe('edge nodes to follow: spBv1.0/<group>/+/<edgeNode> and its devices; a stream is <group>/<edgeNode>[/<device>]'),
    channels: z
      .record(z.string().min(1).max(256), z.string().min(1))
      .default({})
      .describe('metric name (as in NBIRTH/DBIRTH) → model channel name; other metrics are ignored (counted as unmapped)'),
    historical: z
      .enum(['drop', 'ingest'])
      .default('drop')
      .describe('metrics flagged is_historical (store-and-forward backlog): drop (counted) or ingest with their own timestamps'),
    rebirth: z
      .strictObject({
        minIntervalMs: z
          .number()
          .int()
          .min(100)
          .default(10_000)
          .describe('least time between two rebirth requests (NCMD Node Control/Rebirth) to one edge node'),
        maxPerSecond: z
          .number()
          .int()
          .min(1)
          .default(10)
          .describe('rebirth requests to all edge nodes together, per second (1 s burst); more wait for a later message'),
      })
      .prefault({})
      .describe('when and how often the host asks an edge node for its births again'),
    limits: z
      .strictObject({
        maxPayloadBytes: z.number().int().min(64).default(262_144).describe('larger Sparkplug payloads are dropped undecoded (oversized)'),
        maxEdgeNodes: z
          .number()
          .int()
          .min(1)
          .default(1_000)
          .describe('edge nodes tracked; a new one beyond this replaces the longest-known offline one, else is dropped (node_limit)'),
        maxDevices: z
          .number()
          .int()
          .min(0)
          .default(10_000)
          .describe('devices tracked on all edge nodes together; a DBIRTH of a new device beyond this is dropped (device_limit)'),
        maxMetricsPerMessage: z
          .number()
          .int()
          .min(1)
          .default(4_096)
          .describe('metrics in one NBIRTH, DBIRTH, NDATA or DDATA; a larger message is dropped whole (metric_limit)'),
        maxMetrics: z
          .number()
          .int()
          .min(1)
          .default(1_000_000)
          .describe('metrics (aliases) known from the births of all edge nodes and devices together; a birth beyond this is dropped (metric_limit)'),
        maxStreamIdBytes: z
          .number()
          .int()
          .min(8)
          .max(65_535)
          .default(512)
          .describe('<group>/<edgeNode>[/<device>] longer than this (UTF-8) is dropped (bad_stream_id)'),
        maxFutureSkewMs: z
          .number()
          .int()
          .min(0)
          .max(8_640_000_000_000_000)
          .default(300_000)
          .describe('metrics stamped further ahead of the wall clock are dropped (bad_timestamp)'),
      })
      .prefault({})
      .describe('bounds on what a hostile or broken edge node can make the host hold or do'),
  })
  .superRefine((sparkplug, ctx) => {
    if (!sparkplug.enabled) return;
    if (sparkplug.edgeNodes.length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['edgeNodes'],
        message: 'is empty while sparkplug.enabled is true',
        params: { fix: 'name at least one group, e.g. edgeNodes: [{ group: "plant1" }]' },
      });
    }
    if (Object.keys(sparkplug.channels).length === 0) {
      ctx.addIssue({
        code: 'custom',
        path: ['channels'],
        message: 'is empty while sparkplug.enabled is true: no metric would become a reading',
        params: { fix: 'map metric names to model channels, e.g. channels: { "Pump/Pressure": "pressure" }' },
      });
    }
  });

export type SparkplugConfig = z.infer<typeof sparkplugConfigSchema>;
export type SparkplugConfigInput = z.input<typeof sparkplugConfigSchema>;

/** The subscription filters of a config: each edge node and each of its devices. */
export function sparkplugFilters(config: Pick<SparkplugConfig, 'edgeNodes'>): string[] {
  const filters = new Set<string>();
  for (const { group, edgeNode } of config.edgeNodes) {
    filters.add(`spBv1.0/${group}/+/${edgeNode}`);
    filters.add(`spBv1.0/${group}/+/${edgeNode}/+`);
  }
  return [...filters];
}
