/** Shared by the deployment tests: external tools, rendered kustomize overlays, a live daemon's /metrics. */
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import { parseAllDocuments } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/observe/log.js';
import { connectClient, waitFor } from './broker.js';

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));

export interface RunResult {
  status: number | null;
  stdout: string;
  stderr: string;
}

export function run(command: string, args: string[], input?: string): RunResult {
  const result = spawnSync(command, args, { cwd: repoRoot, input, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  if (result.error) throw result.error;
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/**
 * True when `name` is on PATH. CI (CI=true) installs every tool these tests use, so a missing one
 * fails there instead of quietly skipping; elsewhere the tests that need it are skipped.
 */
export function hasTool(name: string): boolean {
  const found = spawnSync('sh', ['-c', `command -v ${name}`], { encoding: 'utf8' }).status === 0;
  if (!found && process.env.CI === 'true') throw new Error(`${name} is not installed — CI needs it for test/deploy`);
  return found;
}

/** A Kubernetes object as rendered; the tests narrow it further where they use it. */
export interface K8sObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [key: string]: unknown;
}

export function parseObjects(text: string): K8sObject[] {
  return parseAllDocuments(text)
    .map((doc) => {
      if (doc.errors.length > 0) throw new Error(doc.errors.map((e) => e.message).join('\n'));
      return doc.toJS() as K8sObject | null;
    })
    .filter((o): o is K8sObject => o !== null);
}

/** `kubectl kustomize <dir>` parsed into objects; throws with kustomize's message on failure. */
export function kustomize(dir: string): K8sObject[] {
  const result = run('kubectl', ['kustomize', dir]);
  if (result.status !== 0) throw new Error(`kubectl kustomize ${dir} failed:\n${result.stderr}`);
  return parseObjects(result.stdout);
}

export function findObject<T = K8sObject>(objects: K8sObject[], kind: string, name?: string): T {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as T;
}

export interface LiveMetrics {
  /** The full /metrics text after real traffic went through the daemon. */
  text: string;
  /** Every series name the daemon can export, from the # TYPE lines (histograms add _bucket, _sum, _count). */
  names: Set<string>;
}

function telemetry(ts: number, i: number): string {
  const wave = Math.sin(i / 3);
  return JSON.stringify({
    ts,
    values: { vibration: 0.5 + 0.05 * wave, current: 10 + wave, pressure: 3 + 0.1 * wave, temperature: 45 + wave, flow: 20 + wave },
  });
}

/**
 * Starts the daemon in-process on its embedded broker, publishes enough telemetry for windows to be
 * scored plus one malformed message, and scrapes /metrics.
 */
export async function scrapeLiveDaemon(): Promise<LiveMetrics> {
  const config = validateConfig({
    broker: { url: null, embedded: { host: '127.0.0.1', port: 0 } },
    http: { host: '127.0.0.1', port: 0 },
    model: { path: 'models/default.onnx' },
    log: { level: 'error' },
  });
  const daemon = new Daemon(config, createLogger('error'));
  let client: MqttClient | null = null;
  try {
    await daemon.start();
    const url = `http://127.0.0.1:${daemon.httpPort}`;
    await waitFor(() => daemon.readiness().ready, 10_000, 'the daemon to be ready');
    client = await connectClient({ url: daemon.brokerUrl, protocolVersion: 4, stop: async () => {} }, `deploy-test-${process.pid}`);
    const start = Date.now() - 60_000;
    for (let i = 0; i < 30; i++) await client.publishAsync('sensors/pump-1/telemetry', telemetry(start + i * 1000, i), { qos: 1 });
    await client.publishAsync('sensors/pump-1/telemetry', '{"ts": "not a number"', { qos: 1 });
    let text = '';
    const deadline = Date.now() + 10_000;
    for (;;) {
      text = await (await fetch(`${url}/metrics`)).text();
      if (/^sentinel_windows_scored_total [1-9]/m.test(text) && /^sentinel_readings_rejected_total\{/m.test(text)) break;
      if (Date.now() > deadline) throw new Error(`no window scored within 10 s:\n${text}`);
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    const names = new Set<string>();
    for (const match of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
      const [, name, type] = match as unknown as [string, string, string];
      names.add(name);
      if (type === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(name + suffix);
      if (type === 'summary') for (const suffix of ['_sum', '_count']) names.add(name + suffix);
    }
    return { text, names };
  } finally {
    await client?.endAsync();
    await daemon.stop();
  }
}

const promqlWords = new Set([
  'by', 'without', 'on', 'ignoring', 'group_left', 'group_right', 'and', 'or', 'unless', 'offset', 'bool', 'inf', 'nan',
]);

/**
 * Metric names a PromQL (or Grafana-templated PromQL) expression reads: identifiers that are not
 * functions, keywords, label names in matchers or grouping clauses, or string contents.
 */
export function metricNames(expr: string): string[] {
  const stripped = expr
    .replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`/g, '""')
    .replace(/\{[^}]*\}/g, ' ')
    .replace(/\[[^\]]*\]/g, ' ')
    .replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ')
    .replace(/\$\w+/g, ' ');
  const names = new Set<string>();
  for (const match of stripped.matchAll(/(?<![\w.])[a-zA-Z_:][\w:]*/g)) {
    const name = match[0];
    const isCall = /^\s*\(/.test(stripped.slice(match.index + name.length));
    if (!isCall && !promqlWords.has(name.toLowerCase())) names.add(name);
  }
  return [...names];
}
