/**
 * The daemon as an attacker meets it: the built CLI as a child process with its own config, on the
 * shared broker (or one the test owns), with helpers that prove it came through an attack unharmed.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { stringify } from 'yaml';
import { waitFor } from './broker.js';
import { captureCli, CLI, type CliProcess } from './cli.js';
import { metricValue, scrape } from './metrics.js';
import { DEFAULT_MODEL } from './model.js';

export const BROKER_URL = process.env.SENTINEL_TEST_MQTT_URL ?? 'mqtt://127.0.0.1:1883';

export interface AttackDaemonOptions {
  /** Broker URL (default: the shared one). */
  brokerUrl?: string;
  /** Extra `node` flags, e.g. ['--max-old-space-size=320'] as in the image. */
  nodeFlags?: string[];
  /** Run under `ulimit -n <n>`. */
  maxOpenFiles?: number;
  env?: NodeJS.ProcessEnv;
}

export interface AttackDaemon {
  /** Unique topic prefix of this daemon: telemetry on `<prefix>/sensors/+/telemetry`, alerts under `<prefix>/alerts`. */
  prefix: string;
  dir: string;
  configPath: string;
  outboxPath: string;
  cli: CliProcess;
  port: number;
  metrics(): Promise<string>;
  metric(name: string, labels?: Record<string, string>): Promise<number>;
  /** SIGTERM and the exit code. */
  stop(): Promise<number | null>;
}

let counter = 0;

/** Config for an attack test: one json-values subscription, private outbox and topics, probes on a free port. */
export function attackConfig(prefix: string, dir: string, brokerUrl: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    nodeName: 'attack-node',
    broker: { url: brokerUrl, protocolVersion: 5, clientId: `sentinel-${prefix}`, reconnectMinMs: 100, reconnectMaxMs: 400 },
    subscriptions: [{ topic: `${prefix}/sensors/+/telemetry`, format: 'json-values', qos: 1 }],
    alert: { prefix: `${prefix}/alerts`, statusPrefix: `${prefix}/status` },
    outbox: { path: join(dir, 'outbox.jsonl') },
    http: { host: '127.0.0.1', port: 0 },
    model: { path: DEFAULT_MODEL, warmupRuns: 1, watch: false },
    log: { level: 'info', rejectLogIntervalMs: 1000 },
    ...overrides,
  };
}

/** Spawns the CLI like startCli, optionally with node flags and an fd limit. */
function spawnCli(args: string[], options: AttackDaemonOptions): CliProcess {
  const node = [process.execPath, ...(options.nodeFlags ?? []), CLI, ...args].map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(' ');
  const command = options.maxOpenFiles === undefined ? `exec ${node}` : `ulimit -n ${options.maxOpenFiles} && exec ${node}`;
  return captureCli(spawn('bash', ['-c', command], { env: { ...process.env, ...options.env }, stdio: ['ignore', 'pipe', 'pipe'] }));
}

/** Starts the daemon with a config of its own and waits until it is ready and connected. */
export async function startAttackDaemon(name: string, overrides: Record<string, unknown> = {}, options: AttackDaemonOptions = {}): Promise<AttackDaemon> {
  const dir = mkdtempSync(join(tmpdir(), `sentinel-attack-${name}-`));
  const prefix = `attack-${name}-${process.pid}-${++counter}`;
  const configPath = join(dir, 'sentinel.yaml');
  const config = attackConfig(prefix, dir, options.brokerUrl ?? BROKER_URL, overrides);
  writeFileSync(configPath, stringify(config));
  const cli = spawnCli(['run', '--config', configPath], options);
  await waitFor(() => cli.logs().some((l) => l.msg === 'sentinel ready') || cli.child.exitCode !== null, 30_000, 'sentinel ready');
  const ready = cli.logs().find((l) => l.msg === 'sentinel ready');
  if (!ready) throw new Error(`daemon did not start: ${cli.stderr()}${cli.stdout()}`);
  await waitFor(() => cli.logs().some((l) => l.msg === 'subscribed'), 15_000, 'subscribed');
  const port = ready.httpPort as number;
  const metrics = () => scrape(port);
  return {
    prefix,
    dir,
    configPath,
    outboxPath: (config.outbox as { path: string }).path,
    cli,
    port,
    metrics,
    metric: async (metricName, labels = {}) => metricValue(await metrics(), metricName, labels),
    stop: async () => {
      if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGTERM');
      return cli.exited;
    },
  };
}

/**
 * The daemon came through unharmed: still running, no error caught at a stage boundary (the process
 * handlers count unhandled rejections and exceptions there too), nothing on stderr.
 */
export async function expectUnharmed(d: AttackDaemon): Promise<void> {
  expect(d.cli.child.exitCode, `daemon exited: ${d.cli.stderr()}`).toBeNull();
  expect(await d.metric('sentinel_internal_errors_total')).toBe(0);
  expect(d.cli.logs().filter((l) => /internal error/.test(String(l.msg)))).toEqual([]);
  expect(d.cli.stderr()).toBe('');
}
