import { describe, expect, it } from 'vitest';
import type { Alert } from '../../src/alert/alert.js';
import { DEMO_PERIOD_MS, DEMO_START_TS, formatSummary, matchAlerts, recordRow, type InjectedFault, type ReceivedAlert } from '../../src/cli/demo.js';

function received(type: Alert['type'], streamId: string, row: number, receivedAt = 0): ReceivedAlert {
  const alert: Alert = {
    eventId: '0'.repeat(32),
    type,
    streamId,
    nodeName: 'demo',
    recordTs: new Date(DEMO_START_TS + row * DEMO_PERIOD_MS).toISOString(),
    detectedAt: new Date(0).toISOString(),
    score: 1,
    thresholds: { raise: 1, clear: 1 },
    model: { name: 'm', version: 'v' },
    topChannels: [],
  };
  return { alert, receivedAt };
}

const fault = (streamId: string, kind: InjectedFault['kind'], start: number, length: number, sentAt: number | null = 1_000): InjectedFault => ({
  streamId,
  kind,
  channel: 'flow',
  start,
  length,
  sentAt,
});

describe('demo summary: injected faults matched to the alerts received', () => {
  const ctx = { window: 20, sentRows: 800 };

  it('matches by stream and rows: a raise from the first fault row to the last plus window − 1', () => {
    const faults = [
      fault('pump-1', 'spike', 200, 15),
      fault('pump-2', 'drift', 200, 15),
      fault('pump-3', 'stuck', 200, 15),
      fault('pump-4', 'noise', 200, 15),
    ];
    const alerts = [
      received('raised', 'pump-1', 202, 1_050),
      received('resolved', 'pump-1', 240),
      // The last window that still holds a fault row ends at 214 + 19 = 233.
      received('raised', 'pump-2', 233, 1_400),
      received('raised', 'pump-3', 234),
      // Raised on another stream inside pump-4's rows: not pump-4's detection, and a false alarm.
      received('raised', 'pump-9', 205),
    ];
    const { outcomes, falseAlarms } = matchAlerts(faults, alerts, ctx);
    expect(outcomes.map((o) => o.status)).toEqual(['detected', 'detected', 'missed', 'missed']);
    expect(outcomes[0]).toMatchObject({ raisedRow: 202, delayRows: 2, delayMs: 50 });
    expect(outcomes[1]).toMatchObject({ raisedRow: 233, delayRows: 33, delayMs: 400 });
    expect(outcomes[2]).toMatchObject({ lastRow: 233 });
    expect(falseAlarms.map((a) => `${a.alert.streamId}@${recordRow(a.alert)}`)).toEqual(['pump-3@234', 'pump-9@205']);
  });

  it('an alert already open when a fault begins is not a detection; faults past the last row sent were not injected', () => {
    const faults = [fault('pump-1', 'noise', 300, 50), fault('pump-2', 'stuck', 790, 30), fault('pump-3', 'spike', 900, 10, null)];
    const alerts = [received('raised', 'pump-1', 280), received('resolved', 'pump-1', 400)];
    const { outcomes, falseAlarms } = matchAlerts(faults, alerts, ctx);
    expect(outcomes.map((o) => o.status)).toEqual(['already-open', 'missed', 'not-sent']);
    expect(outcomes[0]).toMatchObject({ openSinceRow: 280 });
    // Cut short by the end of the run: nothing after row 799 was ever scored.
    expect(outcomes[1]).toMatchObject({ lastRow: 799 });
    // The open alert explains nothing of its own: it was raised before any fault.
    expect(falseAlarms).toHaveLength(1);

    // A resolve before the fault closes it: then the fault is plainly missed.
    const closed = matchAlerts(faults.slice(0, 1), [received('raised', 'pump-1', 280), received('resolved', 'pump-1', 290)], ctx);
    expect(closed.outcomes[0]!.status).toBe('missed');
  });

  it('the summary says detected only where an alert was raised, names what was missed, and lists false alarms', () => {
    const faults = [fault('pump-1', 'spike', 200, 15), fault('pump-3', 'stuck', 320, 120), fault('pump-1', 'noise', 300, 50), fault('pump-2', 'drift', 900, 10, null)];
    const alerts = [received('raised', 'pump-1', 202, 1_020), received('raised', 'pump-2', 50)];
    const { outcomes, falseAlarms } = matchAlerts(faults, alerts, ctx);
    const text = formatSummary(outcomes, falseAlarms, ctx);
    const lines = text.split('\n');
    expect(lines[0]).toBe('summary: 1 of 3 injected faults raised an alert (window 20 rows; one row is 1 s of record time)');
    expect(lines[1]).toMatch(/^ {2}pump-1 {2}spike {2}flow {2}rows 200–214 +detected: raised at row 202, 2 rows after onset, 0\.02 s after its first row was sent$/);
    expect(lines[2]).toMatch(/pump-3 {2}stuck .*MISSED: no alert raised on pump-3 in rows 320–458$/);
    // The spike's alert is still open when the noise begins at row 300 (no resolve came): not a detection.
    expect(lines[3]).toMatch(/pump-1 {2}noise .*not detected on its own: an alert raised at row 202 was still open when it began$/);
    expect(lines[4]).toMatch(/pump-2 {2}drift .*rows 900–909 +not injected: the run stopped after 800 rows$/);
    expect(lines[5]).toBe('  not detected in this run: stuck (see docs/models.md, "Known blind spots")');
    expect(lines[6]).toBe('  false alarms (raised outside every fault): pump-2 at row 50');
    expect(lines.filter((l) => l.includes('detected: raised'))).toHaveLength(1);
  });
});
