/**
 * The Sparkplug B host as one daemon stage: its own broker connection (clean session, the STATE death as
 * its will, credentials re-read on reconnect like the main link) and the SparkplugIngest on it. Start
 * connects and subscribes; stop publishes the STATE death, then ends the connection.
 */
import type { MqttClient } from 'mqtt';
import { connectBroker, maximumPacketSizeFor } from '../../broker/connection.js';
import type { Config } from '../../config/schema.js';
import { beforeDeadline, type Stage } from '../../lifecycle/stage.js';
import type { Logger } from '../../observe/log.js';
import { SparkplugIngest, sparkplugClientOptions, type SparkplugHooks, type SparkplugTarget } from './sparkplug-ingest.js';

export class SparkplugStage implements Stage {
  readonly name = 'sparkplug';
  private client: MqttClient | null = null;
  private ingest: SparkplugIngest | null = null;

  constructor(
    private readonly config: Pick<Config, 'broker' | 'sparkplug'>,
    private readonly target: () => SparkplugTarget,
    private readonly hooks: SparkplugHooks,
    private readonly log: Logger,
  ) {}

  /** The host state machine (edge nodes, devices, metrics held), once started. */
  get host(): SparkplugIngest['host'] | null {
    return this.ingest?.host ?? null;
  }

  get connected(): boolean {
    return this.client?.connected ?? false;
  }

  async start(): Promise<void> {
    const { broker, sparkplug } = this.config;
    if (broker.url === null) throw new Error('sparkplug.enabled needs broker.url — fix: point broker.url at the broker the edge nodes publish to');
    const session = sparkplugClientOptions(sparkplug);
    const client = connectBroker(broker, {
      url: broker.url,
      receiveMaximum: 1024,
      will: { topic: session.will?.topic ?? '', payload: String(session.will?.payload ?? '') },
      maximumPacketSize: maximumPacketSizeFor(sparkplug.limits.maxPayloadBytes, 1024),
      logger: this.log,
      overrides: {
        ...session,
        clientId: `${broker.clientId}-sparkplug`,
        // A primary host keeps no session: it asks for births again instead (spec: Clean Start, expiry 0).
        ...(broker.protocolVersion === 5 ? { properties: { sessionExpiryInterval: 0 } } : {}),
      },
    });
    client.on('error', (err) => this.log.warn({ err: err.message }, 'sparkplug broker connection error'));
    this.client = client;
    this.ingest = new SparkplugIngest(client, sparkplug, this.target(), this.hooks);
    await this.ingest.start();
  }

  async stop(deadline: AbortSignal): Promise<void> {
    await this.ingest?.stop(deadline);
    const client = this.client;
    if (client === null) return;
    await beforeDeadline(client.endAsync().catch(() => undefined), deadline);
    if (!client.disconnected) client.end(true);
  }
}
