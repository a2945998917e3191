/**
 * Attacks on the metrics and probes port of the real CLI (a child process): hostile request lines,
 * and a slowloris swarm under a 1,024-descriptor limit. The daemon must stay up, keep probing green
 * and scoring, and exit 0 on SIGTERM.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MqttClient } from 'mqtt';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { PumpSimulator } from '../../src/offline/sim/pump.js';
import { connectClient, uniquePrefix, waitFor, type TestBroker } from '../support/broker.js';
import { startCli, type CliProcess } from '../support/cli.js';
import { metricValue, scrape } from '../support/metrics.js';
import { DEFAULT_MANIFEST, DEFAULT_MODEL, DEFAULT_WARMUP_ROWS, scoredWindows } from '../support/model.js';
import { eventually, getText, rawRequest, slowloris, type SlowlorisResult } from '../support/http.js';

const broker: TestBroker = { url: process.env.SENTINEL_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883', protocolVersion: 5, stop: async () => {} };
const HEADERS_TIMEOUT_MS = 1_000;
const FD_LIMIT = 1_024;

interface Running {
  cli: CliProcess;
  port: number;
  prefix: string;
  client: MqttClient;
  dir: string;
}

const running: Running[] = [];
afterEach(async () => {
  for (const r of running.splice(0)) {
    if (r.cli.child.exitCode === null) r.cli.child.kill('SIGKILL');
    await r.client.endAsync();
    rmSync(r.dir, { recursive: true, force: true });
  }
});

async function startDaemon(name: string, fdLimit?: number): Promise<Running> {
  const prefix = uniquePrefix(name);
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-attack-'));
  const configPath = join(dir, 'sentinel.yaml');
  writeFileSync(
    configPath,
    stringify({
      nodeName: 'attack-node',
      outbox: { path: join(dir, 'outbox.jsonl') },
      broker: { url: broker.url, protocolVersion: broker.protocolVersion, clientId: `sentinel-${prefix.replace(/\//g, '-')}` },
      subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
      alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
      http: { host: '127.0.0.1', port: 0, maxConnections: 64, maxConnectionsPerClient: 8, headersTimeoutMs: HEADERS_TIMEOUT_MS, requestTimeoutMs: 2_000 },
      model: { path: DEFAULT_MODEL, warmupRuns: 1, watch: false },
    }),
  );
  const cli = startCli(['run', '--config', configPath]);
  const client = await connectClient(broker, `attack-${process.pid}-${name}`);
  const r: Running = { cli, port: 0, prefix, client, dir };
  running.push(r);
  if (fdLimit !== undefined) {
    // Lowered on the running process (prlimit(2)) before it has opened anything that matters here.
    const set = spawnSync('prlimit', ['--pid', String(cli.child.pid), `--nofile=${fdLimit}:${fdLimit}`], { encoding: 'utf8' });
    if (set.status !== 0) throw new Error(`prlimit failed (${set.error?.message ?? set.stderr}) — fix: install util-linux`);
  }
  await waitFor(() => cli.logs().some((l) => l.msg === 'sentinel ready') || cli.child.exitCode !== null, 30_000, 'sentinel ready');
  r.port = cli.logs().find((l) => l.msg === 'sentinel ready')?.httpPort as number;
  expect(r.port).toBeGreaterThan(0);
  await waitFor(() => cli.logs().some((l) => l.msg === 'subscribed'), 10_000, 'subscribed');
  return r;
}

/** Publishes pump readings on one stream, one every `everyMs`, until `rows` are sent or `stop()` says so. */
async function publishReadings(r: Running, sim: PumpSimulator, rows: number, everyMs = 0, stop = (): boolean => false): Promise<void> {
  for (let i = 0; i < rows && !stop(); i++) {
    const reading = sim.next();
    const payload = { ts: new Date(reading.ts).toISOString(), values: Object.fromEntries(sim.channels.map((c, k) => [c, reading.values[k]])) };
    await r.client.publishAsync(`${r.prefix}/sensors/pump-1/telemetry`, JSON.stringify(payload), { qos: 1 });
    if (everyMs > 0) await new Promise((resolve) => setTimeout(resolve, everyMs));
  }
}

/** Nothing that says a crash or a caught bug, in either stream of the daemon's output. */
function expectCleanOutput(cli: CliProcess): void {
  const out = cli.stdout() + cli.stderr();
  expect(out).not.toMatch(/EMFILE|ENFILE|unhandled|uncaught|internal error/i);
  expect(cli.stderr()).not.toMatch(/\n\s+at /);
  expect(cli.logs().filter((l) => (l.level as number) >= 50)).toEqual([]);
}

async function healthz(port: number): Promise<number> {
  return (await getText(port, '/healthz')).status;
}

async function stopCleanly(r: Running): Promise<void> {
  r.cli.child.kill('SIGTERM');
  expect(await r.cli.exited).toBe(0);
  expectCleanOutput(r.cli);
}

const hostile: Array<[string, string | Buffer]> = [
  ['double slash', 'GET // HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['backslash', 'GET /\\ HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['bad escape', 'GET /%zz HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['bad escape in ?name=', 'GET /metrics?name=%zz&name=%E0%A4%A HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['absolute form', 'GET http://x/metrics HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['absolute form, broken authority', 'GET http://[::1:99999/healthz HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['scheme only', 'GET http:// HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['asterisk form', 'OPTIONS * HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['authority form', 'CONNECT 127.0.0.1:1883 HTTP/1.1\r\nHost: 127.0.0.1:1883\r\n\r\n'],
  ['huge query', `GET /metrics?${'name=x&'.repeat(3_000)} HTTP/1.1\r\nHost: s\r\n\r\n`],
  ['huge header line', `GET /healthz HTTP/1.1\r\nHost: s\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`],
  ['POST with a body', 'POST /metrics HTTP/1.1\r\nHost: s\r\nContent-Length: 4\r\n\r\nabcd'],
  ['smuggling headers', 'GET /healthz HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n'],
  ['unknown method', 'BREW /healthz HTTP/1.1\r\nHost: s\r\n\r\n'],
  ['unknown version', 'GET /healthz HTTP/9.9\r\nHost: s\r\n\r\n'],
  ['not HTTP', Buffer.from([0, 1, 2, 255, 13, 10, 13, 10])],
  ['non-UTF-8 target', Buffer.from('GET /readyz?\xff\xfe HTTP/1.1\r\nHost: s\r\n\r\n', 'latin1')],
  ['NUL in a header', 'GET /healthz HTTP/1.1\r\nHost: s\r\nX-A: a\u0000b\r\n\r\n'],
  ['bare LF line ends', 'GET // HTTP/1.1\nHost: s\n\n'],
  ['upgrade', 'GET /healthz HTTP/1.1\r\nHost: s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n'],
  ['pipelined', 'GET // HTTP/1.1\r\nHost: s\r\n\r\n'.repeat(50)],
];

describe('attack: the metrics and probes port of the real CLI', () => {
  it('hostile request lines get an answer or a closed socket; the daemon stays up, probes 200 and exits 0', async () => {
    const r = await startDaemon('lines');
    const answers: Record<string, number | null> = {};
    for (const [name, bytes] of hostile) {
      const answer = await rawRequest(r.port, bytes);
      expect(answer.timedOut, `no answer and no close after "${name}"`).toBe(false);
      expect(r.cli.child.exitCode, `daemon exited after "${name}"`).toBeNull();
      answers[name] = answer.status;
    }
    expect(answers).toMatchObject({ 'double slash': 404, backslash: 404, 'bad escape': 404, 'bad escape in ?name=': 200, 'absolute form': 200, 'huge query': 431, 'huge header line': 431 });
    expect(answers['authority form']).toBeNull();
    expect(await healthz(r.port)).toBe(200);
    const metrics = await scrape(r.port);
    expect(metricValue(metrics, 'sentinel_internal_errors_total')).toBe(0);
    expect(metricValue(metrics, 'sentinel_http_rejected_total', { reason: 'bad_request' })).toBeGreaterThanOrEqual(5);
    await stopCleanly(r);
  });

  it(`slowloris under a ${FD_LIMIT}-descriptor limit: one address cannot starve probes or scoring, many are held to the total cap, held sockets close after headersTimeoutMs`, async () => {
    const r = await startDaemon('slowloris', FD_LIMIT);
    const pid = r.cli.child.pid as number;
    expect(readFileSync(`/proc/${pid}/limits`, 'utf8')).toMatch(new RegExp(`Max open files\\s+${FD_LIMIT}\\s+${FD_LIMIT}`));
    const sim = new PumpSimulator({ seed: 3 });
    const rows = DEFAULT_WARMUP_ROWS + 30;
    await publishReadings(r, sim, rows);
    let before = '';
    await eventually(async () => {
      before = await scrape(r.port);
      return metricValue(before, 'sentinel_windows_scored_total') >= scoredWindows(DEFAULT_MANIFEST, rows);
    }, 'windows scored before the attack').catch((err: Error) => {
      console.log(before.split('\n').filter((l) => /^sentinel_(messages|readings|windows)/.test(l)).join('\n'), r.cli.stdout().slice(-3000));
      throw err;
    });

    // One attacker pod (127.0.0.2) opens 3,000 connections, 100 more every 20 ms, each stalling mid-head.
    let attackDone = false;
    const attack = slowloris(r.port, '127.0.0.2', 3_000, 100, 20_000).finally(() => (attackDone = true));
    const statuses: number[] = [];
    let maxFds = 0;
    let publishError: unknown = null;
    const publishing = publishReadings(r, sim, Infinity, 20, () => attackDone).catch((err: unknown) => (publishError = err));
    let during = '';
    while (!attackDone) {
      statuses.push(await healthz(r.port).catch(() => 0));
      maxFds = Math.max(maxFds, readdirSync(`/proc/${pid}/fd`).length);
      if (statuses.length % 10 === 5) during = await scrape(r.port).catch(() => during);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const result: SlowlorisResult = await attack;
    await publishing;
    const after = await scrape(r.port);

    const report = {
      ...result,
      heldMs: undefined,
      heldMsMax: Math.max(...result.heldMs),
      heldMsMin: Math.min(...result.heldMs),
      healthzDuring: statuses.length,
      healthzNot200: statuses.filter((s) => s !== 200).length,
      maxFds,
    };
    console.log('slowloris, one address', JSON.stringify(report));
    // The probe client was never turned away while the attacker was.
    expect(report.healthzDuring).toBeGreaterThanOrEqual(5);
    expect(report.healthzNot200).toBe(0);
    expect(maxFds).toBeLessThan(200);
    expect(result.opened + result.failed).toBe(3_000);
    expect(result.other).toBe(0);
    // At most 8 held at a time: the rest refused at once, every refusal and time-out counted.
    expect(result.refused).toBeGreaterThan(2_000);
    expect(result.timedOut).toBeGreaterThanOrEqual(8);
    expect(metricValue(after, 'sentinel_http_rejected_total', { reason: 'client_limit' })).toBe(result.refused + result.failed);
    expect(metricValue(after, 'sentinel_http_rejected_total', { reason: 'timeout' })).toBe(result.timedOut);
    expect(metricValue(after, 'sentinel_http_rejected_total', { reason: 'connection_limit' })).toBe(0);
    // Held sockets are closed after the head deadline, not 30 s later (Node's default check interval).
    expect(report.heldMsMax).toBeLessThan(HEADERS_TIMEOUT_MS + 4_000);
    // The broker stayed connected and readings kept being scored throughout.
    expect(publishError).toBeNull();
    expect(during).not.toBe('');
    expect(metricValue(during, 'sentinel_broker_connected')).toBe(1);
    expect(metricValue(after, 'sentinel_broker_connected')).toBe(1);
    expect(metricValue(after, 'sentinel_windows_scored_total')).toBeGreaterThan(metricValue(before, 'sentinel_windows_scored_total'));
    expect(metricValue(after, 'sentinel_internal_errors_total')).toBe(0);

    // Twenty attacker addresses want 160 slots: the total cap (64) holds, descriptors stay bounded, and
    // once their heads time out the probe port is free again. (While they hold every slot, probes from
    // elsewhere are refused too: the per-address cap cannot tell many attackers from many clients.)
    let swarmDone = false;
    const addresses = Array.from({ length: 20 }, (_, i) => `127.0.0.${10 + i}`);
    const swarm = Promise.all(addresses.map((address) => slowloris(r.port, address, 50, 10, 20_000))).finally(() => (swarmDone = true));
    let swarmFds = 0;
    while (!swarmDone) {
      swarmFds = Math.max(swarmFds, readdirSync(`/proc/${pid}/fd`).length);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const results = await swarm;
    const sum = (key: 'opened' | 'failed' | 'refused' | 'timedOut' | 'other'): number => results.reduce((n, x) => n + x[key], 0);
    const last = await scrape(r.port);
    const delta = (reason: string): number =>
      metricValue(last, 'sentinel_http_rejected_total', { reason }) - metricValue(after, 'sentinel_http_rejected_total', { reason });
    const swarmReport = {
      opened: sum('opened'),
      failed: sum('failed'),
      refused: sum('refused'),
      timedOut: sum('timedOut'),
      other: sum('other'),
      connectionLimit: delta('connection_limit'),
      clientLimit: delta('client_limit'),
      heldMsMax: Math.max(...results.flatMap((x) => x.heldMs)),
      maxFds: swarmFds,
    };
    console.log('slowloris, 20 addresses', JSON.stringify(swarmReport));
    expect(swarmReport.other).toBe(0);
    expect(swarmReport.timedOut).toBeGreaterThanOrEqual(64);
    expect(swarmReport.connectionLimit).toBeGreaterThan(0);
    expect(swarmReport.connectionLimit + swarmReport.clientLimit).toBe(swarmReport.refused + swarmReport.failed);
    expect(delta('timeout')).toBe(swarmReport.timedOut);
    expect(swarmFds).toBeLessThan(200);
    expect(swarmReport.heldMsMax).toBeLessThan(HEADERS_TIMEOUT_MS + 4_000);
    expect(metricValue(last, 'sentinel_internal_errors_total')).toBe(0);
    expect(metricValue(last, 'sentinel_broker_connected')).toBe(1);
    expect(await healthz(r.port)).toBe(200);
    await stopCleanly(r);
  });
});
