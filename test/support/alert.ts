/** Alerts for tests: a valid one to journal or publish, and an outbox journal read back as a fresh start would. */
import { alertEventId, type Alert } from '../../src/alert/alert.js';
import { AlertOutbox } from '../../src/alert/outbox.js';

/** `n` is the alert's record time (ms) and its score. */
export function sampleAlert(n: number, streamId = `s${n}`, fields: Partial<Alert> = {}): Alert {
  const version = fields.model?.version ?? 'sha256:x';
  return {
    eventId: alertEventId(streamId, 'raised', n, version),
    type: 'raised',
    streamId,
    nodeName: 'n',
    recordTs: new Date(n).toISOString(),
    detectedAt: new Date(n).toISOString(),
    score: n,
    thresholds: { raise: 1, clear: 1 },
    model: { name: 'm', version },
    topChannels: [],
    ...fields,
  };
}

/** What a fresh start reads from the journal at `path` (stream ids of the pending alerts). */
export function reopenOutbox(path: string, maxAlerts = 100): { pending: string[]; skippedLines: number } {
  const outbox = new AlertOutbox(path, maxAlerts);
  const { pending, skippedLines } = outbox.open();
  outbox.close();
  return { pending: pending.map((a) => a.streamId), skippedLines };
}
