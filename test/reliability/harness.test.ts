/** Self-test of the Mosquitto fault harness: persistent QoS 1 sessions survive an offline subscriber and broker restarts. */
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { waitFor } from '../support/broker.js';
import { PERSISTENCE_FILE, startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';

let broker: MosquittoProcess;

beforeAll(async () => {
  broker = await startMosquitto();
});
afterAll(async () => {
  await broker?.dispose();
});

const persistent = (clientId: string): IClientOptions => ({
  clientId,
  protocolVersion: 5,
  clean: false,
  properties: { sessionExpiryInterval: 3600 },
  reconnectPeriod: 0,
});

/** Connects and collects every message from the first packet on (queued messages arrive before any subscribe). */
async function collector(url: string, clientId: string): Promise<{ client: MqttClient; got: string[]; sessionPresent: boolean }> {
  const got: string[] = [];
  const client = mqtt.connect(url, persistent(clientId));
  client.on('message', (_topic, message) => got.push(message.toString()));
  const connack = await new Promise<{ sessionPresent: boolean }>((resolve, reject) => {
    client.once('connect', resolve);
    client.once('error', reject);
  });
  return { client, got, sessionPresent: connack.sessionPresent };
}

async function publish(url: string, topic: string, messages: string[]): Promise<void> {
  const pub = await mqtt.connectAsync(url, { clientId: `harness-pub-${process.pid}`, protocolVersion: 5, reconnectPeriod: 0 });
  await Promise.all(messages.map((m) => pub.publishAsync(topic, m, { qos: 1 })));
  await pub.endAsync();
}

describe('Mosquitto fault harness', () => {
  it('runs a broker on its own port whose persistent sessions survive SIGTERM restarts and a SIGKILL after save()', async () => {
    expect(broker.port).toBeGreaterThan(0);
    expect(broker.url).toBe(`mqtt://127.0.0.1:${broker.port}`);
    const topic = 'harness/q1';

    const first = await collector(broker.url, 'harness-sub');
    expect(first.sessionPresent).toBe(false);
    await first.client.subscribeAsync(topic, { qos: 1 });
    await first.client.endAsync();

    // Offline subscriber, then a graceful restart: the broker must write and reload its database.
    await publish(broker.url, topic, ['a', 'b', 'c']);
    const pidBefore = broker.pid();
    await broker.restart();
    expect(broker.pid()).not.toBe(pidBefore);
    expect(existsSync(join(broker.dir, PERSISTENCE_FILE))).toBe(true);
    await publish(broker.url, topic, ['d']);

    const second = await collector(broker.url, 'harness-sub');
    expect(second.sessionPresent).toBe(true);
    await waitFor(() => second.got.length >= 4, 5_000, 'queued messages');
    expect(second.got).toEqual(['a', 'b', 'c', 'd']);
    await second.client.endAsync();

    // Offline again; this time a crash, but after an explicit save.
    await publish(broker.url, topic, ['e', 'f']);
    await broker.save();
    await broker.kill();
    expect(broker.running()).toBe(false);
    await broker.restart();

    const third = await collector(broker.url, 'harness-sub');
    expect(third.sessionPresent).toBe(true);
    await waitFor(() => third.got.length >= 2, 5_000, 'messages saved before the crash');
    expect(third.got).toEqual(['e', 'f']);
    await third.client.endAsync();

    const log = broker.log();
    expect(log).toMatch(/Saving in-memory database/);
    expect(log).not.toMatch(/Error|unable to open|Permission denied/i);
  });

  it('stop() refuses connections until restart()', async () => {
    await broker.stop();
    expect(broker.running()).toBe(false);
    await expect(mqtt.connectAsync(broker.url, { reconnectPeriod: 0, connectTimeout: 1_000 })).rejects.toThrow();
    await broker.restart();
    const client = await mqtt.connectAsync(broker.url, { reconnectPeriod: 0 });
    expect(client.connected).toBe(true);
    await client.endAsync();
  });
});
