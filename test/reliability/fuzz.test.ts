/**
 * Hostile input through a real broker: ≥ 10,000 generated messages (fast-check), each built to carry
 * the rejection reason the daemon must count, interleaved with valid telemetry that must all be scored.
 */
import { readFileSync } from 'node:fs';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejectReasons, type RejectReason } from '../../src/ingest/reading.js';
import { manifestSchema } from '../../src/model/manifest.js';
import { startTestBroker, uniquePrefix, waitFor, type TestBroker } from '../support/broker.js';
import { metricValue } from '../support/metrics.js';
import { startCapturedDaemon, type CapturedDaemon } from '../support/captured-daemon.js';
import { scoredWindows } from '../support/model.js';

const MANIFEST = manifestSchema.parse(JSON.parse(readFileSync('models/default.json', 'utf8')));
const CHANNELS = MANIFEST.channels;
const WINDOW = MANIFEST.window;
const MAX_PAYLOAD = 4096;
const MAX_STREAMS = 40;
// One odd stream id is 1000 characters long: the door's limits sit above it.
const MAX_STREAM_ID = 2048;
const MAX_TOPIC = 8192;
const CASES = 10_000;
const CHUNK = 200;
const SEED = process.env.SENTINEL_FUZZ_SEED === 'random' ? Date.now() % 2 ** 31 : Number(process.env.SENTINEL_FUZZ_SEED ?? 20_261_126);

/** One MQTT message and what the daemon must do with it: count it under `reason`, or accept it (null). */
interface Message {
  topic: string;
  payload: string | Buffer;
  reason: RejectReason | null;
  kind: string;
}

/** Stream ids that are valid MQTT topic levels but odd: spaces, scripts, emoji, quotes, a 1000-character level. */
const ODD_STREAMS = ['pump 7', 'насос-3', '泵站·二号', '🚀rocket🔥', 'ünïcödé', 'quote"back\\slash', "it's", 'L'.repeat(1000)];

/** Characters Mosquitto refuses in a topic (MQTT 5 §1.5.4) or that are filter syntax. */
function isTopicLevel(s: string): boolean {
  if (s.length === 0 || s.startsWith('$')) return false;
  for (const ch of s) {
    const cp = ch.codePointAt(0) as number;
    if (ch === '/' || ch === '+' || ch === '#') return false;
    if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
    if (cp >= 0xd800 && cp <= 0xdfff) return false;
  }
  return true;
}

const level = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 24 }).filter(isTopicLevel);
const finite = fc.oneof(
  fc.double({ min: -1e4, max: 1e4, noNaN: true, noDefaultInfinity: true }),
  fc.integer({ min: -1000, max: 1000 }),
  fc.constant(-0),
);
const row = fc.tuple(...CHANNELS.map(() => finite));
const tsFormat = fc.constantFrom('number', 'iso', 'string', 'none') as fc.Arbitrary<'number' | 'iso' | 'string' | 'none'>;
const pick = fc.nat({ max: 1000 });
const junk = fc.oneof(level, fc.constantFrom(...ODD_STREAMS));

/** What to send; turned into messages (and expected outcomes) in order by `build`. */
type Descriptor =
  | { kind: 'valid'; stream: number; values: number[]; ts: 'number' | 'iso' | 'string' | 'none'; extra: number; padToMax: boolean }
  | { kind: 'group'; format: 'json-value' | 'number'; stream: number; order: string[] }
  | { kind: 'fresh'; values: number[] }
  | { kind: 'duplicate' | 'out_of_order'; stream: number; back: number; values: number[] }
  | { kind: 'hostile'; make: (prefix: string) => Message };

function hostile(kind: string, reason: RejectReason, arb: fc.Arbitrary<{ topic: (p: string) => string; payload: string | Buffer }>): fc.Arbitrary<Descriptor> {
  return arb.map((m) => ({ kind: 'hostile' as const, make: (p: string) => ({ topic: m.topic(p), payload: m.payload, reason, kind }) }));
}

const multiTopic = (stream: string) => (p: string) => `${p}/m/${stream}/telemetry`;
const onMulti = <T>(arb: fc.Arbitrary<T>, payload: (t: T) => string | Buffer) =>
  fc.tuple(junk, arb).map(([s, t]) => ({ topic: multiTopic(s), payload: payload(t) }));
const valuesOf = (v: number[]) => Object.fromEntries(CHANNELS.map((c, i) => [c, v[i] as number]));
// An hour ahead of the wall clock: later than any receive-time stamp (so "no ts" readings never make
// the next ones out of order) and well inside ingest.maxFutureSkewMs.
const T0 = Math.ceil(Date.now() / 1000) * 1000 + 3_600_000;

const descriptors: fc.Arbitrary<Descriptor> = fc.oneof(
  { weight: 40, arbitrary: fc.record({ kind: fc.constant('valid' as const), stream: pick, values: row, ts: tsFormat, extra: fc.nat({ max: 400 }), padToMax: fc.boolean() }) },
  { weight: 6, arbitrary: fc.record({ kind: fc.constant('group' as const), format: fc.constantFrom('json-value' as const, 'number' as const), stream: pick, order: fc.shuffledSubarray(CHANNELS, { minLength: CHANNELS.length, maxLength: CHANNELS.length }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('fresh' as const), values: row }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('duplicate' as const), stream: pick, back: fc.constant(0), values: row }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('out_of_order' as const), stream: pick, back: fc.integer({ min: 1, max: 1e9 }), values: row }) },
  // topic_too_long / bad_stream_id: checked at the door, before any rule or parse
  { weight: 1, arbitrary: hostile('long-topic', 'topic_too_long', fc.tuple(row, fc.integer({ min: MAX_TOPIC + 1, max: MAX_TOPIC + 3000 })).map(([v, n]) => ({ topic: (p: string) => `${p}/m/${'T'.repeat(n)}/telemetry`, payload: JSON.stringify({ ts: T0, values: valuesOf(v) }) }))) },
  { weight: 1, arbitrary: hostile('long-stream', 'bad_stream_id', fc.tuple(row, fc.integer({ min: MAX_STREAM_ID + 1, max: MAX_TOPIC - 100 })).map(([v, n]) => ({ topic: (p: string) => `${p}/m/${'S'.repeat(n)}/telemetry`, payload: JSON.stringify({ ts: T0, values: valuesOf(v) }) }))) },
  // malformed: not JSON at all, JSON's missing NaN/Infinity literals, truncated objects, control characters, binary garbage
  { weight: 3, arbitrary: hostile('truncated', 'malformed', onMulti(fc.tuple(row, fc.nat()), ([v, cut]) => { const s = JSON.stringify({ ts: T0, values: valuesOf(v) }); return s.slice(0, 1 + (cut % (s.length - 1))); })) },
  { weight: 2, arbitrary: hostile('nan-literal', 'malformed', onMulti(fc.tuple(row, fc.constantFrom('NaN', 'Infinity', '-Infinity', 'undefined')), ([v, lit]) => JSON.stringify({ values: valuesOf(v) }).replace(/("vibration":)[^,}]+/, `$1${lit}`))) },
  { weight: 2, arbitrary: hostile('not-json', 'malformed', onMulti(fc.oneof(fc.string().map((s) => `\u0007${s}`), fc.constantFrom("{'values':{}}", '{"values":{},}', '{values:1}', 'nul', '[1,]', '}{', '"unterminated')), (s) => s)) },
  { weight: 3, arbitrary: hostile('binary', 'malformed', fc.tuple(fc.constantFrom('m', 's', 'n'), junk, fc.constantFrom(...CHANNELS), fc.uint8Array({ minLength: 0, maxLength: 600 })).map(([sub, s, c, bytes]) => ({ topic: (p: string) => (sub === 'm' ? `${p}/m/${s}/telemetry` : `${p}/${sub}/${s}/${c}`), payload: Buffer.concat([Buffer.from([0xff]), bytes]) }))) },
  // invalid_payload: deep nesting, huge strings, wrong types, over-long keys and timestamp strings
  { weight: 3, arbitrary: hostile('deep', 'invalid_payload', onMulti(fc.tuple(fc.integer({ min: 50, max: 1900 }), fc.constantFrom('top', 'values', 'object')), ([d, where]) => where === 'top' ? '['.repeat(d) + ']'.repeat(d) : where === 'values' ? `{"values":${'['.repeat(d)}${']'.repeat(d)}}` : `{"values":{"vibration":${'{"a":'.repeat(Math.min(d, 700))}1${'}'.repeat(Math.min(d, 700))}}}`)) },
  { weight: 2, arbitrary: hostile('huge-string', 'invalid_payload', onMulti(fc.tuple(row, fc.integer({ min: 100, max: 3900 })), ([v, n]) => JSON.stringify({ values: { ...valuesOf(v), vibration: 'x'.repeat(n) } }))) },
  { weight: 2, arbitrary: hostile('long-key', 'invalid_payload', onMulti(fc.tuple(row, fc.integer({ min: 257, max: 3000 })), ([v, n]) => JSON.stringify({ values: { ...valuesOf(v), ['k'.repeat(n)]: 1 } }))) },
  { weight: 1, arbitrary: hostile('long-ts', 'invalid_payload', onMulti(fc.tuple(row, fc.integer({ min: 65, max: 300 })), ([v, n]) => JSON.stringify({ ts: '2'.repeat(n), values: valuesOf(v) }))) },
  { weight: 1, arbitrary: hostile('infinite-ts', 'invalid_payload', onMulti(row, (v) => `{"ts":1e999,"values":${JSON.stringify(valuesOf(v))}}`)) },
  { weight: 3, arbitrary: hostile('wrong-type', 'invalid_payload', onMulti(fc.tuple(row, fc.constantFrom('42', '"text"', 'null', 'true', '[1,2,3]', '{}', 'V:null', 'V:[]', 'V:"x"', 'V:5', 'C:"1"', 'C:true', 'C:null', 'C:{}', 'C:[1]', 'T:true', 'T:{}', 'T:null', 'T:[1]')), ([v, w]) => {
    if (w.startsWith('V:')) return `{"values":${w.slice(2)}}`;
    if (w.startsWith('C:')) return JSON.stringify({ values: valuesOf(v) }).replace(/("current":)[^,}]+/, `$1${w.slice(2)}`);
    if (w.startsWith('T:')) return `{"ts":${w.slice(2)},"values":${JSON.stringify(valuesOf(v))}}`;
    return w;
  })) },
  // non_finite: numbers that overflow to ±Infinity; bare NaN/Infinity text in number format
  { weight: 2, arbitrary: hostile('overflow', 'non_finite', onMulti(fc.tuple(row, fc.constantFrom('1e999', '-1e999', '1.8e308'), fc.constantFrom(...CHANNELS)), ([v, lit, c]) => JSON.stringify({ values: valuesOf(v) }).replace(new RegExp(`("${c}":)[^,}]+`), `$1${lit}`))) },
  { weight: 2, arbitrary: hostile('number-non-finite', 'non_finite', fc.tuple(junk, fc.constantFrom(...CHANNELS), fc.constantFrom('NaN', 'nan', 'Infinity', '-Infinity', 'inf', '+INF', ' -inf ', '1e999', '-1e400')).map(([s, c, t]) => ({ topic: (p: string) => `${p}/n/${s}/${c}`, payload: t }))) },
  { weight: 1, arbitrary: hostile('value-overflow', 'non_finite', fc.tuple(junk, fc.constantFrom(...CHANNELS), fc.constantFrom('1e999', '-1e999')).map(([s, c, t]) => ({ topic: (p: string) => `${p}/s/${s}/${c}`, payload: `{"value":${t}}` }))) },
  // malformed in the other formats
  { weight: 2, arbitrary: hostile('number-malformed', 'malformed', fc.tuple(junk, fc.constantFrom(...CHANNELS), fc.constantFrom('12abc', 'abc', '', '1,5', '0x10', '1e', '--1', '{"value":1}', '1 2')).map(([s, c, t]) => ({ topic: (p: string) => `${p}/n/${s}/${c}`, payload: t }))) },
  { weight: 1, arbitrary: hostile('value-nan', 'malformed', fc.tuple(junk, fc.constantFrom(...CHANNELS)).map(([s, c]) => ({ topic: (p: string) => `${p}/s/${s}/${c}`, payload: '{"value":NaN}' }))) },
  { weight: 1, arbitrary: hostile('value-wrong-type', 'invalid_payload', fc.tuple(junk, fc.constantFrom(...CHANNELS), fc.constantFrom('{"value":"3"}', '{}', '{"value":null}', '[3]', '3', '{"value":[1]}')).map(([s, c, t]) => ({ topic: (p: string) => `${p}/s/${s}/${c}`, payload: t }))) },
  // bad_timestamp: negative, unparseable, overflowing as text
  { weight: 2, arbitrary: hostile('bad-ts', 'bad_timestamp', onMulti(fc.tuple(row, fc.constantFrom('-1', '"yesterday"', '""', '"-5"', '"1e999"', '"2024-13-45T00:00:00Z"', '-1e10')), ([v, ts]) => `{"ts":${ts},"values":${JSON.stringify(valuesOf(v))}}`)) },
  { weight: 1, arbitrary: hostile('value-bad-ts', 'bad_timestamp', fc.tuple(junk, fc.constantFrom(...CHANNELS)).map(([s, c]) => ({ topic: (p: string) => `${p}/s/${s}/${c}`, payload: '{"ts":"not a time","value":1}' }))) },
  // unknown_channel: a renamed or extra channel (including prototype names), a topic naming no channel
  { weight: 3, arbitrary: hostile('unknown-channel', 'unknown_channel', onMulti(fc.tuple(row, fc.oneof(fc.string({ maxLength: 256 }), fc.constantFrom('__proto__', 'constructor', 'toString', 'Vibration', 'vibration ', '')).filter((k) => !CHANNELS.includes(k)), fc.boolean()), ([v, key, replace]) => {
    const values: Record<string, number> = valuesOf(v);
    if (replace) delete values.flow;
    return `{"values":{${[...Object.entries(values).map(([k, x]) => `${JSON.stringify(k)}:${x}`), `${JSON.stringify(key)}:1`].join(',')}}}`;
  })) },
  { weight: 2, arbitrary: hostile('topic-channel', 'unknown_channel', fc.tuple(junk, fc.oneof(level, fc.constantFrom('Vibration', 'vibration ', '温度')).filter((c) => !CHANNELS.includes(c)), fc.constantFrom('s', 'n')).map(([s, c, sub]) => ({ topic: (p: string) => `${p}/${sub}/${s}/${c}`, payload: sub === 's' ? '{"value":1.5}' : '1.5' }))) },
  { weight: 1, arbitrary: hostile('empty-channel-level', 'unknown_channel', junk.map((s) => ({ topic: (p: string) => `${p}/s/${s}/`, payload: '{"value":1}' }))) },
  // wrong_channel_count: a subset of the model's channels
  { weight: 3, arbitrary: hostile('channel-subset', 'wrong_channel_count', onMulti(fc.tuple(row, fc.subarray(CHANNELS, { maxLength: CHANNELS.length - 1 })), ([v, keep]) => JSON.stringify({ values: Object.fromEntries(keep.map((c) => [c, v[CHANNELS.indexOf(c)] as number])) }))) },
  // oversized: checked before parsing, whatever the bytes
  { weight: 2, arbitrary: hostile('oversized', 'oversized', fc.tuple(fc.constantFrom('m', 's', 'n'), junk, fc.integer({ min: MAX_PAYLOAD + 1, max: MAX_PAYLOAD + 4000 }), fc.boolean()).map(([sub, s, n, bin]) => ({ topic: (p: string) => (sub === 'm' ? `${p}/m/${s}/telemetry` : `${p}/${sub}/${s}/vibration`), payload: bin ? Buffer.alloc(n, 0xfe) : `{"values":{"vibration":1${' '.repeat(n)}}}`.slice(0, n) }))) },
  // no_subscription: topics the broker delivers whose wildcard level is empty, so no stream id
  { weight: 2, arbitrary: hostile('empty-stream-level', 'no_subscription', fc.tuple(row, fc.constantFrom('m', 'h')).map(([v, sub]) => ({ topic: (p: string) => (sub === 'm' ? `${p}/m//telemetry` : `${p}/h/`), payload: JSON.stringify({ values: valuesOf(v) }) }))) },
);

/** Per stream: rows committed and the newest payload ts (the window store's order rules, README "Windows"). */
interface StreamModel {
  rows: number;
  lastTs: number;
}

interface Plan {
  messages: Message[];
  expectedRejected: Map<RejectReason, number>;
  accepted: number;
  expectedWindows: number;
  streams: number;
}

/**
 * `emptyPlusLevel`: whether the broker may carry a topic with an empty level. The embedded broker
 * refuses them (aedes 1.2 would drop the subscriber's connection on one), so on aedes the empty
 * stream level is `h/#` matching zero levels and the empty channel level becomes a single space.
 */
function build(list: Descriptor[], prefix: string, emptyPlusLevel: boolean): Plan {
  const messages: Message[] = [];
  const streams = new Map<string, StreamModel>();
  const multiPool = [...Array.from({ length: 12 }, (_, i) => `v${i}`), ...ODD_STREAMS];
  const groupPool = { 'json-value': ['sv0', 'sv1', 'sv2', 'sv3'], number: ['nv0', 'nv1', 'nv2', 'nv3'] };
  let fresh = 0;
  /** A parse-accepted reading reaches the window store: the outcome the store must give it. */
  const push = (stream: string, ts: number | null, commits: boolean): RejectReason | null => {
    let s = streams.get(stream);
    if (s === undefined) {
      if (streams.size >= MAX_STREAMS) return 'stream_limit';
      s = { rows: 0, lastTs: Number.NEGATIVE_INFINITY };
      streams.set(stream, s);
    }
    if (ts !== null && ts <= s.lastTs) return ts === s.lastTs ? 'duplicate' : 'out_of_order';
    if (commits) {
      s.rows++;
      if (ts !== null) s.lastTs = Math.max(s.lastTs, ts);
    }
    return null;
  };
  const nextTs = (stream: string) => {
    const last = streams.get(stream)?.lastTs ?? Number.NEGATIVE_INFINITY;
    return Number.isFinite(last) ? last + 1000 : T0;
  };
  const tsField = (format: string, ts: number): unknown => (format === 'iso' ? new Date(ts).toISOString() : format === 'string' ? String(ts) : ts);
  const multi = (stream: string, values: number[], format: 'number' | 'iso' | 'string' | 'none', ts: number, extra = 0, pad = false): string => {
    const body: Record<string, unknown> = format === 'none' ? {} : { ts: tsField(format, ts) };
    body.values = valuesOf(values);
    let text = JSON.stringify(body);
    // Unknown top-level fields (here a deeply nested one) are ignored, as zod's object does.
    if (extra > 0) text = `${text.slice(0, -1)},"meta":${'['.repeat(extra)}${']'.repeat(extra)}}`;
    if (pad) text = text.padEnd(MAX_PAYLOAD, ' ');
    return text;
  };

  for (const d of list) {
    switch (d.kind) {
      case 'valid': {
        const stream = multiPool[d.stream % multiPool.length] as string;
        const ts = nextTs(stream);
        const payload = multi(stream, d.values, d.ts, ts, d.extra > 300 ? d.extra : 0, d.padToMax);
        messages.push({ topic: multiTopic(stream)(prefix), payload, reason: push(stream, d.ts === 'none' ? null : ts, true), kind: 'valid' });
        break;
      }
      case 'fresh': {
        const stream = `fresh-${fresh++}`;
        messages.push({ topic: multiTopic(stream)(prefix), payload: multi(stream, d.values, 'number', T0), reason: push(stream, T0, true), kind: 'fresh' });
        break;
      }
      case 'duplicate':
      case 'out_of_order': {
        const stream = multiPool[d.stream % multiPool.length] as string;
        const last = streams.get(stream)?.lastTs ?? Number.NEGATIVE_INFINITY;
        const ts = Number.isFinite(last) ? last - d.back : T0;
        messages.push({ topic: multiTopic(stream)(prefix), payload: multi(stream, d.values, 'number', ts), reason: push(stream, ts, true), kind: d.kind });
        break;
      }
      case 'group': {
        const pool = groupPool[d.format];
        const stream = pool[d.stream % pool.length] as string;
        const ts = d.format === 'json-value' ? nextTs(stream) : null;
        d.order.forEach((channel, i) => {
          const value = (i * 7.25 - 3) * (d.stream % 5);
          const payload = d.format === 'number' ? ` ${value} ` : JSON.stringify({ ts, value });
          messages.push({ topic: `${prefix}/${d.format === 'number' ? 'n' : 's'}/${stream}/${channel}`, payload, reason: push(stream, ts, i === d.order.length - 1), kind: `group-${d.format}` });
        });
        break;
      }
      case 'hostile': {
        const m = d.make(prefix);
        if (!emptyPlusLevel && m.kind === 'empty-stream-level') m.topic = `${prefix}/h`;
        if (!emptyPlusLevel && m.kind === 'empty-channel-level') m.topic = `${m.topic} `;
        // Size is checked before parsing (and after topic matching), whatever the generator meant.
        const size = typeof m.payload === 'string' ? Buffer.byteLength(m.payload) : m.payload.byteLength;
        if (m.reason !== 'no_subscription' && size > MAX_PAYLOAD) m.reason = 'oversized';
        messages.push(m);
        break;
      }
    }
  }
  const expectedRejected = new Map<RejectReason, number>(rejectReasons.map((r) => [r, 0]));
  for (const m of messages) if (m.reason !== null) expectedRejected.set(m.reason, (expectedRejected.get(m.reason) ?? 0) + 1);
  const parseRejected = new Set<RejectReason>(['topic_too_long', 'bad_stream_id', 'oversized', 'rate_limited', 'malformed', 'invalid_payload', 'non_finite', 'bad_timestamp', 'unknown_channel', 'wrong_channel_count', 'no_subscription']);
  const accepted = messages.filter((m) => m.reason === null || !parseRejected.has(m.reason)).length;
  let expectedWindows = 0;
  // The default model keeps a per-stream baseline: a stream's first warmupRows readings are learned, not scored.
  for (const s of streams.values()) expectedWindows += scoredWindows(MANIFEST, s.rows);
  return { messages, expectedRejected, accepted, expectedWindows, streams: streams.size };
}

let broker: TestBroker;
let publisher: MqttClient;

beforeAll(async () => {
  broker = await startTestBroker();
  publisher = await mqtt.connectAsync(broker.url, { protocolVersion: broker.protocolVersion, clientId: `fuzz-pub-${process.pid}`, clean: true, reconnectPeriod: 0 });
});
afterAll(async () => {
  await publisher?.endAsync();
  await broker?.stop();
});

function daemonFor(prefix: string): Promise<CapturedDaemon> {
  return startCapturedDaemon(`fuzz-${prefix.replace(/[^\w-]/g, '-')}`, {
    broker: { url: broker.url, protocolVersion: broker.protocolVersion },
    subscriptions: [
      { topic: `${prefix}/m/+/telemetry`, format: 'json-values', qos: 1 },
      { topic: `${prefix}/s/+/+`, stream: '{1}', channel: '{2}', format: 'json-value', qos: 1 },
      { topic: `${prefix}/n/+/+`, stream: '{1}', channel: '{2}', format: 'number', qos: 1 },
      { topic: `${prefix}/h/#`, format: 'json-values', qos: 1 },
    ],
    // Its valid readings are stamped an hour ahead (see T0).
    ingest: { maxPayloadBytes: MAX_PAYLOAD, maxReadingsPerSecondPerStream: 0, maxFutureSkewMs: 7_200_000, maxStreamIdBytes: MAX_STREAM_ID, maxTopicBytes: MAX_TOPIC },
    window: { maxStreams: MAX_STREAMS, staleAfterMs: 600_000, futureRowToleranceMs: 7_200_000 },
    log: { level: 'warn', rejectLogIntervalMs: 1000 },
  });
}

async function publishAll(messages: Message[], whilePublishing: () => void): Promise<number> {
  let acks = 0;
  for (let i = 0; i < messages.length; i += CHUNK) {
    await Promise.all(
      messages.slice(i, i + CHUNK).map((m) => publisher.publishAsync(m.topic, m.payload, { qos: 1 }).then(() => void acks++)),
    );
    whilePublishing();
  }
  return acks;
}

describe('hostile input through the broker', () => {
  it(`counts every rejection under its reason and scores every valid reading (≥ ${CASES} generated messages, seed ${SEED})`, async () => {
    const prefix = uniquePrefix('fuzz');
    const plan = build(fc.sample(descriptors, { seed: SEED, numRuns: CASES }), prefix, broker.protocolVersion === 5);
    expect(plan.messages.length).toBeGreaterThanOrEqual(CASES);
    for (const reason of rejectReasons) {
      if (reason === 'rate_limited') continue; // limiter off here: rates would make counts timing-dependent
      expect(plan.expectedRejected.get(reason), `the plan exercises ${reason}`).toBeGreaterThan(0);
    }

    const d = await daemonFor(prefix);
    const started = Date.now();
    let notReady = 0;
    try {
      await waitFor(() => d.daemon.readiness().ready, 10_000, 'ready');
      const acks = await publishAll(plan.messages, () => {
        if (!d.daemon.readiness().ready) notReady++;
      });
      expect(acks, 'PUBACKs').toBe(plan.messages.length);
      await d.waitForMetric('sentinel_messages_received_total', plan.messages.length, 30_000).catch(async (err: Error) => {
        const text = await d.metrics();
        const bySub = text.split('\n').filter((l) => l.startsWith('sentinel_messages_received_total'));
        const byKind = new Map<string, number>();
        for (const m of plan.messages) {
          const key = `${m.kind}:${m.topic.slice(prefix.length, prefix.length + 3)}`;
          byKind.set(key, (byKind.get(key) ?? 0) + 1);
        }
        throw new Error(`${err.message}\n${bySub.join('\n')}\nplanned by kind: ${JSON.stringify([...byKind])}`);
      });
      const text = await d.waitForMetric('sentinel_windows_scored_total', plan.expectedWindows, 30_000);
      const elapsed = Date.now() - started;

      const seen = Object.fromEntries(rejectReasons.map((r) => [r, metricValue(text, 'sentinel_readings_rejected_total', { reason: r })]));
      const wanted = Object.fromEntries(rejectReasons.map((r) => [r, plan.expectedRejected.get(r) ?? 0]));
      expect(seen, `rejections by reason (seed ${SEED})`).toEqual(wanted);
      expect(metricValue(text, 'sentinel_readings_queued_total'), 'readings past parsing').toBe(plan.accepted);
      expect(metricValue(text, 'sentinel_windows_scored_total')).toBe(plan.expectedWindows);
      expect(metricValue(text, 'sentinel_windows_failed_total')).toBe(0);
      expect(metricValue(text, 'sentinel_messages_received_total')).toBe(plan.messages.length);
      // A topic too long to match is counted before any rule sees it: under "none", like no_subscription.
      expect(metricValue(text, 'sentinel_messages_received_total', { subscription: 'none' })).toBe((wanted.no_subscription ?? 0) + (wanted.topic_too_long ?? 0));
      expect(metricValue(text, 'sentinel_readings_dropped_total')).toBe(0);
      expect(metricValue(text, 'sentinel_streams_active')).toBeLessThanOrEqual(MAX_STREAMS);
      expect(notReady, 'chunks after which the daemon was not ready').toBe(0);
      expect(d.daemon.readiness().ready).toBe(true);
      expect((await d.readyz()).status).toBe(200);
      // Rejections are logged at most once per reason per rejectLogIntervalMs, not once per message.
      const warnings = d.logText().split('\n').filter((l) => l.includes('"msg":"rejected bad input"')).length;
      expect(warnings).toBeLessThanOrEqual(rejectReasons.length * (Math.ceil(elapsed / 1000) + 1));

      const valid = plan.messages.filter((m) => m.reason === null).length;
      console.info(
        `fuzz seed=${SEED}: ${plan.messages.length} messages (${valid} valid readings, ${plan.streams} streams), ` +
          `${plan.expectedWindows} windows scored, rejected ${JSON.stringify(wanted)}, ${elapsed} ms`,
      );
    } finally {
      expect(await d.stop()).toBe(true);
    }
  });

  it('rejects a timestamp beyond the Date range as bad_timestamp instead of crashing when its window raises an alert', async () => {
    const prefix = uniquePrefix('fuzz-far-ts');
    const d = await daemonFor(prefix);
    try {
      await waitFor(() => d.daemon.readiness().ready, 10_000, 'ready');
      // 8.64e15 ms is the largest time a Date holds; the last row is a fault, so the window alerts.
      // Past the baseline's warm-up and a full window, so the rows, were they taken, would be scored.
      const normal = Math.max(WINDOW, MANIFEST.baseline?.warmupRows ?? 0);
      const rows = Array.from({ length: normal + 2 }, (_, i) => ({ ts: 9e15 + i * 1000, values: valuesOf(CHANNELS.map(() => (i > normal ? 1e6 : 1))) }));
      for (const r of rows) await publisher.publishAsync(`${prefix}/m/far/telemetry`, JSON.stringify(r), { qos: 1 });
      const text = await d.waitForMetric('sentinel_readings_rejected_total', rows.length, 10_000, { reason: 'bad_timestamp' });
      expect(metricValue(text, 'sentinel_windows_scored_total')).toBe(0);
      expect(d.daemon.readiness().ready).toBe(true);
    } finally {
      expect(await d.stop()).toBe(true);
    }
  });
});
