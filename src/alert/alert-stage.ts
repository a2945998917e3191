/**
 * The alert stage: every decided alert is journaled (the outbox), published at QoS 1 and marked done
 * on PUBACK; what an earlier run left undelivered goes out first. It owns the outbox and the
 * publisher, and counts what happens to alerts in the metrics.
 */
import type { MqttClient } from 'mqtt';
import type { Config } from '../config/schema.js';
import { beforeDeadline, type Stage } from '../lifecycle/stage.js';
import type { Logger, RateLimitedWarner } from '../observe/log.js';
import type { SentinelMetrics } from '../observe/metrics.js';
import type { AlertTracer } from '../observe/tracing.js';
import type { Alert } from './alert.js';
import { AlertOutbox } from './outbox.js';
import { MqttAlertPublisher, type UndeliverableReason } from './publisher.js';

const undeliverableReasons: readonly UndeliverableReason[] = ['topic_too_long', 'invalid_topic', 'publish_error'];

/** The broker connection alerts go out on (the broker link, started before this stage). */
export interface AlertTransport {
  readonly client: MqttClient;
  /** Resolves when the connection closes (at once when it is not up). */
  untilDisconnected(): Promise<void>;
}

export class AlertStage implements Stage {
  readonly name = 'alerts';
  private readonly outbox: AlertOutbox;
  private publisher: MqttAlertPublisher | null = null;

  constructor(
    private readonly config: Pick<Config, 'outbox' | 'alert'>,
    private readonly log: Logger,
    private readonly warner: RateLimitedWarner,
    private readonly metrics: SentinelMetrics,
    private readonly transport: AlertTransport,
    /** Traces each alert until its PUBACK when tracing is on; unset, no tracing call is made. */
    private readonly tracer?: AlertTracer,
  ) {
    this.outbox = new AlertOutbox(config.outbox.path, config.outbox.maxAlerts);
  }

  /** Why the journal cannot be written now (disk full, I/O error), or null. */
  get journalError(): string | null {
    return this.outbox.journalError;
  }

  /**
   * Opens the journal (fails fast when the outbox can never be written) and publishes through the
   * broker link from now on, starting with what an earlier run left undelivered.
   */
  async start(): Promise<void> {
    const { pending, skippedLines } = this.outbox.open();
    if (pending.length > 0 || skippedLines > 0) {
      this.log.info({ path: this.config.outbox.path, pending: pending.length, skippedLines }, 'outbox holds undelivered alerts: replaying them first');
    }
    for (const reason of undeliverableReasons) this.metrics.alertsUndeliverable.labels(reason).inc(0);
    this.metrics.addCollector(() => {
      this.metrics.outboxPending.set(this.outbox.size);
      this.metrics.outboxDegraded.set(this.outbox.journalError === null ? 0 : 1);
    });
    const { metrics, log, warner, config, tracer } = this;
    this.publisher = new MqttAlertPublisher(this.transport.client, config.alert.prefix, this.outbox, {
      onPublished: (alert) => {
        metrics.alertsPublished.inc();
        tracer?.alertSettled(alert.eventId, 'acknowledged');
      },
      onFailed: (alert, err) => {
        metrics.alertsPublishFailures.inc();
        tracer?.alertSettled(alert.eventId, 'not_acknowledged', err);
        log.warn({ eventId: alert.eventId, streamId: alert.streamId, err: err.message }, 'alert not acknowledged; it stays in the outbox');
      },
      onDropped: (alert) => {
        metrics.outboxDropped.inc();
        tracer?.alertSettled(alert.eventId, 'dropped');
        log.error({ eventId: alert.eventId, streamId: alert.streamId, maxAlerts: config.outbox.maxAlerts }, 'outbox full: oldest undelivered alert dropped');
      },
      onUndeliverable: (alert, reason) => {
        metrics.alertsUndeliverable.labels(reason).inc();
        tracer?.alertSettled(alert.eventId, 'undeliverable', new Error(reason));
        warner.warn(`undeliverable:${reason}`, { eventId: alert.eventId, streamId: alert.streamId.slice(0, 64), reason }, 'alert the broker can never take: given up');
      },
      onJournalFailed: (alert, err) => {
        metrics.outboxWriteFailures.inc();
        metrics.outboxDegraded.set(1);
        warner.warn('journal-failed', { eventId: alert.eventId, err: err.message, path: config.outbox.path }, 'outbox journal cannot be written: alert published without crash protection');
      },
    });
    this.publisher.replay(pending);
  }

  /** Journals and publishes an alert (the outbox first: once the log says "alert …", it survives a crash). */
  send(alert: Alert): void {
    if (this.publisher === null) throw new Error('alert stage: send() before start()');
    // Before send: a PUBACK can only come later, but an undeliverable alert is settled inside send().
    this.tracer?.alertSent(alert);
    this.publisher.send(alert);
    this.log.info(
      { eventId: alert.eventId, type: alert.type, streamId: alert.streamId, score: alert.score, topChannels: alert.topChannels, ...(alert.reason ? { reason: alert.reason } : {}) },
      `alert ${alert.type}`,
    );
  }

  /** Resolves once every alert sent so far is acknowledged by the broker. */
  flush(): Promise<void> {
    return this.publisher?.flush() ?? Promise.resolve();
  }

  /**
   * After the pipeline's last alert: waits until every alert is acknowledged, the connection is gone
   * (what it did not take is safe in the outbox) or the deadline passes; then closes the journal, so
   * what is not done stays for the next run.
   */
  async stop(deadline: AbortSignal): Promise<void> {
    if (this.publisher !== null) await beforeDeadline(Promise.race([this.flush(), this.transport.untilDisconnected()]), deadline);
    this.outbox.close();
  }
}
