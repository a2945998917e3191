/** The alert stage: journals each alert in the outbox, publishes it at QoS 1 to <prefix>/<streamId>, and the retained node status. */
import type { MqttClient } from 'mqtt';
import type { Alert, Status } from './alert.js';
import { fitsBytes } from '../ingest/stream-id.js';
import type { AlertOutbox } from './outbox.js';

export type UndeliverableReason = 'topic_too_long' | 'invalid_topic' | 'publish_error';

export interface PublishHooks {
  onPublished(alert: Alert): void;
  /** Not acknowledged this time (disconnected, a retryable PUBACK reason code): it stays in the outbox. */
  onFailed(alert: Alert, error: Error): void;
  /** The outbox was full (outbox.maxAlerts): its oldest undelivered alert was given up. */
  onDropped(alert: Alert): void;
  /** The broker can never take it (topic too long / invalid, publish threw); given up, not replayed. */
  onUndeliverable(alert: Alert, reason: UndeliverableReason): void;
  /** The journal could not record it (disk full, I/O error, or the alert fails its schema); it is published anyway. */
  onJournalFailed(alert: Alert, error: Error): void;
}

/** The MQTT limit on a topic name, in UTF-8 bytes (MQTT 5 §1.5.4). */
export const MAX_TOPIC_BYTES = 65_535;

/**
 * PUBACK reason codes that no retry can change: Topic Name invalid, Packet too large, Payload format
 * invalid. Others (Not authorized, Quota exceeded, Implementation specific) may clear up.
 */
const PERMANENT_REASON_CODES = new Set([0x90, 0x95, 0x99]);

export function alertTopic(prefix: string, streamId: string): string {
  return `${prefix}/${streamId}`;
}

/**
 * Why no broker would take a PUBLISH to `topic`, or null when it can. Mosquitto drops the connection
 * on a topic with a wildcard, a control character or a Unicode noncharacter; mqtt.js resends a stored
 * QoS 1 publish on every reconnect, so one such alert would cut the daemon off from the broker for good,
 * and mqtt.js throws while writing a topic over 65,535 bytes.
 */
export function topicProblem(topic: string): 'topic_too_long' | 'invalid_topic' | null {
  if (!fitsBytes(topic, MAX_TOPIC_BYTES)) return 'topic_too_long';
  for (let i = 0; i < topic.length; i++) {
    const c = topic.charCodeAt(i);
    if (c === 0x2b || c === 0x23 || c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0xfdd0 && c <= 0xfdef) || c === 0xfffe || c === 0xffff) {
      return 'invalid_topic';
    }
    // U+nFFFE and U+nFFFF in the supplementary planes end in the low surrogates DFFE and DFFF.
    if ((c === 0xdffe || c === 0xdfff) && i > 0 && (topic.charCodeAt(i - 1) & 0x3f) === 0x3f && (topic.charCodeAt(i - 1) & 0xfc00) === 0xd800) {
      return 'invalid_topic';
    }
  }
  return null;
}

export class MqttAlertPublisher {
  private inFlight = 0;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly client: MqttClient,
    private readonly prefix: string,
    private readonly outbox: AlertOutbox,
    private readonly hooks: PublishHooks,
  ) {}

  /**
   * Publishes what an earlier run left undelivered, oldest first, ahead of any new alert. A journaled
   * alert the broker can never take (a journal from an older version, or edited) is marked done, so
   * it is given up once instead of on every start.
   */
  replay(alerts: readonly Alert[]): void {
    for (const alert of alerts) {
      const topic = alertTopic(this.prefix, alert.streamId);
      const problem = topicProblem(topic);
      if (problem === null) this.publish(alert, topic);
      else this.giveUp(alert, problem);
    }
  }

  /** Journals and publishes an alert; never throws. */
  send(alert: Alert): void {
    const topic = alertTopic(this.prefix, alert.streamId);
    const problem = topicProblem(topic);
    // Checked before journaling: an alert no broker takes must never reach the outbox to be replayed.
    if (problem !== null) {
      this.hooks.onUndeliverable(alert, problem);
      return;
    }
    const { dropped, error } = this.outbox.add(alert);
    if (error !== null) this.hooks.onJournalFailed(alert, error);
    if (dropped !== null) this.hooks.onDropped(dropped);
    this.publish(alert, topic);
  }

  private giveUp(alert: Alert, reason: UndeliverableReason): void {
    this.outbox.done(alert.eventId);
    this.hooks.onUndeliverable(alert, reason);
  }

  private publish(alert: Alert, topic: string): void {
    let payload: string;
    try {
      payload = JSON.stringify(alert);
    } catch {
      this.giveUp(alert, 'publish_error');
      return;
    }
    this.inFlight++;
    let settled = false;
    const callback = (err?: Error): void => {
      if (settled) return;
      settled = true;
      if (!err) {
        this.outbox.done(alert.eventId);
        this.hooks.onPublished(alert);
      } else if (PERMANENT_REASON_CODES.has((err as Error & { code?: unknown }).code as number)) {
        this.giveUp(alert, 'publish_error');
      } else this.hooks.onFailed(alert, err);
      this.settle();
    };
    try {
      // mqtt.js keeps QoS 1 publishes made while offline and sends them, in order, on reconnect.
      this.client.publish(topic, payload, { qos: 1 }, callback);
    } catch {
      // What throws here (a packet mqtt.js cannot encode) would throw again on every retry.
      const answered = settled;
      settled = true; // removing the packet below answers the callback with "Message removed"
      this.abandon(callback);
      if (answered) return;
      this.giveUp(alert, 'publish_error');
      this.settle();
    }
  }

  /**
   * After mqtt.js threw mid-publish: its packet is in the outgoing store, to be resent (and throw
   * again) on every reconnect, and the connection may hold a partial packet that stalls the broker
   * until the keepalive runs out. Remove the one, and drop the other for a fresh connection now.
   */
  private abandon(callback: (err?: Error) => void): void {
    try {
      const id = this.client.getLastMessageId();
      if (this.client.outgoing[id]?.cb === callback) this.client.removeOutgoingMessage(id);
      if (this.client.connected) this.client.stream.destroy();
    } catch {
      // nothing more can be done here: the alert is given up either way
    }
  }

  private settle(): void {
    if (--this.inFlight > 0) return;
    const waiters = this.waiters;
    this.waiters = [];
    for (const resolve of waiters) resolve();
  }

  /** Resolves when every alert sent so far is acknowledged or has failed (failed ones stay in the outbox). */
  flush(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push(resolve));
  }
}

export function statusTopic(prefix: string, nodeName: string): string {
  return `${prefix}/${nodeName}`;
}

export function publishStatus(client: MqttClient, topic: string, status: Status): Promise<void> {
  return new Promise((resolve, reject) => {
    client.publish(topic, JSON.stringify(status), { qos: 1, retain: true }, (err) => (err ? reject(err) : resolve()));
  });
}
