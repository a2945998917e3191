import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import {
  applyEnv,
  checkConfig,
  envNameFor,
  formatProblem,
  inspectConfig,
  loadConfig,
  nearestName,
  otherEnvVariables,
  validateConfig,
} from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

function tempConfig(text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sentinel-strict-')), 'sentinel.yaml');
  writeFileSync(path, text);
  return path;
}

/** The problem lines for a file and an environment, as check-config prints them. */
function linesFor(yaml: string, env: NodeJS.ProcessEnv = {}): { path: string; lines: string[] } {
  const path = tempConfig(yaml);
  return { path, lines: inspectConfig({ path, env }).problems.map(formatProblem) };
}

function unwrap(schema: z.ZodType): z.ZodType {
  let inner = schema;
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodPrefault || inner instanceof z.ZodOptional || inner instanceof z.ZodNullable) {
    inner = inner.def.innerType as z.ZodType;
  }
  return inner;
}

/** Every object in the schema by key path ([] = the root; "0" = a list element), with its schema. */
function objectPaths(): Array<[string[], z.ZodObject]> {
  const out: Array<[string[], z.ZodObject]> = [];
  const visit = (schema: z.ZodType, path: string[]): void => {
    const inner = unwrap(schema);
    if (inner instanceof z.ZodObject) {
      out.push([path, inner]);
      for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) visit(child, [...path, key]);
    } else if (inner instanceof z.ZodArray) visit(inner.def.element as z.ZodType, [...path, '0']);
  };
  visit(configSchema, []);
  return out;
}

/** A minimal valid input with `value` placed at `path` (list elements get their required keys so only `value` is wrong). */
function inputWith(path: readonly string[], value: unknown): Record<string, unknown> {
  const root: Record<string, unknown> = { nodeName: 'n' };
  let node: Record<string, unknown> = root;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] as string;
    if (path[i + 1] === '0') {
      // A model in models[] needs its name, its path and a subscription that names it.
      const element: Record<string, unknown> = key === 'models' ? { name: 'm', path: 'm.onnx' } : key === 'edgeNodes' ? { group: 'g' } : { topic: 'a/+' };
      if (key === 'models') root.subscriptions = [{ topic: 'a/+', model: 'm' }];
      node[key] = [element];
      node = element;
      i++;
    } else {
      node[key] ??= {};
      node = node[key] as Record<string, unknown>;
    }
  }
  node[path[path.length - 1] as string] = value;
  return root;
}

describe('config: unknown keys (issue 15)', () => {
  it.each([
    ['batch:\n  maxDelay: 10\n', 'batch.maxDelay: unknown key — fix: did you mean batch.maxDelayMs?'],
    ['logging:\n  level: debug\n', 'logging: unknown key — fix: did you mean log?'],
    ['subscriptions:\n  - topic: sensors/+/telemetry\n    qoss: 1\n', 'subscriptions.0.qoss: unknown key — fix: did you mean subscriptions.0.qos?'],
    ['brokr:\n  url: mqtt://localhost:1883\n', 'brokr: unknown key — fix: did you mean broker?'],
    ['level: debug\n', 'level: unknown key — fix: did you mean log.level?'],
    ['schedule:\n  staleCheck: "*/5 * * * * *"\n', 'schedule.staleCheck: renamed to schedule.sweep — fix: rename it to sweep'],
  ])('%j is refused, naming the key and the nearest valid one', (yaml, expected) => {
    const { path, lines } = linesFor(yaml);
    expect(lines).toEqual([`${path}: ${expected}`]);
  });

  it('a key far from every valid one gets the list of keys at its level instead of a guess', () => {
    const { path, lines } = linesFor('queue:\n  zzzzzz: 1\n');
    expect(lines).toEqual([`${path}: queue.zzzzzz: unknown key — fix: remove it; the keys in queue are capacity, dropPolicy, qos0MaxWaitMs`]);
  });

  it('every object in the schema refuses a key it does not have (strictness at every level)', () => {
    const objects = objectPaths();
    // The root, every section, broker.tls, broker.embedded and a subscription.
    expect(objects.length).toBeGreaterThanOrEqual(16);
    for (const [path] of objects) {
      const keyPath = [...path, 'notAKey'];
      const input = path.length === 0 ? { nodeName: 'n', notAKey: 1 } : inputWith(keyPath, 1);
      const lines = checkConfig(input, 'f.yaml').problems.map(formatProblem);
      expect(lines, keyPath.join('.')).toEqual([expect.stringMatching(new RegExp(`^f\\.yaml: ${keyPath.join('\\.')}: unknown key — fix: `))]);
    }
  });

  it('nearestName suggests only close names', () => {
    const keys = ['log', 'broker', 'batch', 'queue'];
    expect(nearestName('logging', keys)).toBe('log');
    expect(nearestName('brokr', keys)).toBe('broker');
    expect(nearestName('Batch', keys)).toBe('batch');
    expect(nearestName('qeue', keys)).toBe('queue');
    expect(nearestName('maxDelay', ['maxSize', 'maxDelayMs'])).toBe('maxDelayMs');
    expect(nearestName('qoss', ['topic', 'stream', 'channel', 'format', 'qos'])).toBe('qos');
    expect(nearestName('window', keys)).toBeUndefined();
    expect(nearestName('xy', keys)).toBeUndefined();
  });
});

describe('config: SENTINEL_* variables (issue 15)', () => {
  it.each([
    ['SENTINEL_BATCH__MAXSIZE', '5', 'batch.maxsize: unknown variable — fix: did you mean SENTINEL_BATCH__MAX_SIZE (batch.maxSize)?'],
    ['SENTINEL_OUTBOX__PATHH', '/tmp/o.jsonl', 'outbox.pathh: unknown variable — fix: did you mean SENTINEL_OUTBOX__PATH (outbox.path)?'],
    ['SENTINEL_LOGGING__LEVEL', 'debug', 'logging.level: unknown variable — fix: did you mean SENTINEL_LOG__LEVEL (log.level)?'],
    ['SENTINEL_CONFG', 'x.yaml', 'confg: unknown variable — fix: did you mean SENTINEL_CONFIG?'],
    ['SENTINEL_SCHEDULE__STALE_CHECK', '* * * * *', 'schedule.staleCheck: renamed to schedule.sweep — fix: set SENTINEL_SCHEDULE__SWEEP instead'],
    ['SENTINEL_METRICS_SERVICE_HOST', '10.0.0.1', 'unknown variable, by its name a Kubernetes Service link — fix: set enableServiceLinks: false in the pod spec'],
  ])('%s is refused, naming the variable and the nearest valid one', (name, value, expected) => {
    const { lines } = linesFor('nodeName: n\n', { [name]: value });
    expect(lines).toEqual([`$${name}: ${expected}`]);
  });

  it('SENTINEL_SUBSCRIPTIONS sets the whole list, as JSON', () => {
    const list = [{ topic: 'plant/+/telemetry', format: 'json-values' }, { topic: 'plant/+/temp', channel: 'temperature', format: 'number', qos: 0 }];
    const config = loadConfig({ path: tempConfig('nodeName: n\nsubscriptions:\n  - topic: file/+\n'), env: { SENTINEL_SUBSCRIPTIONS: JSON.stringify(list) } });
    expect(config.subscriptions).toEqual([
      { topic: 'plant/+/telemetry', format: 'json-values', qos: 1 },
      { topic: 'plant/+/temp', channel: 'temperature', format: 'number', qos: 0 },
    ]);
  });

  it('a list variable that is not JSON, or a list item set on its own, says how to set the list', () => {
    const { lines } = linesFor('nodeName: n\n', { SENTINEL_SUBSCRIPTIONS: '[sensors/+/telemetry]', SENTINEL_SUBSCRIPTIONS__0__TOPIC: 'a/+' });
    expect(lines).toEqual([
      expect.stringMatching(/^\$SENTINEL_SUBSCRIPTIONS: subscriptions: not valid JSON \(.*\) — fix: give the whole list as JSON, e.g. SENTINEL_SUBSCRIPTIONS='\[\{"topic":"sensors\/\+\/telemetry","format":"json-values","qos":1\}\]'$/),
      `$SENTINEL_SUBSCRIPTIONS__0__TOPIC: subscriptions.0.topic: a list is set whole, not item by item — fix: set SENTINEL_SUBSCRIPTIONS to the whole list as JSON, e.g. SENTINEL_SUBSCRIPTIONS='[{"topic":"sensors/+/telemetry","format":"json-values","qos":1}]'`,
    ]);
  });

  it('a problem inside a variable\'s value names the variable, not the file', () => {
    const { path, lines } = linesFor('nodeName: n\nqueue:\n  capacity: 10\n', {
      SENTINEL_QUEUE__CAPACITY: 'abc',
      SENTINEL_BROKER__PROTOCOL_VERSION: '6',
      SENTINEL_SUBSCRIPTIONS: '[{"topic":"a/+","qoss":1}]',
    });
    expect(lines).toEqual([
      '$SENTINEL_BROKER__PROTOCOL_VERSION: broker.protocolVersion: must be one of 5, 4 (got 6) — fix: use one of those values',
      '$SENTINEL_SUBSCRIPTIONS: subscriptions.0.qoss: unknown key — fix: did you mean subscriptions.0.qos?',
      expect.stringMatching(/^\$SENTINEL_QUEUE__CAPACITY: queue\.capacity: Invalid input: expected number, received string — fix: /),
    ]);
    for (const line of lines) expect(line).not.toContain(path);
  });

  it('every key has its variable, and each variable sets its key', () => {
    const leaves: string[][] = [];
    const visit = (schema: z.ZodType, path: string[]): void => {
      const inner = unwrap(schema);
      if (inner instanceof z.ZodObject) for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) visit(child, [...path, key]);
      else leaves.push(path);
    };
    visit(configSchema, []);
    expect(envNameFor(['ingest', 'maxReadingsPerSecondPerStream'])).toBe('SENTINEL_INGEST__MAX_READINGS_PER_SECOND_PER_STREAM');
    expect(envNameFor(['queue', 'qos0MaxWaitMs'])).toBe('SENTINEL_QUEUE__QOS0_MAX_WAIT_MS');
    for (const leaf of leaves) {
      const { problems } = checkConfig(applyEnv({}, { [envNameFor(leaf)]: 'x' }), 'f');
      expect(problems.map(formatProblem).join('\n'), envNameFor(leaf)).not.toMatch(/unknown variable/);
      // The value reached its key: a wrong one is reported there (or it was a string the key takes).
      const key = leaf.join('.');
      expect(problems.every((p) => p.source === `$${envNameFor(leaf)}` && (p.path.startsWith(key) || key.startsWith(p.path))), envNameFor(leaf)).toBe(true);
    }
  });

  it('the SENTINEL_ variables that are not config keys are accepted, and listed', () => {
    const env = Object.fromEntries(Object.keys(otherEnvVariables).map((name) => [name, 'x']));
    expect(Object.keys(env).sort()).toEqual(['SENTINEL_CONFIG', 'SENTINEL_FUZZ_SEED', 'SENTINEL_OVERLOAD_DUTY', 'SENTINEL_OVERLOAD_SECONDS', 'SENTINEL_TEST_MQTT_URL']);
    expect(checkConfig(applyEnv({ nodeName: 'n' }, env)).problems).toEqual([]);
  });

  it('every SENTINEL_ variable the repository names (code, tests, CI, manifests, docs) is accepted', () => {
    // This file and the e2e one name typos on purpose.
    const files = execFileSync('git', ['grep', '-lE', 'SENTINEL_[A-Z0-9]', '--', '.', ':!test/unit/config-strict.test.ts', ':!test/e2e/check-config.test.ts'], { encoding: 'utf8' })
      .split('\n')
      .filter((f) => f !== '');
    const names = new Set<string>();
    for (const file of files) {
      const text = readFileSync(file, 'utf8');
      for (const m of text.matchAll(/SENTINEL_[A-Z0-9][A-Z0-9_]*[A-Z0-9]/g)) names.add(m[0]);
    }
    expect(names.size).toBeGreaterThan(10);
    const refused = checkConfig(applyEnv({ nodeName: 'n' }, Object.fromEntries([...names].map((n) => [n, '']))))
      .problems.filter((p) => /unknown variable|renamed|list is set whole/.test(p.message));
    expect(refused.map(formatProblem)).toEqual([]);
  });
});

describe('config: allowed values', () => {
  it.each([
    [['broker', 'protocolVersion'], 6, 'must be one of 5, 4 (got 6)'],
    [['subscriptions', '0', 'qos'], 2, 'must be one of 0, 1 (got 2)'],
    [['subscriptions', '0', 'format'], 'json', 'must be one of json-value, json-values, number (got "json")'],
    [['queue', 'dropPolicy'], 'random', 'must be one of drop-oldest, drop-newest (got "random")'],
    [['log', 'level'], 'verbose', 'must be one of fatal, error, warn, info, debug, trace (got "verbose")'],
    [['model', 'executionProviders', '0'], 'tpu', 'must be one of cuda, cpu (got "tpu")'],
  ])('%j = %j lists the allowed values', (path, value, message) => {
    const input = path[1] === 'executionProviders' ? { nodeName: 'n', model: { executionProviders: [value] } } : inputWith(path, value);
    const lines = checkConfig(input, 'f.yaml').problems.map(formatProblem);
    expect(lines).toEqual([expect.stringMatching(new RegExp(`^f\\.yaml: ${path.join('\\.')}: ${message.replace(/[()[\]|.+*?^$\\]/g, '\\$&')} — fix: `))]);
  });

  it('no enum or literal anywhere in the schema answers a wrong value with a bare "Invalid input"', () => {
    const leaves: Array<[string[], z.ZodType]> = [];
    const visit = (schema: z.ZodType, path: string[]): void => {
      const inner = unwrap(schema);
      if (inner instanceof z.ZodObject) for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) visit(child, [...path, key]);
      else if (inner instanceof z.ZodArray) visit(inner.def.element as z.ZodType, [...path, '0']);
      else leaves.push([path, inner]);
    };
    visit(configSchema, []);
    // (A union that also takes a free string, such as a Sparkplug id or "+", is not a choice of values.)
    const freeString = (s: z.ZodType): boolean => s.safeParse('nope').success;
    const choices = leaves.filter(([, s]) => (s instanceof z.ZodEnum || s instanceof z.ZodLiteral || s instanceof z.ZodUnion) && !freeString(s));
    expect(choices.map(([p]) => p.join('.')).sort()).toEqual([
      'broker.protocolVersion',
      'log.level',
      'model.executionProviders.0',
      'models.0.executionProviders.0',
      'queue.dropPolicy',
      'sparkplug.historical',
      'subscriptions.0.format',
      'subscriptions.0.qos',
    ]);
    for (const [path] of choices) {
      const input =
        path.at(-2) === 'executionProviders' ? inputWith(path.slice(0, -1), ['nope']) : inputWith(path, 'nope');
      const [problem, ...rest] = checkConfig(input, 'f').problems;
      expect(rest, path.join('.')).toEqual([]);
      expect(problem?.message, path.join('.')).toMatch(/^must be one of .+, .+ \(got "nope"\)$/);
    }
  });
});

describe('config: every problem in one run', () => {
  it('file typos, bad values, cross-field rules and variables come out together, the file\'s first', () => {
    const { path, lines } = linesFor(
      [
        'brokr: {}',
        'logging: {}',
        'batch:\n  maxDelay: 10',
        'subscriptions:\n  - topic: sensors/+/telemetry\n    qoss: 1',
        'broker:\n  protocolVersion: 6\n  tls:\n    certFile: /c.pem',
        'schedule:\n  heartbeat: every minute',
        '',
      ].join('\n'),
      { SENTINEL_BATCH__MAXSIZE: '5', SENTINEL_OUTBOX__PATHH: 'o.jsonl' },
    );
    expect(lines).toEqual([
      `${path}: broker.protocolVersion: must be one of 5, 4 (got 6) — fix: use one of those values`,
      `${path}: broker.tls: certFile and keyFile go together — fix: set both for mutual TLS, or neither`,
      `${path}: subscriptions.0.qoss: unknown key — fix: did you mean subscriptions.0.qos?`,
      `${path}: batch.maxDelay: unknown key — fix: did you mean batch.maxDelayMs?`,
      `${path}: schedule.heartbeat: "every minute" is not a valid cron expression — fix: use a 5- or 6-field cron expression, e.g. "*/30 * * * * *"`,
      `${path}: brokr: unknown key — fix: did you mean broker?`,
      `${path}: logging: unknown key — fix: did you mean log?`,
      '$SENTINEL_BATCH__MAXSIZE: batch.maxsize: unknown variable — fix: did you mean SENTINEL_BATCH__MAX_SIZE (batch.maxSize)?',
      '$SENTINEL_OUTBOX__PATHH: outbox.pathh: unknown variable — fix: did you mean SENTINEL_OUTBOX__PATH (outbox.path)?',
    ]);
  });

  it('a file that cannot be read still has its variables judged', () => {
    const lines = inspectConfig({ path: '/nonexistent/sentinel.yaml', env: { SENTINEL_OUTBOX__PATHH: 'x', SENTINEL_HTTP_PORT: 'abc' } }).problems.map(formatProblem);
    expect(lines).toEqual([
      expect.stringMatching(/^\/nonexistent\/sentinel\.yaml: cannot read file: .*ENOENT/),
      '$SENTINEL_OUTBOX__PATHH: outbox.pathh: unknown variable — fix: did you mean SENTINEL_OUTBOX__PATH (outbox.path)?',
      expect.stringMatching(/^\$SENTINEL_HTTP_PORT: http\.port: /),
    ]);
  });

  it('validateConfig(applyEnv(raw, env)) refuses unknown variables too, as loadConfig does', () => {
    expect(() => validateConfig(applyEnv({ nodeName: 'n' }, { SENTINEL_OUTBOX__PATHH: 'x' }))).toThrow(/\$SENTINEL_OUTBOX__PATHH: .*did you mean SENTINEL_OUTBOX__PATH/);
    expect(() => validateConfig({ nodeName: 'n', brokr: {} })).toThrow(/^config: brokr: unknown key — fix: did you mean broker\?$/);
  });
});
