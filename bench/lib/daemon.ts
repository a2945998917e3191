/** The daemon under test: the built CLI (`dist/cli/main.js run`) as a child process with a temp YAML config. */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { appendFileSync, existsSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import type { ConfigInput, SubscriptionConfig } from '../../src/config/schema.js';
import { getText } from '../../test/support/http.js';
import { MetricsSnapshot } from './prometheus.js';
import { freePort, sleep, waitUntil } from '../../test/support/proc.js';

export const CLI = resolve('dist/cli/main.js');

function newestMtime(dir: string): number {
  let newest = 0;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestMtime(path) : statSync(path).mtimeMs);
  }
  return newest;
}

/**
 * Builds the CLI when dist/ is missing (or BENCH_BUILD=1); warns when src/ is newer than the build,
 * since the bench would then measure old code.
 */
export function ensureBuilt(log: (line: string) => void): void {
  if (!existsSync(CLI) || process.env.BENCH_BUILD === '1') {
    log('building the daemon (npm run build)…');
    execFileSync('npm', ['run', 'build'], { stdio: 'inherit' });
    return;
  }
  if (newestMtime(resolve('src')) > statSync(CLI).mtimeMs) {
    log('warning: src/ is newer than dist/cli/main.js — run `npm run build` (or BENCH_BUILD=1) to bench the current code');
  }
}

export interface DaemonOptions {
  dir: string;
  name: string;
  /** null: the embedded broker on a free port. */
  brokerUrl: string | null;
  protocolVersion: 4 | 5;
  subscription: SubscriptionConfig;
  modelPath?: string;
  alertPrefix: string;
  /** Extra config sections merged over the bench defaults. */
  extra?: Partial<ConfigInput>;
  /** Node flags for the daemon (BENCH_DAEMON_NODE_ARGS come after them). */
  nodeArgs?: string[];
  /** Another build's CLI (lib/baseline-build.ts); default: this checkout's dist/cli/main.js. */
  cli?: string;
}

/** BENCH_DAEMON_CONFIG: JSON sections laid over every bench daemon's config, e.g. '{"batch":{"maxSize":1024}}'. */
function envConfig(): Partial<ConfigInput> {
  const raw = process.env.BENCH_DAEMON_CONFIG;
  if (raw === undefined || raw.trim() === '') return {};
  try {
    return JSON.parse(raw) as Partial<ConfigInput>;
  } catch (err) {
    throw new Error(`BENCH_DAEMON_CONFIG is not JSON: ${(err as Error).message}`);
  }
}

export class DaemonProcess {
  private output = '';
  private readonly exited: Promise<number | null>;

  private constructor(
    readonly child: ChildProcess,
    readonly pid: number,
    readonly httpPort: number,
    /** The broker it reads from (its embedded one when it started one). */
    readonly brokerUrl: string,
    readonly configPath: string,
  ) {
    // BENCH_DAEMON_OUTPUT=DIR keeps each daemon's whole stdout and stderr (e.g. with --trace-gc) in DIR/<pid>.log.
    const dir = process.env.BENCH_DAEMON_OUTPUT;
    const file = dir ? join(dir, `${pid}.log`) : null;
    const keep = (chunk: Buffer): void => {
      this.output = (this.output + chunk.toString()).slice(-8000);
      if (file !== null) appendFileSync(file, chunk);
    };
    child.stdout?.on('data', keep);
    child.stderr?.on('data', keep);
    this.exited = new Promise((resolve) => child.once('exit', (code) => resolve(code)));
  }

  static async start(options: DaemonOptions): Promise<DaemonProcess> {
    const httpPort = await freePort();
    const embeddedPort = options.brokerUrl === null ? await freePort() : 0;
    const config: ConfigInput = {
      nodeName: `bench-${options.name}`,
      broker: {
        url: options.brokerUrl,
        clientId: `sentinel-bench-${process.pid}-${options.name}`,
        protocolVersion: options.protocolVersion,
        // Short, so sessions of bench daemons do not linger on a shared broker.
        sessionExpirySeconds: 30,
        embedded: { host: '127.0.0.1', port: embeddedPort },
      },
      subscriptions: [options.subscription],
      model: { path: options.modelPath ?? 'models/default.onnx' },
      alert: { prefix: options.alertPrefix },
      http: { host: '127.0.0.1', port: httpPort },
      log: { level: 'warn' },
      ...options.extra,
      ...envConfig(),
    };
    const configPath = join(options.dir, `${options.name}.yaml`);
    writeFileSync(configPath, stringify(config));
    // e.g. BENCH_DAEMON_NODE_ARGS="--cpu-prof --cpu-prof-dir=/tmp/prof" to profile the daemon under load.
    const nodeArgs = [...(options.nodeArgs ?? []), ...(process.env.BENCH_DAEMON_NODE_ARGS ?? '').split(' ').filter((a) => a.length > 0)];
    const child = spawn(process.execPath, [...nodeArgs, options.cli ?? CLI, 'run', '--config', configPath], { stdio: ['ignore', 'pipe', 'pipe'] });
    if (child.pid === undefined) throw new Error('daemon did not spawn');
    const brokerUrl = options.brokerUrl ?? `mqtt://127.0.0.1:${embeddedPort}`;
    const daemon = new DaemonProcess(child, child.pid, httpPort, brokerUrl, configPath);
    try {
      await waitUntil(() => child.exitCode === null && daemon.ready(), 30_000, `daemon ${options.name} /readyz`, 100);
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`${(err as Error).message}; exit ${child.exitCode}; output:\n${daemon.output}`);
    }
    return daemon;
  }

  private async ready(): Promise<boolean> {
    if (this.child.exitCode !== null) throw new Error(`daemon exited with ${this.child.exitCode}`);
    try {
      return (await getText(this.httpPort, '/readyz')).status === 200;
    } catch {
      return false;
    }
  }

  /** A scrape; with `names`, only those metrics (cheap enough to poll several times a second). */
  async metrics(names: readonly string[] = []): Promise<MetricsSnapshot> {
    const query = names.map((n) => `name=${encodeURIComponent(n)}`).join('&');
    const { body } = await getText(this.httpPort, `/metrics${query ? `?${query}` : ''}`);
    return MetricsSnapshot.parse(body, performance.now());
  }

  get recentOutput(): string {
    return this.output;
  }

  /** SIGTERM and wait for the graceful stop; returns the exit code. */
  async stop(timeoutMs = 20_000): Promise<number | null> {
    if (this.child.exitCode !== null) return this.child.exitCode;
    this.child.kill('SIGTERM');
    const code = await Promise.race([this.exited, sleep(timeoutMs).then(() => 'timeout' as const)]);
    if (code === 'timeout') {
      this.child.kill('SIGKILL');
      return this.exited;
    }
    return code;
  }
}

/**
 * /readyz turns 200 on CONNACK, before the SUBACK: publish a probe reading until the daemon counts it,
 * so no measured message can arrive before the subscription exists. With `filter`, only what that
 * subscription received counts (a daemon with several subscriptions is probed once per filter).
 */
export async function awaitSubscribed(daemon: DaemonProcess, protocolVersion: 4 | 5, topic: string, payload: string, filter?: string): Promise<void> {
  const { default: mqtt } = await import('mqtt');
  const client = await mqtt.connectAsync(daemon.brokerUrl, { protocolVersion, clientId: `bench-probe-${process.pid}`, clean: true });
  try {
    await waitUntil(
      async () => {
        await client.publishAsync(topic, payload, { qos: 1 });
        await sleep(50);
        const metrics = await daemon.metrics(['sentinel_messages_received_total']);
        return (filter === undefined ? metrics.sum('sentinel_messages_received_total') : metrics.sumWhere('sentinel_messages_received_total', { subscription: filter })) > 0;
      },
      15_000,
      'the daemon to receive a probe message',
      100,
    );
  } finally {
    await client.endAsync();
  }
}
