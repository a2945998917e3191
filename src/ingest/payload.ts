/** Wire payloads in: the zod schemas of telemetry messages and the parser that turns bytes into readings. */
import { z } from 'zod';
import type { PayloadFormat } from '../config/schema.js';
import type { ParseResult, RejectReason } from './reading.js';
import { TelemetryScanner } from './telemetry-scanner.js';

const timestampSchema = z.union([z.number(), z.string().max(64)]).optional();

/** `{"ts": 1718000000000, "value": 21.3}` — one channel per message (channel from the topic rule). */
export const singleValuePayloadSchema = z.object({ ts: timestampSchema, value: z.number() });
/** `{"ts": "2026-01-01T00:00:00Z", "values": {"pressure": 1.2, "temperature": 71}}` — every channel at once. */
export const multiValuePayloadSchema = z.object({
  ts: timestampSchema,
  values: z.record(z.string().max(256), z.number()),
});
export type SingleValuePayload = z.infer<typeof singleValuePayloadSchema>;
export type MultiValuePayload = z.infer<typeof multiValuePayloadSchema>;

function isTimestamp(ts: unknown): ts is number | string | undefined {
  return ts === undefined || (typeof ts === 'number' && Number.isFinite(ts)) || (typeof ts === 'string' && ts.length <= 64);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

/**
 * Hand-written twins of the schemas for the hot path: they accept exactly what the zod schemas
 * accept (a property test holds them to it); anything they refuse goes through zod for the reason.
 */
export function isSingleValuePayload(json: unknown): json is SingleValuePayload {
  return isPlainObject(json) && isTimestamp(json.ts) && typeof json.value === 'number' && Number.isFinite(json.value);
}

export function isMultiValuePayload(json: unknown): json is MultiValuePayload {
  if (!isPlainObject(json) || !isTimestamp(json.ts) || !isPlainObject(json.values)) return false;
  const values = json.values;
  for (const key in values) {
    // zod's record drops a "__proto__" key rather than judging its value; so do we (parse then refuses it as a channel).
    if (key === '__proto__') continue;
    const v = values[key];
    if (typeof v !== 'number' || !Number.isFinite(v) || key.length > 256) return false;
  }
  return true;
}

const numberText = /^\s*[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?\s*$/;
const nonFiniteText = /^\s*[-+]?(nan|inf|infinity)\s*$/i;

/** Readings are windowed as float32: a larger finite double would become Infinity there. */
const FLOAT32_MAX = 3.4028234663852886e38;
const outOfRange = (v: number): boolean => v > FLOAT32_MAX || v < -FLOAT32_MAX;

function reject(reason: RejectReason, detail: string): ParseResult {
  return { ok: false, reason, detail };
}

/** The largest time a Date can hold (ECMA-262 §21.4.1.1): beyond it toISOString() throws. */
const MAX_DATE_MS = 8.64e15;

const badTimestamp = (): ParseResult => reject('bad_timestamp', 'ts is not ISO-8601 or epoch ms, or is too far in the future');

/** Epoch ms from a payload timestamp: a number is epoch ms, a string is ISO-8601 or epoch ms as text. */
function toEpochMs(ts: number | string): number {
  if (typeof ts === 'number') return Number.isFinite(ts) && ts >= 0 ? ts : Number.NaN;
  if (numberText.test(ts)) return toEpochMs(Number(ts));
  return Date.parse(ts);
}

function hasNonFinite(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value);
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) if (typeof v === 'number' && !Number.isFinite(v)) return true;
  }
  return false;
}

export class PayloadParser {
  private readonly channelIndex: Map<string, number>;
  private readonly scanner: TelemetryScanner | null;

  constructor(
    private readonly channels: readonly string[],
    private readonly maxPayloadBytes: number,
    /** A ts further ahead of the wall clock is refused: one bad clock would otherwise make every later reading "out of order". */
    private readonly maxFutureSkewMs = 300_000,
    /** Off only in tests that hold the fast path to the general one. */
    fastPath = true,
  ) {
    this.channelIndex = new Map(channels.map((name, i) => [name, i]));
    this.scanner = fastPath ? new TelemetryScanner(channels) : null;
  }

  /**
   * Parses one message. `channel` is the rule's channel name (null: the payload or the model decides).
   * `now` is wall-clock epoch ms, used when the payload has no ts.
   */
  parse(
    format: PayloadFormat,
    streamId: string,
    channel: string | null,
    payload: Uint8Array,
    now: number,
    receivedAt: number,
  ): ParseResult {
    if (payload.byteLength > this.maxPayloadBytes) {
      return reject('oversized', `${payload.byteLength} bytes > ingest.maxPayloadBytes ${this.maxPayloadBytes}`);
    }
    const bytes = payload instanceof Buffer ? payload : Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength);
    if (this.scanner !== null && format !== 'number' && this.scanner.scan(bytes, format === 'json-values')) {
      return format === 'json-values' ? this.scannedMulti(this.scanner, streamId, now, receivedAt) : this.scannedSingle(this.scanner, streamId, channel, now, receivedAt);
    }
    const text = bytes.toString('utf8');
    if (format === 'number') return this.parseNumber(text, streamId, channel, now, receivedAt);
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      return reject('malformed', 'not valid JSON');
    }
    return format === 'json-values'
      ? this.parseMulti(json, streamId, now, receivedAt)
      : this.parseSingle(json, streamId, channel, now, receivedAt);
  }

  /** Epoch ms of a payload ts, or NaN when it is unreadable, too far in the future, or no valid Date. */
  private timestamp(ts: number | string | undefined, now: number): number {
    if (ts === undefined) return now;
    const epoch = toEpochMs(ts);
    return epoch <= now + this.maxFutureSkewMs && epoch <= MAX_DATE_MS ? epoch : Number.NaN;
  }

  private resolveChannel(channel: string | null): number | RejectReason {
    if (channel === null) return this.channels.length === 1 ? 0 : 'wrong_channel_count';
    return this.channelIndex.get(channel) ?? 'unknown_channel';
  }

  private parseNumber(text: string, streamId: string, channel: string | null, now: number, receivedAt: number): ParseResult {
    if (!numberText.test(text)) {
      return nonFiniteText.test(text) ? reject('non_finite', 'value is not finite') : reject('malformed', 'not a number');
    }
    const value = Number(text);
    if (!Number.isFinite(value) || outOfRange(value)) return reject('non_finite', 'value is not a finite float32');
    const index = this.resolveChannel(channel);
    if (typeof index === 'string') return reject(index, `channel ${channel ?? '(none)'} is not one of the model's channels`);
    return { ok: true, reading: { streamId, ts: now, tsFromPayload: false, receivedAt, channel: index, value, values: null } };
  }

  private parseSingle(input: unknown, streamId: string, channel: string | null, now: number, receivedAt: number): ParseResult {
    let json: SingleValuePayload;
    if (isSingleValuePayload(input)) json = input;
    else {
      const checked = singleValuePayloadSchema.safeParse(input);
      if (!checked.success) return this.rejectSingle(input);
      json = checked.data;
    }
    const ts = this.timestamp(json.ts, now);
    if (Number.isNaN(ts)) return badTimestamp();
    if (outOfRange(json.value)) return reject('non_finite', 'value is not a finite float32');
    const index = this.resolveChannel(channel);
    if (typeof index === 'string') return reject(index, `channel ${channel ?? '(none)'} is not one of the model's channels`);
    return {
      ok: true,
      reading: { streamId, ts, tsFromPayload: json.ts !== undefined, receivedAt, channel: index, value: json.value, values: null },
    };
  }

  private scannedMulti(scan: TelemetryScanner, streamId: string, now: number, receivedAt: number): ParseResult {
    const ts = this.timestamp(scan.hasTs ? (scan.tsText ?? scan.tsNumber) : undefined, now);
    if (Number.isNaN(ts)) return badTimestamp();
    const values = new Float32Array(this.channels.length);
    const scanned = scan.values;
    for (let c = 0; c < values.length; c++) values[c] = scanned[c] as number;
    return { ok: true, reading: { streamId, ts, tsFromPayload: scan.hasTs, receivedAt, channel: -1, value: 0, values } };
  }

  private scannedSingle(scan: TelemetryScanner, streamId: string, channel: string | null, now: number, receivedAt: number): ParseResult {
    const ts = this.timestamp(scan.hasTs ? (scan.tsText ?? scan.tsNumber) : undefined, now);
    if (Number.isNaN(ts)) return badTimestamp();
    const index = this.resolveChannel(channel);
    if (typeof index === 'string') return reject(index, `channel ${channel ?? '(none)'} is not one of the model's channels`);
    return { ok: true, reading: { streamId, ts, tsFromPayload: scan.hasTs, receivedAt, channel: index, value: scan.value, values: null } };
  }

  /** Why the zod schema refused a payload. */
  private rejectSingle(json: unknown): ParseResult {
    if (isPlainObject(json) && hasNonFinite(json.value)) return reject('non_finite', 'value is not finite');
    return reject('invalid_payload', 'expected {"ts"?: number|string, "value": number}');
  }

  private rejectMulti(json: unknown): ParseResult {
    if (isPlainObject(json) && hasNonFinite(json.values)) return reject('non_finite', 'a value is not finite');
    return reject('invalid_payload', 'expected {"ts"?: number|string, "values": {channel: number, …}}');
  }

  private parseMulti(input: unknown, streamId: string, now: number, receivedAt: number): ParseResult {
    let json: MultiValuePayload;
    if (isMultiValuePayload(input)) json = input;
    else {
      const checked = multiValuePayloadSchema.safeParse(input);
      if (!checked.success) return this.rejectMulti(input);
      json = checked.data;
    }
    const ts = this.timestamp(json.ts, now);
    if (Number.isNaN(ts)) return badTimestamp();
    const values = new Float32Array(this.channels.length);
    let seen = 0;
    for (const name in json.values) {
      const index = this.channelIndex.get(name);
      if (index === undefined) return reject('unknown_channel', `channel "${name.slice(0, 64)}" is not one of the model's channels`);
      const value = json.values[name] as number;
      if (outOfRange(value)) return reject('non_finite', `channel "${name}" is not a finite float32`);
      values[index] = value;
      seen++;
    }
    if (seen !== this.channels.length) {
      return reject('wrong_channel_count', `${seen} channels, the model needs ${this.channels.length}: ${this.channels.join(', ')}`);
    }
    return {
      ok: true,
      reading: { streamId, ts, tsFromPayload: json.ts !== undefined, receivedAt, channel: -1, value: 0, values },
    };
  }
}
