/** The alert stage: journals each alert in the outbox, publishes it at QoS 1 to <prefix>/<streamId>, and the retained node status. */
import type { MqttClient } from 'mqtt';
import type { Alert, Status } from './alert.js';
import type { AlertOutbox } from './outbox.js';

export interface AlertSink {
  send(alert: Alert): void;
  /** Resolves when every alert sent so far is acknowledged or has failed (failed ones stay in the outbox). */
  flush(): Promise<void>;
}

export interface PublishHooks {
  onPublished(alert: Alert): void;
  onFailed(alert: Alert, error: Error): void;
  /** The outbox was full: its oldest undelivered alert was given up. */
  onDropped(alert: Alert): void;
}

export class MqttAlertPublisher implements AlertSink {
  private inFlight = 0;
  private waiters: Array<() => void> = [];

  constructor(
    private readonly client: MqttClient,
    private readonly prefix: string,
    private readonly outbox: AlertOutbox,
    private readonly hooks: PublishHooks,
  ) {}

  /** Publishes what an earlier run left undelivered, oldest first, ahead of any new alert. */
  replay(alerts: readonly Alert[]): void {
    for (const alert of alerts) this.publish(alert);
  }

  send(alert: Alert): void {
    const dropped = this.outbox.add(alert);
    if (dropped !== null) this.hooks.onDropped(dropped);
    this.publish(alert);
  }

  private publish(alert: Alert): void {
    this.inFlight++;
    // mqtt.js keeps QoS 1 publishes made while offline and sends them, in order, on reconnect.
    this.client.publish(`${this.prefix}/${alert.streamId}`, JSON.stringify(alert), { qos: 1 }, (err) => {
      if (err) this.hooks.onFailed(alert, err);
      else {
        this.outbox.done(alert.eventId);
        this.hooks.onPublished(alert);
      }
      if (--this.inFlight === 0) {
        const waiters = this.waiters;
        this.waiters = [];
        for (const resolve of waiters) resolve();
      }
    });
  }

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
