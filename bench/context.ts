/**
 * What every bench section shares: settings, a temp dir, the log, the Mosquitto broker and the
 * single-channel model (each made once, lazily).
 */
import { join } from 'node:path';
import { SINE_WINDOW, trainSineModel } from './lib/models.js';
import { externalBroker, startMosquitto, type BrokerProcess } from './lib/mosquitto.js';
import type { BenchSettings } from './settings.js';

export class BenchContext {
  private broker: Promise<BrokerProcess> | null = null;
  private sine: string | null = null;

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

  /** The single-channel window-32 model (lib/models.ts) for json-value streams, trained on first use; its path. */
  sineModel(): { path: string; window: number } {
    if (this.sine === null) {
      const path = join(this.dir, 'bench-sine.onnx');
      trainSineModel(path, 'bench-sine', 32);
      this.sine = path;
    }
    return { path: this.sine, window: SINE_WINDOW };
  }

  async close(): Promise<void> {
    if (this.broker) await (await this.broker).stop();
  }
}
