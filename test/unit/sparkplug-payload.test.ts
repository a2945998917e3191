/**
 * The Sparkplug B payload subset: round trips, wire compatibility with payloads written against the
 * whole Tahu definition (datasets, templates, properties are skipped), and the config section.
 */
import protobuf from 'protobufjs';
import { describe, expect, it } from 'vitest';
import { sparkplugConfigSchema, sparkplugFilters } from '../../src/ingest/sparkplug/config.js';
import { DataType, decodePayload, encodePayload, has, numericValue, uint64 } from '../../src/ingest/sparkplug/payload.js';

// The messages of Tahu's sparkplug_b.proto that the host leaves out, with their field numbers, for an edge node's view.
const FULL_PROTO = `
syntax = "proto2";
package full;
message Payload {
  message PropertyValue { optional uint32 type = 1; optional bool is_null = 2; oneof value { uint32 int_value = 3; string string_value = 8; PropertySet propertyset_value = 9; } }
  message PropertySet { repeated string keys = 1; repeated PropertyValue values = 2; }
  message MetaData { optional bool is_multi_part = 1; optional string content_type = 2; optional uint64 size = 3; }
  message DataSet {
    message DataSetValue { oneof value { uint32 int_value = 1; double double_value = 4; string string_value = 6; } }
    message Row { repeated DataSetValue elements = 1; }
    optional uint64 num_of_columns = 1; repeated string columns = 2; repeated uint32 types = 3; repeated Row rows = 4;
  }
  message Template {
    optional string version = 1; repeated Metric metrics = 2; optional string template_ref = 4; optional bool is_definition = 5;
  }
  message Metric {
    optional string name = 1; optional uint64 alias = 2; optional uint64 timestamp = 3; optional uint32 datatype = 4;
    optional bool is_historical = 5; optional bool is_transient = 6; optional bool is_null = 7;
    optional MetaData metadata = 8; optional PropertySet properties = 9;
    oneof value { uint32 int_value = 10; uint64 long_value = 11; float float_value = 12; double double_value = 13;
      bool boolean_value = 14; string string_value = 15; bytes bytes_value = 16; DataSet dataset_value = 17; Template template_value = 18; }
  }
  optional uint64 timestamp = 1; repeated Metric metrics = 2; optional uint64 seq = 3; optional string uuid = 4; optional bytes body = 5;
}`;
const Full = protobuf.parse(FULL_PROTO).root.lookupType('full.Payload');

describe('Sparkplug B payload', () => {
  it('round-trips what a host reads: timestamp, seq, name, alias, data type and each kind of value', () => {
    const bytes = encodePayload({
      timestamp: 1_800_000_000_123,
      seq: 255,
      metrics: [
        { name: 'a', alias: 7, timestamp: 1_800_000_000_100, datatype: DataType.Float, floatValue: 1.5 },
        { alias: 8, datatype: DataType.Int32, intValue: -3 },
        { alias: 9, datatype: DataType.UInt64, longValue: '9007199254740993' },
        { alias: 10, datatype: DataType.Boolean, booleanValue: false, isHistorical: true },
      ],
    });
    const decoded = decodePayload(bytes);
    if (!decoded.ok) throw new Error(decoded.detail);
    const { payload } = decoded;
    expect([uint64(payload.timestamp), uint64(payload.seq), payload.metrics.length]).toEqual([1_800_000_000_123, 255, 4]);
    const [a, b, c, d] = payload.metrics;
    expect([a?.name, uint64(a!.alias), uint64(a!.timestamp), numericValue(a!, DataType.Float)]).toEqual(['a', 7, 1_800_000_000_100, 1.5]);
    expect([has(b!, 'name'), numericValue(b!, DataType.Int32)]).toEqual([false, -3]);
    // Above 2^53 a uint64 is not exact: uint64() says so (-1) and a value reads as the nearest double.
    expect([uint64(c!.longValue), numericValue(c!, DataType.UInt64)]).toEqual([-1, 9007199254740992]);
    expect([numericValue(d!, DataType.Boolean), d?.isHistorical, numericValue(d!, DataType.Float)]).toEqual([0, true, undefined]);
  });

  it('reads payloads written with the whole Tahu definition: datasets, templates, properties and metadata are skipped', () => {
    const full = Full.encode(
      Full.fromObject({
        timestamp: 1_800_000_000_000,
        seq: 4,
        uuid: 'u',
        body: Buffer.from('opaque'),
        metrics: [
          {
            name: 'Pump/Pressure',
            alias: 1,
            datatype: DataType.Float,
            floatValue: 2.25,
            metadata: { isMultiPart: false, contentType: 'x', size: 3 },
            properties: { keys: ['__proto__', 'unit'], values: [{ type: 12, stringValue: 'polluted?' }, { type: 12, stringValue: 'bar' }] },
          },
          { name: 'table', alias: 2, datatype: 16, datasetValue: { numOfColumns: 1_000_000, columns: ['c'], types: [10], rows: [{ elements: [{ doubleValue: 1 }] }] } },
          { name: 'udt', alias: 3, datatype: 19, templateValue: { version: '1', isDefinition: true, metrics: [{ name: 'inner', datatype: 9, floatValue: 1 }] } },
        ],
      }),
    ).finish();
    const decoded = decodePayload(full);
    if (!decoded.ok) throw new Error(decoded.detail);
    const [pressure, table, udt] = decoded.payload.metrics;
    expect(numericValue(pressure!, DataType.Float)).toBe(2.25);
    expect([table?.name, table?.value, udt?.name, udt?.value]).toEqual(['table', undefined, 'udt', undefined]);
    expect(Object.keys(pressure!).sort()).toEqual(['alias', 'datatype', 'floatValue', 'name']);
    expect(({} as Record<string, unknown>).unit).toBeUndefined();
  });

  it('turns bytes that are no payload into a result, never a throw', () => {
    for (const bytes of [Buffer.from([0x0a, 0xff]), Buffer.from([0x12, 0x05, 0x0a, 0x80]), Buffer.from('\u00ff\u00ff\u00ff'), Buffer.alloc(64, 0xff)]) {
      const decoded = decodePayload(bytes);
      expect(decoded.ok).toBe(false);
    }
    // 200 000 nested groups (wire type 3): protobufjs recurses until the stack runs out; still a result.
    expect(decodePayload(Buffer.alloc(200_000, 0x33)).ok).toBe(false);
  });
});

describe('sparkplug config section', () => {
  it('is off by default and fills every default', () => {
    const config = sparkplugConfigSchema.parse({});
    expect(config).toMatchObject({ enabled: false, hostId: 'sentinel', edgeNodes: [], channels: {}, historical: 'drop' });
    expect(config.rebirth).toEqual({ minIntervalMs: 10_000, maxPerSecond: 10 });
    expect(config.limits).toEqual({
      maxPayloadBytes: 262_144,
      maxEdgeNodes: 1_000,
      maxDevices: 10_000,
      maxMetricsPerMessage: 4_096,
      maxMetrics: 1_000_000,
      maxStreamIdBytes: 512,
      maxFutureSkewMs: 300_000,
    });
  });

  it('describes every key', () => {
    const keys: string[] = [];
    const undescribed: string[] = [];
    type Node = { description?: string; def: { innerType?: Node; in?: Node; element?: Node; shape?: Record<string, Node> } };
    const walk = (shape: Record<string, Node>, path: string): void => {
      for (const [key, schema] of Object.entries(shape)) {
        keys.push(`${path}${key}`);
        if (!schema.description) undescribed.push(`${path}${key}`);
        let inner = schema;
        while (inner.def.innerType ?? inner.def.in ?? inner.def.element) inner = (inner.def.innerType ?? inner.def.in ?? inner.def.element) as Node;
        if (inner.def.shape) walk(inner.def.shape, `${path}${key}.`);
      }
    };
    walk(sparkplugConfigSchema.shape as unknown as Record<string, Node>, '');
    expect(keys).toHaveLength(19);
    expect(undescribed).toEqual([]);
  });

  it('refuses unknown keys, ids with reserved characters, and an enabled section that could never yield a reading', () => {
    const issues = (input: unknown): string[] => {
      const result = sparkplugConfigSchema.safeParse(input);
      return result.success ? [] : result.error.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    expect(issues({ enable: true })).toEqual([': Unrecognized key: "enable"']);
    expect(issues({ hostId: 'a/b' })).toEqual(['hostId: "a/b" is not a Sparkplug id']);
    expect(issues({ edgeNodes: [{ group: 'plant#1' }] })).toEqual(['edgeNodes.0.group: "plant#1" is not a Sparkplug id']);
    expect(issues({ enabled: true })).toEqual([
      'edgeNodes: is empty while sparkplug.enabled is true',
      'channels: is empty while sparkplug.enabled is true: no metric would become a reading',
    ]);
    expect(issues({ enabled: true, edgeNodes: [{ group: '+' }], channels: { a: 'b' } })).toEqual([]);
  });

  it('subscribes to each edge node and its devices, once', () => {
    const config = sparkplugConfigSchema.parse({ edgeNodes: [{ group: 'plant1' }, { group: 'plant2', edgeNode: 'gw7' }, { group: 'plant1' }] });
    expect(sparkplugFilters(config)).toEqual(['spBv1.0/plant1/+/+', 'spBv1.0/plant1/+/+/+', 'spBv1.0/plant2/+/gw7', 'spBv1.0/plant2/+/gw7/+']);
  });
});
