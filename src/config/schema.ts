/** The daemon's configuration schema: the single source of truth for keys, defaults and docs. */
import cron from 'node-cron';
import { z } from 'zod';
import { apiConfigSchema } from '../api/config.js';
import { driftConfigSchema } from '../drift/config.js';
import { sparkplugConfigSchema } from '../ingest/sparkplug/config.js';
import { statusPageConfigSchema } from '../observe/status-page-config.js';
import { tracingConfigSchema } from '../observe/tracing-config.js';
import { nearestName } from './nearest.js';

const port = z.number().int().min(0).max(65535);

const cronExpression = z.string().refine((expression) => cron.validate(expression), {
  error: (issue) => `${JSON.stringify(issue.input)} is not a valid cron expression`,
  params: { fix: 'use a 5- or 6-field cron expression, e.g. "*/30 * * * * *"' },
});

export const payloadFormats = ['json-value', 'json-values', 'number'] as const;
export type PayloadFormat = (typeof payloadFormats)[number];

export const subscriptionSchema = z.strictObject({
  topic: z
    .string()
    .min(1)
    .describe('MQTT topic filter with + / # wildcards; ${nodeName} is replaced by the node name'),
  stream: z
    .string()
    .min(1)
    .optional()
    .describe('stream id template: {1}, {2}… are the wildcard values in order, ${nodeName} the node; default: all wildcard values joined by "/"'),
  channel: z
    .string()
    .min(1)
    .optional()
    .describe('for json-value/number payloads: channel name or template such as {2}; default: the model\'s only channel'),
  format: z.enum(payloadFormats).default('json-values').describe('payload format of this topic'),
  qos: z.literal([0, 1]).default(1).describe('subscription QoS (1 = no loss, backpressure)'),
  model: z
    .string()
    .min(1)
    .optional()
    .describe('name of the model (model.name or a models[].name) that scores this topic\'s streams; default: model.name'),
});
export type SubscriptionConfig = z.infer<typeof subscriptionSchema>;

export const tlsSchema = z.strictObject({
  caFile: z.string().optional().describe('PEM file of the CA that signed the broker certificate'),
  certFile: z.string().optional().describe('PEM client certificate for mutual TLS'),
  keyFile: z.string().optional().describe('PEM private key for the client certificate'),
  rejectUnauthorized: z.boolean().default(true).describe('verify the broker certificate'),
}).superRefine((tls, ctx) => {
  if ((tls.certFile === undefined) !== (tls.keyFile === undefined)) {
    ctx.addIssue({ code: 'custom', path: [], message: 'certFile and keyFile go together', params: { fix: 'set both for mutual TLS, or neither' } });
  }
});

export const brokerSchema = z.strictObject({
  url: z
    .string()
    .regex(/^(mqtts?|wss?|tcp|ssl):\/\/[^\s]+$/, 'must look like mqtt://host:1883 or mqtts://host:8883')
    .nullable()
    .default(null)
    .describe('broker URL; null starts an embedded broker on embedded.host:embedded.port'),
  clientId: z.string().min(1).default('sentinel-${nodeName}').describe('fixed client id (persistent session)'),
  protocolVersion: z.literal([5, 4]).default(5).describe('5 = MQTT 5, 4 = MQTT 3.1.1'),
  username: z.string().optional().describe('broker user name'),
  password: z.string().optional().describe('broker password (prefer passwordFile or SENTINEL_BROKER_PASSWORD)'),
  passwordFile: z.string().optional().describe('file holding the broker password, e.g. a mounted Secret'),
  tls: tlsSchema.optional().describe('TLS / mutual TLS settings'),
  keepaliveSeconds: z.number().int().min(1).max(65535).default(30).describe('MQTT keepalive'),
  sessionExpirySeconds: z
    .number()
    .int()
    .min(0)
    .default(86_400)
    .describe('how long the broker keeps the session (and queued QoS 1 messages) while disconnected'),
  reconnectMinMs: z.number().int().min(10).default(500).describe('first reconnect delay'),
  reconnectMaxMs: z.number().int().min(10).default(30_000).describe('reconnect delay cap (exponential backoff)'),
  embedded: z
    .strictObject({
      host: z.string().default('127.0.0.1').describe('embedded broker bind address'),
      port: port.default(1883).describe('embedded broker port'),
    })
    .prefault({}),
}).superRefine((broker, ctx) => {
  if (broker.reconnectMaxMs < broker.reconnectMinMs) {
    ctx.addIssue({ code: 'custom', path: ['reconnectMaxMs'], message: `${broker.reconnectMaxMs} is below reconnectMinMs (${broker.reconnectMinMs})`, params: { fix: 'raise reconnectMaxMs' } });
  }
  if (broker.password !== undefined && broker.passwordFile !== undefined) {
    ctx.addIssue({ code: 'custom', path: ['passwordFile'], message: 'both password and passwordFile are set', params: { fix: 'keep one' } });
  }
});

/** Models on one node: each is a `model` label value, so their number bounds the metrics' cardinality. */
export const MAX_MODELS = 16;
const modelName = z
  .string()
  .regex(/^[a-z0-9][a-z0-9_-]{0,31}$/, 'must be 1-32 characters of a-z, 0-9, "_" and "-", starting with a letter or digit');

/** A model beside the default one (`models[]`): what it leaves unset it takes from `model`. */
export const routeModelSchema = z.strictObject({
  name: modelName.describe('the model\'s name: its `model` metric label and what subscriptions[].model refers to'),
  path: z.string().min(1).describe('ONNX model; its manifest is the .json beside it'),
  executionProviders: z.array(z.enum(['cuda', 'cpu'])).min(1).optional().describe('default: model.executionProviders'),
  intraOpThreads: z.number().int().min(1).optional().describe('default: model.intraOpThreads'),
  warmupRuns: z.number().int().min(1).optional().describe('default: model.warmupRuns'),
  watch: z.boolean().optional().describe('default: model.watch'),
});
export type RouteModelConfig = z.infer<typeof routeModelSchema>;

const configShape = z.strictObject({
  nodeName: z.string().min(1).default('localhost').describe('node name (Kubernetes: spec.nodeName via the downward API); default: the host name'),
  broker: brokerSchema.prefault({}),
  subscriptions: z
    .array(subscriptionSchema)
    .min(1)
    .default([{ topic: 'sensors/+/telemetry', format: 'json-values', qos: 1 }])
    .describe('topics to read telemetry from'),
  ingest: z
    .strictObject({
      maxPayloadBytes: z.number().int().min(16).default(16_384).describe('larger payloads are rejected unparsed'),
      maxFutureSkewMs: z
        .number()
        .int()
        .min(0)
        .max(8_640_000_000_000_000)
        .default(300_000)
        .describe('readings stamped further ahead of the wall clock are rejected (bad_timestamp)'),
      maxTopicBytes: z
        .number()
        .int()
        .min(16)
        .max(65_535)
        .default(1024)
        .describe('longer topics are rejected (topic_too_long) before they are matched'),
      maxStreamIdBytes: z
        .number()
        .int()
        .min(1)
        .max(16_384)
        .default(256)
        .describe('stream ids longer than this (UTF-8) or with control characters are rejected (bad_stream_id)'),
      maxReadingsPerSecondPerStream: z
        .number()
        .min(0)
        .default(1000)
        .describe('per-stream rate limit (token bucket, 1 s burst), checked before parsing; 0 = off'),
    })
    .prefault({}),
  queue: z
    .strictObject({
      capacity: z.number().int().min(1).max(1_000_000).default(4096).describe('bounded queue capacity (readings)'),
      dropPolicy: z
        .enum(['drop-oldest', 'drop-newest'])
        .default('drop-oldest')
        .describe('QoS 0 only: what to drop when the queue stays full past qos0MaxWaitMs (QoS 1 applies backpressure instead)'),
      qos0MaxWaitMs: z
        .number()
        .int()
        .min(0)
        .max(10_000)
        .default(1000)
        .describe('QoS 0 only: how long the queue may stay full, holding up intake, before dropPolicy applies; shorter bursts are absorbed (0: drop at once)'),
    })
    .prefault({}),
  window: z
    .strictObject({
      staleAfterMs: z.number().int().min(1).default(60_000).describe('a stream silent this long is stale (data gap)'),
      idleTtlMs: z.number().int().min(1).default(3_600_000).describe('a stream silent this long is evicted'),
      maxStreams: z
        .number()
        .int()
        .min(1)
        .default(250_000)
        .describe('streams held at once; a new stream beyond this (or maxBytes) takes the place of the longest-silent stale stream, else it is rejected (stream_limit)'),
      futureRowToleranceMs: z
        .number()
        .int()
        .min(0)
        .default(60_000)
        .describe('a stream\'s newest row stamped further ahead of the wall clock than this does not make older readings out_of_order: they restart the window (a clock step)'),
      maxBytes: z
        .number()
        .int()
        .min(65_536)
        .default(134_217_728)
        .describe('memory budget of the stream table (windows, ids, bookkeeping); a new stream beyond it evicts like maxStreams'),
    })
    .prefault({}),
  batch: z
    .strictObject({
      maxSize: z.number().int().min(1).max(65_536).default(1024).describe('windows per inference run'),
      maxDelayMs: z.number().min(0).default(5).describe('longest a ready window waits for its batch to fill'),
    })
    .prefault({}),
  model: z
    .strictObject({
      name: modelName.default('default').describe('this model\'s name: its `model` metric label and what subscriptions[].model refers to'),
      path: z.string().min(1).default('models/default.onnx').describe('ONNX model; its manifest is the .json beside it'),
      executionProviders: z
        .array(z.enum(['cuda', 'cpu']))
        .min(1)
        .default(['cpu'])
        .describe('tried in order; CPU is the fallback'),
      intraOpThreads: z.number().int().min(1).default(1).describe('onnxruntime intra-op threads'),
      warmupRuns: z.number().int().min(1).default(3).describe('inference runs before the daemon reports ready'),
      watch: z.boolean().default(true).describe('reload the model when its file or manifest changes (zero-downtime swap)'),
    })
    .prefault({}),
  models: z
    .array(routeModelSchema)
    .max(MAX_MODELS - 1)
    .default([])
    .describe('more models on this node, each scoring the subscriptions that name it; unset keys are taken from `model`'),
  api: apiConfigSchema.describe('HTTP scoring API on a listener of its own, off by default (docs/api.md)'),
  sparkplug: sparkplugConfigSchema.prefault({}).describe('Sparkplug B host application (docs/sparkplug.md)'),
  drift: driftConfigSchema.prefault({}).describe('input drift and quality per stream, against the training statistics in the model manifest (docs/drift.md)'),
  tracing: tracingConfigSchema.prefault({}).describe('OpenTelemetry traces over OTLP/HTTP, off by default (docs/tracing.md)'),
  outbox: z
    .strictObject({
      path: z
        .string()
        .min(1)
        .default('.sentinel/outbox.jsonl')
        .describe('journal of alerts not yet acknowledged by the broker; replayed in order after a restart'),
      maxAlerts: z.number().int().min(1).default(10_000).describe('undelivered alerts kept; beyond this the oldest is dropped (counted)'),
    })
    .prefault({}),
  alert: z
    .strictObject({
      prefix: z.string().min(1).default('sentinel/alerts').describe('alerts go to <prefix>/<streamId>'),
      statusPrefix: z.string().min(1).default('sentinel/status').describe('retained status at <statusPrefix>/<nodeName>'),
      topChannels: z.number().int().min(0).default(3).describe('contributing channels named in an alert'),
    })
    .prefault({}),
  http: z
    .strictObject({
      host: z.string().default('0.0.0.0').describe('metrics and probes bind address'),
      port: port.default(9464).describe('metrics and probes port'),
      maxConnections: z.number().int().min(1).max(4096).default(64).describe('open connections to the metrics and probes port; more are closed at once'),
      maxConnectionsPerClient: z
        .number()
        .int()
        .min(1)
        .max(4096)
        .default(8)
        .describe('open connections from one remote address; keeps one client from taking every slot'),
      headersTimeoutMs: z.number().int().min(100).max(60_000).default(5_000).describe('a request whose headers take longer is closed (slowloris)'),
      requestTimeoutMs: z.number().int().min(100).max(300_000).default(10_000).describe('a request that takes longer in all is closed'),
      ...statusPageConfigSchema.shape,
    })
    .superRefine((http, ctx) => {
      if (http.headersTimeoutMs > http.requestTimeoutMs) {
        ctx.addIssue({
          code: 'custom',
          path: ['headersTimeoutMs'],
          message: `${http.headersTimeoutMs} is above http.requestTimeoutMs (${http.requestTimeoutMs})`,
          params: { fix: 'the headers are part of the request, so keep headersTimeoutMs ≤ requestTimeoutMs' },
        });
      }
      if (http.statusPage && http.maxSseClients >= http.maxConnections) {
        ctx.addIssue({
          code: 'custom',
          path: ['maxSseClients'],
          message: `${http.maxSseClients} leaves no connection of http.maxConnections (${http.maxConnections}) for probes and scrapes`,
          params: { fix: 'keep maxSseClients below maxConnections' },
        });
      }
    })
    .prefault({}),
  log: z
    .strictObject({
      level: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace']).default('info').describe('pino log level'),
      rejectLogIntervalMs: z
        .number()
        .int()
        .min(0)
        .default(10_000)
        .describe('at most one warning per rejection reason per interval'),
    })
    .prefault({}),
  schedule: z
    .strictObject({
      heartbeat: cronExpression.default('*/30 * * * * *').describe('cron: republish the retained status'),
      summary: cronExpression.default('0 * * * * *').describe('cron: log a one-line summary'),
      sweep: cronExpression.default('*/5 * * * * *').describe('cron: mark stale and evict idle streams'),
      modelPoll: cronExpression.default('*/30 * * * * *').describe('cron: check the model file for a new version'),
    })
    .prefault({}),
  shutdown: z
    .strictObject({
      graceMs: z.number().int().min(100).default(10_000).describe('drain budget on SIGTERM before a forced exit'),
    })
    .prefault({}),
});

const didYouMean = (name: string, known: readonly string[]): string => {
  const near = nearestName(name, known);
  return near === undefined ? '' : ` (did you mean ${near}?)`;
};

/**
 * The config, with the rules across sections: model names are unique, every subscription names a model
 * that exists, and every extra model is used (one that nothing feeds is a mistake, not a spare).
 */
export const configSchema = configShape.superRefine((config, ctx) => {
  const names = [config.model.name, ...config.models.map((m) => m.name)];
  const known = names.join(', ');
  config.models.forEach((m, i) => {
    if (names.indexOf(m.name) !== i + 1) {
      ctx.addIssue({
        code: 'custom',
        path: ['models', i, 'name'],
        message: `"${m.name}" is taken${m.name === config.model.name ? ' by model.name' : ' by an earlier model'}`,
        params: { fix: 'give every model its own name' },
      });
    }
    const samePath = m.path === config.model.path ? 'model.path' : config.models.slice(0, i).some((o) => o.path === m.path) ? 'an earlier model' : null;
    if (samePath !== null) {
      ctx.addIssue({
        code: 'custom',
        path: ['models', i, 'path'],
        message: `model "${m.name}": ${m.path} is already loaded as ${samePath}`,
        params: { fix: 'two routes cannot share a model file (each swaps its own); copy it, or point both subscriptions at one model' },
      });
    }
  });
  const used = new Set<string>();
  config.subscriptions.forEach((sub, i) => {
    const model = sub.model ?? config.model.name;
    used.add(model);
    if (!names.includes(model)) {
      ctx.addIssue({
        code: 'custom',
        path: ['subscriptions', i, 'model'],
        message: `subscription ${i} (${sub.topic}) names model "${model}", which is not loaded (models: ${known})`,
        params: { fix: `use one of ${known}${didYouMean(model, names)}, or add it to models[]` },
      });
    }
  });
  if (config.sparkplug.enabled) {
    const model = config.sparkplug.model ?? config.model.name;
    used.add(model);
    if (!names.includes(model)) {
      ctx.addIssue({
        code: 'custom',
        path: ['sparkplug', 'model'],
        message: `names model "${model}", which is not loaded (models: ${known})`,
        params: { fix: `use one of ${known}${didYouMean(model, names)}` },
      });
    }
    if (config.broker.url === null) {
      ctx.addIssue({
        code: 'custom',
        path: ['sparkplug', 'enabled'],
        message: 'the Sparkplug host needs the broker the edge nodes publish to, and broker.url is null (the embedded broker)',
        params: { fix: 'set broker.url, or sparkplug.enabled: false' },
      });
    }
  }
  config.models.forEach((m, i) => {
    if (!used.has(m.name)) {
      ctx.addIssue({
        code: 'custom',
        path: ['models', i],
        message: `model "${m.name}" is named by no subscription, so nothing would reach it`,
        params: { fix: `set model: ${m.name} on the subscriptions it should score, or remove it` },
      });
    }
  });
});

/** Keys renamed in this release, by dotted path: the loader names the new key instead of guessing. */
export const renamedKeys: Readonly<Record<string, string>> = {
  'schedule.staleCheck': 'schedule.sweep',
};

export type Config = z.infer<typeof configSchema>;
export type ConfigInput = z.input<typeof configSchema>;
