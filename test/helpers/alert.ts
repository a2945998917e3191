/** A valid alert to journal or publish in tests: `n` is its record time (ms) and its score. */
import { alertEventId, type Alert } from '../../src/alert/alert.js';

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
