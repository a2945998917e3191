/**
 * The Sparkplug B host stage through a real Mosquitto (SENTINEL_TEST_MQTT_URL, else 127.0.0.1:1883),
 * against an edge node simulator that speaks Sparkplug with the same payload codec: births, data by
 * alias, a lost message answered by an NCMD rebirth on the broker, a death by will, STATE, hostile payloads.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../src/ingest/reading.js';
import { sparkplugConfigSchema, type SparkplugConfigInput } from '../../src/ingest/sparkplug/config.js';
import type { SparkplugRejectReason } from '../../src/ingest/sparkplug/host.js';
import { DataType, decodePayload, encodePayload, type MetricInput } from '../../src/ingest/sparkplug/payload.js';
import { SparkplugIngest, sparkplugClientOptions, stateTopic, type SparkplugCountedEvent } from '../../src/ingest/sparkplug/sparkplug-ingest.js';
import { uniquePrefix, waitFor } from '../support/broker.js';

const MQTT_URL = process.env.SENTINEL_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';
const CHANNELS = ['pressure', 'flow', 'temp'];

/** A Sparkplug id unique to one test (uniquePrefix holds a "/", which an id cannot). */
const uniqueId = (name: string): string => uniquePrefix(name).replaceAll('/', '-');

const clients: MqttClient[] = [];
const stages: SparkplugIngest[] = [];

async function connect(options: mqtt.IClientOptions = {}): Promise<MqttClient> {
  const client = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, reconnectPeriod: 100, connectTimeout: 5_000, ...options });
  clients.push(client);
  return client;
}

afterEach(async () => {
  const deadline = AbortSignal.timeout(2_000);
  await Promise.all(stages.splice(0).map((s) => s.stop(deadline)));
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});

/** An edge node: NBIRTH/DBIRTH with aliases, NDATA/DDATA by alias, its NDEATH as the will, and rebirths on NCMD. */
class EdgeNodeSim {
  seq = 0;
  rebirthRequests = 0;
  answerRebirths = true;
  client!: MqttClient;

  constructor(
    readonly group: string,
    readonly node: string,
    readonly bdSeq = 1,
  ) {}

  async connect(): Promise<this> {
    this.client = await connect({
      reconnectPeriod: 0,
      will: { topic: this.topic('NDEATH'), payload: Buffer.from(this.ndeathPayload()), qos: 1, retain: false },
    });
    this.client.on('message', (_topic, bytes) => {
      const decoded = decodePayload(bytes);
      if (!decoded.ok) return;
      const rebirth = decoded.payload.metrics.find((m) => m.name === 'Node Control/Rebirth');
      if (rebirth?.value === 'booleanValue' && rebirth.booleanValue) {
        this.rebirthRequests++;
        if (this.answerRebirths) void this.birth();
      }
    });
    await this.client.subscribeAsync(this.topic('NCMD'), { qos: 0 });
    return this;
  }

  topic(verb: string, device?: string): string {
    return `spBv1.0/${this.group}/${verb}/${this.node}${device === undefined ? '' : `/${device}`}`;
  }

  ndeathPayload(): Uint8Array {
    return encodePayload({ timestamp: Date.now(), metrics: [{ name: 'bdSeq', datatype: DataType.Int64, longValue: this.bdSeq }] });
  }

  private nextSeq(): number {
    const seq = this.seq;
    this.seq = (seq + 1) & 0xff;
    return seq;
  }

  /** NBIRTH (seq 0) and the DBIRTH of device d1, as a rebirth request asks. */
  async birth(): Promise<void> {
    this.seq = 0;
    await this.publish('NBIRTH', undefined, [
      { name: 'bdSeq', datatype: DataType.Int64, longValue: this.bdSeq },
      { name: 'Node Control/Rebirth', datatype: DataType.Boolean, booleanValue: false },
      { name: 'Pump/Pressure', alias: 1, datatype: DataType.Float, floatValue: 1 },
      { name: 'Pump/Flow', alias: 2, datatype: DataType.Double, doubleValue: 2 },
      { name: 'Firmware', alias: 3, datatype: DataType.String, stringValue: '1.0' },
    ]);
    await this.publish('DBIRTH', 'd1', [{ name: 'Temp', alias: 1, datatype: DataType.Int32, intValue: 20 }]);
  }

  /** Publishes the next message; with `lose`, only takes its seq (a message lost on the way). */
  async publish(verb: string, device: string | undefined, metrics: MetricInput[], lose = false): Promise<void> {
    const payload = encodePayload({ timestamp: Date.now(), seq: this.nextSeq(), metrics });
    if (!lose) await this.client.publishAsync(this.topic(verb, device), Buffer.from(payload), { qos: 0 });
  }
}

interface Harness {
  client: MqttClient;
  group: string;
  hostId: string;
  stage: SparkplugIngest;
  readings: Reading[];
  rejected: Array<[SparkplugRejectReason, string]>;
  stale: string[];
  rebirths: string[];
  counted: Map<SparkplugCountedEvent, number>;
  count(event: SparkplugCountedEvent): number;
}

async function startHost(overrides: SparkplugConfigInput = {}): Promise<Harness> {
  const group = uniqueId('sp');
  const hostId = uniqueId('host');
  const config = sparkplugConfigSchema.parse({
    enabled: true,
    hostId,
    edgeNodes: [{ group }],
    channels: { 'Pump/Pressure': 'pressure', 'Pump/Flow': 'flow', Temp: 'temp' },
    rebirth: { minIntervalMs: 300 },
    ...overrides,
  });
  const client = await connect(sparkplugClientOptions(config));
  const h: Harness = {
    client,
    group,
    hostId,
    readings: [],
    rejected: [],
    stale: [],
    rebirths: [],
    counted: new Map(),
    count: (event) => h.counted.get(event) ?? 0,
    stage: null as unknown as SparkplugIngest,
  };
  h.stage = new SparkplugIngest(
    client,
    config,
    { channels: CHANNELS, sink: { offer: (reading, _qos, ack) => (h.readings.push(reading), ack()) } },
    {
      onRejected: (reason, detail) => h.rejected.push([reason, detail]),
      onStale: (id) => h.stale.push(id),
      onRebirthRequested: (node, cause) => h.rebirths.push(`${node.group}/${node.edgeNode}:${cause}`),
      counters: { inc: (event, n) => h.counted.set(event, (h.counted.get(event) ?? 0) + n) },
    },
  );
  await h.stage.start();
  stages.push(h.stage);
  // The STATE birth follows the SUBACK: from then on the host hears every edge node.
  await waitFor(() => h.count('state_published') === 1, 5_000, 'the STATE birth');
  return h;
}

const values = (h: Harness, streamId: string): number[] => h.readings.filter((r) => r.streamId === streamId).map((r) => r.value);

describe('Sparkplug B host through a real Mosquitto', () => {
  it('reads births and data by alias, answers a lost message with an NCMD rebirth, and reads on after the rebirth', async () => {
    const h = await startHost();
    const edge = await new EdgeNodeSim(h.group, 'n1').connect();
    await edge.birth();
    await edge.publish('NDATA', undefined, [{ alias: 1, floatValue: 3.5 }, { alias: 2, doubleValue: 4.25 }, { alias: 3, stringValue: '1.1' }]);
    await edge.publish('DDATA', 'd1', [{ alias: 1, intValue: -21 }]);
    await waitFor(() => h.readings.length === 6, 5_000, 'births and data');
    expect(values(h, `${h.group}/n1`)).toEqual([1, 2, 3.5, 4.25]);
    expect(values(h, `${h.group}/n1/d1`)).toEqual([20, -21]);
    expect(h.readings.map((r) => r.channel)).toEqual([0, 1, 2, 0, 1, 2]);
    expect(h.readings.every((r) => r.tsFromPayload && Math.abs(r.ts - Date.now()) < 10_000)).toBe(true);

    await edge.publish('NDATA', undefined, [{ alias: 1, floatValue: 99 }], true);
    await edge.publish('NDATA', undefined, [{ alias: 1, floatValue: 100 }]);
    // The host saw seq 4 after 2: it asks for a rebirth on the broker, the simulator answers with NBIRTH + DBIRTH.
    await waitFor(() => edge.rebirthRequests === 1 && h.count('nbirth') === 2 && h.count('dbirth') === 2, 5_000, 'the rebirth');
    await edge.publish('NDATA', undefined, [{ alias: 1, floatValue: 5.5 }]);
    await waitFor(() => values(h, `${h.group}/n1`).includes(5.5), 5_000, 'data after the rebirth');
    expect(h.rejected.map(([r]) => r)).toEqual(['seq_gap']);
    expect(h.rebirths).toEqual([`${h.group}/n1:seq_gap`]);
    expect(values(h, `${h.group}/n1`)).toEqual([1, 2, 3.5, 4.25, 1, 2, 5.5]);
    expect(h.count('rebirth_requested')).toBe(1);
    expect(h.count('command_ignored')).toBe(1); // its own NCMD, heard back
    expect(h.stale).toEqual([]);
  });

  it('asks an edge node that was running before the host for its births, then reads it', async () => {
    const h = await startHost();
    const edge = await new EdgeNodeSim(h.group, 'early').connect();
    edge.seq = 17;
    await edge.publish('NDATA', undefined, [{ alias: 1, floatValue: 8 }]);
    await waitFor(() => edge.rebirthRequests === 1 && h.count('dbirth') === 1, 5_000, 'the rebirth of an edge node never seen');
    await edge.publish('DDATA', 'd1', [{ alias: 1, intValue: 7 }]);
    await waitFor(() => values(h, `${h.group}/early/d1`).length === 2, 5_000, 'device data');
    expect(values(h, `${h.group}/early/d1`)).toEqual([20, 7]);
    expect(h.rejected.map(([r]) => r)).toEqual(['no_birth']);
  });

  it('marks the node and device streams stale when the broker delivers the NDEATH will', async () => {
    const h = await startHost();
    const edge = await new EdgeNodeSim(h.group, 'n2', 7).connect();
    await edge.birth();
    await waitFor(() => h.readings.length === 3, 5_000, 'births');
    edge.client.stream.destroy(); // no DISCONNECT: Mosquitto publishes the will
    await waitFor(() => h.stale.length === 2, 5_000, 'stale streams');
    expect(h.stale).toEqual([`${h.group}/n2`, `${h.group}/n2/d1`]);
    expect(h.count('ndeath')).toBe(1);
    expect(h.rejected).toEqual([]);
  });

  it('publishes its STATE birth retained with the will timestamp, answers an offline STATE, and leaves a STATE death on stop', async () => {
    const h = await startHost();
    const watcher = await connect();
    const states: Array<{ online: boolean; timestamp: number; retain: boolean }> = [];
    watcher.on('message', (topic, payload, packet) => {
      if (topic === stateTopic(h.hostId) && payload.length > 0) states.push({ ...(JSON.parse(payload.toString()) as { online: boolean; timestamp: number }), retain: packet.retain });
    });
    await watcher.subscribeAsync(stateTopic(h.hostId), { qos: 1 });
    await waitFor(() => states.length === 1, 5_000, 'the retained STATE');
    const willTimestamp = (JSON.parse(String(h.client.options.will?.payload)) as { timestamp: number }).timestamp;
    expect(states[0]).toEqual({ online: true, timestamp: willTimestamp, retain: true });

    await watcher.publishAsync(stateTopic(h.hostId), JSON.stringify({ online: false, timestamp: willTimestamp }), { qos: 1, retain: true });
    await waitFor(() => states.length === 3, 5_000, 'the STATE birth again');
    expect(states.slice(1).map((s) => s.online)).toEqual([false, true]);
    expect(states[2]?.timestamp).toBe(willTimestamp);

    await h.stage.stop(AbortSignal.timeout(2_000));
    await waitFor(() => states.length === 4, 5_000, 'the STATE death');
    expect(states[3]?.online).toBe(false);
    expect(states[3]!.timestamp).toBeGreaterThanOrEqual(willTimestamp);
    await watcher.publishAsync(stateTopic(h.hostId), '', { qos: 1, retain: true }); // clear the retained STATE
  });

  it('after a lost broker connection: streams stale, a newer will timestamp, a new STATE birth, and a rebirth on the next data', async () => {
    const h = await startHost();
    const watcher = await connect();
    const states: Array<{ online: boolean; timestamp: number }> = [];
    watcher.on('message', (topic, payload) => {
      if (topic === stateTopic(h.hostId) && payload.length > 0) states.push(JSON.parse(payload.toString()) as { online: boolean; timestamp: number });
    });
    await watcher.subscribeAsync(stateTopic(h.hostId), { qos: 1 });
    const edge = await new EdgeNodeSim(h.group, 'n4').connect();
    await edge.birth();
    await waitFor(() => h.readings.length === 3 && states.length === 1, 5_000, 'births and the STATE');
    const first = states[0]!.timestamp;

    h.client.stream.destroy(); // no DISCONNECT: Mosquitto publishes the host's will
    // The host hears its own will too (online false) and says online again: one or two STATE births.
    await waitFor(() => states.some((x) => x.online && x.timestamp > first), 5_000, 'the STATE birth after the reconnect');
    expect(h.stale).toEqual([`${h.group}/n4`, `${h.group}/n4/d1`]);
    expect(states[1]).toEqual({ online: false, timestamp: first });
    const births = states.slice(2);
    expect(births.length === 1 || births.length === 2).toBe(true);
    // Every birth after the reconnect repeats the new will's timestamp.
    const renewed = (JSON.parse(String(h.client.options.will?.payload)) as { timestamp: number }).timestamp;
    expect(renewed).toBeGreaterThan(first);
    expect(births).toEqual(births.map(() => ({ online: true, timestamp: renewed })));

    await edge.publish('NDATA', undefined, [{ alias: 1, floatValue: 12 }]);
    await waitFor(() => edge.rebirthRequests === 1 && h.count('dbirth') === 2, 5_000, 'the rebirth');
    expect(h.rejected.map(([r]) => r)).toEqual(['no_birth']);
    await watcher.publishAsync(stateTopic(h.hostId), '', { qos: 1, retain: true });
  });

  it('refuses to start on a client without the STATE will', async () => {
    const config = sparkplugConfigSchema.parse({ enabled: true, edgeNodes: [{ group: 'g' }], channels: { a: 'flow' } });
    const stage = new SparkplugIngest(await connect(), config, { channels: CHANNELS, sink: { offer: (_r, _q, ack) => ack() } }, {
      onRejected: () => {},
      onStale: () => {},
      onRebirthRequested: () => {},
      counters: { inc: () => {} },
    });
    await expect(stage.start()).rejects.toThrow(/no STATE will on spBv1\.0\/STATE\/sentinel .* — fix: create it with sparkplugClientOptions/);
  });

  it('counts and drops hostile payloads sent through the broker, and keeps reading good ones', async () => {
    const h = await startHost({ limits: { maxPayloadBytes: 65_536, maxMetricsPerMessage: 1_000 } });
    const edge = await new EdgeNodeSim(h.group, 'n3').connect();
    edge.answerRebirths = false; // a rebirth racing the messages below would reorder their seq
    await edge.birth();
    const raw = (verb: string, bytes: Uint8Array | string, device?: string): Promise<unknown> =>
      edge.client.publishAsync(edge.topic(verb, device), typeof bytes === 'string' ? bytes : Buffer.from(bytes), { qos: 0 });
    await raw('NDATA', '{"value": 1}');
    await raw('NDATA', new Uint8Array(70_000));
    await raw('NFOO', encodePayload({ seq: 1 }));
    await edge.publish('NDATA', undefined, [{ alias: 1, floatValue: Number.NaN }, { alias: 2, doubleValue: Number.NEGATIVE_INFINITY }]);
    await edge.publish('NDATA', undefined, [{ alias: 1, stringValue: 'high' }, { alias: 77, floatValue: 1 }, { alias: 2, isNull: true }]);
    await edge.publish('NDATA', undefined, Array.from({ length: 1_001 }, (_, i) => ({ alias: 1_000 + i, floatValue: i })));
    await edge.publish('NDATA', undefined, [{ alias: 1, floatValue: 6.5 }]);
    await waitFor(() => values(h, `${h.group}/n3`).includes(6.5), 5_000, 'the good reading after the hostile ones');
    const reasons = h.rejected.map(([r]) => r);
    expect(reasons).toEqual(['malformed', 'oversized', 'bad_topic', 'non_finite', 'non_finite', 'wrong_type', 'unknown_alias', 'null_value', 'metric_limit']);
    expect(values(h, `${h.group}/n3`)).toEqual([1, 2, 6.5]);
    // The unknown alias asked for a rebirth once (rate-limited), which the simulator answered.
    expect(h.rebirths).toEqual([`${h.group}/n3:unknown_alias`]);
    await waitFor(() => edge.rebirthRequests === 1, 5_000, 'the rebirth request');
    expect(h.stage.host.edgeNodeCount).toBe(1);
  });
});
