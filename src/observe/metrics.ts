/** Prometheus metrics: every sentinel_* series the daemon exports, on a registry of its own. */
import { driftBands, qualityBands, type DriftBand, type QualityBand } from '../drift/bands.js';
import { sparkplugRejectReasons } from '../ingest/sparkplug/host.js';
import { sparkplugCountedEvents } from '../ingest/sparkplug/sparkplug-ingest.js';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import { buildInfo } from './build-info.js';
import type { ProbeRejectReason } from './probe-server.js';
import type { ComparisonOutcome } from '../decide/shadow.js';
import { WindowHistogram, type WindowSeries } from './window-histogram.js';

/**
 * Every value of the labels counted here (the daemon and the alert stage export the others' from their
 * own lists): each series exists at 0 from the start, so rate() sees the first increment.
 */
export const dropReasons = ['queue_full_drop_oldest', 'queue_full_drop_newest', 'shutdown'] as const;
export const evictReasons = ['idle', 'table_full'] as const;
export const modelSwapResults = ['swapped', 'refused', 'incomplete'] as const;
export const traceSpanOutcomes = ['ended', 'exported', 'export_failed'] as const;
export type ModelSwapResult = (typeof modelSwapResults)[number];
export const httpRejectReasons = ['connection_limit', 'client_limit', 'bad_request', 'timeout'] as const satisfies readonly ProbeRejectReason[];
// A reason added to ProbeRejectReason and not here fails to compile.
const everyHttpReason: Exclude<ProbeRejectReason, (typeof httpRejectReasons)[number]> extends never ? true : never = true;
void everyHttpReason;

const latencyBuckets = [0.0005, 0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export class SentinelMetrics {
  readonly registry = new Registry();
  private readonly collectors: Array<() => void> = [];
  /** prom-client calls this before reading a metric: hot-path tallies are folded in here. */
  private readonly collectTallies = (): void => {
    for (const collect of this.collectors) collect();
  };

  readonly messagesReceived = new Counter({
    name: 'sentinel_messages_received_total',
    help: 'MQTT messages received, by subscription topic filter',
    labelNames: ['subscription'] as const,
    registers: [this.registry],
    collect: this.collectTallies,
  });
  readonly readingsRejected = new Counter({
    name: 'sentinel_readings_rejected_total',
    help: 'Messages or readings rejected as bad input, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly readingsDropped = new Counter({
    name: 'sentinel_readings_dropped_total',
    help: 'Valid QoS 0 readings dropped, by reason: the queue was full (by dropPolicy), or intake had stopped for shutdown',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly readingsQueued = new Counter({
    name: 'sentinel_readings_queued_total',
    help: 'Readings accepted into the bounded queue',
    labelNames: ['model'] as const,
    registers: [this.registry],
    collect: this.collectTallies,
  });
  readonly queueDepth = new Gauge({
    name: 'sentinel_queue_depth',
    help: 'Readings waiting in the bounded queue',
    labelNames: ['model'] as const,
    registers: [this.registry],
    collect: this.collectTallies,
  });
  readonly queueCapacity = new Gauge({ name: 'sentinel_queue_capacity', help: 'Capacity of the bounded queue', labelNames: ['model'] as const, registers: [this.registry] });
  readonly backpressureWaits = new Counter({
    name: 'sentinel_backpressure_waits_total',
    help: 'Messages whose intake waited for queue space (QoS 1: the acknowledgement; QoS 0: up to queue.qos0MaxWaitMs)',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly streamsActive = new Gauge({ name: 'sentinel_streams_active', help: 'Streams with a window in memory', labelNames: ['model'] as const, registers: [this.registry] });
  readonly sparkplugRejected = new Counter({
    name: 'sentinel_sparkplug_rejected_total',
    help: 'Sparkplug B messages or metrics turned away, by reason (docs/sparkplug.md)',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly sparkplugEvents = new Counter({
    name: 'sentinel_sparkplug_events_total',
    help: 'Sparkplug B host events: births, deaths, messages received, readings, rebirths requested, STATE published',
    labelNames: ['event'] as const,
    registers: [this.registry],
  });
  readonly traceSpans = new Counter({
    name: 'sentinel_trace_spans_total',
    help: 'OpenTelemetry spans (tracing.enabled): ended by Sentinel, exported to the collector, or lost in a failed export (docs/tracing.md)',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly sparkplugEdgeNodes = new Gauge({ name: 'sentinel_sparkplug_edge_nodes', help: 'Sparkplug B edge nodes the host holds a birth of', registers: [this.registry] });
  readonly streamsByDriftBand = new Gauge({
    name: 'sentinel_streams_by_drift_band',
    help: 'Streams by drift band against the model\'s training statistics (warming, ok, moderate, severe; docs/drift.md)',
    labelNames: ['model', 'band'] as const,
    registers: [this.registry],
  });
  readonly streamsByInputQuality = new Gauge({
    name: 'sentinel_streams_by_input_quality',
    help: 'Streams by input-quality band: share of recent readings rejected (warming, ok, poor)',
    labelNames: ['model', 'band'] as const,
    registers: [this.registry],
  });
  readonly driftEvents = new Counter({
    name: 'sentinel_drift_events_total',
    help: 'Streams that changed drift or input-quality band (each published as a drift event)',
    labelNames: ['model', 'measure'] as const,
    registers: [this.registry],
  });
  readonly streamsStale = new Gauge({ name: 'sentinel_streams_stale', help: 'Streams silent past window.staleAfterMs (stale: a data gap, not an anomaly)', labelNames: ['model'] as const, registers: [this.registry] });
  readonly streamsEvicted = new Counter({
    name: 'sentinel_streams_evicted_total',
    help: 'Streams evicted, by reason: idle (silent past window.idleTtlMs), table_full (a new stream needed the room)',
    labelNames: ['model', 'reason'] as const,
    registers: [this.registry],
  });
  readonly rateLimitWaits = new Counter({
    name: 'sentinel_rate_limit_waits_total',
    help: 'QoS 1 readings over ingest.maxReadingsPerSecondPerStream whose acknowledgement waited for the stream\'s rate instead of being rejected',
    registers: [this.registry],
  });
  readonly clockSteps = new Counter({
    name: 'sentinel_clock_steps_total',
    help: 'Windows restarted because a stream\'s newest row was stamped ahead of the wall clock and older readings followed',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly streamsWentStale = new Counter({
    name: 'sentinel_streams_went_stale_total',
    help: 'Times a stream went stale (silent past window.staleAfterMs)',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly windowsScored = new Counter({ name: 'sentinel_windows_scored_total', help: 'Windows scored by the model', labelNames: ['model'] as const, registers: [this.registry] });
  readonly windowsFailed = new Counter({
    name: 'sentinel_windows_failed_total',
    help: 'Windows lost to a failed inference run',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly scoresSaturated = new Counter({
    name: 'sentinel_scores_saturated_total',
    help: 'Window scores that overflowed (infinite or NaN from extreme values) and were reported as the largest float32',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly batchSize = new Histogram({
    name: 'sentinel_batch_size',
    help: 'Windows per inference run',
    buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096],
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly inferenceDuration = new Histogram({
    name: 'sentinel_inference_duration_seconds',
    help: 'Wall time of one model run over a batch, from dispatch to scores (includes any wait for the event loop)',
    buckets: latencyBuckets,
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly ingestToDecision = new WindowHistogram(
    'sentinel_ingest_to_decision_seconds',
    'Time from receiving a reading to the decision on the window it completed',
    latencyBuckets,
    this.registry,
  );
  readonly alerts = new Counter({
    name: 'sentinel_alerts_total',
    help: 'Alert events decided, by type',
    labelNames: ['model', 'type'] as const,
    registers: [this.registry],
  });
  readonly alertsPublished = new Counter({
    name: 'sentinel_alerts_published_total',
    help: 'Alert events acknowledged by the broker',
    registers: [this.registry],
  });
  readonly alertsPublishFailures = new Counter({
    name: 'sentinel_alerts_publish_failures_total',
    help: 'Alert publishes that failed',
    registers: [this.registry],
  });
  readonly alertsUndeliverable = new Counter({
    name: 'sentinel_alerts_undeliverable_total',
    help: 'Alerts the broker can never take (e.g. topic over the MQTT limit), given up instead of retried, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly alertsActive = new Gauge({ name: 'sentinel_alerts_active', help: 'Streams with a raised alert', labelNames: ['model'] as const, registers: [this.registry] });
  readonly modelInfo = new Gauge({
    name: 'sentinel_model_info',
    help: 'The model in use (value 1), with its name, version and execution provider',
    labelNames: ['model', 'name', 'version', 'provider'] as const,
    registers: [this.registry],
  });
  readonly brokerConnected = new Gauge({
    name: 'sentinel_broker_connected',
    help: '1 while connected to the MQTT broker',
    registers: [this.registry],
  });
  readonly brokerReconnects = new Counter({
    name: 'sentinel_broker_reconnects_total',
    help: 'Reconnect attempts to the MQTT broker',
    registers: [this.registry],
  });
  readonly outboxPending = new Gauge({
    name: 'sentinel_outbox_pending',
    help: 'Alerts journaled in the outbox and not yet acknowledged by the broker',
    registers: [this.registry],
    collect: this.collectTallies,
  });
  readonly outboxDropped = new Counter({
    name: 'sentinel_outbox_dropped_total',
    help: 'Undelivered alerts given up because the outbox was full (outbox.maxAlerts)',
    registers: [this.registry],
  });
  readonly outboxWriteFailures = new Counter({
    name: 'sentinel_outbox_write_failures_total',
    help: 'Outbox journal writes that failed (disk full, I/O error); the alert is published anyway',
    registers: [this.registry],
  });
  readonly outboxDegraded = new Gauge({
    name: 'sentinel_outbox_degraded',
    help: '1 while the outbox journal cannot be written (alerts are published without crash protection)',
    registers: [this.registry],
  });
  readonly internalErrors = new Counter({
    name: 'sentinel_internal_errors_total',
    help: 'Errors caught at a stage boundary that would otherwise have ended the process, by stage (each is a bug to report)',
    labelNames: ['stage'] as const,
    registers: [this.registry],
  });
  readonly httpRejected = new Counter({
    name: 'sentinel_http_rejected_total',
    help: 'Connections or requests to the metrics and probes port turned away, by reason',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });
  readonly modelSwaps = new Counter({
    name: 'sentinel_model_swaps_total',
    help: 'Model reload attempts by result: swapped, refused (breaks the contract or does not fit), incomplete (retried)',
    labelNames: ['model', 'result'] as const,
    registers: [this.registry],
  });
  readonly shadowWindowsScored = new Counter({
    name: 'sentinel_shadow_windows_scored_total',
    help: 'Windows the shadow (candidate) model scored after the live one',
    labelNames: ['model'] as const,
    registers: [this.registry],
    collect: this.collectTallies,
  });
  readonly shadowWindowsFailed = new Counter({
    name: 'sentinel_shadow_windows_failed_total',
    help: 'Windows the shadow model failed to score (the live decisions stand)',
    labelNames: ['model'] as const,
    registers: [this.registry],
  });
  readonly shadowAlerts = new Counter({
    name: 'sentinel_shadow_alerts_total',
    help: 'Decisions of the shadow model, by type: counted and logged, never published',
    labelNames: ['model', 'type'] as const,
    registers: [this.registry],
    collect: this.collectTallies,
  });
  readonly shadowScores = new Counter({
    name: 'sentinel_shadow_scores_total',
    help: 'Windows by whether each model scored them above its raise threshold: agree, live_only, shadow_only',
    labelNames: ['model', 'outcome'] as const,
    registers: [this.registry],
    collect: this.collectTallies,
  });
  readonly shadowDecisions = new Counter({
    name: 'sentinel_shadow_decisions_total',
    help: 'Windows by whether each model held an open alert on the stream after deciding them: agree, live_only, shadow_only',
    labelNames: ['model', 'outcome'] as const,
    registers: [this.registry],
    collect: this.collectTallies,
  });
  readonly shadowModelInfo = new Gauge({
    name: 'sentinel_shadow_model_info',
    help: 'The shadow (candidate) model scoring beside the live one (value 1), by the live model\'s name in the config',
    labelNames: ['model', 'name', 'version'] as const,
    registers: [this.registry],
  });
  readonly ready = new Gauge({ name: 'sentinel_ready', help: '1 when /readyz would answer 200', registers: [this.registry] });
  readonly buildInfo = new Gauge({
    name: 'sentinel_build_info',
    help: 'The running build (value 1): Sentinel version, source revision and onnxruntime-node version',
    labelNames: ['version', 'revision', 'onnxruntime'] as const,
    registers: [this.registry],
  });

  constructor(options: { defaultMetrics?: boolean } = {}) {
    if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: this.registry });
    this.buildInfo.set({ ...buildInfo() }, 1);
    for (const reason of dropReasons) this.readingsDropped.labels(reason).inc(0);
    for (const reason of httpRejectReasons) this.httpRejected.labels(reason).inc(0);
    for (const reason of sparkplugRejectReasons) this.sparkplugRejected.labels(reason).inc(0);
    for (const event of sparkplugCountedEvents) this.sparkplugEvents.labels(event).inc(0);
    for (const outcome of traceSpanOutcomes) this.traceSpans.labels(outcome).inc(0);
  }

  /**
   * Registers a function that moves counts kept in plain numbers on the per-message path into their
   * metrics (a prom-client inc() per message costs more than the reading's own processing).
   */
  addCollector(collect: () => void): void {
    this.collectors.push(collect);
  }

  /** The series of one model (a route): its label values are exported at 0 from now on. */
  forModel(model: string): ModelMetrics {
    return new ModelMetrics(this, model);
  }
}

/** A counter, gauge or histogram bound to its labels. */
export interface CounterChild {
  inc(value?: number): void;
}
export interface GaugeChild {
  set(value: number): void;
}
export interface Observer {
  observe(value: number): void;
}

/**
 * The metrics of one model's pipeline, bound to its `model` label (the model's name in the config: a
 * bounded set, never a stream). Bound children skip prom-client's label lookup on the hot path.
 */
export class ModelMetrics {
  readonly readingsQueued: CounterChild;
  readonly queueDepth: GaugeChild;
  readonly queueCapacity: GaugeChild;
  readonly backpressureWaits: CounterChild;
  readonly streamsActive: GaugeChild;
  readonly streamsStale: GaugeChild;
  readonly streamsWentStale: CounterChild;
  readonly clockSteps: CounterChild;
  readonly windowsScored: CounterChild;
  readonly windowsFailed: CounterChild;
  readonly scoresSaturated: CounterChild;
  readonly batchSize: Observer;
  readonly inferenceDuration: Observer;
  readonly ingestToDecision: WindowSeries;
  readonly alertsActive: GaugeChild;
  private readonly evicted: Record<(typeof evictReasons)[number], CounterChild>;
  private readonly alertTypes: Record<'raised' | 'resolved', CounterChild>;
  private readonly swaps: Record<ModelSwapResult, CounterChild>;
  readonly shadowWindowsScored: CounterChild;
  readonly shadowWindowsFailed: CounterChild;
  readonly shadowAlerts: Record<'raised' | 'resolved', CounterChild>;
  readonly shadowScores: Record<ComparisonOutcome, CounterChild>;
  readonly shadowDecisions: Record<ComparisonOutcome, CounterChild>;
  private shadowInfo: { model: string; name: string; version: string } | null = null;
  private readonly driftEventCounters: Record<'drift' | 'quality', CounterChild>;

  constructor(
    private readonly metrics: SentinelMetrics,
    readonly model: string,
  ) {
    const m = { model };
    this.readingsQueued = metrics.readingsQueued.labels(m);
    this.queueDepth = metrics.queueDepth.labels(m);
    this.queueCapacity = metrics.queueCapacity.labels(m);
    this.backpressureWaits = metrics.backpressureWaits.labels(m);
    this.streamsActive = metrics.streamsActive.labels(m);
    this.streamsStale = metrics.streamsStale.labels(m);
    this.streamsWentStale = metrics.streamsWentStale.labels(m);
    this.clockSteps = metrics.clockSteps.labels(m);
    this.windowsScored = metrics.windowsScored.labels(m);
    this.windowsFailed = metrics.windowsFailed.labels(m);
    this.scoresSaturated = metrics.scoresSaturated.labels(m);
    this.batchSize = metrics.batchSize.labels(m);
    this.inferenceDuration = metrics.inferenceDuration.labels(m);
    this.ingestToDecision = metrics.ingestToDecision.labels(m);
    this.alertsActive = metrics.alertsActive.labels(m);
    this.evicted = { idle: metrics.streamsEvicted.labels({ model, reason: 'idle' }), table_full: metrics.streamsEvicted.labels({ model, reason: 'table_full' }) };
    this.alertTypes = { raised: metrics.alerts.labels({ model, type: 'raised' }), resolved: metrics.alerts.labels({ model, type: 'resolved' }) };
    this.swaps = {
      swapped: metrics.modelSwaps.labels({ model, result: 'swapped' }),
      refused: metrics.modelSwaps.labels({ model, result: 'refused' }),
      incomplete: metrics.modelSwaps.labels({ model, result: 'incomplete' }),
    };
    this.shadowWindowsScored = metrics.shadowWindowsScored.labels(m);
    this.shadowWindowsFailed = metrics.shadowWindowsFailed.labels(m);
    this.shadowAlerts = { raised: metrics.shadowAlerts.labels({ model, type: 'raised' }), resolved: metrics.shadowAlerts.labels({ model, type: 'resolved' }) };
    const byOutcome = (counter: Counter<'model' | 'outcome'>): Record<ComparisonOutcome, CounterChild> => ({
      agree: counter.labels({ model, outcome: 'agree' }),
      live_only: counter.labels({ model, outcome: 'live_only' }),
      shadow_only: counter.labels({ model, outcome: 'shadow_only' }),
    });
    this.shadowScores = byOutcome(metrics.shadowScores);
    this.shadowDecisions = byOutcome(metrics.shadowDecisions);
    this.driftEventCounters = { drift: metrics.driftEvents.labels({ model, measure: 'drift' }), quality: metrics.driftEvents.labels({ model, measure: 'quality' }) };
    this.setDriftBands({ warming: 0, ok: 0, moderate: 0, severe: 0 }, { warming: 0, ok: 0, poor: 0 });
    for (const counter of [...Object.values(this.driftEventCounters), this.readingsQueued, this.backpressureWaits, this.streamsWentStale, this.clockSteps, this.windowsScored, this.windowsFailed, this.scoresSaturated]) counter.inc(0);
    for (const counter of [...Object.values(this.evicted), ...Object.values(this.alertTypes), ...Object.values(this.swaps)]) counter.inc(0);
    for (const counter of [this.shadowWindowsScored, this.shadowWindowsFailed, ...Object.values(this.shadowAlerts), ...Object.values(this.shadowScores), ...Object.values(this.shadowDecisions)]) counter.inc(0);
  }

  /** Streams by drift and quality band, from the pipeline's drift tracker (set before each scrape). */
  setDriftBands(drift: Readonly<Record<DriftBand, number>>, quality: Readonly<Record<QualityBand, number>>): void {
    for (const band of driftBands) this.metrics.streamsByDriftBand.set({ model: this.model, band }, drift[band]);
    for (const band of qualityBands) this.metrics.streamsByInputQuality.set({ model: this.model, band }, quality[band]);
  }

  driftEvent(measure: 'drift' | 'quality'): void {
    this.driftEventCounters[measure].inc();
  }

  streamsEvicted(reason: (typeof evictReasons)[number]): CounterChild {
    return this.evicted[reason];
  }

  alerts(type: 'raised' | 'resolved'): CounterChild {
    return this.alertTypes[type];
  }

  modelSwaps(result: ModelSwapResult): CounterChild {
    return this.swaps[result];
  }

  /** Hot-path tallies of this model's pipeline, folded in before each scrape. */
  addCollector(collect: () => void): void {
    this.metrics.addCollector(collect);
  }

  /** The model now serving under this name: one sentinel_model_info series per model. */
  setModel(name: string, version: string, provider: string): void {
    if (this.info !== null) this.metrics.modelInfo.remove(this.info);
    this.info = { model: this.model, name, version, provider };
    this.metrics.modelInfo.set(this.info, 1);
  }

  private info: { model: string; name: string; version: string; provider: string } | null = null;

  /** The shadow model now scoring beside this one, or none. */
  setShadow(shadow: { name: string; version: string } | null): void {
    if (this.shadowInfo !== null) this.metrics.shadowModelInfo.remove(this.shadowInfo);
    this.shadowInfo = shadow === null ? null : { model: this.model, name: shadow.name, version: shadow.version };
    if (this.shadowInfo !== null) this.metrics.shadowModelInfo.set(this.shadowInfo, 1);
  }
}
