/**
 * The Sparkplug B host state machine without a broker: births, data by alias, seq gaps and rebirth
 * requests (rate-limited), deaths and bdSeq, and hostile payloads, each checked by its numbers.
 */
import fc from 'fast-check';
import { beforeEach, describe, expect, it } from 'vitest';
import type { Reading } from '../../src/ingest/reading.js';
import { sparkplugConfigSchema, type SparkplugConfigInput } from '../../src/ingest/sparkplug/config.js';
import { SparkplugHost, type HostEvent, type RebirthCause, type SparkplugRejectReason } from '../../src/ingest/sparkplug/host.js';
import { DataType, encodePayload, type MetricInput } from '../../src/ingest/sparkplug/payload.js';

const CHANNELS = ['pressure', 'flow', 'temp'];
const T0 = 1_800_000_000_000;

/** Births and data of one edge node, with its seq and bdSeq, as (topic, bytes) pairs. */
class EdgeNode {
  seq = 0;
  constructor(
    readonly group: string,
    readonly node: string,
    public bdSeq = 0,
  ) {}

  private topic(verb: string, device?: string): string {
    return `spBv1.0/${this.group}/${verb}/${this.node}${device === undefined ? '' : `/${device}`}`;
  }

  private next(): number {
    const seq = this.seq;
    this.seq = (this.seq + 1) & 0xff;
    return seq;
  }

  nbirth(metrics: MetricInput[] = NODE_METRICS, timestamp = T0): [string, Uint8Array] {
    this.seq = 0;
    const all: MetricInput[] = [
      { name: 'bdSeq', datatype: DataType.Int64, longValue: this.bdSeq },
      { name: 'Node Control/Rebirth', datatype: DataType.Boolean, booleanValue: false },
      ...metrics,
    ];
    return [this.topic('NBIRTH'), encodePayload({ timestamp, seq: this.next(), metrics: all })];
  }

  ndata(metrics: MetricInput[], timestamp = T0 + 1000): [string, Uint8Array] {
    return [this.topic('NDATA'), encodePayload({ timestamp, seq: this.next(), metrics })];
  }

  dbirth(device: string, metrics: MetricInput[] = DEVICE_METRICS, timestamp = T0): [string, Uint8Array] {
    return [this.topic('DBIRTH', device), encodePayload({ timestamp, seq: this.next(), metrics })];
  }

  ddata(device: string, metrics: MetricInput[], timestamp = T0 + 1000): [string, Uint8Array] {
    return [this.topic('DDATA', device), encodePayload({ timestamp, seq: this.next(), metrics })];
  }

  ddeath(device: string, timestamp = T0 + 2000): [string, Uint8Array] {
    return [this.topic('DDEATH', device), encodePayload({ timestamp, seq: this.next() })];
  }

  ndeath(bdSeq = this.bdSeq): [string, Uint8Array] {
    return [this.topic('NDEATH'), encodePayload({ metrics: [{ name: 'bdSeq', datatype: DataType.Int64, longValue: bdSeq }] })];
  }
}

const NODE_METRICS: MetricInput[] = [
  { name: 'Pump/Pressure', alias: 1, datatype: DataType.Float, floatValue: 2.5 },
  { name: 'Pump/Flow', alias: 2, datatype: DataType.Double, doubleValue: 10.25 },
  { name: 'Pump/Serial', alias: 3, datatype: DataType.String, stringValue: 'X-1' },
];
const DEVICE_METRICS: MetricInput[] = [
  { name: 'Temp', alias: 10, datatype: DataType.Int16, intValue: -5 },
  { name: 'Pump/Pressure', alias: 11, datatype: DataType.UInt32, longValue: 7 },
];

interface Seen {
  readings: Reading[];
  rejected: Array<[SparkplugRejectReason, string]>;
  stale: string[];
  rebirths: Array<[string, RebirthCause]>;
  events: Map<HostEvent, number>;
}

function setUp(overrides: SparkplugConfigInput = {}): { host: SparkplugHost; seen: Seen; reasons: () => SparkplugRejectReason[] } {
  const config = sparkplugConfigSchema.parse({
    enabled: true,
    edgeNodes: [{ group: 'g' }],
    channels: { 'Pump/Pressure': 'pressure', 'Pump/Flow': 'flow', Temp: 'temp' },
    rebirth: { minIntervalMs: 1000, maxPerSecond: 5 },
    ...overrides,
  });
  const seen: Seen = { readings: [], rejected: [], stale: [], rebirths: [], events: new Map() };
  const host = new SparkplugHost(config, CHANNELS, {
    reading: (r) => seen.readings.push(r),
    rejected: (reason, detail) => seen.rejected.push([reason, detail]),
    stale: (id) => seen.stale.push(id),
    rebirth: (node, cause) => seen.rebirths.push([`${node.group}/${node.edgeNode}`, cause]),
    event: (kind, n) => seen.events.set(kind, (seen.events.get(kind) ?? 0) + n),
  });
  return { host, seen, reasons: () => seen.rejected.map(([r]) => r) };
}

const brief = (r: Reading): [string, number, number, number] => [r.streamId, r.channel, r.value, r.ts];

describe('SparkplugHost: births and data', () => {
  let host: SparkplugHost;
  let seen: Seen;
  let now = T0 + 5000;
  const send = ([topic, bytes]: [string, Uint8Array]): void => host.handle(topic, bytes, now, 42);
  beforeEach(() => {
    ({ host, seen } = setUp());
    now = T0 + 5000;
  });

  it('takes metric names, aliases and types from NBIRTH, and its values as readings; NDATA by alias becomes readings of the node stream', () => {
    const edge = new EdgeNode('g', 'n1');
    send(edge.nbirth());
    expect(seen.readings.map(brief)).toEqual([
      ['g/n1', 0, 2.5, T0],
      ['g/n1', 1, 10.25, T0],
    ]);
    // bdSeq, Node Control/Rebirth and Pump/Serial are in no mapping.
    expect(seen.events.get('unmapped_metric')).toBe(3);
    expect(seen.events.get('nbirth')).toBe(1);
    seen.readings.length = 0;
    send(edge.ndata([{ alias: 2, doubleValue: 11.5, timestamp: T0 + 1500 }, { alias: 1, floatValue: 3 }, { alias: 3, stringValue: 'X-2' }]));
    expect(seen.readings.map(brief)).toEqual([
      ['g/n1', 1, 11.5, T0 + 1500],
      ['g/n1', 0, 3, T0 + 1000],
    ]);
    expect(seen.readings[0]).toMatchObject({ tsFromPayload: true, receivedAt: 42, values: null });
    expect(seen.events.get('unmapped_metric')).toBe(4);
    expect(seen.rejected).toEqual([]);
    expect(seen.rebirths).toEqual([]);
    expect(host.isInSync('g', 'n1')).toBe(true);
  });

  it('reads every numeric data type from the oneof member its birth declares', () => {
    const edge = new EdgeNode('g', 'n1');
    const metrics: MetricInput[] = [
      { name: 'Pump/Pressure', alias: 1, datatype: DataType.Int8, intValue: -128 },
      { name: 'Pump/Flow', alias: 2, datatype: DataType.Int64, longValue: '18446744073709551609' },
      { name: 'Temp', alias: 3, datatype: DataType.Boolean, booleanValue: true },
    ];
    send(edge.nbirth(metrics));
    expect(seen.readings.map((r) => r.value)).toEqual([-128, -7, 1]);
    send(edge.dbirth('d1', [{ name: 'Temp', alias: 1, datatype: DataType.UInt64, longValue: '9007199254740991' }, { name: 'Pump/Flow', alias: 2, datatype: DataType.UInt16, intValue: 65535 }]));
    expect(seen.readings.slice(3).map(brief)).toEqual([
      ['g/n1/d1', 2, 9007199254740991, T0],
      ['g/n1/d1', 1, 65535, T0],
    ]);
  });

  it('takes names instead of aliases when the edge node uses none', () => {
    const edge = new EdgeNode('g', 'n1');
    send(edge.nbirth([{ name: 'Pump/Pressure', datatype: DataType.Float, floatValue: 1 }]));
    send(edge.ndata([{ name: 'Pump/Pressure', floatValue: 4 }, { name: 'Pump/Flow', doubleValue: 1 }, { name: 'Other', floatValue: 1 }]));
    expect(seen.readings.map(brief)).toEqual([
      ['g/n1', 0, 1, T0],
      ['g/n1', 0, 4, T0 + 1000],
    ]);
    // Pump/Flow is mapped but was not in the birth: unknown, never guessed.
    expect(seen.rejected).toEqual([['unknown_alias', 'g/n1: metric "Pump/Flow" is in no birth']]);
    expect(seen.rebirths).toEqual([['g/n1', 'unknown_alias']]);
  });

  it('DBIRTH and DDATA make readings of the device stream; the seq runs across node and devices and wraps at 255', () => {
    const edge = new EdgeNode('g', 'n1');
    send(edge.nbirth());
    send(edge.dbirth('d1'));
    seen.readings.length = 0;
    for (let i = 0; i < 300; i++) send(edge.ddata('d1', [{ alias: 10, intValue: i }]));
    expect(seen.readings).toHaveLength(300);
    expect(seen.readings.every((r) => r.streamId === 'g/n1/d1' && r.channel === 2)).toBe(true);
    expect(seen.readings[299]?.value).toBe(299);
    expect(seen.rejected).toEqual([]);
    expect(host.deviceCount).toBe(1);
  });

  it('falls back to the payload timestamp, then to receive time (tsFromPayload false)', () => {
    const edge = new EdgeNode('g', 'n1');
    send(edge.nbirth());
    seen.readings.length = 0;
    send(['spBv1.0/g/NDATA/n1', encodePayload({ seq: 1, metrics: [{ alias: 1, floatValue: 1 }] })]);
    expect(seen.readings.map((r) => [r.ts, r.tsFromPayload])).toEqual([[now, false]]);
  });
});

describe('SparkplugHost: seq gaps, data before birth and rebirth requests', () => {
  it('asks for a rebirth on data before a birth, at most once per minIntervalMs per node', () => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1');
    edge.seq = 7;
    for (let i = 0; i < 5; i++) host.handle(...edge.ndata([{ alias: 1, floatValue: 1 }]), T0 + i * 100, 0);
    expect(reasons()).toEqual(['no_birth', 'no_birth', 'no_birth', 'no_birth', 'no_birth']);
    expect(seen.rebirths).toEqual([['g/n1', 'no_birth']]);
    expect(seen.events.get('rebirth_held')).toBe(4);
    host.handle(...edge.ndata([{ alias: 1, floatValue: 1 }]), T0 + 1000, 0);
    expect(seen.rebirths).toHaveLength(2);
    expect(seen.readings).toEqual([]);
  });

  it('caps rebirth requests to all nodes at maxPerSecond (1 s burst)', () => {
    const { host, seen } = setUp();
    for (let n = 0; n < 20; n++) host.handle(...new EdgeNode('g', `n${n}`).ndata([]), T0, 0);
    expect(seen.rebirths).toHaveLength(5);
    expect(seen.events.get('rebirth_held')).toBe(15);
    // 400 ms later two tokens have come back.
    for (let n = 5; n < 20; n++) host.handle(...new EdgeNode('g', `n${n}`).ndata([]), T0 + 400, 0);
    expect(seen.rebirths).toHaveLength(7);
  });

  it('a seq gap drops the message, asks for a rebirth and holds data until the NBIRTH; then data flows again', () => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1');
    const now = T0 + 5000;
    host.handle(...edge.nbirth(), now, 0);
    host.handle(...edge.ndata([{ alias: 1, floatValue: 1 }]), now, 0);
    edge.ndata([{ alias: 1, floatValue: 2 }]); // lost on the way
    host.handle(...edge.ndata([{ alias: 1, floatValue: 3 }]), now, 0);
    host.handle(...edge.ndata([{ alias: 1, floatValue: 4 }]), now + 10, 0);
    expect(reasons()).toEqual(['seq_gap', 'no_birth']);
    expect(seen.rejected[0]?.[1]).toBe('NDATA from g/n1: seq 3, expected 2');
    expect(seen.rebirths).toEqual([['g/n1', 'seq_gap']]);
    expect(host.isInSync('g', 'n1')).toBe(false);
    host.handle(...edge.nbirth(), now + 20, 0);
    host.handle(...edge.ndata([{ alias: 1, floatValue: 5 }]), now + 30, 0);
    expect(seen.readings.filter((r) => r.channel === 0).map((r) => r.value)).toEqual([2.5, 1, 2.5, 5]);
    expect(host.isInSync('g', 'n1')).toBe(true);
  });

  it('DDATA of a device never born asks for a rebirth', () => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1');
    host.handle(...edge.nbirth(), T0, 0);
    host.handle(...edge.ddata('d9', [{ alias: 10, intValue: 1 }]), T0, 0);
    expect(reasons()).toEqual(['no_birth']);
    expect(seen.rebirths).toEqual([['g/n1', 'no_birth']]);
  });

  it('counts unknown aliases one by one and never guesses them; the known ones in the same message still count', () => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1');
    host.handle(...edge.nbirth(), T0 + 5000, 0);
    seen.readings.length = 0;
    host.handle(...edge.ndata([{ alias: 99, floatValue: 1 }, { alias: 1, floatValue: 6 }, { alias: 100, floatValue: 1 }]), T0 + 5000, 0);
    expect(reasons()).toEqual(['unknown_alias', 'unknown_alias']);
    expect(seen.readings.map(brief)).toEqual([['g/n1', 0, 6, T0 + 1000]]);
    expect(seen.rebirths).toEqual([['g/n1', 'unknown_alias']]);
  });
});

describe('SparkplugHost: deaths and bdSeq', () => {
  it('NDEATH with the session bdSeq marks the node and its devices stale (those with mapped metrics); data after it waits for a birth', () => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1', 3);
    host.handle(...edge.nbirth(), T0, 0);
    host.handle(...edge.dbirth('d1'), T0, 0);
    host.handle(...edge.dbirth('d2', [{ name: 'Serial', alias: 20, datatype: DataType.String, stringValue: 's' }]), T0, 0);
    expect(host.deviceCount).toBe(2);
    expect(host.metricCount).toBe(5 + 2 + 1);
    host.handle(...edge.ndeath(), T0, 0);
    expect(seen.stale).toEqual(['g/n1', 'g/n1/d1']);
    expect(seen.events.get('ndeath')).toBe(1);
    expect(host.deviceCount).toBe(0);
    expect(host.metricCount).toBe(0);
    host.handle(...edge.ndata([{ alias: 1, floatValue: 1 }]), T0, 0);
    expect(reasons()).toEqual(['no_birth']);
  });

  it('ignores (counts) an NDEATH of an earlier session that arrives after the next NBIRTH', () => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1', 4);
    host.handle(...edge.nbirth(), T0, 0);
    edge.bdSeq = 5;
    host.handle(...edge.nbirth(), T0, 0);
    host.handle(...edge.ndeath(4), T0, 0);
    expect(reasons()).toEqual(['stale_death']);
    expect(seen.stale).toEqual([]);
    expect(host.isInSync('g', 'n1')).toBe(true);
    host.handle(...edge.ndeath(5), T0, 0);
    expect(seen.stale).toEqual(['g/n1']);
    // A second will of the same session, or a death of a node never seen, changes nothing.
    host.handle(...edge.ndeath(5), T0, 0);
    host.handle(...new EdgeNode('g', 'ghost').ndeath(0), T0, 0);
    expect(reasons()).toEqual(['stale_death', 'stale_death', 'stale_death']);
    expect(host.edgeNodeCount).toBe(1);
  });

  it('DDEATH marks only that device stale and forgets its birth', () => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1');
    host.handle(...edge.nbirth(), T0, 0);
    host.handle(...edge.dbirth('d1'), T0, 0);
    host.handle(...edge.dbirth('d2'), T0, 0);
    host.handle(...edge.ddeath('d1'), T0, 0);
    expect(seen.stale).toEqual(['g/n1/d1']);
    expect(host.deviceCount).toBe(1);
    host.handle(...edge.ddata('d1', [{ alias: 10, intValue: 1 }]), T0, 0);
    host.handle(...edge.ddata('d2', [{ alias: 10, intValue: 2 }]), T0, 0);
    expect(reasons()).toEqual(['no_birth']);
    expect(seen.readings.at(-1)).toMatchObject({ streamId: 'g/n1/d2', value: 2 });
  });

  it('a lost broker connection marks every live stream stale, and each node must be born again', () => {
    const { host, seen, reasons } = setUp();
    const a = new EdgeNode('g', 'a');
    const b = new EdgeNode('g', 'b');
    host.handle(...a.nbirth(), T0, 0);
    host.handle(...a.dbirth('d'), T0, 0);
    host.handle(...b.nbirth(), T0, 0);
    host.connectionLost();
    expect(seen.stale).toEqual(['g/a', 'g/a/d', 'g/b']);
    host.connectionLost();
    expect(seen.stale).toHaveLength(3);
    host.handle(...a.ndata([{ alias: 1, floatValue: 1 }]), T0, 0);
    expect(reasons()).toEqual(['no_birth']);
  });
});

/** A payload cut inside its last metric (the seq, 2 bytes, comes after the metrics). */
const truncated = (bytes: Uint8Array): Uint8Array => bytes.subarray(0, bytes.length - 3);

describe('SparkplugHost: hostile payloads', () => {
  const floatData = (value: MetricInput): [string, Uint8Array] => ['spBv1.0/g/NDATA/n1', encodePayload({ timestamp: T0, seq: 1, ...{ metrics: [value] } })];

  it.each<[string, MetricInput, SparkplugRejectReason]>([
    ['NaN', { alias: 1, floatValue: Number.NaN }, 'non_finite'],
    ['Infinity', { alias: 2, doubleValue: Number.POSITIVE_INFINITY }, 'non_finite'],
    ['beyond float32', { alias: 2, doubleValue: 1e39 }, 'non_finite'],
    ['a string for a Float', { alias: 1, stringValue: '2.5' }, 'wrong_type'],
    ['a double for a Float', { alias: 1, doubleValue: 2.5 }, 'wrong_type'],
    ['no value at all', { alias: 1 }, 'wrong_type'],
    ['another data type than its birth', { alias: 1, datatype: DataType.Double, doubleValue: 1 }, 'wrong_type'],
    ['is_null', { alias: 1, isNull: true }, 'null_value'],
    ['is_historical', { alias: 1, isHistorical: true, floatValue: 1 }, 'historical'],
    ['a timestamp an hour ahead', { alias: 1, floatValue: 1, timestamp: T0 + 3_600_000 }, 'bad_timestamp'],
    ['a timestamp beyond 2^53', { alias: 1, floatValue: 1, timestamp: '18446744073709551615' as unknown as number }, 'bad_timestamp'],
    ['an alias beyond 2^53', { alias: '18446744073709551615' as unknown as number, floatValue: 1 }, 'unknown_alias'],
    ['neither alias nor name', { floatValue: 1 }, 'invalid_payload'],
  ])('drops a metric with %s (%s)', (_what, metric, reason) => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1');
    host.handle(...edge.nbirth(), T0, 0);
    seen.readings.length = 0;
    host.handle(...floatData(metric), T0, 0);
    expect(reasons()).toEqual([reason]);
    expect(seen.readings).toEqual([]);
  });

  it('ingests historical metrics with their own timestamps when configured to', () => {
    const { host, seen } = setUp({ historical: 'ingest' });
    host.handle(...new EdgeNode('g', 'n1').nbirth(), T0, 0);
    host.handle(...floatData({ alias: 1, isHistorical: true, floatValue: 9, timestamp: T0 - 60_000 }), T0, 0);
    expect(seen.readings.at(-1)).toMatchObject({ value: 9, ts: T0 - 60_000 });
  });

  it.each<[string, string, Uint8Array, SparkplugRejectReason]>([
    ['garbage bytes', 'spBv1.0/g/NDATA/n1', Buffer.from('{"not":"protobuf"}'), 'malformed'],
    ['a truncated payload', 'spBv1.0/g/NBIRTH/n1', truncated(new EdgeNode('g', 'n1').nbirth()[1]), 'malformed'],
    ['an oversized payload', 'spBv1.0/g/NDATA/n1', new Uint8Array(300_000), 'oversized'],
    ['an unknown verb', 'spBv1.0/g/NFOO/n1', encodePayload({ seq: 0 }), 'bad_topic'],
    ['a device verb on a node topic', 'spBv1.0/g/DDATA/n1', encodePayload({ seq: 0 }), 'bad_topic'],
    ['too many topic levels', 'spBv1.0/g/DDATA/n1/d/x', encodePayload({ seq: 0 }), 'bad_topic'],
    ['another namespace', 'spAv1.0/g/NDATA/n1', encodePayload({ seq: 0 }), 'bad_topic'],
    ['a control character in the id', 'spBv1.0/g/NDATA/n\u0001', encodePayload({ seq: 0 }), 'bad_stream_id'],
    ['no seq', 'spBv1.0/g/NDATA/n1', encodePayload({ timestamp: T0 }), 'invalid_payload'],
    ['a seq above 255', 'spBv1.0/g/NDATA/n1', encodePayload({ seq: 256 }), 'invalid_payload'],
    ['an NBIRTH without bdSeq', 'spBv1.0/g/NBIRTH/n1', encodePayload({ seq: 0, metrics: [{ name: 'Pump/Pressure', alias: 1, datatype: DataType.Float, floatValue: 1 }] }), 'invalid_payload'],
    ['an NDEATH without bdSeq', 'spBv1.0/g/NDEATH/n1', encodePayload({}), 'invalid_payload'],
    ['a birth metric without a name', 'spBv1.0/g/NBIRTH/n1', encodePayload({ seq: 0, metrics: [{ name: 'bdSeq', datatype: 4, longValue: 0 }, { alias: 1, datatype: 9, floatValue: 1 }] }), 'invalid_payload'],
    [
      'an alias declared twice',
      'spBv1.0/g/NBIRTH/n1',
      encodePayload({ seq: 0, metrics: [{ name: 'bdSeq', datatype: 4, longValue: 0 }, { name: 'a', alias: 1, datatype: 9 }, { name: 'b', alias: 1, datatype: 9 }] }),
      'invalid_payload',
    ],
    [
      'one alias for a mapped and an unmapped metric',
      'spBv1.0/g/NBIRTH/n1',
      encodePayload({ seq: 0, metrics: [{ name: 'bdSeq', datatype: 4, longValue: 0 }, { name: 'Pump/Pressure', alias: 1, datatype: 9 }, { name: 'b', alias: 1, datatype: 9 }] }),
      'invalid_payload',
    ],
  ])('drops a message with %s', (_what, topic, bytes, reason) => {
    const { host, seen, reasons } = setUp();
    expect(() => host.handle(topic, bytes, T0, 0)).not.toThrow();
    expect(reasons()).toEqual([reason]);
    expect(seen.readings).toEqual([]);
    expect(host.isInSync('g', 'n1')).toBe(false);
  });

  it('a mapped metric whose birth type is not a number is rejected once at birth, then ignored', () => {
    const { host, seen, reasons } = setUp();
    const edge = new EdgeNode('g', 'n1');
    host.handle(...edge.nbirth([{ name: 'Pump/Pressure', alias: 1, datatype: DataType.String, stringValue: 'high' }]), T0, 0);
    host.handle(...edge.ndata([{ alias: 1, stringValue: 'low' }]), T0, 0);
    expect(reasons()).toEqual(['wrong_type']);
    expect(seen.readings).toEqual([]);
    expect(seen.rebirths).toEqual([]);
  });

  it('drops an alias flood over maxMetricsPerMessage whole, and a birth that would exceed maxMetrics', () => {
    const { host, seen, reasons } = setUp({ limits: { maxMetricsPerMessage: 100, maxMetrics: 150 } });
    const edge = new EdgeNode('g', 'n1');
    const flood = Array.from({ length: 101 }, (_, i) => ({ alias: 1000 + i, floatValue: 1 }));
    host.handle(...edge.nbirth(), T0, 0);
    host.handle(...edge.ndata(flood), T0, 0);
    expect(reasons()).toEqual(['metric_limit']);
    const many = Array.from({ length: 90 }, (_, i) => ({ name: `m${i}`, alias: 100 + i, datatype: DataType.Float, floatValue: 1 }));
    host.handle(...edge.dbirth('d1', many), T0, 0);
    host.handle(...edge.dbirth('d2', many), T0, 0);
    // The flood took its seq (it came in order): the node stays in sync and the next messages count.
    expect(reasons()).toEqual(['metric_limit', 'metric_limit']);
    expect(host.isInSync('g', 'n1')).toBe(true);
    expect(host.metricCount).toBe(5 + 90);
    expect(seen.readings.filter((r) => r.streamId !== 'g/n1')).toEqual([]);
  });

  it('bounds edge nodes (dead ones make room, live ones do not) and devices', () => {
    const { host, reasons } = setUp({ limits: { maxEdgeNodes: 3, maxDevices: 2 } });
    const live = [0, 1, 2].map((i) => new EdgeNode('g', `live${i}`));
    // Data before birth from thousands of made-up nodes: each takes the place of an earlier one.
    for (let i = 0; i < 5000; i++) host.handle(...new EdgeNode('g', `spoof${i}`).ndata([]), T0, 0);
    expect(host.edgeNodeCount).toBe(3);
    for (const edge of live) host.handle(...edge.nbirth(), T0, 0);
    expect(host.edgeNodeCount).toBe(3);
    host.handle(...new EdgeNode('g', 'late').nbirth(), T0, 0);
    expect(reasons().at(-1)).toBe('node_limit');
    const edge = live[0] as EdgeNode;
    host.handle(...edge.dbirth('d1'), T0, 0);
    host.handle(...edge.dbirth('d2'), T0, 0);
    host.handle(...edge.dbirth('d3'), T0, 0);
    expect(reasons().at(-1)).toBe('device_limit');
    expect(host.deviceCount).toBe(2);
    // A rebirth of a known device still fits.
    host.handle(...edge.dbirth('d2'), T0, 0);
    expect(host.deviceCount).toBe(2);
    expect(reasons().filter((r) => r === 'device_limit')).toHaveLength(1);
  });

  it('survives random bytes and random well-formed payloads on every verb without throwing or growing past its limits', () => {
    const { host, seen } = setUp({ limits: { maxEdgeNodes: 20, maxDevices: 20, maxMetrics: 500 } });
    const verbs = ['NBIRTH', 'NDATA', 'NDEATH', 'DBIRTH', 'DDATA', 'DDEATH', 'NCMD', 'STATE'];
    const metric = fc.record(
      {
        name: fc.constantFrom('bdSeq', 'Pump/Pressure', 'Pump/Flow', 'Temp', 'x'),
        alias: fc.nat(20),
        timestamp: fc.nat(),
        datatype: fc.nat(20),
        isNull: fc.boolean(),
        floatValue: fc.float(),
        longValue: fc.nat(300),
        intValue: fc.nat(),
      },
      { requiredKeys: [] },
    );
    const payload = fc.oneof(
      fc.uint8Array({ maxLength: 200 }),
      fc.record({ seq: fc.nat(300), timestamp: fc.nat(), metrics: fc.array(metric, { maxLength: 8 }) }, { requiredKeys: [] }).map((p) => encodePayload(p as never)),
    );
    fc.assert(
      fc.property(fc.constantFrom(...verbs), fc.nat(30), fc.nat(30), payload, (verb, node, device, bytes) => {
        const topic = verb.startsWith('D') ? `spBv1.0/g/${verb}/n${node}/d${device}` : `spBv1.0/g/${verb}/n${node}`;
        host.handle(topic, bytes, T0, 0);
        return host.edgeNodeCount <= 20 && host.deviceCount <= 20 && host.metricCount <= 500;
      }),
      { numRuns: 3000, seed: 14 },
    );
    expect(seen.readings.every((r) => Number.isFinite(r.value) && r.channel >= 0 && r.channel < CHANNELS.length)).toBe(true);
    expect(seen.rejected.length).toBeGreaterThan(1000);
  });
});

describe('SparkplugHost: config', () => {
  it('names the key and the fix when a mapping names no channel of the model', () => {
    expect(() => setUp({ channels: { 'Pump/Pressure': 'presure' } })).toThrow(
      'sparkplug.channels["Pump/Pressure"]: "presure" is not a channel of the model (pressure, flow, temp) — fix: name one of the model\'s channels',
    );
  });
});
