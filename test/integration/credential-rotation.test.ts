/**
 * Rotated broker credentials through a real Mosquitto and the built CLI: a Secret's new password and a
 * client certificate from a new CA are read again on reconnect, after which the old ones are refused.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type IClientOptions, type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { makePki, secretVolume, type SecretVolume, type TestPki } from '../support/certs.js';
import { startCli, type CliProcess } from '../support/cli.js';
import { metricValue, scrape, waitForMetric } from '../support/metrics.js';
import { DEFAULT_MODEL, DEFAULT_WARMUP_ROWS } from '../support/model.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { waitUntil } from '../support/proc.js';

const USER = 'sentinel';
const OBSERVER = 'observer';
const OBSERVER_PASSWORD = `obs-${Math.random().toString(36).slice(2)}`;

let work: string;
const cleanups: Array<() => Promise<void> | void> = [];

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'sentinel-rotation-'));
});
afterAll(async () => {
  for (const cleanup of cleanups.reverse()) await cleanup();
  rmSync(work, { recursive: true, force: true });
});

interface RunningDaemon {
  cli: CliProcess;
  port: number;
}

/** `sentinel run` with fast reconnects (100 → 400 ms), on `broker`, reading telemetry under `prefix`. */
async function startDaemon(name: string, broker: Record<string, unknown>, prefix: string): Promise<RunningDaemon> {
  const dir = mkdtempSync(join(work, `${name}-`));
  const config = join(dir, 'sentinel.json');
  writeFileSync(
    config,
    JSON.stringify({
      nodeName: name,
      broker: { clientId: `sentinel-${name}-${process.pid}`, protocolVersion: 5, reconnectMinMs: 100, reconnectMaxMs: 400, ...broker },
      subscriptions: [{ topic: `${prefix}/+/telemetry`, format: 'json-values', qos: 1 }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      http: { host: '127.0.0.1', port: 0 },
      outbox: { path: join(dir, 'outbox.jsonl') },
      model: { path: DEFAULT_MODEL, warmupRuns: 1, watch: false },
    }),
  );
  const cli = startCli(['run', '--config', config]);
  cleanups.push(() => {
    if (cli.child.exitCode === null) cli.child.kill('SIGKILL');
  });
  await waitUntil(() => cli.logs().some((l) => l.msg === 'sentinel ready') || cli.child.exitCode !== null, 20_000, `${name} ready`);
  const port = cli.logs().find((l) => l.msg === 'sentinel ready')?.httpPort;
  if (typeof port !== 'number') throw new Error(`${name} did not start: ${cli.stderr()}`);
  return { cli, port };
}

async function status(port: number, path: string): Promise<number> {
  return (await fetch(`http://127.0.0.1:${port}${path}`)).status;
}

async function reconnects(port: number): Promise<number> {
  return metricValue(await scrape(port), 'sentinel_broker_reconnects_total');
}

/** Publishes a pump stream with a pressure spike and resolves with the first `raised` alert for it. */
async function spikeRaisesAlert(publisher: MqttClient, observer: MqttClient, prefix: string, stream: string): Promise<Alert> {
  const alerts: Alert[] = [];
  observer.on('message', (_topic, payload) => alerts.push(alertSchema.parse(JSON.parse(payload.toString()))));
  await observer.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });
  // The spike comes after the default model's per-stream baseline warm-up.
  const sim = new PumpSimulator({ seed: 11, faults: [{ kind: 'spike', channel: 2, start: DEFAULT_WARMUP_ROWS + 60, length: 12 }] });
  for (let i = 0; i < DEFAULT_WARMUP_ROWS + 100; i++) {
    const r = sim.next();
    const payload = { ts: new Date(r.ts).toISOString(), values: Object.fromEntries(sim.channels.map((c, k) => [c, r.values[k]])) };
    await publisher.publishAsync(`${prefix}/${stream}/telemetry`, JSON.stringify(payload), { qos: 1 });
  }
  await waitUntil(() => alerts.some((a) => a.type === 'raised' && a.streamId === stream), 10_000, `a raised alert for ${stream}`);
  return alerts.find((a) => a.type === 'raised') as Alert;
}

async function connect(url: string, options: IClientOptions): Promise<MqttClient> {
  const client = await mqtt.connectAsync(url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 5_000, ...options });
  cleanups.push(() => client.endAsync(true));
  return client;
}

/**
 * The common part of a rotation: the broker goes down, `change` rotates both sides, the broker comes
 * back on the same port; returns how long the daemon took to be connected again and in how many attempts.
 */
async function rotate(
  daemon: RunningDaemon,
  broker: MosquittoProcess,
  change: () => Promise<void>,
): Promise<{ reconnectMs: number; attemptsAfterRestart: number; attemptsInOutage: number }> {
  await broker.kill();
  await waitForMetric(daemon.port, 'sentinel_broker_connected', 0, 10_000);
  expect(await status(daemon.port, '/readyz')).toBe(503);
  expect(await status(daemon.port, '/healthz')).toBe(200);
  const down = await reconnects(daemon.port);
  await change();
  const beforeRestart = await reconnects(daemon.port);
  await broker.restart();
  const restarted = Date.now();
  await waitForMetric(daemon.port, 'sentinel_broker_connected', 1, 15_000);
  const reconnectMs = Date.now() - restarted;
  const after = await reconnects(daemon.port);
  await waitUntil(async () => (await status(daemon.port, '/readyz')) === 200, 10_000, 'readyz 200 after the rotation');
  return { reconnectMs, attemptsAfterRestart: after - beforeRestart, attemptsInOutage: after - down };
}

/** A passwd file for Mosquitto with the daemon's user and the test's observer. */
function passwd(name: string, password: string): string {
  const file = join(work, name);
  for (const [i, [user, pw]] of [[USER, password], [OBSERVER, OBSERVER_PASSWORD]].entries()) {
    const made = spawnSync('mosquitto_passwd', ['-b', ...(i === 0 ? ['-c'] : []), file, user as string, pw as string], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`mosquitto_passwd failed: ${made.error?.message ?? made.stderr}`);
  }
  return file;
}

async function stopDaemon(daemon: RunningDaemon): Promise<void> {
  daemon.cli.child.kill('SIGTERM');
  expect(await daemon.cli.exited).toBe(0);
  expect(daemon.cli.stderr()).toBe('');
}

/** The daemon's log lines about the credential files, in order: one per change of state. */
function credentialLog(daemon: RunningDaemon): Array<Record<string, unknown>> {
  return daemon.cli
    .logs()
    .filter((l) => typeof l.msg === 'string' && l.msg.startsWith('broker credential'))
    .map(({ msg, changed, problems }) => ({ msg, changed, problems }));
}

describe('rotated broker credentials', () => {
  it('a new password in the Secret and the broker: reconnects with it, scores and alerts; the old one is refused', async () => {
    const oldPassword = `old-${Math.random().toString(36).slice(2)}`;
    const newPassword = `new-${Math.random().toString(36).slice(2)}`;
    const prefix = `rot-pw-${process.pid}`;
    const volume: SecretVolume = secretVolume({ password: `${oldPassword}\n` });
    cleanups.push(() => rmSync(volume.dir, { recursive: true, force: true }));
    const broker = await startMosquitto({ passwordFile: passwd('passwd-old', oldPassword) });
    cleanups.push(() => broker.dispose());
    const daemon = await startDaemon('rot-pw', { url: broker.url, username: USER, passwordFile: volume.path('password') }, prefix);
    await waitForMetric(daemon.port, 'sentinel_broker_connected', 1, 10_000);

    const figures = await rotate(daemon, broker, async () => {
      // A volume caught mid-update: the daemon keeps its last good password and keeps trying.
      volume.break();
      const before = await reconnects(daemon.port);
      await waitUntil(async () => (await reconnects(daemon.port)) >= before + 2, 10_000, 'two attempts while the Secret is unreadable');
      volume.update({ password: `${newPassword}\n` });
      broker.replaceCredentials({ passwordFile: passwd('passwd-new', newPassword) });
    });
    await expect(connect(broker.url, { clientId: `old-pw-${process.pid}`, username: USER, password: oldPassword })).rejects.toThrow(/not authori[sz]ed|bad user name or password/i);

    const publisher = await connect(broker.url, { clientId: `rot-pub-${process.pid}`, username: OBSERVER, password: OBSERVER_PASSWORD });
    const observer = await connect(broker.url, { clientId: `rot-obs-${process.pid}`, username: OBSERVER, password: OBSERVER_PASSWORD });
    const alert = await spikeRaisesAlert(publisher, observer, prefix, 'pump-pw');
    expect(alert.topChannels[0]?.channel).toBe('pressure');
    const text = await scrape(daemon.port);
    expect(metricValue(text, 'sentinel_windows_scored_total')).toBeGreaterThanOrEqual(60);
    expect(metricValue(text, 'sentinel_internal_errors_total')).toBe(0);
    console.log(`ROTATION ${JSON.stringify({ case: 'password', ...figures })}`);
    await stopDaemon(daemon);
    expect(credentialLog(daemon)).toEqual([
      { msg: 'broker credential files unusable: keeping the last good values', changed: undefined, problems: [expect.stringMatching(/^broker\.passwordFile: cannot read .*ENOENT/)] },
      { msg: 'broker credential files usable again', changed: undefined, problems: undefined },
      { msg: 'broker credentials changed: the next connection uses the new files', changed: ['passwordFile'], problems: undefined },
    ]);
    const output = daemon.cli.stdout();
    expect(output).not.toContain(oldPassword);
    expect(output).not.toContain(newPassword);
  });

  it('a client certificate from a new CA on both sides: reconnects with it, scores and alerts; the old certificate is refused', async () => {
    const before: TestPki = makePki();
    const after: TestPki = makePki();
    cleanups.push(() => rmSync(before.dir, { recursive: true, force: true }));
    cleanups.push(() => rmSync(after.dir, { recursive: true, force: true }));
    const files = (pki: TestPki, key = pki.clientKey) => ({ 'ca.crt': readFileSync(pki.caFile, 'utf8'), 'tls.crt': readFileSync(pki.clientCert, 'utf8'), 'tls.key': readFileSync(key, 'utf8') });
    const brokerTls = (pki: TestPki) => ({ caFile: pki.caFile, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true });
    const prefix = `rot-tls-${process.pid}`;
    const volume = secretVolume(files(before));
    cleanups.push(() => rmSync(volume.dir, { recursive: true, force: true }));
    const broker = await startMosquitto({ tls: brokerTls(before) });
    cleanups.push(() => broker.dispose());
    const tls = { caFile: volume.path('ca.crt'), certFile: volume.path('tls.crt'), keyFile: volume.path('tls.key') };
    const daemon = await startDaemon('rot-tls', { url: broker.url, tls }, prefix);
    await waitForMetric(daemon.port, 'sentinel_broker_connected', 1, 10_000);

    const figures = await rotate(daemon, broker, async () => {
      // Half a renewal (the new certificate with the old key) must not be tried, nor end the process.
      volume.update(files(after, before.clientKey));
      const start = await reconnects(daemon.port);
      await waitUntil(async () => (await reconnects(daemon.port)) >= start + 2, 10_000, 'two attempts with a mismatched pair');
      volume.update(files(after));
      broker.replaceCredentials({ tls: brokerTls(after) });
    });
    const pem = (file: string) => readFileSync(file);
    await expect(
      connect(broker.url, { clientId: `old-cert-${process.pid}`, ca: pem(after.caFile), cert: pem(before.clientCert), key: pem(before.clientKey) }),
    ).rejects.toThrow();

    const client = { ca: pem(after.caFile), cert: pem(after.clientCert), key: pem(after.clientKey) };
    const publisher = await connect(broker.url, { clientId: `rot-tls-pub-${process.pid}`, ...client });
    const observer = await connect(broker.url, { clientId: `rot-tls-obs-${process.pid}`, ...client });
    const alert = await spikeRaisesAlert(publisher, observer, prefix, 'pump-tls');
    expect(alert.topChannels[0]?.channel).toBe('pressure');
    const text = await scrape(daemon.port);
    expect(metricValue(text, 'sentinel_windows_scored_total')).toBeGreaterThanOrEqual(60);
    expect(metricValue(text, 'sentinel_internal_errors_total')).toBe(0);
    console.log(`ROTATION ${JSON.stringify({ case: 'tls', ...figures })}`);
    await stopDaemon(daemon);
    expect(credentialLog(daemon)).toEqual([
      { msg: 'broker credential files unusable: keeping the last good values', changed: undefined, problems: [expect.stringMatching(/^broker\.tls: the changed files do not load together .*key values mismatch/)] },
      { msg: 'broker credential files usable again', changed: undefined, problems: undefined },
      { msg: 'broker credentials changed: the next connection uses the new files', changed: ['tls.caFile', 'tls.certFile', 'tls.keyFile'], problems: undefined },
    ]);
    for (const line of readFileSync(after.clientKey, 'utf8').split('\n').filter((l) => l.length >= 32 && !l.startsWith('-----'))) {
      expect(daemon.cli.stdout()).not.toContain(line);
    }
  });
});
