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
