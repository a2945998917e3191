/** What every bench section shares: settings, a temp dir, the log, and the Mosquitto broker (started once, lazily). */
import { externalBroker, startMosquitto, type BrokerProcess } from './lib/mosquitto.js';
import type { BenchSettings } from './settings.js';

export class BenchContext {
  private broker: Promise<BrokerProcess> | null = null;

  constructor(
    readonly settings: BenchSettings,
    readonly dir: string,
    readonly log: (line: string) => void,
  ) {}

  /** Our own Mosquitto child, or the broker at BENCH_MQTT_URL. */
  mosquitto(): Promise<BrokerProcess> {
    this.broker ??= this.settings.mqttUrl ? Promise.resolve(externalBroker(this.settings.mqttUrl)) : startMosquitto(this.dir);
    return this.broker;
  }

  async close(): Promise<void> {
    if (this.broker) await (await this.broker).stop();
  }
}
