/**
 * The alert stage: every decided alert is journaled (the outbox), published at QoS 1 and marked done
 * on PUBACK; what an earlier run left undelivered goes out first. It owns the outbox and the
 * publisher, and counts what happens to alerts in the metrics.
 */
import type { MqttClient } from 'mqtt';
import type { Config } from '../config/schema.js';
import type { Logger, RateLimitedWarner } from '../observe/log.js';
import type { SentinelMetrics } from '../observe/metrics.js';
import type { Alert } from './alert.js';
import { AlertOutbox } from './outbox.js';
import { MqttAlertPublisher, type UndeliverableReason } from './publisher.js';

const undeliverableReasons: readonly UndeliverableReason[] = ['topic_too_long', 'invalid_topic', 'publish_error'];

export class AlertStage {
  private readonly outbox: AlertOutbox;
  private publisher: MqttAlertPublisher | null = null;
  /** What the journal held at start: replayed, oldest first, once the publisher is attached. */
  private pending: Alert[] = [];

  constructor(
    private readonly config: Pick<Config, 'outbox' | 'alert'>,
    private readonly log: Logger,
    private readonly warner: RateLimitedWarner,
    private readonly metrics: SentinelMetrics,
  ) {
    this.outbox = new AlertOutbox(config.outbox.path, config.outbox.maxAlerts);
  }

  /** Why the journal cannot be written now (disk full, I/O error), or null. */
  get journalError(): string | null {
    return this.outbox.journalError;
  }

  /** Opens the journal (fails fast when the outbox can never be written) and reads what it holds. */
  start(): void {
    const { pending, skippedLines } = this.outbox.open();
    this.pending = pending;
    if (pending.length > 0 || skippedLines > 0) {
      this.log.info({ path: this.config.outbox.path, pending: pending.length, skippedLines }, 'outbox holds undelivered alerts: replaying them first');
    }
    for (const reason of undeliverableReasons) this.metrics.alertsUndeliverable.labels(reason).inc(0);
    this.metrics.addCollector(() => {
      this.metrics.outboxPending.set(this.outbox.size);
      this.metrics.outboxDegraded.set(this.outbox.journalError === null ? 0 : 1);
    });
  }

  /** Publishes through `client` from now on, starting with what the journal held. */
  attach(client: MqttClient): void {
    const { metrics, log, warner, config } = this;
    this.publisher = new MqttAlertPublisher(client, config.alert.prefix, this.outbox, {
      onPublished: () => metrics.alertsPublished.inc(),
      onFailed: (alert, err) => {
        metrics.alertsPublishFailures.inc();
        log.warn({ eventId: alert.eventId, streamId: alert.streamId, err: err.message }, 'alert not acknowledged; it stays in the outbox');
      },
      onDropped: (alert) => {
        metrics.outboxDropped.inc();
        log.error({ eventId: alert.eventId, streamId: alert.streamId, maxAlerts: config.outbox.maxAlerts }, 'outbox full: oldest undelivered alert dropped');
      },
      onUndeliverable: (alert, reason) => {
        metrics.alertsUndeliverable.labels(reason).inc();
        warner.warn(`undeliverable:${reason}`, { eventId: alert.eventId, streamId: alert.streamId.slice(0, 64), reason }, 'alert the broker can never take: given up');
      },
      onJournalFailed: (alert, err) => {
        metrics.outboxWriteFailures.inc();
        metrics.outboxDegraded.set(1);
        warner.warn('journal-failed', { eventId: alert.eventId, err: err.message, path: config.outbox.path }, 'outbox journal cannot be written: alert published without crash protection');
      },
    });
    this.publisher.replay(this.pending);
    this.pending = [];
  }

  /** Journals and publishes an alert (the outbox first: once the log says "alert …", it survives a crash). */
  send(alert: Alert): void {
    if (this.publisher === null) throw new Error('alert stage: send() before attach()');
    this.metrics.alerts.labels(alert.type).inc();
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

  /** Closes the journal (after the broker connection ended): what is not done stays for the next run. */
  stop(): void {
    this.outbox.close();
  }
}
