/**
 * Signals sent to the built CLI: a second SIGTERM/SIGINT during the drain must not cut it short (the
 * alert in flight is still acknowledged), and SIGHUP re-reads the model instead of ending the process.
 * The drain is held open deterministically by freezing the test's own Mosquitto (SIGSTOP) while the
 * daemon waits for the PUBACK of the alert its drain decided.
 */
import { readFileSync } from 'node:fs';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { waitFor } from '../support/broker.js';
import { metricValue, waitForMetric } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { BROKER_URL, expectUnharmed, startAttackDaemon, type AttackDaemon } from '../support/attack-daemon.js';
import { DEFAULT_MANIFEST, DEFAULT_WARMUP_ROWS } from '../support/model.js';

const WINDOW = DEFAULT_MANIFEST.window;
/** Readings before a stream's first scored window: a full window, and the default model's baseline warm-up. */
const LEAD = Math.max(WINDOW - 1, DEFAULT_WARMUP_ROWS);
const SHUTTING_DOWN = 'shutting down: stopping intake and draining';
const ALREADY = /^already shutting down/;

let broker: MosquittoProcess;
const daemons: AttackDaemon[] = [];
const clients: MqttClient[] = [];

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

beforeAll(async () => {
  broker = await startMosquitto({ autosaveIntervalSeconds: 1 });
});
afterEach(async () => {
  const pid = broker.pid();
  if (pid !== null) process.kill(pid, 'SIGCONT');
  for (const d of daemons.splice(0)) if (d.cli.child.exitCode === null && d.cli.child.signalCode === null) d.cli.child.kill('SIGKILL');
  await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
});
afterAll(async () => broker?.dispose());

function telemetry(sim: PumpSimulator, spike = false): string {
  const r = sim.next();
  const values = Object.fromEntries(sim.channels.map((c, i) => [c, i === 0 && spike ? 500 : r.values[i]]));
  return JSON.stringify({ ts: r.ts, values });
}

async function connect(url: string, id: string): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { clientId: id, protocolVersion: 5, clean: true, reconnectPeriod: 100 });
  clients.push(client);
  return client;
}

interface Armed {
  d: AttackDaemon;
  alerts: Alert[];
}

/**
 * A daemon on the test's broker holding two complete windows (the second one anomalous) in a batch
 * that only the drain will run: SIGTERM makes it decide a `raised` alert and wait for its PUBACK.
 */
async function armedDaemon(name: string): Promise<Armed> {
  const d = await startAttackDaemon(
    name,
    { ingest: { maxReadingsPerSecondPerStream: 0 }, batch: { maxSize: 1024, maxDelayMs: 600_000 }, shutdown: { graceMs: 60_000 } },
    { brokerUrl: broker.url },
  );
  daemons.push(d);
  const watcher = await connect(broker.url, `watch-${d.prefix}`);
  const alerts: Alert[] = [];
  watcher.on('message', (topic, payload) => {
    if (topic.startsWith(`${d.prefix}/alerts/`)) alerts.push(alertSchema.parse(JSON.parse(payload.toString())));
  });
  await watcher.subscribeAsync(`${d.prefix}/alerts/#`, { qos: 1 });
  const pub = await connect(broker.url, `pub-${d.prefix}`);
  const sim = new PumpSimulator({ seed: 7, startTs: Date.now() - 600_000 });
  // Normal rows up to the first scored window, then a spike in the second.
  for (let i = 0; i <= LEAD + 1; i++) await pub.publishAsync(`${d.prefix}/sensors/pump/telemetry`, telemetry(sim, i === LEAD + 1), { qos: 1 });
  await waitForMetric(d.port, 'sentinel_readings_queued_total', LEAD + 2);
  expect(await d.metric('sentinel_windows_scored_total'), 'windows wait for the drain').toBe(0);
  return { d, alerts };
}

const logged = (d: AttackDaemon, test: (msg: string) => boolean): Array<Record<string, unknown>> => d.cli.logs().filter((l) => test(String(l.msg)));
const exited = (d: AttackDaemon): boolean => d.cli.child.exitCode !== null || d.cli.child.signalCode !== null;

/** Waits for a log line, failing at once (with how the process ended) if the process ends first. */
async function waitForLog(d: AttackDaemon, test: (msg: string) => boolean, count: number, what: string): Promise<void> {
  await waitFor(() => logged(d, test).length >= count || exited(d), 10_000, what);
  expect(exited(d), `the process ended (exit ${d.cli.child.exitCode}, signal ${d.cli.child.signalCode}) before: ${what}`).toBe(false);
}

/** Freezes the broker, starts the shutdown with `first`, and waits until the drain's alert is in flight. */
async function startShutdown(armed: Armed, first: NodeJS.Signals): Promise<void> {
  const { d } = armed;
  process.kill(broker.pid() as number, 'SIGSTOP');
  d.cli.child.kill(first);
  await waitForLog(d, (m) => m === SHUTTING_DOWN, 1, 'shutdown started');
  await waitForLog(d, (m) => m === 'alert raised', 1, 'the drain decided the alert');
}

/** Lets the broker answer, then checks the drain ran to the end: exit 0, drained, the alert acknowledged. */
async function finishShutdown(armed: Armed): Promise<{ exitMs: number; warnings: number }> {
  const { d, alerts } = armed;
  expect(d.cli.child.exitCode, 'the second signal did not end the process').toBeNull();
  expect(d.cli.child.signalCode).toBeNull();
  expect(alerts).toHaveLength(0);
  const t0 = Date.now();
  process.kill(broker.pid() as number, 'SIGCONT');
  expect(await d.cli.exited).toBe(0);
  const exitMs = Date.now() - t0;
  const stopped = logged(d, (m) => m === 'stopped');
  expect(stopped).toHaveLength(1);
  expect(stopped[0]).toMatchObject({ drained: true, queued: LEAD + 2, scored: 2, alerts: 1, queueDepth: 0 });
  await waitFor(() => alerts.length === 1, 10_000, 'the alert reached the subscriber');
  expect(alerts[0]).toMatchObject({ type: 'raised', streamId: 'pump' });
  // Acknowledged before exit: the journal holds no alert without its "done".
  const lines = readFileSync(d.outboxPath, 'utf8').split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as { add?: Alert; done?: string });
  const pending = new Set<string>();
  for (const line of lines) {
    if (line.add) pending.add(line.add.eventId);
    else if (line.done) pending.delete(line.done);
  }
  expect([...pending], 'alerts left in the outbox').toEqual([]);
  expect(d.cli.stderr()).toBe('');
  expect(logged(d, (m) => /internal error/.test(m))).toEqual([]);
  return { exitMs, warnings: logged(d, (m) => ALREADY.test(m)).length };
}

describe('signals during the drain', () => {
  it('SIGTERM then SIGINT 0.5 s later: the drain is not cut short and the alert in flight is acknowledged', async () => {
    const armed = await armedDaemon('term-int');
    await startShutdown(armed, 'SIGTERM');
    await sleep(500);
    armed.d.cli.child.kill('SIGINT');
    await waitForLog(armed.d, (m) => ALREADY.test(m), 1, 'already shutting down');
    expect(logged(armed.d, (m) => ALREADY.test(m))[0]).toMatchObject({ signal: 'SIGINT', level: 40 });
    await sleep(500);
    const result = await finishShutdown(armed);
    expect(result.warnings).toBe(1);
    console.info(`ATTACK signals ${JSON.stringify({ test: 'SIGTERM+SIGINT', ...result })}`);
  });

  it('SIGINT then SIGTERM: the same', async () => {
    const armed = await armedDaemon('int-term');
    await startShutdown(armed, 'SIGINT');
    await sleep(500);
    armed.d.cli.child.kill('SIGTERM');
    await waitForLog(armed.d, (m) => ALREADY.test(m), 1, 'already shutting down');
    expect(logged(armed.d, (m) => ALREADY.test(m))[0]).toMatchObject({ signal: 'SIGTERM' });
    await sleep(500);
    const result = await finishShutdown(armed);
    expect(result.warnings).toBe(1);
    console.info(`ATTACK signals ${JSON.stringify({ test: 'SIGINT+SIGTERM', ...result })}`);
  });

  it('a burst of 5 SIGTERMs: one shutdown, each repeat only warned about', async () => {
    const armed = await armedDaemon('burst');
    await startShutdown(armed, 'SIGTERM');
    // Back to back: the kernel may merge pending repeats of one signal, so at least one warning, at most four.
    for (let i = 0; i < 4; i++) armed.d.cli.child.kill('SIGTERM');
    await waitForLog(armed.d, (m) => ALREADY.test(m), 1, 'already shutting down');
    await sleep(1000);
    const result = await finishShutdown(armed);
    expect(result.warnings).toBeGreaterThanOrEqual(1);
    expect(result.warnings).toBeLessThanOrEqual(4);
    expect(logged(armed.d, (m) => m === SHUTTING_DOWN)).toHaveLength(1);
    console.info(`ATTACK signals ${JSON.stringify({ test: '5xSIGTERM', ...result })}`);
  });
});

describe('SIGHUP', () => {
  it('re-reads the model file and keeps scoring; it never ends the process', async () => {
    const d = await startAttackDaemon('hup', { ingest: { maxReadingsPerSecondPerStream: 0 } });
    daemons.push(d);
    const pub = await connect(BROKER_URL, `pub-${d.prefix}`);
    const sim = new PumpSimulator({ seed: 8, startTs: Date.now() - 600_000 });
    const topic = `${d.prefix}/sensors/pump/telemetry`;
    for (let i = 0; i <= LEAD; i++) await pub.publishAsync(topic, telemetry(sim), { qos: 1 });
    await waitForMetric(d.port, 'sentinel_windows_scored_total', 1);

    d.cli.child.kill('SIGHUP');
    await waitForLog(d, (m) => m === 'SIGHUP: re-reading the model files', 1, 'SIGHUP logged');
    // A second SIGHUP while readings flow: scoring goes on across the reload.
    for (let i = 0; i < 10; i++) {
      if (i === 5) d.cli.child.kill('SIGHUP');
      await pub.publishAsync(topic, telemetry(sim), { qos: 1 });
    }
    await waitForLog(d, (m) => m === 'SIGHUP: re-reading the model files', 2, 'second SIGHUP logged');
    const text = await waitForMetric(d.port, 'sentinel_windows_scored_total', 11);
    await sleep(500);
    expect(d.cli.child.exitCode).toBeNull();
    expect(d.cli.child.signalCode).toBeNull();
    expect(logged(d, (m) => m === SHUTTING_DOWN)).toEqual([]);
    // The same file again: nothing refused, nothing swapped, the model in use unchanged.
    expect(metricValue(text, 'sentinel_model_swaps_total', { result: 'refused' })).toBe(0);
    expect((await fetch(`http://127.0.0.1:${d.port}/readyz`)).status).toBe(200);
    await expectUnharmed(d);
    expect(await d.stop()).toBe(0);
    expect(logged(d, (m) => m === 'stopped')[0]).toMatchObject({ drained: true, scored: 11 });
  });
});
