/**
 * OpenTelemetry traces of the data path (docs/tracing.md): each traced micro-batch is a `sentinel.batch`
 * span from its oldest reading's arrival to its last decision, with `sentinel.inference` (the model
 * run) and `sentinel.decide` (the decisions) inside; each alert is a `sentinel.alert.publish` span,
 * a child of the decisions that raised it, ending at the broker's PUBACK. Spans are exported over
 * OTLP/HTTP by the official SDK. Off by default, and then this module is never loaded into the path:
 * the pipeline and the alert stage hold no tracer and make no call.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type Context, type Span, type Tracer } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-http';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BatchSpanProcessor, TracerProvider, type ReadableSpan, type SpanExporter } from '@opentelemetry/sdk-trace';
import type { Alert } from '../alert/alert.js';
import { beforeDeadline, type Stage } from '../lifecycle/stage.js';
import type { TracingConfig } from './tracing-config.js';

/** What the pipeline knows of a batch once its model run ended (times are performance.now() ms). */
export interface BatchInfo {
  /** The route: the model's name in the config. */
  model: string;
  manifest: { name: string; version: string };
  provider: string;
  windows: number;
  /** When the oldest reading of the batch arrived. */
  oldestReceivedAt: number;
  /** When the model run ended, and how long it took. */
  inferenceEndedAt: number;
  inferenceSeconds: number;
  /** A shadow model's run: compared, never published. */
  shadow: boolean;
}

/** One traced batch, between its model run and the end of its decisions. */
export interface BatchTrace {
  /** Runs the batch's decisions inside its `sentinel.decide` span, then ends the batch. */
  decide(run: () => void): void;
  /** Ends a batch that has no decisions (a shadow run, or a failed one). */
  end(error?: Error): void;
}

/** The pipeline's side: one call per batch, and null when this batch is not sampled. */
export interface BatchTracer {
  batch(info: BatchInfo): BatchTrace | null;
}

/** What happened to an alert at the broker (the outcome attribute of its publish span). */
export type AlertOutcome = 'acknowledged' | 'not_acknowledged' | 'undeliverable' | 'dropped' | 'shutdown';

/** The alert stage's side: an alert handed to the publisher, and what the broker made of it. */
export interface AlertTracer {
  alertSent(alert: Alert): void;
  alertSettled(eventId: string, outcome: AlertOutcome, error?: Error): void;
}

export interface TracingHooks {
  /** Spans ended by Sentinel (handed to the exporter's queue; beyond maxQueueSize the SDK drops them). */
  onEnded(count: number): void;
  /** An export finished: its spans reached the collector, or not (the SDK does not retry them). */
  onExported(count: number, ok: boolean, error: Error | undefined): void;
}

/** Alert spans waiting for their PUBACK, at most: beyond it the oldest is ended as `untracked`. */
const MAX_OPEN_ALERTS = 4_096;
/** Attribute values are cut here: stream ids come from outside. */
const MAX_ATTRIBUTE_LENGTH = 256;

export class Tracing implements Stage, BatchTracer, AlertTracer {
  readonly name = 'tracing';
  private readonly provider: TracerProvider;
  private readonly tracer: Tracer;
  /** The decisions span running now (decisions are synchronous): an alert sent meanwhile is its child. */
  private deciding: { context: Context; raised: number; resolved: number } | null = null;
  private readonly open = new Map<string, Span>();
  private stopped = false;

  constructor(
    private readonly config: TracingConfig,
    identity: { nodeName: string; version: string },
    private readonly hooks: TracingHooks,
  ) {
    const exporter = new CountingExporter(
      new OTLPTraceExporter({ ...(config.endpoint ? { url: config.endpoint } : {}), timeoutMillis: config.exportTimeoutMs }),
      hooks,
    );
    this.provider = new TracerProvider({
      resource: resourceFromAttributes({ 'service.name': config.serviceName, 'service.version': identity.version, 'service.instance.id': identity.nodeName }),
      spanLimits: { attributeValueLengthLimit: MAX_ATTRIBUTE_LENGTH },
      spanProcessors: [
        new BatchSpanProcessor({
          exporter,
          maxQueueSize: config.maxQueueSize,
          maxExportBatchSize: Math.min(512, config.maxQueueSize),
          scheduledDelayMillis: config.exportIntervalMs,
          exportTimeoutMillis: config.exportTimeoutMs,
        }),
      ],
    });
    // Not registered globally: nothing else in the process (a library's own spans) reaches this exporter.
    this.tracer = this.provider.getTracer('sentinel', identity.version);
  }

  async start(): Promise<void> {
    // The exporter connects on its first export; an unreachable collector is counted then, never fatal.
  }

  batch(info: BatchInfo): BatchTrace | null {
    if (this.stopped || !(Math.random() < this.config.batchSampleRatio)) return null;
    const attributes: Attributes = {
      'sentinel.model': info.model,
      'sentinel.model.name': info.manifest.name,
      'sentinel.model.version': info.manifest.version,
      'sentinel.provider': info.provider,
      'sentinel.batch.windows': info.windows,
      'sentinel.shadow': info.shadow,
    };
    const root = this.tracer.startSpan('sentinel.batch', { kind: SpanKind.INTERNAL, startTime: info.oldestReceivedAt, attributes });
    // From the root context: a batch never inherits an ambient span.
    const parent = trace.setSpan(ROOT_CONTEXT, root);
    const inferenceStart = info.inferenceEndedAt - info.inferenceSeconds * 1000;
    const inference = this.tracer.startSpan('sentinel.inference', { startTime: inferenceStart, attributes: { 'sentinel.batch.windows': info.windows } }, parent);
    const finish = (span: Span, error?: Error, endTime?: number): void => {
      if (error) span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
      span.end(endTime);
    };
    return {
      decide: (run) => {
        finish(inference, undefined, info.inferenceEndedAt);
        const decide = this.tracer.startSpan('sentinel.decide', {}, parent);
        const deciding = { context: trace.setSpan(parent, decide), raised: 0, resolved: 0 };
        const outer = this.deciding;
        this.deciding = deciding;
        try {
          run();
        } finally {
          this.deciding = outer;
          decide.setAttributes({ 'sentinel.alerts.raised': deciding.raised, 'sentinel.alerts.resolved': deciding.resolved });
          root.setAttributes({ 'sentinel.alerts.raised': deciding.raised, 'sentinel.alerts.resolved': deciding.resolved });
          decide.end();
          root.end();
          this.hooks.onEnded(3);
        }
      },
      end: (error) => {
        finish(inference, error, info.inferenceEndedAt);
        finish(root, error);
        this.hooks.onEnded(2);
      },
    };
  }

  alertSent(alert: Alert): void {
    if (this.stopped) return;
    const deciding = this.deciding;
    if (deciding !== null) {
      if (alert.type === 'raised') deciding.raised++;
      else deciding.resolved++;
    }
    const span = this.tracer.startSpan(
      'sentinel.alert.publish',
      {
        kind: SpanKind.PRODUCER,
        attributes: {
          'sentinel.alert.event_id': alert.eventId,
          'sentinel.alert.type': alert.type,
          'sentinel.stream': alert.streamId,
          'sentinel.alert.score': alert.score,
          'sentinel.model.name': alert.model.name,
          'sentinel.model.version': alert.model.version,
          ...(alert.reason ? { 'sentinel.alert.reason': alert.reason } : {}),
        },
      },
      // An alert decided outside a traced batch (a stale stream closed by the sweep, an unsampled batch) starts its own trace.
      deciding?.context ?? ROOT_CONTEXT,
    );
    const previous = this.open.get(alert.eventId);
    if (previous !== undefined) this.endAlert(previous, 'not_acknowledged');
    this.open.set(alert.eventId, span);
    if (this.open.size > MAX_OPEN_ALERTS) {
      const [oldestId, oldest] = this.open.entries().next().value as [string, Span];
      this.open.delete(oldestId);
      oldest.setAttribute('sentinel.alert.outcome', 'untracked');
      oldest.end();
      this.hooks.onEnded(1);
    }
  }

  alertSettled(eventId: string, outcome: AlertOutcome, error?: Error): void {
    const span = this.open.get(eventId);
    if (span === undefined) return;
    this.open.delete(eventId);
    this.endAlert(span, outcome, error);
  }

  private endAlert(span: Span, outcome: AlertOutcome, error?: Error): void {
    span.setAttribute('sentinel.alert.outcome', outcome);
    if (outcome !== 'acknowledged') span.setStatus({ code: SpanStatusCode.ERROR, message: error?.message ?? outcome });
    span.end();
    this.hooks.onEnded(1);
  }

  /** After the alert stage: ends the alert spans still waiting, then sends what is queued within the deadline. */
  async stop(deadline: AbortSignal): Promise<void> {
    this.stopped = true;
    for (const span of this.open.values()) this.endAlert(span, 'shutdown');
    this.open.clear();
    await beforeDeadline(this.provider.shutdown().catch(() => undefined), deadline);
  }
}

/** Counts what each export did, for `sentinel_trace_spans_total`. */
class CountingExporter implements SpanExporter {
  constructor(
    private readonly inner: SpanExporter,
    private readonly hooks: TracingHooks,
  ) {}

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this.inner.export(spans, (result) => {
      try {
        this.hooks.onExported(spans.length, result.code === ExportResultCode.SUCCESS, result.error);
      } finally {
        done(result);
      }
    });
  }

  shutdown(): Promise<void> {
    return this.inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this.inner.forceFlush?.() ?? Promise.resolve();
  }
}
