/**
 * The status page of a real daemon (the built CLI as a child process, telemetry through the broker) in
 * a real headless browser: a raised alert shows on the page within a second of its MQTT publish
 * reaching a subscriber, and after the daemon restarts on the same port the page reconnects by itself,
 * shows the new process, and again shows its next alert within a second.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CHROMIUM, haveChromium, shows, type PageGlobal } from '../support/browser.js';
import { stringify } from 'yaml';
import { alertSchema } from '../../src/alert/alert.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { BROKER_URL, attackConfig } from '../support/attack-daemon.js';
import { waitFor } from '../support/broker.js';
import { startCli, type CliProcess } from '../support/cli.js';
import { DEFAULT_WARMUP_ROWS } from '../support/model.js';
import { freePort } from '../support/proc.js';



async function startDaemon(configPath: string): Promise<CliProcess> {
  const cli = startCli(['run', '--config', configPath]);
  await waitFor(() => cli.logs().some((l) => l.msg === 'subscribed') || cli.child.exitCode !== null, 30_000, 'daemon subscribed');
  if (cli.child.exitCode !== null) throw new Error(`daemon did not start: ${cli.stderr()}${cli.stdout()}`);
  return cli;
}

async function stopDaemon(cli: CliProcess): Promise<number | null> {
  if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGTERM');
  return cli.exited;
}

describe.skipIf(!haveChromium)('status page of a real daemon in a headless browser', () => {
  let browser: Browser;
  let dir: string;
  let subscriber: MqttClient;
  let daemon: CliProcess | null = null;
  /** When each stream's raised alert reached the MQTT subscriber (performance.now()). */
  const raisedAt = new Map<string, number>();

  beforeAll(async () => {
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    dir = mkdtempSync(join(tmpdir(), 'sentinel-status-daemon-'));
  });
  afterAll(async () => {
    if (daemon) await stopDaemon(daemon);
    await subscriber?.endAsync();
    await browser?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('shows an MQTT alert within a second, and stays correct across a daemon restart', async () => {
    const port = await freePort();
    const prefix = `status-daemon-${process.pid}-${Date.now().toString(36)}`;
    const configPath = join(dir, 'sentinel.yaml');
    writeFileSync(configPath, stringify(attackConfig(prefix, dir, BROKER_URL, { nodeName: 'edge-status-1', http: { host: '127.0.0.1', port, statusIntervalMs: 500 } })));
    subscriber = await mqtt.connectAsync(BROKER_URL, { protocolVersion: 5, clientId: `${prefix}-sub`, reconnectPeriod: 0 });
    subscriber.on('message', (_topic, payload) => {
      const alert = alertSchema.parse(JSON.parse(payload.toString()));
      if (alert.type === 'raised' && !raisedAt.has(alert.streamId)) raisedAt.set(alert.streamId, performance.now());
    });
    await subscriber.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });
    const publisher = await mqtt.connectAsync(BROKER_URL, { protocolVersion: 5, clientId: `${prefix}-pub`, reconnectPeriod: 0 });

    /** Publishes a pump with a drift fault; resolves with how long after the MQTT alert the page showed it (ms). */
    const faultShown = async (page: Page, stream: string, seed: number): Promise<number> => {
      let shownAt = 0;
      const shown = shows(page, 'alerts', stream, 30_000).then(() => (shownAt = performance.now()));
      // After the default model's per-stream warm-up; a drift over 80 rows, which its baseline (half-life 200 rows) does not follow.
      const sim = new PumpSimulator({ seed, startTs: Date.now() - 600_000, faults: [{ kind: 'drift', channel: 1, start: DEFAULT_WARMUP_ROWS + 40, length: 80 }] });
      for (let i = 0; i < DEFAULT_WARMUP_ROWS + 160 && !raisedAt.has(stream); i++) {
        const r = sim.next();
        const values = Object.fromEntries(sim.channels.map((c, k) => [c, r.values[k]]));
        await publisher.publishAsync(`${prefix}/sensors/${stream}/telemetry`, JSON.stringify({ ts: r.ts, values }), { qos: 1 });
        // A sensor's pace, not a flood: the alert's moment stands apart from the publishing.
        if (i % 10 === 9) await new Promise((resolve) => setTimeout(resolve, 20));
      }
      await waitFor(() => raisedAt.has(stream), 15_000, `the MQTT alert of ${stream}`);
      await shown;
      return Math.round(shownAt - (raisedAt.get(stream) as number));
    };

    try {
      daemon = await startDaemon(configPath);
      const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
      await page.goto(`http://127.0.0.1:${port}/`);
      await shows(page, 'live', 'live');
      await shows(page, 'node', 'edge-status-1');
      expect(await page.textContent('#alerts')).toContain('no open alerts');

      const delays = [await faultShown(page, 'pump-a', 11), await faultShown(page, 'pump-b', 12)];
      await shows(page, 'alert-count', '(2)');

      // Restart on the same port: the page notices, reconnects by itself, shows the new process.
      const startedBefore = await page.textContent('#started');
      expect(await stopDaemon(daemon)).toBe(0);
      daemon = null;
      await shows(page, 'live', 'reconnecting');
      await new Promise((resolve) => setTimeout(resolve, 1_100));
      const restartedAt = performance.now();
      daemon = await startDaemon(configPath);
      await page.waitForFunction((before) => ((globalThis as unknown as PageGlobal).document.getElementById('started')?.textContent ?? '') !== before, startedBefore, { timeout: 15_000 });
      await shows(page, 'live', 'live');
      const backAfter = Math.round(performance.now() - restartedAt);
      // The new process holds no open alert (alerts are the daemon's state, not the page's).
      await shows(page, 'alerts', 'no open alerts');
      delays.push(await faultShown(page, 'pump-c', 13));

      console.log(`status page (real daemon): alert shown ${delays.join(', ')} ms after its MQTT publish reached a subscriber; back ${backAfter} ms after the restart began`);
      for (const delay of delays) expect(delay).toBeLessThan(1_000);
      await page.close();
    } finally {
      await publisher.endAsync();
    }
    if (daemon) expect(await stopDaemon(daemon)).toBe(0);
    daemon = null;
  }, 120_000);
});
