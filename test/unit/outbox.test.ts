import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import type { Alert } from '../../src/alert/alert.js';
import { AlertOutbox } from '../../src/alert/outbox.js';
import { sampleAlert as alert, reopenOutbox as reopen } from '../support/alert.js';

const tempPath = (): string => join(mkdtempSync(join(tmpdir(), 'sentinel-outbox-')), 'sub', 'outbox.jsonl');

describe('alert outbox', () => {
  it('keeps undelivered alerts across a reopen, oldest first', () => {
    const path = tempPath();
    const a = new AlertOutbox(path, 100);
    expect(a.open().pending).toEqual([]);
    for (let i = 1; i <= 5; i++) a.add(alert(i));
    a.done(alert(2).eventId);
    a.done(alert(4).eventId);
    a.close();
    const b = new AlertOutbox(path, 100);
    expect(b.open().pending.map((x) => x.streamId)).toEqual(['s1', 's3', 's5']);
    expect(b.size).toBe(3);
    b.close();
  });

  it('survives a journal line torn by a crash', () => {
    const path = tempPath();
    const a = new AlertOutbox(path, 100);
    a.open();
    a.add(alert(1));
    a.close();
    appendFileSync(path, '{"add":{"eventId":"abc","ty');
    expect(reopen(path)).toEqual({ pending: ['s1'], skippedLines: 1 });
    // compacted: the torn line is gone from the file
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('is bounded: beyond maxAlerts the oldest is dropped and returned', () => {
    const path = tempPath();
    const a = new AlertOutbox(path, 2);
    a.open();
    expect(a.add(alert(1))).toEqual({ dropped: null, error: null });
    expect(a.add(alert(2)).dropped).toBeNull();
    expect(a.add(alert(3)).dropped?.streamId).toBe('s1');
    a.close();
    expect(reopen(path, 2).pending).toEqual(['s2', 's3']);
  });

  it('compacts its journal as deliveries pile up', () => {
    const path = tempPath();
    const a = new AlertOutbox(path, 10);
    a.open();
    for (let i = 0; i < 3000; i++) {
      a.add(alert(i));
      a.done(alert(i).eventId);
    }
    a.add(alert(99_999));
    a.close();
    expect(readFileSync(path, 'utf8').trim().split('\n').length).toBeLessThan(1100);
    expect(reopen(path, 10).pending).toEqual(['s99999']);
  });

  it('names the path and a fix when it cannot be written', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sentinel-outbox-')), 'not-a-dir');
    writeFileSync(file, '');
    expect(() => new AlertOutbox(join(file, 'outbox.jsonl'), 10).open()).toThrow(/outbox\.path .*not-a-dir\/outbox\.jsonl: ENOTDIR.* fix: point outbox\.path at a writable volume/);
  });

  it('fails fast when outbox.path is a directory', () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-outbox-'));
    expect(() => new AlertOutbox(dir, 10).open()).toThrow(/outbox\.path .*: EISDIR.* fix: point outbox\.path at a writable volume/);
  });

  it('does not journal an alert it could not read back: a non-finite score is refused, not written as null', () => {
    const path = tempPath();
    const a = new AlertOutbox(path, 10);
    a.open();
    const { error, dropped } = a.add({ ...alert(1), score: Number.POSITIVE_INFINITY });
    expect(dropped).toBeNull();
    expect(error?.message).toMatch(/alert does not match the alert schema once serialised \(score: /);
    expect(a.size).toBe(0);
    expect(a.journalError).toBeNull(); // the disk is fine: only that alert is refused
    expect(a.done(alert(1).eventId)).toBeNull();
    a.add(alert(2));
    a.close();
    expect(reopen(path)).toEqual({ pending: ['s2'], skippedLines: 0 });
  });

  it('reads back, from a fresh open(), exactly every alert it accepted (property)', () => {
    // Strings over the whole of Unicode, lone surrogates included; numbers over every double, non-finite included.
    const char = fc.oneof(
      fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
      fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
      fc.constantFrom('\n', '\r', '"', '\\', '\u2028', '\u0000'),
    );
    const text = fc.string({ unit: char, maxLength: 24 });
    const hex = fc.stringMatching(/^[0-9a-f]{32}$/);
    const candidate: fc.Arbitrary<Alert> = fc.record(
      {
        eventId: fc.oneof({ weight: 9, arbitrary: hex }, { weight: 1, arbitrary: text }),
        type: fc.constantFrom('raised' as const, 'resolved' as const),
        streamId: text,
        nodeName: text,
        recordTs: text,
        detectedAt: text,
        score: fc.double(),
        peakScore: fc.double(),
        reason: fc.constantFrom('score' as const, 'stale' as const, 'evicted' as const),
        thresholds: fc.record({ raise: fc.double(), clear: fc.double() }),
        model: fc.record({ name: text, version: text }),
        topChannels: fc.array(fc.record({ channel: text, contribution: fc.double() }), { maxLength: 4 }),
      },
      { requiredKeys: ['eventId', 'type', 'streamId', 'nodeName', 'recordTs', 'detectedAt', 'score', 'thresholds', 'model', 'topChannels'] },
    );
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-outbox-prop-'));
    let run = 0;
    fc.assert(
      fc.property(fc.uniqueArray(candidate, { selector: (a) => a.eventId, maxLength: 6 }), fc.integer({ min: 0, max: 6 }), (alerts, delivered) => {
        const path = join(dir, `${run++}.jsonl`);
        const outbox = new AlertOutbox(path, 100);
        outbox.open();
        const accepted: Alert[] = [];
        for (const a of alerts) {
          const { error } = outbox.add(a);
          if (error === null) accepted.push(a);
          // JSON has no Infinity or NaN: such an alert must be refused rather than journaled as null.
          else expect(hasNonFinite(a) || !/^[0-9a-f]{32}$/.test(a.eventId) || a.streamId === '' || a.nodeName === '').toBe(true);
        }
        expect(accepted.length).toBe(alerts.filter((a) => !hasNonFinite(a) && /^[0-9a-f]{32}$/.test(a.eventId) && a.streamId !== '' && a.nodeName !== '').length);
        const done = accepted.slice(0, delivered);
        for (const a of done) outbox.done(a.eventId);
        outbox.close();
        const fresh = new AlertOutbox(path, 100);
        const back = fresh.open();
        fresh.close();
        expect(back.skippedLines).toBe(0);
        // -0 is the one double JSON cannot tell apart: it reads back as 0.
        expect(back.pending).toStrictEqual(accepted.slice(done.length).map(withoutNegativeZero));
      }),
      { numRuns: 200 },
    );
  });
});

function hasNonFinite(value: unknown): boolean {
  if (typeof value === 'number') return !Number.isFinite(value);
  if (value !== null && typeof value === 'object') return Object.values(value).some(hasNonFinite);
  return false;
}

function withoutNegativeZero<T>(value: T): T {
  return JSON.parse(JSON.stringify(value)) as T;
}
