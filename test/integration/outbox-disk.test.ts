/** The alert outbox on a real, tiny tmpfs (mounted here: needs root): a full disk, no inode left, a read-only volume. */
import { execFileSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AlertOutbox } from '../../src/alert/outbox.js';
import { sampleAlert as alert, reopenOutbox as reopen } from '../support/alert.js';
import { mountTmpfs, type Tmpfs } from '../support/tmpfs.js';

const journalLines = (path: string): string[] => readFileSync(path, 'utf8').split('\n').filter((l) => l.length > 0);

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
