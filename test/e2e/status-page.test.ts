/**
 * The status page in a real headless browser (Debian's chromium through playwright-core), against a
 * ProbeServer + StatusPage fed by the real TopStreams/OpenAlerts/buildStatusSnapshot from a fake node.
 * Set STATUS_PAGE_SCREENSHOT=docs/status-page.png to refresh the README's screenshot.
 */
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium, type Browser } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, haveChromium, shows } from '../support/browser.js';
import { sampleAlert } from '../support/alert.js';
import { SentinelMetrics } from '../../src/observe/metrics.js';
import { ProbeServer } from '../../src/observe/probe-server.js';
import { buildStatusSnapshot, OpenAlerts, StatusPage, TopStreams, type StatusInputs } from '../../src/observe/status-page.js';

if (!haveChromium) console.warn(`status page browser test skipped: no chromium at ${CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)`);

const INTERVAL_MS = 500;

/** A fake node: what the daemon would feed the status page, driven by the test. */
class FakeNode {
  readonly top = new TopStreams(10);
  readonly alerts = new OpenAlerts(256);
  received = 0;
  scored = 0;
  raised = 0;
  private tick = 0;

  constructor(
    readonly version: string,
    readonly startedAt: string,
  ) {}

  inputs(): StatusInputs {
    // Every tick the "pipeline" scores a dozen pumps; two of them run hot.
    this.tick++;
    for (let i = 0; i < 12; i++) {
      const base = i === 3 ? 1.6 : i === 7 ? 0.8 : 0.15 + 0.05 * (i % 4);
      this.top.offer(`plant-a/pump-${String(i).padStart(2, '0')}`, base + 0.25 * Math.sin(this.tick / 3 + i));
    }
    this.received += 480;
    this.scored += 120;
    return {
      version: this.version,
      nodeName: 'edge-node-7',
      startedAt: this.startedAt,
      brokerConnected: true,
      models: [
        { model: 'pump', loaded: true, name: 'pump-autoencoder', version: 'sha256:3f9a1c', provider: 'cuda', raiseThreshold: 1, clearThreshold: 0.6 },
        { model: 'valve', loaded: true, name: 'valve-pca', version: 'sha256:81be07', provider: 'cpu', raiseThreshold: 1.2, clearThreshold: 0.8 },
      ],
      queue: { depth: 17, capacity: 10_000 },
      counters: { received: this.received, scored: this.scored, raised: this.raised, resolved: 0, dropped: 0 },
      rejects: { parse_error: 12, non_finite: 3, out_of_order: 41 },
      openAlerts: this.alerts.size,
      alerts: this.alerts.list(),
      scored: this.top.drain('pump'),
      drift: {
        pump: {
          bands: { warming: 1, ok: 9, moderate: 1, severe: 1 },
          quality: { warming: 1, ok: 10, poor: 1 },
          top: [
            { streamId: 'plant-a/pump-03', band: 'severe', quality: 'ok', channel: 'vibration', drift: 3.4, shift: 3.1, stdRatio: 1.4, rejectedShare: 0, nonFiniteShare: 0 },
            { streamId: 'plant-a/pump-07', band: 'moderate', quality: 'poor', channel: 'pressure', drift: 1.2, shift: -0.9, stdRatio: 1.1, rejectedShare: 0.08, nonFiniteShare: 0.02 },
          ],
        },
      },
      topStreams: 10,
    };
  }

  raise(streamId: string): void {
    this.raised++;
    this.alerts.record(
      sampleAlert(Date.now(), streamId, {
        nodeName: 'edge-node-7',
        score: 1.84,
        thresholds: { raise: 1, clear: 0.6 },
        model: { name: 'pump-autoencoder', version: 'sha256:3f9a1c' },
        topChannels: [
          { channel: 'vibration', contribution: 1.21 },
          { channel: 'temperature', contribution: 0.42 },
        ],
        evidence: [{ test: 'spike', score: 1.84, channels: ['vibration'] }],
      }),
    );
  }
}

async function serve(node: FakeNode, port: number): Promise<ProbeServer> {
  const page = new StatusPage({ maxClients: 4, intervalMs: INTERVAL_MS, snapshot: (previous) => buildStatusSnapshot(node.inputs(), previous) });
  const server = new ProbeServer(new SentinelMetrics({ defaultMetrics: false }).registry, () => ({ ready: true, detail: {} }), {
    host: '127.0.0.1',
    port,
    maxConnections: 64,
    maxConnectionsPerClient: 8,
    headersTimeoutMs: 5_000,
    requestTimeoutMs: 10_000,
    statusPage: page,
  });
  await server.start();
  return server;
}


describe.skipIf(!haveChromium)('status page in a headless browser', () => {
  let browser: Browser;
  let server: ProbeServer | null = null;
  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
  });
  afterAll(async () => {
    await browser?.close();
    await server?.stop();
  });

  it('loads, shows a new alert within a second, survives a restart on the same port, and screenshots', async () => {
    const first = new FakeNode('0.1.0', new Date().toISOString());
    server = await serve(first, 0);
    const port = server.port;
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    const failed: string[] = [];
    page.on('requestfailed', (r) => {
      if (!r.url().startsWith(`http://127.0.0.1:${port}/`)) failed.push(r.url());
    });
    page.on('request', (r) => {
      if (!r.url().startsWith(`http://127.0.0.1:${port}/`)) failed.push(r.url());
    });
    await page.goto(`http://127.0.0.1:${port}/`);
    await shows(page, 'live', 'live');
    await shows(page, 'node', 'edge-node-7');
    await shows(page, 'streams', 'plant-a/pump-03');
    expect(await page.textContent('#alerts')).toContain('no open alerts');

    // The delay from a state change (an alert decided) to the page showing it: at most one tick plus render.
    const delays: number[] = [];
    for (let i = 0; i < 5; i++) {
      const id = `plant-a/pump-${i === 0 ? '03' : `1${i}`}`;
      const began = performance.now();
      first.raise(id);
      await shows(page, 'alerts', id, 2_000);
      delays.push(Math.round(performance.now() - began));
      await new Promise((r) => setTimeout(r, 137 * i));
    }
    const sorted = [...delays].sort((a, b) => a - b);
    console.log(`status page: alert shown after ${delays.join(', ')} ms (median ${sorted[2]}, max ${sorted[4]}; tick ${INTERVAL_MS} ms)`);
    expect(Math.max(...delays)).toBeLessThan(1_000);
    await shows(page, 'alerts', 'spike');
    await shows(page, 'alert-count', '(5)');

    // The daemon restarts on the same port: the page reconnects by itself and shows the new process's state.
    await server.stop();
    server = null;
    await shows(page, 'live', 'reconnecting');
    await new Promise((r) => setTimeout(r, 1_500));
    const second = new FakeNode('0.2.0', new Date().toISOString());
    const restartedAt = performance.now();
    server = await serve(second, port);
    await shows(page, 'version', '0.2.0', 15_000);
    await shows(page, 'alerts', 'no open alerts');
    await shows(page, 'live', 'live');
    console.log(`status page: back on the restarted server after ${Math.round(performance.now() - restartedAt)} ms`);
    second.raise('plant-a/pump-07');
    await shows(page, 'alerts', 'plant-a/pump-07', 2_000);
    expect(failed).toEqual([]);

    // A few ticks of history for the sparklines, then the screenshot.
    await new Promise((r) => setTimeout(r, 4_000));
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-status-page-'));
    const shot = join(dir, 'status-page.png');
    await page.screenshot({ path: shot, fullPage: true });
    expect(readFileSync(shot).subarray(1, 4).toString()).toBe('PNG');
    const keep = process.env.STATUS_PAGE_SCREENSHOT;
    if (keep) copyFileSync(shot, keep);
    await page.close();
  });
});
