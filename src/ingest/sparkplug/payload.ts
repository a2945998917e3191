/** Sparkplug B payloads: the subset of Eclipse Tahu's sparkplug_b.proto that a host reads and writes, through protobufjs. */
import protobuf, { type Long } from 'protobufjs';

// Field numbers, names and types are those of eclipse/tahu sparkplug_b/sparkplug_b.proto (Sparkplug 3.0).
// DataSet, Template, PropertySet, MetaData, uuid and body are left out on purpose: a host that only
// needs numbers skips them as unknown fields, so a hostile dataset or deep template costs no objects.
const SPARKPLUG_B_PROTO = `
syntax = "proto2";
package org.eclipse.tahu.protobuf;

message Payload {
  message Metric {
    optional string name = 1;
    optional uint64 alias = 2;
    optional uint64 timestamp = 3;
    optional uint32 datatype = 4;
    optional bool is_historical = 5;
    optional bool is_transient = 6;
    optional bool is_null = 7;
    oneof value {
      uint32 int_value = 10;
      uint64 long_value = 11;
      float float_value = 12;
      double double_value = 13;
      bool boolean_value = 14;
      string string_value = 15;
      bytes bytes_value = 16;
    }
  }
  optional uint64 timestamp = 1;
  repeated Metric metrics = 2;
  optional uint64 seq = 3;
}
`;

/** Sparkplug B metric data types (sparkplug_b.proto `DataType`), the ones a host meets in births. */
export const DataType = {
  Unknown: 0,
  Int8: 1,
  Int16: 2,
  Int32: 3,
  Int64: 4,
  UInt8: 5,
  UInt16: 6,
  UInt32: 7,
  UInt64: 8,
  Float: 9,
  Double: 10,
  Boolean: 11,
  String: 12,
  DateTime: 13,
  Text: 14,
} as const;

/** A decoded metric as protobufjs hands it out: absent fields fall through to prototype defaults, so test presence with `has`. */
export interface Metric {
  readonly name: string;
  readonly alias: Long | number;
  readonly timestamp: Long | number;
  readonly datatype: number;
  readonly isHistorical: boolean;
  readonly isTransient: boolean;
  readonly isNull: boolean;
  readonly intValue: number;
  readonly longValue: Long | number;
  readonly floatValue: number;
  readonly doubleValue: number;
  readonly booleanValue: boolean;
  readonly stringValue: string;
  readonly bytesValue: Uint8Array;
  /** Which member of the `value` oneof is set, if any. */
  readonly value: 'intValue' | 'longValue' | 'floatValue' | 'doubleValue' | 'booleanValue' | 'stringValue' | 'bytesValue' | undefined;
}

export interface Payload {
  readonly timestamp: Long | number;
  readonly metrics: readonly Metric[];
  readonly seq: Long | number;
}

/** What an edge node (or a test's simulator) puts in a payload; 64-bit fields take numbers. */
export interface MetricInput {
  name?: string;
  alias?: number;
  timestamp?: number;
  datatype?: number;
  isHistorical?: boolean;
  isNull?: boolean;
  intValue?: number;
  longValue?: number | string;
  floatValue?: number;
  doubleValue?: number;
  booleanValue?: boolean;
  stringValue?: string;
  bytesValue?: Uint8Array;
}

export interface PayloadInput {
  timestamp?: number;
  metrics?: MetricInput[];
  seq?: number;
}

let payloadType: protobuf.Type | null = null;

function type(): protobuf.Type {
  payloadType ??= protobuf.parse(SPARKPLUG_B_PROTO).root.lookupType('org.eclipse.tahu.protobuf.Payload');
  return payloadType;
}

export type DecodeResult = { ok: true; payload: Payload } | { ok: false; detail: string };

/** Decodes a Sparkplug B payload; bytes that are not one (truncated, wrong wire types, too deep) are a result, never a throw. */
export function decodePayload(bytes: Uint8Array): DecodeResult {
  try {
    return { ok: true, payload: type().decode(bytes) as unknown as Payload };
  } catch (err) {
    // protobufjs throws Error or RangeError on bad input, and a stack overflow is a RangeError too.
    return { ok: false, detail: `not a Sparkplug B payload: ${err instanceof Error ? err.message.slice(0, 80) : 'decode failed'}` };
  }
}

/** Encodes a payload (rebirth requests; edge node simulators in tests). */
export function encodePayload(payload: PayloadInput): Uint8Array {
  const t = type();
  return t.encode(t.fromObject(payload as Record<string, unknown>)).finish();
}

/** True when a decoded message carries the field itself (not the prototype default). */
export function has(message: object, field: string): boolean {
  return Object.prototype.hasOwnProperty.call(message, field);
}

/** An unsigned 64-bit field as a number, or -1 when it is above 2^53 and so not exact. */
export function uint64(v: Long | number): number {
  if (typeof v === 'number') return v;
  const high = v.high >>> 0;
  if (high > 0x1f_ffff) return -1;
  return high * 4_294_967_296 + (v.low >>> 0);
}

/** A 64-bit field read as two's-complement signed (Int64 metrics), as the nearest double. */
export function int64(v: Long | number): number {
  if (typeof v === 'number') return v;
  return (v.high | 0) * 4_294_967_296 + (v.low >>> 0);
}

/** Is a metric of this data type a number a model can take (booleans as 0/1)? */
export function isNumericType(datatype: number): boolean {
  return datatype >= DataType.Int8 && datatype <= DataType.Boolean;
}

/**
 * The value of a metric as a number, read from the oneof member its data type prescribes; undefined when
 * that member is not the one set (a wrong type). Float and Double may be non-finite: the caller checks.
 */
export function numericValue(metric: Metric, datatype: number): number | undefined {
  const set = metric.value;
  switch (datatype) {
    case DataType.Int8:
    case DataType.Int16:
    case DataType.Int32:
      // Signed types travel as uint32 (two's complement).
      return set === 'intValue' ? metric.intValue | 0 : undefined;
    case DataType.UInt8:
    case DataType.UInt16:
      return set === 'intValue' ? metric.intValue >>> 0 : undefined;
    case DataType.Int64:
      return set === 'longValue' ? int64(metric.longValue) : undefined;
    case DataType.UInt32:
    case DataType.UInt64: {
      if (set !== 'longValue') return undefined;
      const v = metric.longValue;
      return typeof v === 'number' ? v : (v.high >>> 0) * 4_294_967_296 + (v.low >>> 0);
    }
    case DataType.Float:
      return set === 'floatValue' ? metric.floatValue : undefined;
    case DataType.Double:
      return set === 'doubleValue' ? metric.doubleValue : undefined;
    case DataType.Boolean:
      return set === 'booleanValue' ? (metric.booleanValue ? 1 : 0) : undefined;
    default:
      return undefined;
  }
}
