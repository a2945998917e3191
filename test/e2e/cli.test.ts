import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { startCli, runCli } from '../support/cli.js';
import { connectClient, startTestBroker, uniquePrefix, waitFor, type TestBroker } from '../support/broker.js';
import { metricValue, waitForMetric } from '../support/metrics.js';
import { DEFAULT_MANIFEST, DEFAULT_MODEL, DEFAULT_WARMUP_ROWS, scoredWindows } from '../support/model.js';

let broker: TestBroker;
beforeAll(async () => {
  broker = await startTestBroker();
});
afterAll(async () => broker.stop());

function writeConfig(config: Record<string, unknown>): string {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-e2e-'));
  const path = join(dir, 'sentinel.yaml');
  writeFileSync(path, stringify({ outbox: { path: join(dir, 'outbox.jsonl') }, ...config }));
  return path;
}

describe('sentinel CLI end to end', () => {
  it('run: scores a fault into one raised and one resolved alert, serves probes, drains on SIGTERM and exits 0', async () => {
    const prefix = uniquePrefix('e2e');
    const configPath = writeConfig({
      nodeName: 'e2e-node',
      broker: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: `sentinel-${prefix.replace(/\//g, '-')}` },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      http: { host: '127.0.0.1', port: 0 },
      model: { path: DEFAULT_MODEL, warmupRuns: 1 },
      // A long batch delay leaves windows waiting in the batcher at SIGTERM: the drain must score them.
      batch: { maxSize: 1024, maxDelayMs: 60_000 },
    });
    const daemon = startCli(['run', '--config', configPath]);
    const client = await connectClient(broker, `e2e-${process.pid}`);
    const alerts: Alert[] = [];
    client.on('message', (_t, m) => alerts.push(alertSchema.parse(JSON.parse(m.toString()))));
    await client.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });
    try {
      await waitFor(() => daemon.logs().some((l) => l.msg === 'sentinel ready'), 20_000, 'sentinel ready');
      const port = daemon.logs().find((l) => l.msg === 'sentinel ready')?.httpPort as number;
      expect((await fetch(`http://127.0.0.1:${port}/healthz`)).status).toBe(200);
      await waitFor(() => daemon.logs().some((l) => l.msg === 'subscribed'), 10_000, 'subscribed');
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);

      // The spike comes after the default model's per-stream baseline warm-up.
      const sim = new PumpSimulator({ seed: 11, faults: [{ kind: 'spike', channel: 2, start: DEFAULT_WARMUP_ROWS + 50, length: 12 }] });
      const rows = 260;
      const scored = scoredWindows(DEFAULT_MANIFEST, rows);
      for (let i = 0; i < rows; i++) {
        const r = sim.next();
        const payload = { ts: new Date(r.ts).toISOString(), values: Object.fromEntries(sim.channels.map((c, k) => [c, r.values[k]])) };
        await client.publishAsync(`${prefix}/sensors/pump-7/telemetry`, JSON.stringify(payload), { qos: 1 });
      }
      const before = await waitForMetric(port, 'sentinel_readings_queued_total', rows);
      expect(metricValue(before, 'sentinel_messages_received_total')).toBe(rows);
      // Windows are still waiting for their batch: the SIGTERM drain has to score them.
      expect(metricValue(before, 'sentinel_windows_scored_total')).toBeLessThan(scored);

      daemon.child.kill('SIGTERM');
      expect(await daemon.exited).toBe(0);
      const stopped = daemon.logs().find((l) => l.msg === 'stopped');
      expect(stopped).toMatchObject({ drained: true, queued: rows, scored, queueDepth: 0 });
      await waitFor(() => alerts.length >= 2, 5_000, 'alerts');
      await new Promise((resolve) => setTimeout(resolve, 200));
      expect(alerts.map((a) => `${a.type}:${a.streamId}`)).toEqual(['raised:pump-7', 'resolved:pump-7']);
      expect(alerts[0]?.topChannels[0]?.channel).toBe('pressure');
      expect(stopped?.alerts).toBe(2);
    } finally {
      if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
      await client.endAsync();
    }
  });

  it('run: an invalid config stops before connecting, listing every problem by field path', async () => {
    const configPath = writeConfig({ broker: { url: 'not-a-url' }, queue: { capacity: -1 }, model: { executionProviders: ['tpu'] } });
    const { code, stderr, stdout } = await runCli(['run', '--config', configPath]);
    expect(code).toBe(2);
    expect(stderr).toMatch(/broker\.url: .* fix:/);
    expect(stderr).toMatch(/queue\.capacity:/);
    expect(stderr).toMatch(/model\.executionProviders\.0:/);
    expect(stdout).not.toMatch(/connected to broker/);
  });

  it('run: a model that breaks the contract fails start-up with the reason, exit 1', async () => {
    const configPath = writeConfig({ broker: { url: broker.url }, http: { host: '127.0.0.1', port: 0 }, model: { path: '/nonexistent/model.onnx' } });
    const { code, stderr } = await runCli(['run', '--config', configPath]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/cannot read manifest/);
  });

  it('check-config prints the effective config with secrets redacted', async () => {
    const configPath = writeConfig({ broker: { url: 'mqtt://broker:1883', username: 'u', password: 's3cret-pw' } });
    const { code, stdout } = await runCli(['check-config', '--config', configPath], { SENTINEL_NODE_NAME: 'edge-x' });
    expect(code).toBe(0);
    expect(stdout).toContain('config OK');
    expect(stdout).toContain('"clientId": "sentinel-edge-x"');
    expect(stdout).not.toContain('s3cret-pw');
    expect(stdout).toContain('[redacted]');
  });

  it('unknown commands and no command print usage and exit 2', async () => {
    expect((await runCli(['frobnicate'])).code).toBe(2);
    expect((await runCli([])).stdout).toMatch(/usage: sentinel/);
  });
});
