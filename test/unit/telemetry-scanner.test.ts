import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { PayloadParser } from '../../src/ingest/payload.js';
import { TelemetryScanner } from '../../src/ingest/telemetry-scanner.js';

const CHANNELS = ['pressure', 'temperature', 'débit'];
const NOW = Date.UTC(2026, 0, 1);

/** Number texts: JSON's own, the edges of its grammar, and what it forbids. */
const numberText = fc.oneof(
  fc.double({ noNaN: true, noDefaultInfinity: true }).map((v) => JSON.stringify(v)),
  fc.integer().map(String),
  fc
    .tuple(
      fc.constantFrom('', '-'),
      fc.stringMatching(/^(0|[1-9][0-9]{0,22})$/),
      fc.option(fc.stringMatching(/^[0-9]{1,24}$/), { nil: undefined }),
      fc.option(fc.tuple(fc.constantFrom('e', 'E'), fc.constantFrom('', '+', '-'), fc.integer({ min: 0, max: 400 })), { nil: undefined }),
    )
    .map(([sign, int, frac, exp]) => `${sign}${int}${frac === undefined ? '' : `.${frac}`}${exp === undefined ? '' : `${exp[0]}${exp[1]}${exp[2]}`}`),
  fc.constantFrom('-0', '0.0', '1e308', '3.5e38', '-3.4028235e38', '1e400', '01', '1.', '.5', '+1', '-', '1e', '1e+', 'NaN', 'Infinity', 'null', 'true', '"1"', '1.5.2', '0x10', '1_0'),
);
const space = fc.constantFrom('', '', '', ' ', '\n', '\t ', '\r\n  ');
const channelName = fc.constantFrom(...CHANNELS, 'Pressure', 'flow', '', '__proto__', 'pres\\u0073ure', 'd\\u00e9bit', 'temperature ');
const tsText = fc.oneof(
  numberText,
  fc.constantFrom('"2026-01-01T00:00:00Z"', '"2026-01-01T00:00:00.250+02:00"', '"1767225600000"', '"yesterday"', '""', `"${'9'.repeat(65)}"`, '"2026-01-01T00:00:00\\u005a"', '"2026‑01‑01"'),
  fc.date({ min: new Date(0), max: new Date(NOW + 3 * 86_400_000), noInvalidDate: true }).map((d) => JSON.stringify(d.toISOString())),
);

function member(key: string, value: string, s: string[]): string {
  return `${s[0]}"${key}"${s[1]}:${s[2]}${value}${s[3]}`;
}

const spaces = fc.array(space, { minLength: 4, maxLength: 4 });
const valuesObject = fc
  .array(fc.tuple(channelName, numberText, spaces), { maxLength: 5 })
  .chain((entries) => fc.constant(`{${entries.map(([k, v, s]) => member(k, v, s)).join(',')}}`));
const canonicalValues = fc
  .tuple(fc.shuffledSubarray(CHANNELS, { minLength: 3, maxLength: 3 }), fc.array(numberText, { minLength: 3, maxLength: 3 }), fc.array(spaces, { minLength: 3, maxLength: 3 }))
  .map(([names, values, s]) => `{${names.map((n, i) => member(n, values[i] as string, s[i] as string[])).join(',')}}`);

/** The model's channels with one thing wrong: one missing, one twice, one unknown extra, or one spelt with an escape. */
const nearValues = fc
  .tuple(fc.shuffledSubarray(CHANNELS, { minLength: 3, maxLength: 3 }), fc.array(numberText, { minLength: 4, maxLength: 4 }), fc.nat(2), fc.constantFrom('drop', 'twice', 'extra', 'escape'))
  .map(([names, values, at, fault]) => {
    const keys: string[] = [...names];
    if (fault === 'drop') keys.splice(at, 1);
    else if (fault === 'twice') keys.splice(at + 1, 0, keys[at] as string);
    else if (fault === 'extra') keys.splice(at, 0, 'flow');
    else keys[at] = (keys[at] as string).replace('e', '\\u0065');
    return `{${keys.map((k, i) => `"${k}":${values[i] ?? '1'}`).join(',')}}`;
  });

/** Well-formed payloads: an optional ts and the body, in either order. */
const wellFormed = (multi: boolean): fc.Arbitrary<string> =>
  fc
    .tuple(fc.option(fc.tuple(tsText, spaces), { nil: undefined }), multi ? fc.oneof(canonicalValues, canonicalValues, nearValues) : numberText, spaces, fc.boolean(), space)
    .map(([ts, body, s, tsLast, outer]) => {
      const members = [member(multi ? 'values' : 'value', body, s), ...(ts === undefined ? [] : [member('ts', ts[0], ts[1])])];
      return `${outer}{${(tsLast ? members : members.reverse()).join(',')}}${outer}`;
    });

/** Whole payloads built from parts, in any order, with extra and repeated keys, then sometimes mangled byte-wise. */
const payload = (multi: boolean): fc.Arbitrary<string> => fc.oneof({ arbitrary: wellFormed(multi), weight: 2 }, { arbitrary: anyPayload(multi), weight: 3 });

const anyPayload = (multi: boolean): fc.Arbitrary<string> =>
  fc
    .tuple(
      fc.array(
        fc.oneof(
          fc.tuple(fc.constant('ts'), tsText, spaces),
          fc.tuple(fc.constant(multi ? 'values' : 'value'), multi ? fc.oneof(canonicalValues, canonicalValues, valuesObject, numberText) : numberText, spaces),
          fc.tuple(fc.constantFrom('extra', 'value', 'values', 'TS', 't\\u0073'), fc.oneof(numberText, fc.constant('{"a":1}'), fc.constant('[1,2]')), spaces),
        ),
        { minLength: 0, maxLength: 4 },
      ),
      space,
      space,
      fc.option(fc.tuple(fc.nat(), fc.constantFrom('', '}', '{', ',', '"', ':', '\u0000', '\\', ' ', '1', '\u00ff')), { nil: undefined }),
    )
    .map(([members, before, after, mangle]) => {
      const text = `${before}{${members.map(([k, v, s]) => member(k, v, s)).join(',')}}${after}`;
      if (mangle === undefined) return text;
      const at = mangle[0] % (text.length + 1);
      return text.slice(0, at) + mangle[1] + text.slice(at + (mangle[0] % 3 === 0 ? 1 : 0));
    });

describe('TelemetryScanner', () => {
  it('reads every JSON number text as JSON.parse does, bit for bit, and refuses what JSON refuses', () => {
    const scanner = new TelemetryScanner(['v']);
    fc.assert(
      fc.property(numberText, (text) => {
        let expected: unknown;
        try {
          expected = JSON.parse(`{"value":${text}}`) as unknown;
        } catch {
          expected = undefined;
        }
        const taken = scanner.scan(Buffer.from(`{"value":${text}}`), false);
        const value = (expected as { value?: unknown } | undefined)?.value;
        const wanted = typeof value === 'number' && Math.abs(value) <= 3.4028234663852886e38;
        expect(taken).toBe(wanted);
        if (taken) expect(Object.is(scanner.value, value)).toBe(true);
      }),
      { numRuns: 30_000 },
    );
  });

  it('takes plain payloads: values in channel order, ts as number or text', () => {
    const scanner = new TelemetryScanner(CHANNELS);
    expect(scanner.scan(Buffer.from('{"ts":1767225600000,"values":{"temperature":71,"débit":-0.5,"pressure":1.2}}'), true)).toBe(true);
    expect([...scanner.values]).toEqual([1.2, 71, -0.5]);
    expect(scanner.tsNumber).toBe(1767225600000);
    expect(scanner.scan(Buffer.from(' { "values" : { "pressure" : 1 , "temperature" : 2 , "débit" : 3 } , "ts" : "2026-01-01T00:00:00Z" } \n'), true)).toBe(true);
    expect(scanner.tsText).toBe('2026-01-01T00:00:00Z');
    expect(scanner.scan(Buffer.from('{"values":{"pressure":1,"temperature":2}}'), true)).toBe(false);
    expect(scanner.scan(Buffer.from('{"values":{"pressure":1,"temperature":2,"débit":3,"pressure":4}}'), true)).toBe(false);
    expect(scanner.scan(Buffer.from('{"values":{"pressure":1,"temperature":2,"débit":3},"note":"x"}'), true)).toBe(false);
  });
});

describe('PayloadParser: the fast path gives exactly what the general path gives', () => {
  for (const format of ['json-values', 'json-value'] as const) {
    it(`${format}: same reading or same rejection for every payload`, () => {
      const fast = new PayloadParser(CHANNELS, 4096, 86_400_000, true);
      const general = new PayloadParser(CHANNELS, 4096, 86_400_000, false);
      const single = new PayloadParser(['pressure'], 4096, 86_400_000, true);
      const singleGeneral = new PayloadParser(['pressure'], 4096, 86_400_000, false);
      let accepted = 0;
      fc.assert(
        fc.property(payload(format === 'json-values'), fc.constantFrom(null, 'pressure', 'flow'), (text, channel) => {
          const bytes = Buffer.from(text);
          for (const [a, b] of [
            [fast, general],
            [single, singleGeneral],
          ] as const) {
            const got = a.parse(format, 's1', channel, bytes, NOW, 12.5);
            expect(got).toEqual(b.parse(format, 's1', channel, bytes, NOW, 12.5));
            if (got.ok) accepted++;
          }
        }),
        { numRuns: 40_000 },
      );
      // The generator must reach the accepting side too, or the comparison proves little.
      expect(accepted).toBeGreaterThan(1_000);
    });
  }
});
