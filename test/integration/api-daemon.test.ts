/**
 * The scoring API and the status page inside the daemon: /v1/models and /v1/score answer with the
 * route's live model, an alert decided from MQTT telemetry shows in /status.json, and hot swaps of the
 * model file under a steady API load never break a request or the process (a replaced session is
 * released only once no API run uses it).
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { uniquePrefix, waitFor } from '../support/broker.js';
import { startCapturedDaemon } from '../support/captured-daemon.js';
import { metricValue } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { placeModel, trainPumpModel, type ModelFiles } from '../support/swap.js';

let broker: MosquittoProcess;
let work: string;
let a: ModelFiles;
let b: ModelFiles;

beforeAll(async () => {
  broker = await startMosquitto({ persistence: false });
  work = mkdtempSync(join(tmpdir(), 'sentinel-api-daemon-'));
  // Requests here send raw readings, which only a model without per-stream baselines scores
  // (a baseline-tests model refuses them: test/integration/api.test.ts).
  a = trainPumpModel(61, { name: 'pump-a', family: 'window-pca-t2q' });
  b = trainPumpModel(62, { name: 'pump-b', family: 'window-pca-t2q' });
}, 60_000);
afterAll(async () => {
  await broker?.dispose();
  if (work) rmSync(work, { recursive: true, force: true });
});

describe('scoring API and status page in the daemon', () => {
  it('scores with the live model, shows MQTT alerts on the status page, and survives hot swaps under API load', async () => {
    const prefix = uniquePrefix('apid');
    const modelPath = join(work, 'pump.onnx');
    placeModel(modelPath, a);
    const daemon = await startCapturedDaemon('apid', {
      broker: { url: broker.url, protocolVersion: 5 },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry` }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      model: { name: 'pump', path: modelPath, watch: true },
      api: { enabled: true, port: 0 },
      http: { host: '127.0.0.1', port: 0, statusIntervalMs: 200 },
      log: { level: 'info' },
    });
    const publisher = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clientId: `${prefix.replaceAll('/', '-')}-pub`, reconnectPeriod: 0 });
    try {
      await waitFor(() => daemon.daemon.readiness().ready, 10_000, 'daemon ready');
      const listening = daemon
        .logText()
        .split('\n')
        .filter((line) => line.includes('scoring API listening'))
        .map((line) => JSON.parse(line) as { port: number })[0];
      const port = listening?.port ?? 0;
      expect(port).toBeGreaterThan(0);
      const api = `http://127.0.0.1:${port}`;

      const models = (await (await fetch(`${api}/v1/models`)).json()) as { models: Array<{ name: string; version: string }> };
      expect(models.models.map((m) => [m.name, m.version])).toEqual([['pump', a.manifest.version]]);

      const sim = new PumpSimulator({ seed: 3 });
      const rows = Array.from({ length: a.manifest.window }, () => sim.next().values);
      const spiked = rows.map((r, i) => (i === rows.length - 1 ? r.map((v, c) => (c === 1 ? v + 50 : v)) : r));
      const res = await fetch(`${api}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ windows: [{ values: rows }, { values: spiked }] }) });
      expect(res.status).toBe(200);
      const scored = (await res.json()) as { results: Array<{ score: number; atOrAboveRaise: boolean }> };
      expect(scored.results.map((r) => r.atOrAboveRaise)).toEqual([false, true]);

      // An alert decided from MQTT telemetry shows on the status page.
      const faulty = new PumpSimulator({ seed: 4, startTs: Date.now() - 300_000, faults: [{ kind: 'drift', channel: 1, start: 40, length: 200 }] });
      for (let i = 0; i < 120; i++) {
        const r = faulty.next();
        const values = Object.fromEntries(faulty.channels.map((c, k) => [c, r.values[k]]));
        await publisher.publishAsync(`${prefix}/sensors/p1/telemetry`, JSON.stringify({ ts: r.ts, values }), { qos: 1 });
      }
      const probes = `http://127.0.0.1:${daemon.daemon.httpPort}`;
      await waitFor(async () => {
        const status = (await (await fetch(`${probes}/status.json`)).json()) as { alerts: { open: number; shown: Array<{ streamId: string }> } };
        return status.alerts.open === 1 && status.alerts.shown.some((alert) => alert.streamId === 'p1');
      }, 10_000, 'the alert on the status page');
      const page = await fetch(`${probes}/`);
      expect(page.status).toBe(200);
      expect(await page.text()).toContain('<html');

      // Hot swaps while API requests keep coming: every answer is 200 (or 503 for a run that met a
      // released model), none is lost, and the daemon stays up.
      let stop = false;
      const codes = new Map<number, number>();
      const load = (async () => {
        while (!stop) {
          const r = await fetch(`${api}/v1/score`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ windows: [{ values: rows }, { values: rows }] }) });
          codes.set(r.status, (codes.get(r.status) ?? 0) + 1);
          await r.arrayBuffer();
        }
      })();
      for (const [i, next] of [b, a, b].entries()) {
        placeModel(modelPath, next);
        await daemon.waitForMetric('sentinel_model_swaps_total', i + 1, 15_000, { result: 'swapped' });
      }
      stop = true;
      await load;
      const total = [...codes.values()].reduce((x, y) => x + y, 0);
      expect(total).toBeGreaterThan(10);
      expect([...codes.keys()].filter((code) => code !== 200)).toEqual([]);
      const text = await daemon.metrics();
      expect(metricValue(text, 'sentinel_api_requests_total', { route: 'score', code: '200' })).toBe((codes.get(200) ?? 0) + 1);
      expect(metricValue(text, 'sentinel_internal_errors_total')).toBe(0);
      console.log(`API-DAEMON ${JSON.stringify({ requestsDuringSwaps: total, codes: Object.fromEntries(codes), apiWindows: metricValue(text, 'sentinel_api_windows_scored_total') })}`);
    } finally {
      await publisher.endAsync();
      await daemon.stop();
    }
  }, 120_000);
});
