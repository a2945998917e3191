/**
 * The broker link: the one MQTT connection ingest subscribes on and alerts publish through (or the
 * embedded broker and a client of it), its state for readiness and metrics, and the retained status
 * message with its Last Will.
 */
import type { MqttClient } from 'mqtt';
import type { Status } from '../alert/alert.js';
import { publishStatus, statusTopic } from '../alert/publisher.js';
import { redactUrl } from '../config/load.js';
import type { Config } from '../config/schema.js';
import type { Stage } from '../lifecycle/stage.js';
import type { Logger, RateLimitedWarner } from '../observe/log.js';
import type { SentinelMetrics } from '../observe/metrics.js';
import { brokerLog, connectBroker, maximumPacketSizeFor, secretScrubber } from './connection.js';
import { startEmbeddedBroker, type EmbeddedBroker } from './embedded.js';

/** Resolves true if the promise settled within ms, false otherwise (the promise is left to run). */
async function withTimeout(promise: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<false>((resolve) => {
    timer = setTimeout(() => resolve(false), ms);
  });
  const settled = await Promise.race([promise.then(() => true as const, () => true as const), timeout]);
  clearTimeout(timer);
  return settled;
}

export interface LinkHooks {
  /** Each CONNACK; `sessionPresent` false means the broker kept no subscriptions for us. */
  onConnected(sessionPresent: boolean): void;
  onDisconnected(): void;
}

export class BrokerLink implements Stage {
  readonly name = 'broker';
  private mqttClient: MqttClient | null = null;
  private embeddedBroker: EmbeddedBroker | null = null;
  private up = false;
  /** URL of the broker in use (the embedded one when none is configured). */
  url = '';

  constructor(
    private readonly config: Pick<Config, 'broker' | 'alert' | 'nodeName' | 'queue' | 'ingest'>,
    private readonly log: Logger,
    private readonly warner: RateLimitedWarner,
    private readonly metrics: SentinelMetrics,
    /** The status message as of now (model, provider, times). */
    private readonly status: (state: Status['state']) => Status,
    private readonly hooks: LinkHooks,
  ) {}

  get connected(): boolean {
    return this.up;
  }

  /** The embedded broker, when no broker.url is configured: ingest takes telemetry from it in-process. */
  get embedded(): EmbeddedBroker | null {
    return this.embeddedBroker;
  }

  /** The connection ingest subscribes on and alerts publish through (after start). */
  get client(): MqttClient {
    if (this.mqttClient === null) throw new Error('broker link: client before start()');
    return this.mqttClient;
  }

  /** Starts the embedded broker if none is configured and connects (reconnecting forever in the background). */
  async start(): Promise<void> {
    const { config, log, metrics } = this;
    let url = config.broker.url;
    let protocolVersion = config.broker.protocolVersion;
    if (url === null) {
      this.embeddedBroker = await startEmbeddedBroker(config.broker.embedded.host, config.broker.embedded.port);
      url = this.embeddedBroker.url;
      protocolVersion = 4; // aedes speaks MQTT 3.1.1 only
      log.info({ url: redactUrl(url) }, 'no broker configured: started the embedded broker');
    }
    this.url = url;
    const client = connectBroker(
      { ...config.broker, protocolVersion },
      {
        url,
        receiveMaximum: config.queue.capacity,
        maximumPacketSize: maximumPacketSizeFor(config.ingest.maxPayloadBytes, config.ingest.maxTopicBytes),
        will: { topic: this.statusTopic, payload: JSON.stringify(this.status('offline')) },
        log: brokerLog(log, config.broker, url),
        logger: log,
      },
    );
    this.mqttClient = client;
    const shown = redactUrl(url);
    client.on('connect', (connack) => {
      this.up = true;
      metrics.brokerConnected.set(1);
      this.hooks.onConnected(connack.sessionPresent);
      log.info({ url: shown, sessionPresent: connack.sessionPresent }, 'connected to broker');
      void this.publishStatus('online');
    });
    client.on('close', () => {
      if (this.up) log.warn({ url: shown }, 'disconnected from broker');
      this.up = false;
      metrics.brokerConnected.set(0);
      this.hooks.onDisconnected();
    });
    client.on('reconnect', () => {
      metrics.brokerReconnects.inc();
      log.info({ url: shown, nextDelayMs: client.options.reconnectPeriod }, 'reconnecting to broker');
    });
    const scrub = secretScrubber(config.broker, url);
    client.on('error', (err) => this.warner.warn('broker-error', { err: scrub(err.message) }, 'broker connection error'));
  }

  /** Publishes the retained status (on connect, on every heartbeat, after a model swap); never rejects. */
  publishStatus(state: Status['state']): Promise<void> {
    const client = this.mqttClient;
    if (client === null || !this.up) return Promise.resolve();
    return publishStatus(client, this.statusTopic, this.status(state)).catch((err: Error) => this.log.warn({ err: err.message }, 'status publish failed'));
  }

  /**
   * Publishes an event (a drift band change) at QoS 1, not retained and not journalled: it describes
   * the present, so one lost while the broker is away is superseded by the status message. Never rejects.
   */
  publishEvent(topic: string, payload: unknown): void {
    const client = this.mqttClient;
    if (client === null || !this.up) return;
    client.publish(topic, JSON.stringify(payload), { qos: 1 }, (err) => {
      if (err) this.warner.warn('event-publish', { err: err.message, topic: topic.slice(0, 200) }, 'event publish failed');
    });
  }

  /** Resolves when the connection closes (at once when it is not up). */
  untilDisconnected(): Promise<void> {
    const client = this.mqttClient;
    if (client === null || !this.up) return Promise.resolve();
    return new Promise((resolve) => client.once('close', () => resolve()));
  }

  /**
   * After the alert stage: publishes `offline`, disconnects (forcefully once the deadline has passed or
   * when the broker does not answer within 2 s) and stops the embedded broker.
   */
  async stop(deadline: AbortSignal): Promise<void> {
    const graceful = !deadline.aborted;
    const client = this.mqttClient;
    if (client !== null) {
      if (this.up) await withTimeout(this.publishStatus('offline'), 2_000);
      const ended = new Promise<void>((resolve) => client.end(!graceful, {}, () => resolve()));
      if (!(await withTimeout(ended, 2_000))) await new Promise<void>((resolve) => client.end(true, {}, () => resolve()));
    }
    if (this.embeddedBroker) await this.embeddedBroker.stop();
  }

  private get statusTopic(): string {
    return statusTopic(this.config.alert.statusPrefix, this.config.nodeName);
  }
}
