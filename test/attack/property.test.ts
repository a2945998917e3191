/**
 * A property-based attack on one running daemon (the built CLI on the shared Mosquitto): fast-check
 * generates hostile topics, payloads and timestamps mixed with valid telemetry, and raw HTTP requests
 * to the probe port. Afterwards the process is alive, ready, unharmed and within its memory bound,
 * every message is accounted for, and every valid reading was scored.
 *
 * Exact accounting: valid readings go to "tracked" streams, created first and fed in record order;
 * hostile messages on a tracked stream are built to be refused without touching its window; any other
 * message that could be accepted goes to a stream of its own (a unique id), so it never fills a window.
 */
import net from 'node:net';
import fc from 'fast-check';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { rejectReasons, type RejectReason } from '../../src/ingest/reading.js';
import { metricValue, scrape, waitForMetric } from '../support/metrics.js';
import { BROKER_URL, expectUnharmed, startAttackDaemon, type AttackDaemon } from '../support/attack-daemon.js';
import { DEFAULT_MANIFEST, scoredWindows } from '../support/model.js';

const CHANNELS = ['vibration', 'current', 'pressure', 'temperature', 'flow'];
const MAX_STREAMS = 500;
const MAX_PAYLOAD = 16_384; // ingest.maxPayloadBytes default
const MAX_TOPIC = 1024; // ingest.maxTopicBytes default
const MAX_STREAM_ID = 256; // ingest.maxStreamIdBytes default
const CASES = 4000;
const HTTP_CASES = 200;
const CHUNK = 100;
const SEED = process.env.SENTINEL_FUZZ_SEED === 'random' ? Date.now() % 2 ** 31 : Number(process.env.SENTINEL_FUZZ_SEED ?? 20_261_127);
/**
 * RSS bound: the idle daemon (Node, ONNX Runtime, the model) measures about 150 MiB here; the attack
 * may add the stream table (500 streams of a few hundred bytes), the bounded queue and batches (KiB),
 * mqtt.js buffers for in-flight messages (Receive Maximum × at most 64 KiB topics) and the V8 heap's
 * own growth from garbage. 96 MiB over the start, and 448 MiB in all (the image caps the heap at 320
 * MiB, ONNX Runtime lives outside it), leaves room for that and fails a leak of every hostile message
 * (e.g. a kept 64 KiB topic × ~1,000 long-topic messages).
 */
const RSS_GROWTH_BOUND = 96 * 2 ** 20;
const RSS_BOUND = 448 * 2 ** 20;

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const bytes = (s: string): number => Buffer.byteLength(s);
/** What the daemon receives for a topic: mqtt.js encodes lone surrogates as U+FFFD. */
const wire = (s: string): string => Buffer.from(s).toString();

// ---------------------------------------------------------------------------------------------------
// Topics

/**
 * Whether Mosquitto 2.0 takes a published topic: at most 65,535 bytes (mqtt.js cannot even encode more),
 * at most 200 "/" separators, no wildcard, NUL, C0/C1 control or noncharacter (it drops the client: 129/130).
 */
function mosquittoTakes(topic: string): boolean {
  if (bytes(topic) > 65_535 || topic.split('/').length > 201) return false;
  for (const ch of topic) {
    const cp = ch.codePointAt(0) as number;
    if (ch === '+' || ch === '#') return false;
    if (cp <= 0x1f || (cp >= 0x7f && cp <= 0x9f) || (cp >= 0xfdd0 && cp <= 0xfdef) || (cp & 0xfffe) === 0xfffe) return false;
  }
  return true;
}

type Route =
  | { delivered: false }
  | { delivered: true; reason: 'topic_too_long' | 'no_subscription' | 'bad_stream_id'; streamId: string; subscription: string }
  | { delivered: true; reason: null; streamId: string; subscription: string };

/** The `subscription` label of sentinel_messages_received_total (the rule's filter) by second level. */
const filterOf = (prefix: string, sub: string): string => `${prefix}/${sub}/${sub === 'm' ? '+/telemetry' : sub === 'h' ? '#' : '+/+'}`;

/** Where a topic goes: the broker's match against the daemon's four subscriptions, then the daemon's door. */
function route(prefix: string, rawTopic: string): Route {
  const topic = wire(rawTopic);
  const levels = topic.split('/');
  if (levels[0] !== prefix) return { delivered: false };
  const sub = levels[1];
  let streamId: string;
  if (sub === 'm' && levels.length === 4 && levels[3] === 'telemetry') streamId = levels[2] as string;
  else if ((sub === 's' || sub === 'n') && levels.length === 4) streamId = levels[2] as string;
  else if (sub === 'h' && levels.length >= 2) streamId = levels.slice(2).join('/');
  else return { delivered: false };
  if (bytes(topic) > MAX_TOPIC) return { delivered: true, reason: 'topic_too_long', streamId, subscription: 'none' };
  if (streamId.length === 0) return { delivered: true, reason: 'no_subscription', streamId, subscription: 'none' };
  const subscription = filterOf(prefix, sub);
  if (bytes(streamId) > MAX_STREAM_ID) return { delivered: true, reason: 'bad_stream_id', streamId, subscription };
  return { delivered: true, reason: null, streamId, subscription };
}

const grapheme = fc.string({ unit: 'grapheme', minLength: 1, maxLength: 16 });
/** A very long level (up to 70,000 bytes): over maxStreamIdBytes, maxTopicBytes, or MQTT's 65,535. */
const longLevel = fc
  .tuple(fc.constantFrom('a', 'é', '泵', '🚀', 'x y'), fc.oneof(fc.integer({ min: 200, max: 1100 }), fc.integer({ min: 1100, max: 70_000 })))
  .map(([unit, size]) => unit.repeat(Math.max(1, Math.floor(size / bytes(unit)))));
const controlLevel = fc
  .tuple(fc.string({ maxLength: 8 }), fc.constantFrom('\u0000', '\u0001', '\t', '\n', '\u001b', '\u007f', '\u0085', '\u009f', '\ufffe', '\ufdd0', '+', '#'), fc.string({ maxLength: 8 }))
  .map(([a, c, b]) => `${a}${c}${b}`);
const level = fc.oneof({ weight: 6, arbitrary: grapheme }, { weight: 2, arbitrary: longLevel }, { weight: 1, arbitrary: controlLevel }, { weight: 1, arbitrary: fc.constant('') });

/** A topic shape; `unique` is appended to the stream part so a stream never gets a second message. */
type TopicShape = (prefix: string, unique: string) => string;
const topicShape: fc.Arbitrary<TopicShape> = fc.oneof(
  { weight: 5, arbitrary: level.map((l): TopicShape => (p, u) => `${p}/m/${l}${u}/telemetry`) },
  { weight: 2, arbitrary: fc.tuple(level, fc.oneof(fc.constantFrom(...CHANNELS), level)).map(([l, c]): TopicShape => (p, u) => `${p}/s/${l}${u}/${c}`) },
  { weight: 2, arbitrary: fc.tuple(level, fc.oneof(fc.constantFrom(...CHANNELS), level)).map(([l, c]): TopicShape => (p, u) => `${p}/n/${l}${u}/${c}`) },
  { weight: 2, arbitrary: fc.array(level, { minLength: 0, maxLength: 4 }).map((ls): TopicShape => (p, u) => (ls.length === 0 ? `${p}/h` : `${p}/h/${ls.join('/')}${u}`)) },
  { weight: 1, arbitrary: fc.constantFrom<TopicShape>((p) => `${p}/m//telemetry`, (p) => `${p}/s//vibration`, (p) => `${p}/h/`, (p) => `${p}/h`) },
  // Topics no subscription matches: the broker never delivers them.
  { weight: 1, arbitrary: level.map((l): TopicShape => (p, u) => `${p}/x/${l}${u}`) },
  { weight: 1, arbitrary: level.map((l): TopicShape => (p, u) => `${p}/m/${l}${u}/other/telemetry`) },
  // Over 200 levels: refused by Mosquitto.
  { weight: 1, arbitrary: fc.integer({ min: 199, max: 400 }).map((n): TopicShape => (p, u) => `${p}/h/${Array.from({ length: n }, () => 'l').join('/')}${u}`) },
);

// ---------------------------------------------------------------------------------------------------
// Payloads and timestamps

const EXTREME = [1e30, -1e30, 3.4e38, -3.4e38, 1e20, 1e-30, -0, 5e-324, 3.4028234663852886e38];
const value = fc.oneof(
  { weight: 8, arbitrary: fc.double({ min: -1e4, max: 1e4, noNaN: true, noDefaultInfinity: true }) },
  { weight: 2, arbitrary: fc.integer({ min: -1000, max: 1000 }) },
  { weight: 1, arbitrary: fc.constantFrom(...EXTREME) },
);
const row = fc.tuple(...CHANNELS.map(() => value));
const valuesOf = (v: readonly number[]): Record<string, number> => Object.fromEntries(CHANNELS.map((c, i) => [c, v[i] as number]));
type TsFormat = 'number' | 'iso' | 'string';
const tsText = (format: TsFormat, ts: number): unknown => (format === 'iso' ? new Date(ts).toISOString() : format === 'string' ? String(ts) : ts);

/** Timestamps for streams of their own: any may be accepted or refused; only the door's count is predicted. */
const anyTs = fc.oneof(
  fc.constant(undefined),
  fc.integer({ min: 0, max: 1e13 }),
  fc.constantFrom(9e15, 8.64e15, 8.64e15 + 1, -1, -1e10, 1e300, Number.MAX_SAFE_INTEGER, 0),
  fc.integer({ min: -600_000, max: 600_000 }).map((d) => Date.now() + d),
  fc.date({ noInvalidDate: true }).map((d) => d.toISOString()),
  fc.constantFrom('yesterday', '', 'NaN', '1e999', '-5', '2024-13-45T00:00:00Z', 'ts', '\u0000', '9'.repeat(70), '+275760-09-13T00:00:00.001Z'),
  fc.string({ maxLength: 80 }),
  fc.constantFrom<unknown>(true, null, {}, [1], 'Infinity'),
);

/** Payloads of a stream of its own; the door decides nothing about them here. */
const chaosPayload: fc.Arbitrary<string | Buffer> = fc.oneof(
  fc.uint8Array({ maxLength: 2000 }).map((b) => Buffer.from(b)),
  fc.jsonValue().map((j) => JSON.stringify(j) ?? 'null'),
  fc.string({ unit: 'binary', maxLength: 300 }),
  fc.tuple(anyTs, row).map(([ts, v]) => JSON.stringify({ ts, values: valuesOf(v) })),
  fc.tuple(anyTs, value).map(([ts, v]) => JSON.stringify({ ts, value: v })),
  fc.tuple(row, fc.nat()).map(([v, cut]) => { const s = JSON.stringify({ values: valuesOf(v) }); return s.slice(0, cut % s.length); }),
  fc.constantFrom('NaN', '1e400', '-1e999', ' 12.5 ', '0x10', '{"value":NaN}', '{"values":{"vibration":Infinity}}', '{"value":3.5e38}', '[]', '{}', ''),
  fc.integer({ min: 1, max: 3000 }).map((d) => `{"values":${'['.repeat(d)}${']'.repeat(d)}}`),
  fc.integer({ min: MAX_PAYLOAD + 1, max: MAX_PAYLOAD * 3 }).map((n) => Buffer.alloc(n, 0x7b)),
  fc.tuple(row, fc.subarray(CHANNELS)).map(([v, keep]) => JSON.stringify({ values: Object.fromEntries(keep.map((c) => [c, v[CHANNELS.indexOf(c)] as number])) })),
);

/** Refused on a tracked stream, with the reason: `ts` of the payload relative to the stream's newest row. */
type TrackedHostile =
  | { kind: 'past'; back: number; iso: boolean }
  | { kind: 'duplicate' }
  | { kind: 'future'; text: unknown }
  | { kind: 'garbage-ts'; text: unknown; reason: RejectReason }
  | { kind: 'channels'; keep: string[] }
  | { kind: 'unknown-channel'; key: string }
  | { kind: 'beyond-float32'; literal: string; channel: number }
  | { kind: 'nan-literal'; literal: string }
  | { kind: 'truncated'; cut: number }
  | { kind: 'binary'; bytes: Uint8Array }
  | { kind: 'raw-control' }
  | { kind: 'nested'; depth: number }
  | { kind: 'oversized'; size: number };

const trackedHostile: fc.Arbitrary<TrackedHostile> = fc.oneof(
  fc.record({ kind: fc.constant('past' as const), back: fc.integer({ min: 1, max: 1e9 }), iso: fc.boolean() }),
  fc.constant({ kind: 'duplicate' as const }),
  fc.record({
    kind: fc.constant('future' as const),
    text: fc.oneof(
      fc.integer({ min: 3_600_000, max: 1e12 }).map((d): unknown => Date.now() + d),
      fc.constantFrom<unknown>(9e15, 8.64e15 + 1, 1e300, Number.MAX_SAFE_INTEGER, '9e15', '+275760-09-13T00:00:00.000Z'),
      fc.integer({ min: 3_600_000, max: 1e11 }).map((d): unknown => new Date(Date.now() + d).toISOString()),
    ),
  }),
  fc.oneof(
    fc.constantFrom<unknown>(-1, -1e10, '-5', 'yesterday', '', 'NaN', 'Infinity', '1e999', '2024-13-45T00:00:00Z', '\u0007').map((text) => ({ kind: 'garbage-ts' as const, text, reason: 'bad_timestamp' as RejectReason })),
    fc.constantFrom<unknown>(true, null, {}, [1], '9'.repeat(65)).map((text) => ({ kind: 'garbage-ts' as const, text, reason: 'invalid_payload' as RejectReason })),
  ),
  fc.record({ kind: fc.constant('channels' as const), keep: fc.subarray(CHANNELS, { maxLength: CHANNELS.length - 1 }) }),
  fc.record({ kind: fc.constant('unknown-channel' as const), key: fc.oneof(fc.string({ maxLength: 40 }), fc.constantFrom('constructor', 'toString', 'Vibration', 'vibration ', '')).filter((k) => !CHANNELS.includes(k) && k !== '__proto__') }),
  fc.record({ kind: fc.constant('beyond-float32' as const), literal: fc.constantFrom('3.5e38', '-1e39', '3.4028235e38', '1e999', '-1e400', '1.8e308'), channel: fc.nat({ max: CHANNELS.length - 1 }) }),
  fc.record({ kind: fc.constant('nan-literal' as const), literal: fc.constantFrom('NaN', 'Infinity', '-Infinity', 'undefined', 'nan') }),
  fc.record({ kind: fc.constant('truncated' as const), cut: fc.nat() }),
  fc.record({ kind: fc.constant('binary' as const), bytes: fc.uint8Array({ maxLength: 400 }) }),
  fc.constant({ kind: 'raw-control' as const }),
  fc.record({ kind: fc.constant('nested' as const), depth: fc.integer({ min: 1, max: 2000 }) }),
  fc.record({ kind: fc.constant('oversized' as const), size: fc.integer({ min: MAX_PAYLOAD + 1, max: MAX_PAYLOAD + 10_000 }) }),
);

// ---------------------------------------------------------------------------------------------------
// The plan

/** Tracked streams: fed in record order, every accepted reading counted. */
const STAMPED = ['t0', 't1', 't2', 't3', 'pump 7', 'насос-3', '🚀rocket🔥', 'quote"back\\slash', 'L'.repeat(MAX_STREAM_ID), 'é'.repeat(MAX_STREAM_ID / 2)];
const UNSTAMPED = ['u0', 'u1'];
const GROUPS = { s: ['s0', 's1'], n: ['n0', 'n1'] } as const;

type Descriptor =
  | { kind: 'valid'; stream: number; values: number[]; ts: TsFormat; junk: number; pad: boolean }
  | { kind: 'unstamped'; stream: number; values: number[] }
  | { kind: 'group'; format: 's' | 'n'; stream: number; order: string[]; values: number[] }
  | { kind: 'hostile'; stream: number; attack: TrackedHostile; values: number[] }
  | { kind: 'chaos'; topic: TopicShape; payload: string | Buffer }
  | { kind: 'lookalike'; format: 'm' | 'h' | 's' | 'n'; name: string; channel: number; values: number[]; ts: unknown };

const pick = fc.nat({ max: 1000 });
const descriptors: fc.Arbitrary<Descriptor> = fc.oneof(
  { weight: 30, arbitrary: fc.record({ kind: fc.constant('valid' as const), stream: pick, values: row, ts: fc.constantFrom<TsFormat>('number', 'iso', 'string'), junk: fc.nat({ max: 600 }), pad: fc.boolean() }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('unstamped' as const), stream: pick, values: row }) },
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('group' as const), format: fc.constantFrom('s' as const, 'n' as const), stream: pick, order: fc.shuffledSubarray(CHANNELS, { minLength: CHANNELS.length }), values: row }) },
  { weight: 22, arbitrary: fc.record({ kind: fc.constant('hostile' as const), stream: pick, attack: trackedHostile, values: row }) },
  { weight: 40, arbitrary: fc.record({ kind: fc.constant('chaos' as const), topic: topicShape, payload: chaosPayload }) },
  // Plausible readings of new streams (most are accepted): they fill the table past window.maxStreams.
  {
    weight: 25,
    arbitrary: fc.record({
      kind: fc.constant('lookalike' as const),
      format: fc.constantFrom('m' as const, 'h' as const, 's' as const, 'n' as const),
      name: fc.oneof(grapheme, fc.constantFrom('sensor', 'a/b', 'plant/line-1/pump')),
      channel: fc.nat({ max: CHANNELS.length - 1 }),
      values: row,
      ts: fc.oneof(
        fc.constant(undefined),
        fc.integer({ min: -86_400_000, max: 180_000 }).map((k): unknown => Date.now() + k),
        fc.integer({ min: -86_400_000, max: 0 }).map((k): unknown => new Date(Date.now() + k).toISOString()),
      ),
    }),
  },
);

interface Message {
  topic: string;
  payload: string | Buffer;
  /** Refused by the broker or mqtt.js: sent on a client of its own. */
  rogue: boolean;
  route: Route;
  /** The reason the daemon must count, null when it must accept; undefined when not predicted (chaos). */
  expect: RejectReason | null | undefined;
}

interface Plan {
  messages: Message[];
  windows: number;
  validReadings: number;
  /** Exact counts by reason where the plan decides them; lower bounds for the rest. */
  exact: Map<RejectReason, number>;
  atLeast: Map<RejectReason, number>;
  delivered: number;
  rogue: number;
}

function build(list: Descriptor[], prefix: string): Plan {
  const messages: Message[] = [];
  const rows = new Map<string, number>();
  const lastTs = new Map<string, number>();
  // Two hours back, a second a row: record time stays behind the wall clock (no clock step, no future skew).
  const t0 = Math.floor(Date.now() / 1000) * 1000 - 7_200_000;
  const add = (topic: string, payload: string | Buffer, expected: RejectReason | null | undefined): void => {
    const r = route(prefix, topic);
    const rogue = !mosquittoTakes(wire(topic));
    messages.push({ topic, payload, rogue, route: r, expect: rogue || !r.delivered ? undefined : r.reason ?? expected });
  };
  const commit = (stream: string, ts: number | null): void => {
    rows.set(stream, (rows.get(stream) ?? 0) + 1);
    if (ts !== null) lastTs.set(stream, ts);
  };
  const multi = (stream: string, values: readonly number[], format: TsFormat, ts: number, junk = 0, pad = false): string => {
    let text = JSON.stringify({ ts: tsText(format, ts), values: valuesOf(values) });
    // Unknown top-level fields are ignored: deep junk, control characters (escaped), unicode.
    if (junk > 400) text = `${text.slice(0, -1)},"meta":${'['.repeat(junk)}${']'.repeat(junk)}}`;
    else if (junk > 200) text = `${text.slice(0, -1)},"note":${JSON.stringify(`\u0000\u0007\u001b[31m ${'☃'.repeat(junk)}`)}}`;
    // Padded with spaces to exactly ingest.maxPayloadBytes (in bytes, not UTF-16 units): still accepted.
    if (pad) text = text.padEnd(MAX_PAYLOAD - (bytes(text) - text.length), ' ');
    return text;
  };
  const stamped = (stream: string, values: readonly number[], format: TsFormat = 'number', junk = 0, pad = false): void => {
    const ts = (lastTs.get(stream) ?? t0 - 1000) + 1000;
    add(`${prefix}/m/${stream}/telemetry`, multi(stream, values, format, ts, junk, pad), null);
    commit(stream, ts);
  };
  const unstamped = (stream: string, values: readonly number[]): void => {
    add(`${prefix}/m/${stream}/telemetry`, JSON.stringify({ values: valuesOf(values) }), null);
    commit(stream, null);
  };
  const group = (format: 's' | 'n', stream: string, order: readonly string[], values: readonly number[]): void => {
    const ts = (lastTs.get(stream) ?? t0 - 1000) + 1000;
    for (const channel of order) {
      const v = values[CHANNELS.indexOf(channel)] as number;
      add(`${prefix}/${format}/${stream}/${channel}`, format === 'n' ? ` ${v} ` : JSON.stringify({ ts, value: v }), null);
    }
    commit(stream, format === 's' ? ts : null);
  };
  const hostile = (stream: string, attack: TrackedHostile, values: readonly number[]): void => {
    const last = lastTs.get(stream) as number;
    const body = valuesOf(values);
    const topic = `${prefix}/m/${stream}/telemetry`;
    const next = last + 1000;
    const ok = JSON.stringify({ ts: next, values: body });
    switch (attack.kind) {
      case 'past':
        return add(topic, JSON.stringify({ ts: attack.iso ? new Date(last - attack.back).toISOString() : last - attack.back, values: body }), 'out_of_order');
      case 'duplicate':
        return add(topic, JSON.stringify({ ts: last, values: body }), 'duplicate');
      case 'future':
        return add(topic, JSON.stringify({ ts: attack.text, values: body }), 'bad_timestamp');
      case 'garbage-ts':
        return add(topic, JSON.stringify({ ts: attack.text, values: body }), attack.reason);
      case 'channels':
        return add(topic, JSON.stringify({ ts: next, values: Object.fromEntries(attack.keep.map((c) => [c, body[c] as number])) }), 'wrong_channel_count');
      case 'unknown-channel':
        return add(topic, JSON.stringify({ ts: next, values: { ...body, [attack.key]: 1 } }), 'unknown_channel');
      case 'beyond-float32':
        return add(topic, ok.replace(new RegExp(`("${CHANNELS[attack.channel]}":)[^,}]+`), `$1${attack.literal}`), 'non_finite');
      case 'nan-literal':
        return add(topic, ok.replace(/("current":)[^,}]+/, `$1${attack.literal}`), 'malformed');
      case 'truncated':
        return add(topic, ok.slice(0, attack.cut % ok.length), 'malformed');
      case 'binary':
        return add(topic, Buffer.concat([Buffer.from([0xff]), attack.bytes]), 'malformed');
      case 'raw-control':
        return add(topic, ok.replace('"values"', '"val\u0001ues"').replace('{"ts"', '{"\u0000ts"'), 'malformed');
      case 'nested':
        return add(topic, JSON.stringify({ ts: next, values: body }).replace(/("pressure":)[^,}]+/, `$1${'{"a":'.repeat(Math.min(attack.depth, 900))}1${'}'.repeat(Math.min(attack.depth, 900))}`), 'invalid_payload');
      case 'oversized':
        return add(topic, ok.padEnd(attack.size, ' '), 'oversized');
    }
  };

  // Every tracked stream is in the table before any stream of its own can fill it (window.maxStreams), and
  // has given the default model's per-stream baseline its warm-up readings, so that its fuzzed readings are scored.
  const warm = (i: number): number[] => [1, 10, 4, 40, 30].map((v, c) => v + 0.01 * ((i + c) % 7));
  for (let i = 0; i < Math.max(1, DEFAULT_MANIFEST.baseline?.warmupRows ?? 0); i++) {
    for (const s of STAMPED) stamped(s, warm(i));
    for (const s of UNSTAMPED) unstamped(s, warm(i));
    for (const [format, pool] of Object.entries(GROUPS)) for (const s of pool) group(format as 's' | 'n', s, CHANNELS, warm(i));
  }

  let unique = 0;
  for (const d of list) {
    switch (d.kind) {
      case 'valid':
        stamped(STAMPED[d.stream % STAMPED.length] as string, d.values, d.ts, d.junk, d.pad);
        break;
      case 'unstamped':
        unstamped(UNSTAMPED[d.stream % UNSTAMPED.length] as string, d.values);
        break;
      case 'group': {
        const pool = GROUPS[d.format];
        group(d.format, pool[d.stream % pool.length] as string, d.order, d.values);
        break;
      }
      case 'hostile':
        hostile(STAMPED[d.stream % STAMPED.length] as string, d.attack, d.values);
        break;
      case 'chaos':
        add(d.topic(prefix, `~${unique++}`), d.payload, undefined);
        break;
      case 'lookalike': {
        const stream = `${d.name}~${unique++}`;
        const channel = CHANNELS[d.channel] as string;
        const v = d.values[d.channel] as number;
        if (d.format === 'm' || d.format === 'h') {
          const topic = d.format === 'm' ? `${prefix}/m/${stream}/telemetry` : `${prefix}/h/${stream}`;
          add(topic, JSON.stringify({ ts: d.ts, values: valuesOf(d.values) }), undefined);
        } else add(`${prefix}/${d.format}/${stream}/${channel}`, d.format === 'n' ? String(v) : JSON.stringify({ ts: d.ts, value: v }), undefined);
        break;
      }
    }
  }

  const exactReasons: RejectReason[] = ['topic_too_long', 'no_subscription', 'bad_stream_id', 'duplicate', 'out_of_order', 'rate_limited'];
  const exact = new Map<RejectReason, number>(exactReasons.map((r) => [r, 0]));
  const atLeast = new Map<RejectReason, number>(rejectReasons.map((r) => [r, 0]));
  for (const m of messages) {
    if (m.rogue || !m.route.delivered) continue;
    const reason = m.route.reason ?? m.expect;
    if (reason === null || reason === undefined) continue;
    if (exact.has(reason)) exact.set(reason, (exact.get(reason) as number) + 1);
    atLeast.set(reason, (atLeast.get(reason) as number) + 1);
  }
  let windows = 0;
  // The default model keeps a per-stream baseline: a stream's first warmupRows readings are learned, not scored.
  for (const n of rows.values()) windows += scoredWindows(DEFAULT_MANIFEST, n);
  return {
    messages,
    windows,
    validReadings: [...rows.values()].reduce((a, b) => a + b, 0),
    exact,
    atLeast,
    delivered: messages.filter((m) => !m.rogue && m.route.delivered).length,
    rogue: messages.filter((m) => m.rogue).length,
  };
}

// ---------------------------------------------------------------------------------------------------
// Raw HTTP

interface HttpCase {
  name: string;
  parts: Buffer[];
  gapMs: number;
  /** A whole, well-formed request: it must be answered. */
  complete: boolean;
}

const req = (target: string, headers: readonly string[] = [], method = 'GET', version = 'HTTP/1.1'): string => `${method} ${target} ${version}\r\nHost: x\r\n${[...headers, 'Connection: close'].map((h) => `${h}\r\n`).join('')}\r\n`;
const httpCase = (name: string, text: string | Buffer, complete = true, split = 1, gapMs = 0): HttpCase => {
  const buf = typeof text === 'string' ? Buffer.from(text, 'latin1') : text;
  const size = Math.ceil(buf.length / split);
  return { name, parts: Array.from({ length: split }, (_, i) => buf.subarray(i * size, (i + 1) * size)).filter((p) => p.length > 0), gapMs, complete };
};

function httpCases(port: number): fc.Arbitrary<HttpCase> {
  const path = fc.constantFrom('/metrics', '/healthz', '/readyz', '/', '//', '/\\', '/metrics?%zz', '/metrics?name=%zz&name=sentinel_windows_scored_total', '/readyz#frag', '/%00', '/..%2f..%2fetc/passwd', '/metrics?' + 'name=x&'.repeat(500));
  return fc.oneof(
    path.map((p) => httpCase(`GET ${p.slice(0, 30)}`, req(p))),
    path.map((p) => httpCase(`absolute ${p.slice(0, 30)}`, req(`http://127.0.0.1:${port}${p}`))),
    fc.constantFrom('*', 'example.com:443', 'http://', 'https://x', 'ftp://x/metrics', '\u00e9', 'metrics').map((t) => httpCase(`target ${t}`, req(t))),
    fc.constantFrom('POST', 'PUT', 'DELETE', 'OPTIONS', 'TRACE', 'HEAD', 'get', 'BREW', 'PRI').map((m) => httpCase(`method ${m}`, req('/metrics', [], m))),
    fc.constantFrom('HTTP/1.0', 'HTTP/2.0', 'HTTP/9.9', 'HTTP/1.1 extra', 'http/1.1').map((v) => httpCase(`version ${v}`, req('/healthz', [], 'GET', v))),
    fc.integer({ min: 9_000, max: 120_000 }).map((n) => httpCase(`header ${n} B`, req('/readyz', [`X-Pad: ${'a'.repeat(n)}`]))),
    fc.integer({ min: 100, max: 3000 }).map((n) => httpCase(`${n} headers`, req('/healthz', Array.from({ length: n }, (_, i) => `X-${i}: ${i}`)))),
    fc.constantFrom(
      ['Transfer-Encoding: chunked', 'Content-Length: 5'],
      ['Content-Length: -1'],
      ['Content-Length: 1', 'Content-Length: 2'],
      ['Expect: 100-continue'],
      ['Upgrade: websocket', 'Connection: Upgrade'],
      ['Host: a', 'Host: b'],
      ['X-Bad\u0000: 1'],
      ['X-Unicode: \u00ff\u00fe'],
    ).map((h) => httpCase(`headers ${h.join('|').slice(0, 40)}`, req('/metrics', h), false)),
    fc.constant(httpCase('pipelined', req('/healthz').replace('Connection: close\r\n', '') + req('/readyz').replace('Connection: close\r\n', '') + req('/metrics'))),
    fc.constant(httpCase('http2 preface', 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', false)),
    // Slow: the request trickles in over up to ~2 s (split in pieces), or stops half-way (abandoned).
    fc.tuple(path, fc.integer({ min: 2, max: 8 }), fc.integer({ min: 50, max: 250 })).map(([p, split, gap]) => httpCase(`slow ${p.slice(0, 20)}`, req(p), true, split, gap)),
    fc.tuple(path, fc.integer({ min: 3, max: 30 })).map(([p, cut]) => httpCase('partial', req(p).slice(0, cut), false)),
    fc.uint8Array({ minLength: 1, maxLength: 4096 }).map((b) => httpCase('random bytes', Buffer.from(b), false)),
    fc.uint8Array({ minLength: 1, maxLength: 512 }).map((b) => httpCase('request + random bytes', Buffer.concat([Buffer.from('GET /metrics HTTP/1.1\r\n'), b]), false)),
  );
}

interface HttpResult {
  name: string;
  status: number | null;
  closedByServer: boolean;
  ms: number;
}

/** One raw connection: writes the parts (with gaps), reads until the server closes or `waitMs` passes. */
function rawHttp(port: number, c: HttpCase, waitMs: number): Promise<HttpResult> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect({ host: '127.0.0.1', port });
    let head = '';
    let done = false;
    const finish = (closedByServer: boolean): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      socket.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      resolve({ name: c.name, status: m ? Number(m[1]) : null, closedByServer, ms: Date.now() - started });
    };
    const timer = setTimeout(() => finish(false), waitMs);
    socket.on('data', (d: Buffer) => {
      if (head.length < 256) head += d.toString('latin1');
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      void (async () => {
        for (const [i, part] of c.parts.entries()) {
          if (i > 0) await sleep(c.gapMs);
          if (done) return;
          socket.write(part);
        }
      })();
    });
  });
}

// ---------------------------------------------------------------------------------------------------

/** The telemetry topics' first level (no "/": route() reads it as one level). */
const TP = `attack-prop-${process.pid}-${Date.now().toString(36)}`;
let publisher: MqttClient;
let d: AttackDaemon;

beforeAll(async () => {
  d = await startAttackDaemon('property', {
    subscriptions: [
      { topic: `${TP}/m/+/telemetry`, format: 'json-values', qos: 1 },
      { topic: `${TP}/s/+/+`, stream: '{1}', channel: '{2}', format: 'json-value', qos: 1 },
      { topic: `${TP}/n/+/+`, stream: '{1}', channel: '{2}', format: 'number', qos: 1 },
      { topic: `${TP}/h/#`, format: 'json-values', qos: 1 },
    ],
    ingest: { maxReadingsPerSecondPerStream: 0 },
    // Long enough that no tracked stream goes stale (and is restarted) during the run.
    window: { maxStreams: MAX_STREAMS, staleAfterMs: 600_000 },
  });
  publisher = await mqtt.connectAsync(BROKER_URL, { clientId: `pub-${d.prefix}`, protocolVersion: 5, clean: true, reconnectPeriod: 0 });
});
afterAll(async () => {
  await publisher?.endAsync(true);
  if (d && d.cli.child.exitCode === null) d.cli.child.kill('SIGKILL');
});

/** A topic Mosquitto or mqtt.js refuses goes on a client of its own, which the broker may drop. */
async function sendRogue(m: Message): Promise<string> {
  const client = await mqtt.connectAsync(BROKER_URL, { clientId: `rogue-${d.prefix}`, protocolVersion: 5, clean: true, reconnectPeriod: 0 });
  client.on('error', () => {});
  const outcome = await Promise.race([
    client.publishAsync(m.topic, m.payload, { qos: 1 }).then(
      () => 'acknowledged',
      (err: Error) => `refused: ${err.message.slice(0, 40)}`,
    ),
    new Promise<string>((resolve) => client.once('disconnect', (p) => resolve(`disconnected ${p.reasonCode ?? ''}`))),
    new Promise<string>((resolve) => client.once('close', () => resolve('closed'))),
    sleep(2000).then(() => 'no answer'),
  ]);
  await client.endAsync(true);
  return outcome;
}

/** Runs the HTTP cases `parallel` at a time, with one flood of more connections than the per-client cap. */
async function httpAttack(port: number, cases: HttpCase[], parallel: number): Promise<HttpResult[]> {
  const results: HttpResult[] = [];
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const c = cases[next++] as HttpCase;
      results.push(await rawHttp(port, c, c.complete ? 4000 : 1500));
      if (next === Math.floor(cases.length / 2)) {
        // 20 connections at once, each a request left half-way: the caps close the surplus at once.
        const flood = await Promise.all(Array.from({ length: 20 }, () => rawHttp(port, httpCase('flood', 'GET /metrics HTTP/1.1\r\nHost: x\r\n', false), 800)));
        results.push(...flood);
      }
    }
  };
  await Promise.all(Array.from({ length: parallel }, worker));
  return results;
}

describe('property-based attack on one running daemon', () => {
  it(`stays alive, ready and bounded, accounts for every message and scores every valid reading (${CASES} cases + ${HTTP_CASES} HTTP, seed ${SEED})`, async () => {
    const plan = build(fc.sample(descriptors, { seed: SEED, numRuns: CASES }), TP);
    const http = fc.sample(httpCases(d.port), { seed: SEED, numRuns: HTTP_CASES });
    // The plan exercises what it claims to.
    for (const reason of ['topic_too_long', 'no_subscription', 'bad_stream_id', 'duplicate', 'out_of_order', 'malformed', 'invalid_payload', 'non_finite', 'bad_timestamp', 'unknown_channel', 'wrong_channel_count', 'oversized'] as const) {
      expect(plan.atLeast.get(reason), `the plan exercises ${reason}`).toBeGreaterThan(0);
    }
    expect(plan.rogue, 'topics the broker refuses').toBeGreaterThan(0);
    expect(plan.messages.filter((m) => !m.rogue && !m.route.delivered).length, 'topics no subscription matches').toBeGreaterThan(0);
    expect(plan.messages.some((m) => !m.rogue && bytes(m.topic) > 60_000)).toBe(true);

    await waitForMetric(d.port, 'sentinel_ready', 1, 10_000);
    const rssBefore = await d.metric('process_resident_memory_bytes');
    const started = Date.now();

    const httpDone = httpAttack(d.port, http, 3);
    const rogueOutcomes = new Map<string, number>();
    for (let i = 0; i < plan.messages.length; i += CHUNK) {
      const chunk = plan.messages.slice(i, i + CHUNK);
      await Promise.all(chunk.filter((m) => !m.rogue).map((m) => publisher.publishAsync(m.topic, m.payload, { qos: 1 })));
      for (const m of chunk.filter((x) => x.rogue)) {
        const outcome = (await sendRogue(m)).replace(/\d+$/, 'N');
        rogueOutcomes.set(outcome, (rogueOutcomes.get(outcome) ?? 0) + 1);
      }
    }
    const publishMs = Date.now() - started;
    const httpResults = await httpDone;
    const httpMs = Date.now() - started;

    // Everything delivered has been taken in, and every complete window scored.
    await waitForMetric(d.port, 'sentinel_messages_received_total', plan.delivered, 30_000).catch(async (err: Error) => {
      const got = await scrape(d.port);
      const bySubscription = new Map<string, number>();
      for (const m of plan.messages) if (!m.rogue && m.route.delivered) bySubscription.set(m.route.subscription, (bySubscription.get(m.route.subscription) ?? 0) + 1);
      const lines = got.split('\n').filter((l) => l.startsWith('sentinel_messages_received_total'));
      throw new Error(`${err.message}\nreceived: ${lines.join('; ')}\nplanned: ${JSON.stringify([...bySubscription])}`);
    });
    let text = await waitForMetric(d.port, 'sentinel_windows_scored_total', plan.windows, 30_000);
    await sleep(500);
    text = await scrape(d.port);
    const elapsed = Date.now() - started;
    const seen = Object.fromEntries(rejectReasons.map((r) => [r, metricValue(text, 'sentinel_readings_rejected_total', { reason: r })])) as Record<RejectReason, number>;

    expect(d.cli.child.exitCode, `daemon exited: ${d.cli.stderr()}`).toBeNull();
    expect((await fetch(`http://127.0.0.1:${d.port}/readyz`)).status).toBe(200);
    expect(metricValue(text, 'sentinel_windows_scored_total'), 'every valid reading scored: windows').toBe(plan.windows);
    expect(metricValue(text, 'sentinel_messages_received_total'), 'messages delivered').toBe(plan.delivered);
    for (const [reason, count] of plan.exact) expect(seen[reason], `rejected ${reason} (seed ${SEED})`).toBe(count);
    for (const [reason, count] of plan.atLeast) expect(seen[reason], `rejected ${reason} at least`).toBeGreaterThanOrEqual(count);
    // Every message delivered is refused at the door or in parsing, or queued: once, and only once.
    const refusedBeforeQueue = rejectReasons.filter((r) => r !== 'duplicate' && r !== 'out_of_order' && r !== 'stream_limit').reduce((sum, r) => sum + seen[r], 0);
    expect(refusedBeforeQueue + metricValue(text, 'sentinel_readings_queued_total')).toBe(plan.delivered);
    expect(metricValue(text, 'sentinel_windows_failed_total')).toBe(0);
    expect(metricValue(text, 'sentinel_readings_dropped_total')).toBe(0);
    // The table is bounded; once full, new streams are turned away (none is stale to make room) and no
    // tracked stream lost its place (every valid reading was scored above).
    expect(metricValue(text, 'sentinel_streams_active')).toBeLessThanOrEqual(MAX_STREAMS);
    if (seen.stream_limit > 0) expect(metricValue(text, 'sentinel_streams_active')).toBe(MAX_STREAMS);

    // HTTP: no request reached a bug (5xx); every whole request was answered or closed, never left hanging.
    const statuses = new Map<string, number>();
    for (const r of httpResults) statuses.set(String(r.status ?? (r.closedByServer ? 'closed' : 'abandoned')), (statuses.get(String(r.status ?? (r.closedByServer ? 'closed' : 'abandoned'))) ?? 0) + 1);
    expect(httpResults.filter((r) => r.status !== null && r.status >= 500), 'HTTP 5xx answers').toEqual([]);
    const completes = new Set(http.filter((c) => c.complete).map((c) => c.name));
    expect(httpResults.filter((r) => completes.has(r.name) && r.status === null && !r.closedByServer), 'whole requests left hanging').toEqual([]);
    for (const r of httpResults) {
      if (r.status === null) continue;
      if (r.name === 'GET /metrics?%zz' || r.name === 'absolute /metrics' || r.name === 'absolute /readyz') expect(r.status, r.name).toBe(200);
      if (r.name === 'GET //') expect(r.status, r.name).toBe(404);
    }

    const rssAfter = metricValue(text, 'process_resident_memory_bytes');
    expect(rssAfter - rssBefore, `RSS grew from ${rssBefore} to ${rssAfter}`).toBeLessThan(RSS_GROWTH_BOUND);
    expect(rssAfter).toBeLessThan(RSS_BOUND);

    const mib = (n: number): number => Math.round((n / 2 ** 20) * 10) / 10;
    console.info(
      `ATTACK property ${JSON.stringify({
        seed: SEED,
        cases: CASES,
        messages: plan.messages.length,
        delivered: plan.delivered,
        rogue: plan.rogue,
        rogueOutcomes: Object.fromEntries(rogueOutcomes),
        validReadings: plan.validReadings,
        windows: plan.windows,
        queued: metricValue(text, 'sentinel_readings_queued_total'),
        rejected: seen,
        alerts: metricValue(text, 'sentinel_alerts_total'),
        saturated: metricValue(text, 'sentinel_scores_saturated_total'),
        streams: metricValue(text, 'sentinel_streams_active'),
        http: { cases: httpResults.length, statuses: Object.fromEntries(statuses), rejected: metricValue(text, 'sentinel_http_rejected_total') },
        rssMiB: { before: mib(rssBefore), after: mib(rssAfter) },
        ms: { publish: publishMs, http: httpMs, total: elapsed },
      })}`,
    );
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
    expect(d.cli.logs().find((l) => l.msg === 'stopped')).toMatchObject({ drained: true });
  });
});
