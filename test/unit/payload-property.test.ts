import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { isMultiValuePayload, isSingleValuePayload, multiValuePayloadSchema, singleValuePayloadSchema } from '../../src/ingest/payload.js';

const number = fc.oneof(fc.double(), fc.integer(), fc.constantFrom(Number.NaN, Infinity, -Infinity, -0, 1e308));
const anyValue = fc.oneof(number, fc.string(), fc.boolean(), fc.constant(null), fc.constant(undefined), fc.array(number), fc.object());
const ts = fc.oneof(fc.constant(undefined), number, fc.string({ maxLength: 80 }), fc.boolean(), fc.constant(null));
const values = fc.oneof(
  fc.dictionary(fc.string({ maxLength: 300 }), number),
  fc.dictionary(fc.string({ maxLength: 8 }), anyValue),
  anyValue,
);

function withoutUndefined<T extends Record<string, unknown>>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

describe('hot-path payload checks agree with the zod schemas', () => {
  it('multi-value payloads', () => {
    fc.assert(
      fc.property(fc.oneof(fc.record({ ts, values, extra: anyValue }).map(withoutUndefined), anyValue), (payload) => {
        expect(isMultiValuePayload(payload)).toBe(multiValuePayloadSchema.safeParse(payload).success);
      }),
      { numRuns: 20000 },
    );
  });

  it('agree on the cases found so far', () => {
    for (const payload of [JSON.parse('{"values":{"__proto__":NaN}}'.replace('NaN', '"x"')), { values: { a: -0 } }, { ts: 'x'.repeat(65), values: {} }]) {
      expect(isMultiValuePayload(payload)).toBe(multiValuePayloadSchema.safeParse(payload).success);
    }
  });

  it('single-value payloads', () => {
    fc.assert(
      fc.property(fc.oneof(fc.record({ ts, value: anyValue, extra: anyValue }).map(withoutUndefined), anyValue), (payload) => {
        expect(isSingleValuePayload(payload)).toBe(singleValuePayloadSchema.safeParse(payload).success);
      }),
      { numRuns: 20000 },
    );
  });
});

describe('topic matching agrees with the MQTT rules', () => {
  /** The textbook matcher: split both, walk the levels. Returns the wildcard values, or null. */
  function reference(filter: string, topic: string): string[] | null {
    const f = filter.split('/');
    const t = topic.split('/');
    const values: string[] = [];
    for (let i = 0; i < f.length; i++) {
      if (f[i] === '#') {
        if (i === 0 && topic.startsWith('$')) return null;
        values.push(t.slice(i).join('/'));
        return values;
      }
      if (i >= t.length) return null;
      if (f[i] === '+') {
        if (i === 0 && topic.startsWith('$')) return null;
        values.push(t[i] as string);
      } else if (f[i] !== t[i]) return null;
    }
    return t.length === f.length ? values : null;
  }

  it('matches exactly the topics the textbook matcher does, with the same wildcard values', async () => {
    const { compileSubscription } = await import('../../src/ingest/topic.js');
    const { subscriptionSchema } = await import('../../src/config/schema.js');
    const level = fc.constantFrom('a', 'b', 'ab', '$s', '', ' ');
    const filterLevel = fc.constantFrom('a', 'b', 'ab', '+', '$s', '');
    const filter = fc
      .tuple(fc.array(filterLevel, { minLength: 1, maxLength: 4 }), fc.boolean())
      .map(([ls, hash]) => [...ls, ...(hash ? ['#'] : [])].join('/'))
      .filter((f) => f.length > 0);
    const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((ls) => ls.join('/'));
    fc.assert(
      fc.property(filter, topic, (f, t) => {
        const rule = compileSubscription(subscriptionSchema.parse({ topic: f }), 0);
        const ref = reference(f, t);
        const joined = ref === null ? null : ref.join('/');
        const expected = ref === null ? null : ref.length === 0 ? t : joined === '' ? null : joined;
        expect(rule.match(t)?.streamId ?? null).toBe(expected);
      }),
      { numRuns: 20000 },
    );
  });
});
