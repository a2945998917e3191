/** TLS, mutual TLS and password auth against real Mosquitto brokers with test-made certificates; secrets stay out of logs and metrics. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import mqtt, { type MqttClient } from 'mqtt';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { waitFor } from '../support/broker.js';
import { runCli, startCli } from '../support/cli.js';
import { metricValue } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { makePki, type TestPki } from '../support/certs.js';
import { startCapturedDaemon, type CapturedDaemon } from '../support/captured-daemon.js';
import { DEFAULT_MANIFEST, DEFAULT_WARMUP_ROWS, scoredWindows } from '../support/model.js';

const PASSWORD = `pw-${Math.random().toString(36).slice(2)}-S3cr3t`;
const WRONG_PASSWORD = `wrong-${Math.random().toString(36).slice(2)}`;
const USER = 'sentinel';

let pki: TestPki;
let secrets: string;
let tlsBroker: MosquittoProcess;
let authBroker: MosquittoProcess;
/** Every daemon's log and last /metrics text, checked for secrets at the end. */
const exposed: Array<{ what: string; text: string }> = [];

/** Lines of a PEM private key's body: none of them may show up anywhere. */
function keyLines(file: string): string[] {
  return readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => l.length >= 32 && !l.startsWith('-----'));
}

beforeAll(async () => {
  pki = makePki();
  secrets = mkdtempSync(join(tmpdir(), 'sentinel-secrets-'));
  writeFileSync(join(secrets, 'password'), `${PASSWORD}\n`, { mode: 0o600 });
  writeFileSync(join(secrets, 'wrong-password'), `${WRONG_PASSWORD}\n`, { mode: 0o600 });
  const passwd = join(secrets, 'passwd');
  const made = spawnSync('mosquitto_passwd', ['-b', '-c', passwd, USER, PASSWORD], { encoding: 'utf8' });
  if (made.status !== 0) throw new Error(`mosquitto_passwd failed: ${made.error?.message ?? made.stderr}`);
  tlsBroker = await startMosquitto({ tls: { caFile: pki.caFile, certFile: pki.serverCert, keyFile: pki.serverKey, requireCertificate: true } });
  authBroker = await startMosquitto({ passwordFile: passwd });
});

afterAll(async () => {
  await tlsBroker?.dispose();
  await authBroker?.dispose();
  if (pki) rmSync(pki.dir, { recursive: true, force: true });
  if (secrets) rmSync(secrets, { recursive: true, force: true });
});

async function remember(what: string, d: CapturedDaemon): Promise<void> {
  exposed.push({ what: `${what} /metrics`, text: await d.metrics() });
  exposed.push({ what: `${what} log`, text: d.logText() });
}

function telemetry(sim: PumpSimulator): string {
  const r = sim.next();
  return JSON.stringify({ ts: r.ts, values: Object.fromEntries(sim.channels.map((c, i) => [c, r.values[i]])) });
}

describe('mutual TLS to Mosquitto', () => {
  it('connects with the CA-signed client certificate, reports ready and scores telemetry sent over TLS', async () => {
    const d = await startCapturedDaemon('mtls-ok', {
      broker: { url: tlsBroker.url, protocolVersion: 5, tls: { caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey } },
      subscriptions: [{ topic: 'tls/+/telemetry', format: 'json-values', qos: 1 }],
    });
    let publisher: MqttClient | null = null;
    try {
      await waitFor(() => d.daemon.readiness().ready, 10_000, 'ready over mTLS');
      const ready = await d.readyz();
      expect(ready.status).toBe(200);
      expect(ready.body).toMatchObject({ ready: true, broker: 'connected' });

      publisher = await mqtt.connectAsync(tlsBroker.url, {
        clientId: `tls-pub-${process.pid}`,
        protocolVersion: 5,
        ca: readFileSync(pki.caFile),
        cert: readFileSync(pki.clientCert),
        key: readFileSync(pki.clientKey),
        reconnectPeriod: 0,
      });
      const sim = new PumpSimulator({ seed: 7 });
      const rows = DEFAULT_WARMUP_ROWS + 30;
      for (let i = 0; i < rows; i++) await publisher.publishAsync('tls/pump-1/telemetry', telemetry(sim), { qos: 1 });
      const text = await d.waitForMetric('sentinel_windows_scored_total', scoredWindows(DEFAULT_MANIFEST, rows));
      expect(metricValue(text, 'sentinel_readings_queued_total')).toBe(rows);
      expect(metricValue(text, 'sentinel_messages_received_total')).toBe(rows);
      expect(metricValue(text, 'sentinel_readings_rejected_total')).toBe(0);
      expect(metricValue(text, 'sentinel_broker_connected')).toBe(1);
      expect(metricValue(text, 'sentinel_ready')).toBe(1);
      await remember('mtls-ok', d);
    } finally {
      await publisher?.endAsync();
      expect(await d.stop()).toBe(true);
    }
    expect(tlsBroker.log()).toMatch(/New client connected .* as sentinel-mtls-ok/);
  });

  const refused: Array<[string, () => { caFile: string; certFile?: string; keyFile?: string }, RegExp]> = [
    ['a client certificate from a CA the broker does not trust', () => ({ caFile: pki.caFile, certFile: pki.rogueCert, keyFile: pki.rogueKey }), /OpenSSL Error|certificate/i],
    ['no client certificate at all', () => ({ caFile: pki.caFile }), /OpenSSL Error|certificate|peer did not return/i],
    ['a broker certificate the daemon does not trust', () => ({ caFile: join(pki.dir, 'rogue-ca.crt'), certFile: pki.clientCert, keyFile: pki.clientKey }), /./],
  ];

  it.each(refused)('with %s: stays up and not ready, keeps retrying, and stops cleanly', async (label, tls, brokerLog) => {
    const name = `mtls-bad-${refused.findIndex(([l]) => l === label)}`;
    const d = await startCapturedDaemon(name, {
      broker: { url: tlsBroker.url, protocolVersion: 5, tls: tls() },
      subscriptions: [{ topic: 'tls/+/telemetry', format: 'json-values', qos: 1 }],
    });
    try {
      // Several connect attempts (reconnectMinMs 100, max 400) without one success.
      await d.waitForMetric('sentinel_broker_reconnects_total', 3, 10_000).catch(async () => {
        const n = metricValue(await d.metrics(), 'sentinel_broker_reconnects_total');
        expect(n, 'reconnect attempts').toBeGreaterThanOrEqual(3);
      });
      const text = await d.metrics();
      expect(metricValue(text, 'sentinel_broker_connected')).toBe(0);
      expect(metricValue(text, 'sentinel_ready')).toBe(0);
      expect(d.daemon.readiness().ready).toBe(false);
      const ready = await d.readyz();
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ ready: false, broker: 'disconnected' });
      const health = await fetch(`http://127.0.0.1:${d.daemon.httpPort}/healthz`);
      expect(health.status).toBe(200);
      expect(d.logText()).toMatch(/broker connection error/);
      await remember(name, d);
    } finally {
      const started = Date.now();
      await d.stop();
      expect(Date.now() - started).toBeLessThan(5_000);
    }
    expect(tlsBroker.log()).not.toMatch(new RegExp(`New client connected .* as sentinel-${name}-`));
    expect(tlsBroker.log()).toMatch(brokerLog);
  });
});

describe('username and password from a file', () => {
  it('connects with the right password from broker.passwordFile', async () => {
    const d = await startCapturedDaemon('pw-ok', {
      broker: { url: authBroker.url, protocolVersion: 5, username: USER, passwordFile: join(secrets, 'password') },
    });
    try {
      await waitFor(() => d.daemon.readiness().ready, 10_000, 'ready with password');
      expect((await d.readyz()).status).toBe(200);
      expect(metricValue(await d.metrics(), 'sentinel_broker_connected')).toBe(1);
      await remember('pw-ok', d);
    } finally {
      expect(await d.stop()).toBe(true);
    }
  });

  it('stays not ready with a wrong password, retrying, and stops cleanly', async () => {
    const d = await startCapturedDaemon('pw-bad', {
      broker: { url: authBroker.url, protocolVersion: 5, username: USER, passwordFile: join(secrets, 'wrong-password') },
    });
    try {
      await waitFor(() => /broker connection error/.test(d.logText()), 10_000, 'the refusal to be logged');
      await new Promise((resolve) => setTimeout(resolve, 500));
      const ready = await d.readyz();
      expect(ready.status).toBe(503);
      expect(ready.body).toMatchObject({ ready: false, broker: 'disconnected' });
      expect(metricValue(await d.metrics(), 'sentinel_broker_connected')).toBe(0);
      await remember('pw-bad', d);
    } finally {
      await d.stop();
    }
    expect(authBroker.log()).toMatch(/not authori[sz]ed|bad user name or password/i);
  });

  it('keeps retrying after a refused CONNACK and connects once the broker accepts the password', async () => {
    // A broker that does not know the user yet (e.g. its password file is rolled out after the daemon).
    const early = join(secrets, 'passwd-early');
    const late = join(secrets, 'passwd-late');
    expect(spawnSync('mosquitto_passwd', ['-b', '-c', early, 'someone-else', 'x']).status).toBe(0);
    expect(spawnSync('mosquitto_passwd', ['-b', '-c', late, USER, PASSWORD]).status).toBe(0);
    const broker = await startMosquitto({ passwordFile: early });
    const d = await startCapturedDaemon('pw-late', {
      broker: { url: broker.url, protocolVersion: 5, username: USER, passwordFile: join(secrets, 'password') },
    });
    try {
      await waitFor(() => /broker connection error/.test(d.logText()), 10_000, 'the refusal');
      expect(d.daemon.readiness().ready).toBe(false);
      // The broker learns the user: same port, same persistence dir, new password file.
      writeFileSync(join(broker.dir, 'passwd'), readFileSync(late));
      await broker.restart();
      await waitFor(() => d.daemon.readiness().ready, 10_000, 'ready after the broker accepts the password');
      expect(metricValue(await d.metrics(), 'sentinel_broker_reconnects_total')).toBeGreaterThanOrEqual(1);
      await remember('pw-late', d);
    } finally {
      await d.stop();
      await broker.dispose();
    }
  });

  it('connects with credentials given in broker.url (mqtt://user:password@host)', async () => {
    const url = authBroker.url.replace('mqtt://', `mqtt://${USER}:${PASSWORD}@`);
    const d = await startCapturedDaemon('pw-url', { broker: { url, protocolVersion: 5 } });
    try {
      await waitFor(() => d.daemon.readiness().ready, 10_000, 'ready with URL credentials');
      await remember('pw-url', d);
    } finally {
      expect(await d.stop()).toBe(true);
    }
    exposed.push({ what: 'pw-url log after stop', text: d.logText() });
  });

  it('refuses anonymous clients (the broker really checks passwords)', async () => {
    await expect(mqtt.connectAsync(authBroker.url, { protocolVersion: 5, reconnectPeriod: 0, connectTimeout: 2_000 })).rejects.toThrow(/authori[sz]ed|bad user/i);
  });
});

describe('secrets stay secret', () => {
  it('no daemon log line or /metrics text holds the password or a private key', () => {
    expect(exposed.length).toBeGreaterThanOrEqual(10);
    const forbidden = [PASSWORD, WRONG_PASSWORD, ...keyLines(pki.clientKey), ...keyLines(pki.rogueKey), ...keyLines(pki.serverKey)];
    for (const { what, text } of exposed) {
      expect(text.length, what).toBeGreaterThan(0);
      for (const secret of forbidden) expect(text.includes(secret), `${what} contains a secret`).toBe(false);
    }
  });

  it('`sentinel run` with the password in broker.url and in the environment logs neither', async () => {
    const file = join(secrets, 'run.json');
    writeFileSync(
      file,
      JSON.stringify({
        nodeName: 'rel-cli',
        broker: { url: authBroker.url.replace('mqtt://', `mqtt://${USER}:${PASSWORD}@`), clientId: `sentinel-cli-${process.pid}`, protocolVersion: 5 },
        http: { host: '127.0.0.1', port: 0 },
        outbox: { path: join(secrets, 'cli-outbox.jsonl') },
        model: { path: 'models/default.onnx', warmupRuns: 1, watch: false },
        log: { level: 'debug' },
      }),
    );
    const cli = startCli(['run', '--config', file], { SENTINEL_BROKER_PASSWORD: PASSWORD });
    try {
      await waitFor(() => cli.logs().some((l) => l.msg === 'connected to broker') && cli.logs().some((l) => l.msg === 'sentinel ready'), 20_000, 'the CLI daemon to connect');
      const httpPort = cli.logs().find((l) => l.msg === 'sentinel ready')?.httpPort as number;
      const metrics = await (await fetch(`http://127.0.0.1:${httpPort}/metrics`)).text();
      expect(metricValue(metrics, 'sentinel_broker_connected')).toBe(1);
      exposed.push({ what: 'sentinel run /metrics', text: metrics });
    } finally {
      cli.child.kill('SIGTERM');
      expect(await cli.exited).toBe(0);
    }
    const output = cli.stdout() + cli.stderr();
    expect(output).toContain('"msg":"stopped"');
    expect(output.split('\n').filter((l) => l.includes(PASSWORD)), 'sentinel run output lines holding the password').toEqual([]);
  });

  it('check-config prints the effective config with the password redacted (from the file and from the environment)', async () => {
    const file = join(secrets, 'sentinel.json');
    writeFileSync(
      file,
      JSON.stringify({
        broker: { url: 'mqtts://127.0.0.1:8883', username: USER, password: PASSWORD, tls: { caFile: pki.caFile, certFile: pki.clientCert, keyFile: pki.clientKey } },
        model: { path: 'models/default.onnx' },
      }),
    );
    const fromFile = await runCli(['check-config', '--config', file]);
    expect(fromFile.stderr).toBe('');
    expect(fromFile.code).toBe(0);
    expect(fromFile.stdout).toContain('config OK');
    expect(fromFile.stdout).toContain('"password": "[redacted]"');
    expect(fromFile.stdout).toContain(pki.clientKey);
    expect(fromFile.stdout).not.toContain(PASSWORD);
    for (const line of keyLines(pki.clientKey)) expect(fromFile.stdout).not.toContain(line);

    writeFileSync(file, JSON.stringify({ broker: { url: `mqtt://${USER}:${PASSWORD}@127.0.0.1:1883` }, model: { path: 'models/default.onnx' } }));
    const inUrl = await runCli(['check-config', '--config', file]);
    expect(inUrl.code).toBe(0);
    expect(inUrl.stdout, 'password inside broker.url').not.toContain(PASSWORD);

    writeFileSync(file, JSON.stringify({ broker: { url: 'mqtt://127.0.0.1:1883', username: USER }, model: { path: 'models/default.onnx' } }));
    const fromEnv = await runCli(['check-config', '--config', file], { SENTINEL_BROKER_PASSWORD: PASSWORD });
    expect(fromEnv.code).toBe(0);
    expect(fromEnv.stdout).toContain('"password": "[redacted]"');
    expect(fromEnv.stdout + fromEnv.stderr).not.toContain(PASSWORD);
  });
});
