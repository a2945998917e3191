/**
 * What every bench section shares: settings, a temp dir, the log, the Mosquitto broker and the
 * single-channel model (each made once, lazily).
 */
import { join } from 'node:path';
import { unscoredRows } from '../src/model/manifest.js';
import { SINE_WINDOW, trainSineModel } from './lib/models.js';
import { externalBroker, startMosquitto, type BrokerProcess } from './lib/mosquitto.js';
import type { BenchSettings } from './settings.js';

export class BenchContext {
  private broker: Promise<BrokerProcess> | null = null;
  private sine: { path: string; unscored: number } | null = null;

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
  sineModel(): { path: string; window: number; unscored: number } {
    if (this.sine === null) {
      const path = join(this.dir, 'bench-sine.onnx');
      this.sine = { path, unscored: unscoredRows(trainSineModel(path, 'bench-sine', 32)) };
    }
    return { path: this.sine.path, window: SINE_WINDOW, unscored: this.sine.unscored };
  }

  async close(): Promise<void> {
    if (this.broker) await (await this.broker).stop();
  }
}
