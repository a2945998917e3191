import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import fc from 'fast-check';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Alert } from '../../src/alert/alert.js';
import { AlertOutbox } from '../../src/alert/outbox.js';
import { sampleAlert as alert } from '../helpers/alert.js';
import { mountTmpfs, type Tmpfs } from '../attack/support/tmpfs.js';


const tempPath = (): string => join(mkdtempSync(join(tmpdir(), 'sentinel-outbox-')), 'sub', 'outbox.jsonl');
const journalLines = (path: string): string[] => readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0);
/** What a fresh start reads from the journal (stream ids of the pending alerts). */
const reopen = (path: string, maxAlerts = 100): { pending: string[]; skippedLines: number } => {
  const outbox = new AlertOutbox(path, maxAlerts);
  const { pending, skippedLines } = outbox.open();
  outbox.close();
  return { pending: pending.map((a) => a.streamId), skippedLines };
};

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

describe('alert outbox on a full disk (a real 64 KiB tmpfs)', () => {
  let fs: Tmpfs;
  let n = 0;
  const diskPath = (): string => join(fs.dir, `case-${n++}`, 'outbox.jsonl');
  beforeAll(() => {
    fs = mountTmpfs(64);
  });
  afterEach(() => {
    fs.free();
    for (let i = 0; i < n; i++) rmSync(join(fs.dir, `case-${i}`), { recursive: true, force: true });
  });
  afterAll(() => fs.dispose());

  it('add degrades instead of throwing, keeps the alert pending, and a write that succeeds later rewrites the journal', () => {
    const path = diskPath();
    const a = new AlertOutbox(path, 100);
    a.open();
    fs.fill();
    const first = a.add(alert(1));
    expect((first.error as NodeJS.ErrnoException | null)?.code).toBe('ENOSPC');
    expect(a.journalError).toMatch(/^ENOSPC: no space left on device/);
    expect(a.add(alert(2)).error).not.toBeNull();
    expect(a.size).toBe(2);
    // Nothing half-written stays behind: the journal is still whole lines only.
    expect(readFileSync(path, 'utf8')).toBe('');
    fs.free();
    expect(a.add(alert(3))).toEqual({ dropped: null, error: null });
    expect(a.journalError).toBeNull();
    expect(journalLines(path)).toHaveLength(3);
    a.close();
    // The two alerts that never reached the disk were rewritten from memory.
    expect(reopen(path)).toEqual({ pending: ['s1', 's2', 's3'], skippedLines: 0 });
  });

  it('cuts a line torn by ENOSPC back to the last whole line', () => {
    const path = diskPath();
    const a = new AlertOutbox(path, 100);
    a.open();
    a.add(alert(1));
    const before = readFileSync(path, 'utf8');
    fs.fill();
    // Longer than the slack left in the journal's last page: the kernel writes part of it, then ENOSPC.
    const { error } = a.add(alert(2, 'x'.repeat(6000)));
    expect((error as NodeJS.ErrnoException | null)?.code).toBe('ENOSPC');
    expect(readFileSync(path, 'utf8')).toBe(before);
    fs.free();
    a.add(alert(3));
    a.close();
    expect(reopen(path)).toEqual({ pending: ['s1', 'x'.repeat(6000), 's3'], skippedLines: 0 });
  });

  it('done on a full disk never throws, and the recovery rewrite leaves out what was delivered meanwhile', () => {
    const path = diskPath();
    const a = new AlertOutbox(path, 100);
    a.open();
    a.add(alert(1));
    a.add(alert(2));
    a.close();
    fs.padToPage(path);
    fs.fill();
    const b = new AlertOutbox(path, 100);
    expect(b.open().pending.map((x) => x.streamId)).toEqual(['s1', 's2']);
    expect(b.journalError).toMatch(/ENOSPC/);
    expect((b.done(alert(1).eventId) as NodeJS.ErrnoException | null)?.code).toBe('ENOSPC');
    expect(b.size).toBe(1);
    fs.free();
    expect(b.done(alert(2).eventId)).toBeNull();
    expect(b.journalError).toBeNull();
    expect(readFileSync(path, 'utf8')).toBe('');
    b.close();
    expect(reopen(path)).toEqual({ pending: [], skippedLines: 0 });
  });

  it('starts on a full disk: keeps the old journal (no temp file left behind), appends while it can, replays it all', () => {
    const path = diskPath();
    const a = new AlertOutbox(path, 100);
    a.open();
    for (let i = 1; i <= 3; i++) a.add(alert(i));
    a.done(alert(2).eventId);
    a.close();
    appendFileSync(path, '{"add":{"torn'); // a crash mid-line, then the disk filled up
    fs.padToPage(path);
    const old = readFileSync(path, 'utf8');
    fs.fill();
    const b = new AlertOutbox(path, 100);
    const opened = b.open();
    expect(opened.pending.map((x) => x.streamId)).toEqual(['s1', 's3']);
    expect(opened.skippedLines).toBe(1);
    expect(b.journalError).toMatch(/ENOSPC/);
    expect(readFileSync(path, 'utf8')).toBe(old);
    expect(existsSync(`${path}.tmp`)).toBe(false);
    expect(b.add(alert(4)).error).not.toBeNull();
    b.close();
    // A second start on the still-full disk sees the same journal: nothing was lost by the first.
    const c = new AlertOutbox(path, 100);
    expect(c.open().pending.map((x) => x.streamId)).toEqual(['s1', 's3']);
    fs.free();
    expect(c.add(alert(5)).error).toBeNull();
    expect(c.journalError).toBeNull();
    c.close();
    expect(reopen(path)).toEqual({ pending: ['s1', 's3', 's5'], skippedLines: 0 });
  });

});

describe('alert outbox with no inode left (a real tmpfs with 16 inodes)', () => {
  let fs: Tmpfs;
  beforeAll(() => {
    fs = mountTmpfs(64, 16);
  });
  afterAll(() => fs.dispose());

  it('starts memory-only when not even its directory can be made, and journals everything once it can', () => {
    const path = join(fs.dir, 'sub', 'outbox.jsonl');
    fs.fillInodes();
    const a = new AlertOutbox(path, 100);
    expect(a.open()).toEqual({ pending: [], skippedLines: 0 });
    expect(a.journalError).toMatch(/ENOSPC/);
    expect(a.add(alert(1)).error).not.toBeNull();
    expect(a.done(alert(1).eventId)).not.toBeNull();
    expect(a.add(alert(2)).error).not.toBeNull();
    expect(existsSync(join(fs.dir, 'sub'))).toBe(false);
    fs.free();
    expect(a.add(alert(3))).toEqual({ dropped: null, error: null });
    expect(a.journalError).toBeNull();
    a.close();
    expect(reopen(path)).toEqual({ pending: ['s2', 's3'], skippedLines: 0 });
  });
});

describe('alert outbox on a read-only volume (a real tmpfs, remounted read-only)', () => {
  it('still fails fast with the path and the fix', () => {
    const ro = mountTmpfs(64);
    try {
      mkdirSync(join(ro.dir, 'sub'));
      execFileSync('mount', ['-o', 'remount,ro', ro.dir]);
      expect(() => new AlertOutbox(join(ro.dir, 'sub', 'outbox.jsonl'), 10).open()).toThrow(/outbox\.path .*: EROFS.* fix: point outbox\.path at a writable volume/);
    } finally {
      ro.dispose();
    }
  });
});
