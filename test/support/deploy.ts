/** Shared by the deployment tests: external tools, rendered kustomize overlays, strict schema checks, a live daemon's /metrics. */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { MqttClient } from 'mqtt';
import ts from 'typescript';
import { parseAllDocuments } from 'yaml';
import { validateConfig } from '../../src/config/load.js';
import { Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/observe/log.js';
import { connectClient, waitFor } from './broker.js';
import { DEFAULT_WARMUP_ROWS } from './model.js';

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

/**
 * Renders `dir` through a throwaway kustomization that adds `extra` (YAML lines such as
 * `namePrefix: acme-`) on top, as an operator's own overlay would.
 */
export function kustomizeWith(dir: string, extra: string): K8sObject[] {
  const overlay = mkdtempSync(join(tmpdir(), 'sentinel-overlay-'));
  try {
    // kustomize takes relative resource paths only.
    writeFileSync(join(overlay, 'kustomization.yaml'), `resources:\n  - ${relative(overlay, join(repoRoot, dir))}\n${extra}\n`);
    return kustomize(overlay);
  } finally {
    rmSync(overlay, { recursive: true, force: true });
  }
}

export function findObject<T = K8sObject>(objects: K8sObject[], kind: string, name?: string): T {
  const found = objects.filter((o) => o.kind === kind && (name === undefined || o.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as T;
}

interface ModelTypes {
  checker: ts.TypeChecker;
  /** The interface of each loaded kind, by `apiVersion kind`. */
  types: Map<string, ts.Type>;
}
interface Kind {
  apiVersion: string;
  kind: string;
}
let loaded: { kinds: Kind[]; model: ModelTypes } | null = null;

const kindKey = (o: Kind): string => `${o.apiVersion} ${o.kind}`;

/**
 * kubernetes-models' interfaces as the TypeScript checker sees them. Its validate() checks types and
 * required fields but, like the OpenAPI schema it comes from, lets unknown fields through; its type
 * declarations know every field, so they are the list an unknown one is checked against.
 */
function loadModelTypes(kinds: Kind[]): ModelTypes {
  const file = join(repoRoot, '__kubernetes_models__.ts');
  const unique = [...new Map(kinds.map((k) => [kindKey(k), k])).values()];
  const source = unique.map((k, i) => `export type T${i} = import('kubernetes-models/${k.apiVersion}/${k.kind}').I${k.kind};`).join('\n');
  const options: ts.CompilerOptions = {
    module: ts.ModuleKind.NodeNext,
    moduleResolution: ts.ModuleResolutionKind.NodeNext,
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    types: [],
  };
  const host = ts.createCompilerHost(options);
  const getSourceFile = host.getSourceFile.bind(host);
  const fileExists = host.fileExists.bind(host);
  host.getSourceFile = (name, language, ...rest) => (name === file ? ts.createSourceFile(name, source, language) : getSourceFile(name, language, ...rest));
  host.fileExists = (name) => name === file || fileExists(name);
  const program = ts.createProgram([file], options, host);
  const problems = ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, '\n'));
  if (problems.length > 0) throw new Error(`kubernetes-models has no type for a rendered kind:\n${problems.join('\n')}`);
  const checker = program.getTypeChecker();
  const module = checker.getSymbolAtLocation(program.getSourceFile(file) as ts.SourceFile) as ts.Symbol;
  const byName = new Map(checker.getExportsOfModule(module).map((e) => [e.name, checker.getDeclaredTypeOfSymbol(e)]));
  return { checker, types: new Map(unique.map((k, i) => [kindKey(k), byName.get(`T${i}`) as ts.Type])) };
}

/**
 * Paths of fields that the Kubernetes API does not know (a misspelt `revisionHistoryLimt`), as
 * `DaemonSet/sentinel-cpu: spec.revisionHistoryLimt`. The API server drops such fields with at most a
 * warning, so a typo silently loses a setting; kubectl --validate=strict would refuse them.
 */
export function unknownFields(objects: K8sObject[]): string[] {
  if (loaded === null || objects.some((o) => !loaded?.model.types.has(kindKey(o)))) {
    const kinds = [...(loaded?.kinds ?? []), ...objects.map(({ apiVersion, kind }) => ({ apiVersion, kind }))];
    loaded = { kinds, model: loadModelTypes(kinds) };
  }
  const { checker, types } = loaded.model;
  const walk = (value: unknown, declared: ts.Type, path: string, found: string[]): void => {
    if (value === null || typeof value !== 'object') return;
    let type = checker.getNonNullableType(declared);
    if (type.flags & (ts.TypeFlags.Any | ts.TypeFlags.Unknown)) return;
    if (type.isUnion()) {
      // IntOrString and the like hold no object; a union of several object types is left to validate().
      const objectTypes = type.types.filter((t) => (t.flags & ts.TypeFlags.Object) !== 0);
      if (objectTypes.length !== 1) return;
      type = objectTypes[0] as ts.Type;
    }
    if (Array.isArray(value)) {
      const element = checker.getIndexTypeOfType(type, ts.IndexKind.Number);
      if (element) value.forEach((item, i) => walk(item, element, `${path}[${i}]`, found));
      return;
    }
    const index = checker.getIndexTypeOfType(type, ts.IndexKind.String);
    for (const [field, child] of Object.entries(value)) {
      const property = checker.getPropertyOfType(type, field);
      const at = path === '' ? field : `${path}.${field}`;
      if (property) walk(child, checker.getTypeOfSymbol(property), at, found);
      else if (index) walk(child, index, at, found);
      else found.push(at);
    }
  };
  return objects.flatMap((o) => {
    const found: string[] = [];
    walk(o, types.get(kindKey(o)) as ts.Type, '', found);
    return found.map((path) => `${o.kind}/${o.metadata.name}: ${path}`);
  });
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
    // Past the default model's per-stream baseline warm-up, so that windows are scored.
    const rows = DEFAULT_WARMUP_ROWS + 30;
    const start = Date.now() - rows * 1000;
    for (let i = 0; i < rows; i++) await client.publishAsync('sensors/pump-1/telemetry', telemetry(start + i * 1000, i), { qos: 1 });
    await client.publishAsync('sensors/pump-1/telemetry', '{"ts": "not a number"', { qos: 1 });
    let text = '';
    const deadline = Date.now() + 10_000;
    for (;;) {
      text = await (await fetch(`${url}/metrics`)).text();
      if (/^sentinel_windows_scored_total(\{[^}]*\})? [1-9]/m.test(text) && /^sentinel_readings_rejected_total\{/m.test(text)) break;
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
