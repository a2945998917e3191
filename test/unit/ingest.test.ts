import { describe, expect, it } from 'vitest';
import { subscriptionSchema } from '../../src/config/schema.js';
import { PayloadParser } from '../../src/ingest/payload.js';
import type { ParseResult } from '../../src/ingest/reading.js';
import { compileRule } from '../../src/ingest/topic.js';

const rule = (topic: string, extra: Record<string, unknown> = {}) => compileRule(subscriptionSchema.parse({ topic, ...extra }), 0);

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
