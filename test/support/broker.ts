/** The broker integration tests talk to: Mosquitto at SENTINEL_TEST_MQTT_URL (CI), else an in-process aedes. */
import mqtt, { type MqttClient } from 'mqtt';
import { startEmbeddedBroker, type EmbeddedBroker } from '../../src/broker/embedded.js';
import { waitUntil } from './proc.js';

export interface TestBroker {
  url: string;
  /** 5 on Mosquitto, 4 on aedes (MQTT 3.1.1 only). */
  protocolVersion: 4 | 5;
  stop(): Promise<void>;
}

export async function startTestBroker(): Promise<TestBroker> {
  const external = process.env.SENTINEL_TEST_MQTT_URL;
  if (external) return { url: external, protocolVersion: 5, stop: async () => {} };
  const broker: EmbeddedBroker = await startEmbeddedBroker('127.0.0.1', 0);
  return { url: broker.url, protocolVersion: 4, stop: () => broker.stop() };
}

export async function connectClient(broker: TestBroker, clientId: string): Promise<MqttClient> {
  return mqtt.connectAsync(broker.url, { protocolVersion: broker.protocolVersion, clientId, clean: true, reconnectPeriod: 200 });
}

/** A prefix unique to one test, so tests sharing one broker never see each other's messages. */
export function uniquePrefix(name: string): string {
  return `t${process.pid}-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 8)}/${name}`;
}

/** Polls `condition` (sync or async) every 20 ms (waitUntil with the tests' defaults). */
export function waitFor(condition: () => boolean | Promise<boolean>, timeoutMs = 10_000, what = 'condition'): Promise<void> {
  return waitUntil(condition, timeoutMs, what, 20);
}
