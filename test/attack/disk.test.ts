/**
 * The node's disk as an attack surface, through the real CLI (a child process) and the shared Mosquitto:
 * the outbox journal on a real, full tmpfs must cost crash protection, never alerts or the process; a
 * poison alert in the journal is given up once, not on every start. Each test prints one JSON line of
 * figures (`ATTACK {...}`) for docs/security.md.
 */
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { MAX_TOPIC_BYTES } from '../../src/alert/publisher.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { sampleAlert } from '../support/alert.js';
import { uniquePrefix, waitFor } from '../support/broker.js';
import { startCli, type CliProcess } from '../support/cli.js';
import { metricValue, scrape, waitForMetric } from '../support/metrics.js';
import { DEFAULT_MODEL, DEFAULT_WARMUP_ROWS } from '../support/model.js';
import { mountTmpfs, type Tmpfs } from '../support/tmpfs.js';

const MQTT_URL = process.env.SENTINEL_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

let disk: Tmpfs;
const running: CliProcess[] = [];
const clients: MqttClient[] = [];

beforeAll(() => {
  disk = mountTmpfs(64);
});
afterEach(async () => {
  for (const p of running.splice(0)) {
    if (p.child.exitCode === null && p.child.signalCode === null) p.child.kill('SIGKILL');
    await p.exited;
  }
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
  disk.free();
});
// Every daemon has exited by now (afterEach waits), so nothing holds the mount.
afterAll(() => disk.dispose());

interface Fixture {
  prefix: string;
  outboxPath: string;
  start(): Promise<{ cli: CliProcess; port: number }>;
}

function fixture(name: string, outboxPath: string, overrides: Record<string, unknown> = {}): Fixture {
  const dir = mkdtempSync(join(tmpdir(), `sentinel-attack-${name}-`));
  const prefix = uniquePrefix(`disk-${name}`);
  const configPath = join(dir, 'sentinel.yaml');
  writeFileSync(
    configPath,
    stringify({
      nodeName: 'attack-node',
      broker: { url: MQTT_URL, protocolVersion: 5, clientId: `sentinel-${prefix.replace(/\//g, '-')}`, reconnectMinMs: 100, reconnectMaxMs: 400 },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      outbox: { path: outboxPath },
      http: { host: '127.0.0.1', port: 0 },
      model: { path: DEFAULT_MODEL, warmupRuns: 1, watch: false },
      ingest: { maxReadingsPerSecondPerStream: 0 },
      batch: { maxSize: 64, maxDelayMs: 5 },
      ...overrides,
    }),
  );
  return {
    prefix,
    outboxPath,
    async start() {
      const cli = startCli(['run', '--config', configPath]);
      running.push(cli);
      await waitFor(() => cli.logs().some((l) => l.msg === 'sentinel ready') || cli.child.exitCode !== null, 30_000, 'sentinel ready');
      const ready = cli.logs().find((l) => l.msg === 'sentinel ready');
      if (!ready) throw new Error(`daemon did not start (exit ${cli.child.exitCode}): ${cli.stderr()}`);
      await waitFor(() => cli.logs().some((l) => l.msg === 'subscribed'), 10_000, 'subscribed');
      return { cli, port: ready.httpPort as number };
    },
  };
}

async function connect(): Promise<MqttClient> {
  const client = await mqtt.connectAsync(MQTT_URL, { protocolVersion: 5, reconnectPeriod: 100 });
  clients.push(client);
  return client;
}

async function alertWatcher(prefix: string): Promise<Alert[]> {
  const client = await connect();
  const alerts: Alert[] = [];
  client.on('message', (topic, payload) => {
    if (topic.startsWith(`${prefix}/alerts/`)) alerts.push(alertSchema.parse(JSON.parse(payload.toString())));
  });
  await client.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });
  return alerts;
}

/** Publishes a pump's telemetry with a spike in it: enough rows for one raised and one resolved alert. */
async function spike(prefix: string, streamId: string, seed: number): Promise<void> {
  const publisher = await connect();
  // After the default model's per-stream baseline warm-up (its first warmupRows readings are not scored).
  const sim = new PumpSimulator({ seed, faults: [{ kind: 'spike', channel: 1, start: DEFAULT_WARMUP_ROWS + 60, length: 10 }] });
  const rows = Array.from({ length: DEFAULT_WARMUP_ROWS + 160 }, () => {
    const r = sim.next();
    return JSON.stringify({ ts: r.ts, values: Object.fromEntries(sim.channels.map((c, i) => [c, r.values[i]])) });
  });
  await Promise.all(rows.map((row) => publisher.publishAsync(`${prefix}/sensors/${streamId}/telemetry`, row, { qos: 1 })));
}

async function readyz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}


/** An alert an earlier run journaled (and never delivered). */
const earlierAlert = (streamId: string, n: number): Alert =>
  sampleAlert(n, streamId, { nodeName: 'attack-node', score: 9, thresholds: { raise: 1, clear: 0.5 }, model: { name: 'earlier', version: 'sha256:attack' } });

const summary = (alerts: Alert[]): string[] => alerts.map((a) => `${a.type}:${a.streamId.slice(0, 24)}`);
const undeliverable = (text: string): number => metricValue(text, 'sentinel_alerts_undeliverable_total');

describe('attack: the outbox disk', () => {
  it('a full disk under the outbox: alerts are still published, the daemon says it is degraded, and journals again once space is back', async () => {
    const dir = join(disk.dir, 'full');
    const fx = fixture('full', join(dir, 'outbox.jsonl'));
    const alerts = await alertWatcher(fx.prefix);
    const { cli, port } = await fx.start();
    disk.fill();

    await spike(fx.prefix, 'pump-1', 21);
    await waitFor(() => alerts.length >= 2, 20_000, 'alerts decided while the disk is full');
    const full = await waitForMetric(port, 'sentinel_outbox_degraded', 1);
    const failures = metricValue(full, 'sentinel_outbox_write_failures_total');
    const whileFull = await readyz(port);
    expect(cli.child.exitCode).toBeNull();
    expect(summary(alerts)).toEqual(['raised:pump-1', 'resolved:pump-1']);
    expect(failures).toBeGreaterThanOrEqual(2);
    expect(metricValue(full, 'sentinel_internal_errors_total')).toBe(0);
    expect(whileFull.status).toBe(200);
    expect(JSON.stringify(whileFull.body.outbox)).toMatch(/ENOSPC/);
    expect(readFileSync(fx.outboxPath, 'utf8')).toBe('');

    disk.free();
    await spike(fx.prefix, 'pump-2', 22);
    await waitFor(() => alerts.length >= 4, 20_000, 'alerts after space is back');
    const freed = await waitForMetric(port, 'sentinel_outbox_degraded', 0);
    const afterwards = await readyz(port);
    expect(summary(alerts).slice(2)).toEqual(['raised:pump-2', 'resolved:pump-2']);
    expect(metricValue(freed, 'sentinel_outbox_write_failures_total')).toBe(failures);
    expect(afterwards.body.outbox).toBe('ok');
    // Journaled again: both new alerts went through the journal (and were marked done on PUBACK).
    const journal = readFileSync(fx.outboxPath, 'utf8');
    for (const a of alerts.slice(2)) expect(journal).toContain(`{"add":{"eventId":"${a.eventId}"`);

    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    console.log(`ATTACK ${JSON.stringify({ test: 'outbox-disk-full', alertsWhileFull: 2, alertsPublishedWhileFull: 2, writeFailures: failures, readyzWhileFull: whileFull.body.outbox, alertsAfterFree: 2, degradedAfterFree: 0 })}`);
  });

  it('restart with the disk full and pending alerts in the journal: starts degraded, replays them, exits 0 on SIGTERM', async () => {
    const dir = join(disk.dir, 'restart');
    mkdirSync(dir);
    const fx = fixture('restart', join(dir, 'outbox.jsonl'));
    const pending = [earlierAlert('pump-a', 1), earlierAlert('pump-b', 2)];
    writeFileSync(fx.outboxPath, pending.map((a) => `${JSON.stringify({ add: a })}\n`).join(''));
    // No slack in the journal's last page, and no free page anywhere: not even a compaction fits.
    disk.padToPage(fx.outboxPath);
    const journal = readFileSync(fx.outboxPath, 'utf8');
    disk.fill();
    const alerts = await alertWatcher(fx.prefix);

    const { cli, port } = await fx.start();
    await waitFor(() => alerts.length >= 2, 10_000, 'replayed alerts');
    const text = await waitForMetric(port, 'sentinel_outbox_degraded', 1);
    const probe = await readyz(port);
    expect(cli.logs().some((l) => l.msg === 'outbox holds undelivered alerts: replaying them first' && l.pending === 2)).toBe(true);
    expect(summary(alerts)).toEqual(['raised:pump-a', 'raised:pump-b']);
    expect(probe.status).toBe(200);
    expect(JSON.stringify(probe.body.outbox)).toMatch(/ENOSPC/);
    expect(metricValue(text, 'sentinel_internal_errors_total')).toBe(0);
    // The old journal is kept as it was (its alerts are delivered again after a crash: at least once).
    expect(readFileSync(fx.outboxPath, 'utf8')).toBe(journal);

    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);
    console.log(`ATTACK ${JSON.stringify({ test: 'outbox-disk-full-restart', journaled: 2, replayed: alerts.length, readyz: probe.body.outbox, exit: 0 })}`);
  });

  it('a poison alert in the journal (topic over 65,535 bytes, or a wildcard) is given up once: the daemon keeps running, the next start never sees it', async () => {
    const fx = fixture('poison', join(mkdtempSync(join(tmpdir(), 'sentinel-attack-poison-')), 'outbox.jsonl'));
    const journal = [earlierAlert('pump-a', 1), earlierAlert('p'.repeat(MAX_TOPIC_BYTES), 2), earlierAlert('pump+b', 3), earlierAlert('pump-c', 4)];
    writeFileSync(fx.outboxPath, journal.map((a) => `${JSON.stringify({ add: a })}\n`).join(''));
    const alerts = await alertWatcher(fx.prefix);

    const first = await fx.start();
    await waitFor(() => alerts.length >= 2, 10_000, 'the deliverable alerts');
    const text = await waitForMetric(first.port, 'sentinel_alerts_undeliverable_total', 1, 10_000, { reason: 'topic_too_long' });
    expect(metricValue(text, 'sentinel_alerts_undeliverable_total', { reason: 'invalid_topic' })).toBe(1);
    expect(summary(alerts)).toEqual(['raised:pump-a', 'raised:pump-c']);
    expect(first.cli.child.exitCode).toBeNull();
    expect(metricValue(await scrape(first.port), 'sentinel_broker_reconnects_total')).toBe(0);
    first.cli.child.kill('SIGTERM');
    expect(await first.cli.exited).toBe(0);

    const second = await fx.start();
    await new Promise((resolve) => setTimeout(resolve, 500));
    const again = await scrape(second.port);
    expect(undeliverable(again)).toBe(0);
    expect(second.cli.logs().some((l) => l.msg === 'outbox holds undelivered alerts: replaying them first')).toBe(false);
    expect(alerts).toHaveLength(2);
    second.cli.child.kill('SIGTERM');
    expect(await second.cli.exited).toBe(0);
    console.log(`ATTACK ${JSON.stringify({ test: 'outbox-poison', journaled: 4, delivered: 2, givenUp: undeliverable(text), seenBySecondStart: undeliverable(again) })}`);
  });

  it('through the config an alert topic reaches 65,535 bytes at most: that alert is delivered, one byte more is refused at start-up', async () => {
    const maxStreamIdBytes = 256;
    const base = uniquePrefix('disk-edge');
    // alert.prefix + "/" + the longest stream id ingest accepts = exactly the MQTT limit.
    const alertPrefix = `${base}/${'a'.repeat(MAX_TOPIC_BYTES - 1 - maxStreamIdBytes - base.length - 1)}`;
    const streamId = 's'.repeat(maxStreamIdBytes);
    const outboxPath = join(mkdtempSync(join(tmpdir(), 'sentinel-attack-edge-')), 'outbox.jsonl');
    const fx = fixture('edge', outboxPath, { alert: { prefix: alertPrefix, statusPrefix: `${base}/status` }, ingest: { maxReadingsPerSecondPerStream: 0, maxStreamIdBytes } });
    const watcher = await connect();
    const alerts: string[] = [];
    watcher.on('message', (topic) => alerts.push(topic));
    await watcher.subscribeAsync(`${alertPrefix}/#`, { qos: 1 });
    const { cli, port } = await fx.start();
    await spike(fx.prefix, streamId, 23);
    await waitFor(() => alerts.length >= 2, 20_000, 'alerts on a 65,535-byte topic');
    expect(alerts.map((t) => Buffer.byteLength(t))).toEqual([MAX_TOPIC_BYTES, MAX_TOPIC_BYTES]);
    expect(undeliverable(await scrape(port))).toBe(0);
    cli.child.kill('SIGTERM');
    expect(await cli.exited).toBe(0);

    const tooLong = fixture('edge-over', outboxPath, { alert: { prefix: `${alertPrefix}a`, statusPrefix: `${base}/status` }, ingest: { maxStreamIdBytes } });
    const refused = tooLong.start();
    await expect(refused).rejects.toThrow(/daemon did not start \(exit [1-9]\d*\): .*alert\.prefix/s);
  });
});
