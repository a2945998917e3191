import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { subscriptionSchema } from '../../src/config/schema.js';
import {
  MqttIngest,
  type IngestHooks,
  type IngestLimits,
  type MessageHandler,
  type MessageSource,
  type SubscriptionEvents,
} from '../../src/ingest/mqtt-ingest.js';
import { PayloadParser } from '../../src/ingest/payload.js';
import { StreamRateLimiter } from '../../src/ingest/rate-limit.js';
import type { ParseResult, Reading, RejectReason } from '../../src/ingest/reading.js';
import { compileSubscription, type Subscription } from '../../src/ingest/topic.js';

const rule = (topic: string, extra: Record<string, unknown> = {}) => compileSubscription(subscriptionSchema.parse({ topic, ...extra }), 0);

describe('topic rules', () => {
  it('derives the stream id from the wildcards by default', () => {
    expect(rule('sensors/+/telemetry').match('sensors/pump-1/telemetry')).toEqual({ streamId: 'pump-1', channel: null });
    expect(rule('plant/+/+/telemetry').match('plant/a/b/telemetry')?.streamId).toBe('a/b');
    expect(rule('plant/#').match('plant/a/b/c')?.streamId).toBe('a/b/c');
  });

  it('applies stream and channel templates', () => {
    const r = rule('site/+/+/+', { stream: '{1}-{2}', channel: '{3}', format: 'json-value' });
    expect(r.match('site/n1/pump-4/pressure')).toEqual({ streamId: 'n1-pump-4', channel: 'pressure' });
  });

  it('does not match other topics, other depths or $SYS', () => {
    const r = rule('sensors/+/telemetry');
    expect(r.match('sensors/pump-1/status')).toBeNull();
    expect(r.match('sensors/pump-1/telemetry/extra')).toBeNull();
    expect(r.match('sensors/telemetry')).toBeNull();
    expect(rule('+/x').match('$SYS/x')).toBeNull();
    expect(rule('#').match('$SYS/broker/load')).toBeNull();
  });

  it('refuses templates that name a missing wildcard, and # before the end', () => {
    expect(() => rule('sensors/+/telemetry', { stream: '{2}' })).toThrow(/subscriptions\.0\.stream: \{2\} refers to wildcard 2/);
    expect(() => rule('a/#/b')).toThrow(/"#" must be the last level/);
  });
});

const NOW = Date.parse('2026-06-01T00:00:00Z');

describe('payload parser', () => {
  const parser = new PayloadParser(['pressure', 'temperature'], 256);
  const single = new PayloadParser(['value'], 256);
  const parse = (p: PayloadParser, format: 'json-value' | 'json-values' | 'number', payload: string | Uint8Array, channel: string | null = null): ParseResult =>
    p.parse(format, 's1', channel, typeof payload === 'string' ? Buffer.from(payload) : payload, NOW, 5);
  const reasonOf = (r: ParseResult): string => (r.ok ? 'ok' : r.reason);

  it('parses multi-channel payloads into one row in model channel order', () => {
    const r = parse(parser, 'json-values', '{"ts":"2026-01-01T00:00:00Z","values":{"temperature":71,"pressure":1.5}}');
    expect(r.ok).toBe(true);
    if (!r.ok) return;
    expect(Array.from(r.reading.values ?? [])).toEqual([1.5, 71]);
    expect(r.reading.ts).toBe(Date.parse('2026-01-01T00:00:00Z'));
    expect(r.reading.tsFromPayload).toBe(true);
    expect(r.reading.channel).toBe(-1);
  });

  it('parses single values with the channel from the rule, and bare numbers', () => {
    const r = parse(parser, 'json-value', '{"ts":1700000000000,"value":21.3}', 'temperature');
    expect(r.ok && r.reading.channel === 1 && r.reading.value === 21.3 && r.reading.ts === 1700000000000).toBe(true);
    const n = parse(single, 'number', ' 42.5 ');
    expect(n.ok && n.reading.value === 42.5 && n.reading.ts === NOW && !n.reading.tsFromPayload).toBe(true);
    const noTs = parse(single, 'json-value', '{"value":1}');
    expect(noTs.ok && noTs.reading.ts === NOW && noTs.reading.tsFromPayload === false).toBe(true);
  });

  it.each([
    ['json-values', '{"values":{"pressure":1', 'malformed'],
    ['json-values', '{"values":{"pressure":"high","temperature":1}}', 'invalid_payload'],
    ['json-values', '{"values":{"pressure":1e999,"temperature":1}}', 'non_finite'],
    ['json-values', '{"values":{"pressure":1,"humidity":1}}', 'unknown_channel'],
    ['json-values', '{"values":{"pressure":1}}', 'wrong_channel_count'],
    ['json-values', '{"ts":"yesterday","values":{"pressure":1,"temperature":2}}', 'bad_timestamp'],
    ['json-values', '[1,2,3]', 'invalid_payload'],
    ['json-values', 'null', 'invalid_payload'],
    ['json-values', `{"values":{"pressure":1,"temperature":2},"pad":"${'x'.repeat(300)}"}`, 'oversized'],
    ['json-value', '{"value":true}', 'invalid_payload'],
    ['json-value', '{"value":1e300}', 'non_finite'],
    ['json-value', '{"ts":9e15,"value":1}', 'bad_timestamp'],
    ['json-value', `{"ts":${Date.parse('2026-06-03T00:00:00Z')},"value":1}`, 'bad_timestamp'],
    ['number', '-1e39', 'non_finite'],
    ['number', 'NaN', 'non_finite'],
    ['number', '-Infinity', 'non_finite'],
    ['number', '12abc', 'malformed'],
  ] as const)('%s %s → %s', (format, payload, reason) => {
    const p = format === 'json-values' ? parser : single;
    expect(reasonOf(parse(p, format, payload))).toBe(reason);
  });

  it('rejects a channel the model does not have and a missing channel on multi-channel models', () => {
    expect(reasonOf(parse(parser, 'json-value', '{"value":1}', 'humidity'))).toBe('unknown_channel');
    expect(reasonOf(parse(parser, 'json-value', '{"value":1}', null))).toBe('wrong_channel_count');
  });

  it('refuses a "__proto__" channel instead of touching the prototype', () => {
    const payload = '{"values":{"pressure":1,"temperature":2,"__proto__":{"polluted":1}}}';
    expect(reasonOf(parse(parser, 'json-values', payload))).toBe('unknown_channel');
    expect(reasonOf(parse(parser, 'json-values', '{"values":{"pressure":1,"temperature":2,"__proto__":3}}'))).toBe('unknown_channel');
    expect(({} as Record<string, unknown>).polluted).toBeUndefined();
  });

  it('rejects binary garbage without throwing', () => {
    const garbage = Uint8Array.from([0xff, 0xfe, 0x00, 0x7b, 0x80, 0x81]);
    expect(reasonOf(parse(parser, 'json-values', garbage))).toBe('malformed');
    expect(reasonOf(parse(single, 'number', garbage))).toBe('malformed');
  });
});

/**
 * A source that delivers as mqtt.js and the embedded broker do: one message at a time, the next only
 * once the previous one is done. It records how each message was finished.
 */
class FakeSource implements MessageSource {
  filters: ReadonlyArray<{ filter: string; qos: 0 | 1 }> = [];
  events: SubscriptionEvents | null = null;
  /** Per delivered message in order: null when acknowledged, the error's message when refused. */
  readonly acks: Array<{ topic: string; error: string | null }> = [];
  /** How many times each message's done was called (must be exactly once). */
  readonly doneCalls: number[] = [];
  private handler: MessageHandler | null = null;
  private readonly waiting: Array<{ topic: string; payload: string; qos: number }> = [];
  private busy = false;
  private draining = false;

  listen(filters: ReadonlyArray<{ filter: string; qos: 0 | 1 }>, handler: MessageHandler, events: SubscriptionEvents): void {
    this.filters = filters;
    this.handler = handler;
    this.events = events;
  }

  publish(topic: string, payload: string, qos = 1): void {
    this.waiting.push({ topic, payload, qos });
    this.drain();
  }

  private drain(): void {
    if (this.draining) return;
    this.draining = true;
    while (!this.busy && this.waiting.length > 0) {
      const message = this.waiting.shift() as { topic: string; payload: string; qos: number };
      const n = this.doneCalls.push(0) - 1;
      this.busy = true;
      this.handler?.(message.topic, message.payload, message.qos, (err) => {
        this.doneCalls[n] = (this.doneCalls[n] as number) + 1;
        if (this.doneCalls[n] !== 1) return;
        this.acks.push({ topic: message.topic, error: err?.message ?? null });
        this.busy = false;
        this.drain();
      });
    }
    this.draining = false;
  }
}

const numberRule = (topic: string, qos: 0 | 1 = 1, index = 0): Subscription => compileSubscription(subscriptionSchema.parse({ topic, format: 'number', qos }), index);

function harness(options: { rules?: Subscription[]; limiter?: StreamRateLimiter | null; limits?: IngestLimits; offer?: (reading: Reading) => void } = {}) {
  const rules = options.rules ?? [numberRule('sensors/+/telemetry')];
  const source = new FakeSource();
  const offered: Array<{ streamId: string; value: number; qos: 0 | 1 }> = [];
  const seen = {
    received: [] as Array<number | null>,
    rejected: [] as Array<{ reason: RejectReason; detail: string; topic: string }>,
    refused: [] as Array<0 | 1>,
    waits: 0,
    errors: [] as string[],
    subscribed: 0,
    subscribeFailed: [] as string[],
  };
  const hooks: IngestHooks = {
    onReceived: (rule) => seen.received.push(rule === null ? null : rule.index),
    onRejected: (reason, detail, topic) => seen.rejected.push({ reason, detail, topic }),
    onRefused: (qos) => seen.refused.push(qos),
    onRateLimitWait: () => seen.waits++,
    onError: (err) => seen.errors.push(err.message),
    onSubscribed: () => seen.subscribed++,
    onSubscribeFailed: (err) => seen.subscribeFailed.push(err.message),
  };
  const sink = {
    offer(reading: Reading, qos: 0 | 1, ack: () => void): void {
      options.offer?.(reading);
      offered.push({ streamId: reading.streamId, value: reading.value, qos });
      ack();
    },
  };
  const parser = new PayloadParser(['value'], 256);
  const ingest = new MqttIngest(source, rules, rules.map(() => ({ parser, sink })), hooks, options.limiter ?? null, options.limits);
  ingest.start();
  return { source, offered, seen, ingest };
}

const topicOf = (streamId: string): string => `sensors/${streamId}/telemetry`;

describe('mqtt ingest', () => {
  it('rejects a topic over maxTopicBytes before any rule, counting UTF-8 bytes', () => {
    const { source, offered, seen } = harness({ limits: { maxTopicBytes: 32, maxStreamIdBytes: 64 } });
    // "sensors/" + "/telemetry" is 18 bytes, so a 14-byte stream id makes a 32-byte topic
    source.publish(topicOf('x'.repeat(14)), '1');
    source.publish(topicOf('x'.repeat(15)), '2');
    // 7 × "é" is 7 characters but 14 bytes
    source.publish(topicOf('é'.repeat(7)), '3');
    source.publish(topicOf(`${'é'.repeat(7)}x`), '4');
    expect(offered.map((r) => r.value)).toEqual([1, 3]);
    expect(seen.rejected.map((r) => r.reason)).toEqual(['topic_too_long', 'topic_too_long']);
    expect(seen.rejected[0]?.detail).toBe('topic longer than ingest.maxTopicBytes 32');
    expect(seen.received).toEqual([0, null, 0, null]);
    expect(source.acks.map((a) => a.error)).toEqual([null, null, null, null]);
  });

  it('judges topic length before matching, and hands on at most 64 characters of the topic', () => {
    const { source, seen } = harness({ limits: { maxTopicBytes: 32, maxStreamIdBytes: 64 } });
    const long = `elsewhere/${'y'.repeat(100)}`;
    source.publish(long, '1');
    expect(seen.rejected).toEqual([{ reason: 'topic_too_long', detail: 'topic longer than ingest.maxTopicBytes 32', topic: long.slice(0, 64) }]);
    source.publish('elsewhere/y', '1');
    expect(seen.rejected[1]?.reason).toBe('no_subscription');
    expect(source.acks.map((a) => a.error)).toEqual([null, null]);
  });

  it('rejects a stream id over maxStreamIdBytes or with a control character, before it costs a rate-limit entry', () => {
    const limiter = new StreamRateLimiter(10, 100);
    const { source, offered, seen } = harness({ limiter, limits: { maxTopicBytes: 1024, maxStreamIdBytes: 8 } });
    source.publish(topicOf('12345678'), '1');
    source.publish(topicOf('123456789'), '2');
    source.publish(topicOf('€€'), '3');
    // 3 characters, 9 bytes
    source.publish(topicOf('€€€'), '4');
    source.publish(topicOf('a\u0007b'), '5');
    source.publish(topicOf('a\u009bb'), '6');
    expect(offered.map((r) => r.value)).toEqual([1, 3]);
    expect(seen.rejected.map((r) => r.reason)).toEqual(['bad_stream_id', 'bad_stream_id', 'bad_stream_id', 'bad_stream_id']);
    expect(seen.rejected[0]).toEqual({ reason: 'bad_stream_id', detail: 'stream id longer than ingest.maxStreamIdBytes 8', topic: topicOf('123456789') });
    expect(seen.rejected[2]?.detail).toMatch(/control character/);
    // the topic matched its rule, so the message counts for that rule
    expect(seen.received).toEqual([0, 0, 0, 0, 0, 0]);
    expect(limiter.tracked).toBe(2);
    expect(source.acks.every((a) => a.error === null)).toBe(true);
  });

  describe('over the rate', () => {
    const NOW = Date.parse('2026-06-01T00:00:00Z');
    beforeEach(() => {
      vi.useFakeTimers();
      vi.setSystemTime(NOW);
    });
    afterEach(() => {
      vi.useRealTimers();
    });

    it('rejects QoS 0 readings past the burst (rate_limited) and acknowledges them', () => {
      const { source, offered, seen } = harness({ limiter: new StreamRateLimiter(10, 100) });
      for (let i = 1; i <= 15; i++) source.publish(topicOf('a'), String(i), 0);
      expect(offered.map((r) => r.value)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(offered.every((r) => r.qos === 0)).toBe(true);
      expect(seen.rejected).toHaveLength(5);
      expect(seen.rejected[0]).toEqual({ reason: 'rate_limited', detail: 'stream a exceeds ingest.maxReadingsPerSecondPerStream', topic: topicOf('a') });
      expect(seen.waits).toBe(0);
      expect(source.acks).toHaveLength(15);
      // another stream has its own burst
      source.publish(topicOf('b'), '1', 0);
      expect(offered).toHaveLength(11);
    });

    it('treats a QoS 1 message on a QoS 0 subscription as QoS 0: rejected, not held', () => {
      const { source, offered, seen } = harness({ rules: [numberRule('sensors/+/telemetry', 0)], limiter: new StreamRateLimiter(2, 100) });
      for (let i = 1; i <= 3; i++) source.publish(topicOf('a'), String(i), 1);
      expect(offered.map((r) => [r.value, r.qos])).toEqual([[1, 0], [2, 0]]);
      expect(seen.rejected.map((r) => r.reason)).toEqual(['rate_limited']);
      expect(seen.waits).toBe(0);
    });

    it('holds QoS 1 readings past the burst until their stream has a token, then takes every one in order', () => {
      const { source, offered, seen } = harness({ limiter: new StreamRateLimiter(10, 100) });
      for (let i = 1; i <= 15; i++) source.publish(topicOf('a'), String(i), 1);
      expect(offered).toHaveLength(10);
      // the 11th is held unacknowledged, and the source sends nothing more until it is done
      expect(source.acks).toHaveLength(10);
      expect(seen.waits).toBe(1);
      vi.advanceTimersByTime(99);
      expect(source.acks).toHaveLength(10);
      vi.advanceTimersByTime(1);
      expect(source.acks).toHaveLength(11);
      // then one every 100 ms: the 15th goes at 500 ms
      vi.advanceTimersByTime(399);
      expect(source.acks).toHaveLength(14);
      vi.advanceTimersByTime(1);
      expect(offered.map((r) => r.value)).toEqual(Array.from({ length: 15 }, (_, i) => i + 1));
      expect(offered.every((r) => r.qos === 1)).toBe(true);
      expect(source.acks.every((a) => a.error === null)).toBe(true);
      expect(source.doneCalls.every((n) => n === 1)).toBe(true);
      expect(seen.rejected).toEqual([]);
      expect(seen.waits).toBe(5);
      expect(vi.getTimerCount()).toBe(0);
    });

    it('refuses a held reading when intake stops while it waits', () => {
      const { source, offered, seen, ingest } = harness({ limiter: new StreamRateLimiter(1, 100) });
      source.publish(topicOf('a'), '1', 1);
      source.publish(topicOf('a'), '2', 1);
      expect(seen.waits).toBe(1);
      void ingest.stop();
      vi.advanceTimersByTime(1000);
      expect(offered.map((r) => r.value)).toEqual([1]);
      expect(source.acks.map((a) => a.error)).toEqual([null, 'intake stopped']);
      expect(seen.refused).toEqual([1]);
    });

    it('catches a throw when a held reading is finally taken, and acknowledges it', () => {
      const { source, offered, seen } = harness({
        limiter: new StreamRateLimiter(1, 100),
        offer: (reading) => {
          if (reading.value === 2) throw new Error('sink broke');
        },
      });
      source.publish(topicOf('a'), '1', 1);
      source.publish(topicOf('a'), '2', 1);
      vi.advanceTimersByTime(1000);
      expect(seen.errors).toEqual(['sink broke']);
      expect(source.acks.map((a) => a.error)).toEqual([null, null]);
      expect(source.doneCalls).toEqual([1, 1]);
      expect(offered.map((r) => r.value)).toEqual([1]);
    });
  });

  it('refuses messages after stop without acknowledging them', () => {
    const { source, offered, seen, ingest } = harness();
    source.publish(topicOf('a'), '1', 1);
    void ingest.stop();
    source.publish(topicOf('a'), '2', 1);
    source.publish(topicOf('a'), '3', 0);
    // QoS 2 from the broker is handled as QoS 1
    source.publish(topicOf('a'), '4', 2);
    expect(offered.map((r) => r.value)).toEqual([1]);
    expect(source.acks.map((a) => a.error)).toEqual([null, 'intake stopped', 'intake stopped', 'intake stopped']);
    expect(seen.refused).toEqual([1, 0, 1]);
    // a refused message is not counted as received or rejected: the broker sends it again
    expect(seen.received).toEqual([0]);
    expect(seen.rejected).toEqual([]);
  });

  it('catches a throw in the handler, reports it and acknowledges the message, so intake goes on', () => {
    const { source, offered, seen } = harness({
      offer: (reading) => {
        if (reading.value === 2) throw new Error('sink broke');
        if (reading.value === 3) throw 'not an Error';
      },
    });
    for (let i = 1; i <= 4; i++) source.publish(topicOf('a'), String(i), 1);
    expect(seen.errors).toEqual(['sink broke', 'not an Error']);
    expect(offered.map((r) => r.value)).toEqual([1, 4]);
    expect(source.acks.map((a) => a.error)).toEqual([null, null, null, null]);
    expect(source.doneCalls).toEqual([1, 1, 1, 1]);
  });

  it('subscribes with every rule\'s filter and QoS, and forwards the outcome', () => {
    const rules = [numberRule('sensors/+/telemetry', 1, 0), numberRule('plant/#', 0, 1)];
    const { source, seen } = harness({ rules });
    expect(source.filters).toEqual([
      { filter: 'sensors/+/telemetry', qos: 1 },
      { filter: 'plant/#', qos: 0 },
    ]);
    expect(seen.subscribed).toBe(0);
    source.events?.onSubscribed();
    expect(seen.subscribed).toBe(1);
    expect(seen.rejected).toEqual([]);
    source.events?.onError(new Error('Not authorized'));
    expect(seen.subscribeFailed).toEqual(['Not authorized']);
    // A refused SUBSCRIBE is no reading: nothing is counted as rejected.
    expect(seen.rejected).toEqual([]);
  });

  it('works without the optional hooks', () => {
    const source = new FakeSource();
    const rejected: RejectReason[] = [];
    const ingest = new MqttIngest(source, [numberRule('sensors/+/telemetry')], [{ parser: new PayloadParser(['value'], 256), sink: { offer: (_r, _q, ack) => ack() } }], {
      onReceived: () => undefined,
      onRejected: (reason) => rejected.push(reason),
      onSubscribeFailed: () => undefined,
    });
    ingest.start();
    source.events?.onSubscribed();
    source.events?.onError(new Error('refused'));
    expect(rejected).toEqual([]);
    void ingest.stop();
    source.publish(topicOf('a'), '1', 1);
    expect(source.acks).toEqual([{ topic: topicOf('a'), error: 'intake stopped' }]);
  });
});
