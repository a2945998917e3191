import { appendFileSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { alertEventId, type Alert } from '../../src/alert/alert.js';
import { AlertOutbox } from '../../src/alert/outbox.js';

function alert(n: number): Alert {
  return {
    eventId: alertEventId(`s${n}`, 'raised', n, 'sha256:x'),
    type: 'raised',
    streamId: `s${n}`,
    nodeName: 'n',
    recordTs: new Date(n).toISOString(),
    detectedAt: new Date(n).toISOString(),
    score: n,
    thresholds: { raise: 1, clear: 1 },
    model: { name: 'm', version: 'sha256:x' },
    topChannels: [],
  };
}

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
  });

  it('survives a journal line torn by a crash', () => {
    const path = tempPath();
    const a = new AlertOutbox(path, 100);
    a.open();
    a.add(alert(1));
    a.close();
    appendFileSync(path, '{"add":{"eventId":"abc","ty');
    const b = new AlertOutbox(path, 100);
    const { pending, skippedLines } = b.open();
    expect(pending.map((x) => x.streamId)).toEqual(['s1']);
    expect(skippedLines).toBe(1);
    // compacted: the torn line is gone from the file
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(1);
  });

  it('is bounded: beyond maxAlerts the oldest is dropped and returned', () => {
    const path = tempPath();
    const a = new AlertOutbox(path, 2);
    a.open();
    expect(a.add(alert(1))).toBeNull();
    expect(a.add(alert(2))).toBeNull();
    expect(a.add(alert(3))?.streamId).toBe('s1');
    a.close();
    const b = new AlertOutbox(path, 2);
    expect(b.open().pending.map((x) => x.streamId)).toEqual(['s2', 's3']);
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
    expect(new AlertOutbox(path, 10).open().pending.map((x) => x.streamId)).toEqual(['s99999']);
  });

  it('names the path and a fix when it cannot be written', () => {
    const file = join(mkdtempSync(join(tmpdir(), 'sentinel-outbox-')), 'not-a-dir');
    writeFileSync(file, '');
    expect(() => new AlertOutbox(join(file, 'outbox.jsonl'), 10).open()).toThrow(/outbox\.path .*not-a-dir\/outbox\.jsonl: .* fix: point outbox\.path at a writable volume/);
  });
});
