/**
 * The load publisher (mqtt.js, its own process): floods a fixed number of messages or paces a rate,
 * counting acknowledgements, optionally injecting spike faults and timing their alerts.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { serveAgent, type FaultTiming, type PublisherJob, type PublisherResult } from '../lib/agent.js';
import { TelemetrySource } from '../lib/telemetry.js';

let job: PublisherJob;
let client: MqttClient;
let source: TelemetrySource;
let topics: string[];
let total = 0;
let baseTs = 0;
let firstRound = 0;

const faultStarts = new Map<string, number>();
const alertArrivals = new Map<string, { arrived: number; decided: number }>();
const alerts = { raised: 0, resolved: 0 };

async function prepare(j: PublisherJob): Promise<void> {
  job = j;
  total = j.messages ?? Math.ceil(((j.rate ?? 0) * (j.durationMs ?? 0)) / 1000);
  firstRound = j.firstRound ?? 0;
  source = new TelemetrySource(j.format, j.streams, firstRound + Math.ceil(total / j.streams) + 1, j.seed);
  topics = Array.from({ length: j.streams }, (_, s) => `${j.topicPrefix}/s${s}/${j.topicSuffix}`);
  // One reading per second per stream, ending before now, so record times look like live telemetry.
  baseTs = j.baseTs ?? Date.now() - (firstRound + Math.ceil(total / j.streams)) * 1000;
  client = await mqtt.connectAsync(j.url, { protocolVersion: j.protocolVersion, clientId: j.clientId, clean: true, reconnectPeriod: 0 });
  if (j.alertFilter) {
    client.on('message', (_topic, payload) => {
      const now = wallClock();
      const alert = JSON.parse(payload.toString()) as { type: 'raised' | 'resolved'; streamId: string; detectedAt: string };
      alerts[alert.type]++;
      // The daemon's stream id holds every wildcard level (e.g. "r0/s12"); ours is the last one.
      const streamId = alert.streamId.slice(alert.streamId.lastIndexOf('/') + 1);
      if (alert.type === 'raised' && !alertArrivals.has(streamId)) alertArrivals.set(streamId, { arrived: now, decided: Date.parse(alert.detectedAt) });
    });
    await client.subscribeAsync(j.alertFilter, { qos: 1 });
  }
}

function run(): Promise<PublisherResult> {
  const { qos, streams, window } = job;
  const paced = job.rate !== undefined;
  const options = { qos } as const;
  const faults = job.faults;
  const faulted = new Set<number>();
  const pendingFaults = new Set<number>();
  let faultCursor = 0;
  let nextFaultAt = faults ? faults.startAfterMs : Number.POSITIVE_INFINITY;
  let next = 0;
  let outstanding = 0;
  let acked = 0;
  let errors = 0;
  let maxLag = 0;
  let filling = false;
  let due = paced ? 0 : total;
  let started = 0;
  let lastAck = 0;

  return new Promise((resolve) => {
    const finish = (): void => {
      const elapsedMs = lastAck - started;
      // Alerts of late faults may still be on their way.
      setTimeout(() => resolve({ published: next, acked, errors, elapsedMs, maxLag, faults: faultTimings(), alerts: { ...alerts } }), faults ? 1500 : 0);
    };
    const onAck = (err?: Error): void => {
      outstanding--;
      if (err) errors++;
      else acked++;
      lastAck = performance.now();
      if (next < due) fill();
      else if (outstanding === 0 && next >= total) finish();
    };
    const publish = (k: number): void => {
      const s = k % streams;
      const round = firstRound + Math.floor(k / streams);
      let spike = false;
      if (pendingFaults.has(s)) {
        pendingFaults.delete(s);
        spike = true;
        faultStarts.set(`s${s}`, wallClock());
      }
      outstanding++;
      client.publish(topics[s] as string, source.payload(s, round, baseTs + round * 1000, spike), options, onAck);
    };
    // Publish callbacks may run synchronously; the flag keeps fill() from recursing into itself.
    const fill = (): void => {
      if (filling) return;
      filling = true;
      while (outstanding < window && next < due) publish(next++);
      filling = false;
    };
    started = performance.now();
    lastAck = started;
    if (!paced) {
      fill();
      return;
    }
    const rate = job.rate as number;
    const durationMs = job.durationMs as number;
    const timer = setInterval(() => {
      const elapsed = performance.now() - started;
      due = Math.min(total, Math.floor((rate * elapsed) / 1000));
      maxLag = Math.max(maxLag, due - next);
      while (faults && elapsed >= nextFaultAt && faulted.size < streams) {
        let s = (faultCursor++ * 7919 + 3) % streams;
        while (faulted.has(s)) s = (s + 1) % streams;
        faulted.add(s);
        pendingFaults.add(s);
        nextFaultAt += faults.everyMs;
      }
      fill();
      if (elapsed >= durationMs || next >= total) {
        clearInterval(timer);
        total = next;
        due = next;
        if (outstanding === 0) finish();
      }
    }, 2);
  });
}

/** Epoch ms with sub-ms resolution, comparable with the daemon's detectedAt (same machine clock). */
function wallClock(): number {
  return performance.timeOrigin + performance.now();
}

function faultTimings(): FaultTiming[] {
  const out: FaultTiming[] = [];
  for (const [streamId, at] of faultStarts) {
    const alert = alertArrivals.get(streamId);
    out.push({ streamId, alertAfterMs: alert ? alert.arrived - at : null, decisionAfterMs: alert ? alert.decided - at : null });
  }
  return out;
}

serveAgent<PublisherJob, never, PublisherResult>({
  prepare,
  go: run,
  stop: async () => {
    await client.endAsync();
    return { published: 0, acked: 0, errors: 0, elapsedMs: 0, maxLag: 0, faults: [], alerts };
  },
});
