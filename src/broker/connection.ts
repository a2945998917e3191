/** The MQTT connection shared by ingest (subscribe) and alerts (publish): persistent session, backoff, TLS. */
import { readFileSync } from 'node:fs';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import type { Config } from '../config/schema.js';

export interface ConnectionOptions {
  url: string;
  /** In-flight QoS 1 messages the broker may send before we acknowledge (MQTT 5 Receive Maximum). */
  receiveMaximum: number;
  will: { topic: string; payload: string };
  /**
   * mqtt.js's own log (it calls it several times per packet). Without one, mqtt.js uses the `debug`
   * package, whose checks cost about as much as a payload parse even when nothing is printed.
   */
  log?: (...args: unknown[]) => void;
}

function readSecretFile(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8').trim();
  } catch (err) {
    throw new Error(`broker.${what}: cannot read ${path}: ${(err as Error).message}`);
  }
}

export function clientOptions(broker: Config['broker'], options: ConnectionOptions): IClientOptions {
  const v5 = broker.protocolVersion === 5;
  const out: IClientOptions = {
    clientId: broker.clientId,
    protocolVersion: broker.protocolVersion,
    clean: false,
    keepalive: broker.keepaliveSeconds,
    reconnectPeriod: broker.reconnectMinMs,
    connectTimeout: 10_000,
    resubscribe: true,
    // mqtt.js stops retrying after a refused CONNACK (bad credentials, server unavailable) unless told
    // otherwise; a daemon must keep trying (a rotated Secret or a broker coming up fixes it).
    reconnectOnConnackError: true,
    ...(options.log ? { log: options.log } : {}),
    will: { topic: options.will.topic, payload: Buffer.from(options.will.payload), qos: 1, retain: true },
    properties: v5
      ? { sessionExpiryInterval: broker.sessionExpirySeconds, receiveMaximum: Math.max(1, Math.min(65_535, options.receiveMaximum)) }
      : undefined,
  };
  if (broker.username !== undefined) out.username = broker.username;
  if (broker.password !== undefined) out.password = broker.password;
  if (broker.passwordFile !== undefined) out.password = readSecretFile(broker.passwordFile, 'passwordFile');
  if (broker.tls) {
    const { caFile, certFile, keyFile, rejectUnauthorized } = broker.tls;
    if (caFile) out.ca = readSecretFile(caFile, 'tls.caFile');
    if (certFile) out.cert = readSecretFile(certFile, 'tls.certFile');
    if (keyFile) out.key = readSecretFile(keyFile, 'tls.keyFile');
    out.rejectUnauthorized = rejectUnauthorized;
  }
  return out;
}

/**
 * Connects with exponential backoff between reconnects (mqtt.js retries at a fixed period, so the
 * period is doubled on every failed attempt and reset on success).
 */
export function connectBroker(broker: Config['broker'], options: ConnectionOptions): MqttClient {
  const client = mqtt.connect(options.url, clientOptions(broker, options));
  client.on('connect', () => {
    client.options.reconnectPeriod = broker.reconnectMinMs;
  });
  client.on('reconnect', () => {
    const next = Math.min(broker.reconnectMaxMs, (client.options.reconnectPeriod ?? broker.reconnectMinMs) * 2);
    client.options.reconnectPeriod = next;
  });
  return client;
}
