import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { readFileSync } from 'node:fs';
import { ConfigError, applyEnv, formatProblem, loadConfig, parseEnvValue, redactConfig, validateConfig } from '../../src/config/load.js';
import { configSchema } from '../../src/config/schema.js';

function tempFile(name: string, text: string): string {
  const path = join(mkdtempSync(join(tmpdir(), 'sentinel-config-')), name);
  writeFileSync(path, text);
  return path;
}

function problemsOf(fn: () => unknown): string[] {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as ConfigError).problems.map(formatProblem);
  }
  throw new Error('expected a ConfigError');
}

describe('config', () => {
  it('fills every default from an empty file', () => {
    const config = validateConfig({ nodeName: 'edge-1' });
    expect(config.broker.url).toBeNull();
    expect(config.broker.clientId).toBe('sentinel-edge-1');
    expect(config.queue.capacity).toBe(4096);
    expect(config.http.port).toBe(9464);
    expect(config.alert.prefix).toBe('sentinel/alerts');
    expect(config.subscriptions).toHaveLength(1);
  });

  it('the shipped config/sentinel.yaml is valid and equals the defaults', () => {
    const shipped = parseYaml(readFileSync('config/sentinel.yaml', 'utf8')) as Record<string, unknown>;
    const fromFile = validateConfig({ ...shipped, nodeName: 'n' });
    const defaults = validateConfig({ nodeName: 'n' });
    expect(fromFile).toEqual(defaults);
  });

  it('documents every schema key in config/sentinel.yaml', () => {
    const text = readFileSync('config/sentinel.yaml', 'utf8');
    const keys = (shape: Record<string, unknown>): string[] => Object.keys(shape);
    for (const key of keys(configSchema.shape)) expect(text).toContain(`${key}`);
    for (const section of ['broker', 'queue', 'window', 'batch', 'model', 'alert', 'http', 'log', 'schedule', 'shutdown', 'ingest'] as const) {
      const inner = configSchema.shape[section].unwrap() as unknown as { shape: Record<string, unknown> };
      for (const key of keys(inner.shape)) expect(text, `${section}.${key}`).toContain(`${key}`);
    }
  });

  it('lists every problem with its field path and a fix hint', () => {
    const problems = problemsOf(() =>
      validateConfig({ broker: { url: 'localhost:1883' }, queue: { capacity: 0, dropPolicy: 'random' }, http: { port: 70000 } }),
    );
    expect(problems).toHaveLength(4);
    expect(problems.find((p) => p.startsWith('config: broker.url:'))).toMatch(/fix: use mqtt:\/\/host:1883/);
    expect(problems.find((p) => p.startsWith('config: queue.capacity:'))).toBeDefined();
    expect(problems.find((p) => p.startsWith('config: queue.dropPolicy:'))).toMatch(/must be one of drop-oldest, drop-newest \(got "random"\)/);
    expect(problems.find((p) => p.startsWith('config: http.port:'))).toMatch(/TCP port/);
  });

  it('rejects cron expressions and half-set TLS pairs', () => {
    const problems = problemsOf(() =>
      validateConfig({ schedule: { heartbeat: 'every minute' }, broker: { tls: { certFile: '/x.crt' } } }),
    );
    expect(problems).toContain('config: broker.tls: certFile and keyFile go together — fix: set both for mutual TLS, or neither');
    expect(problems).toContain('config: schedule.heartbeat: "every minute" is not a valid cron expression — fix: use a 5- or 6-field cron expression, e.g. "*/30 * * * * *"');
  });

  it('refuses a headers timeout above the request timeout (the headers are part of the request)', () => {
    const problems = problemsOf(() => validateConfig({ http: { headersTimeoutMs: 20_000, requestTimeoutMs: 10_000 } }));
    expect(problems).toEqual([expect.stringMatching(/^config: http\.headersTimeoutMs: 20000 is above http\.requestTimeoutMs \(10000\) — fix: /)]);
    expect(validateConfig({ http: { headersTimeoutMs: 10_000, requestTimeoutMs: 10_000 } }).http.headersTimeoutMs).toBe(10_000);
  });

  it('applies environment overrides: aliases and SECTION__KEY paths', () => {
    const raw = applyEnv(
      { broker: { url: 'mqtt://file:1883' } },
      { SENTINEL_BROKER_URL: 'mqtt://env:1883', SENTINEL_NODE_NAME: 'edge-7', SENTINEL_BATCH__MAX_SIZE: '512', SENTINEL_MODEL__EXECUTION_PROVIDERS: '["cuda","cpu"]' },
    );
    const config = validateConfig(raw);
    expect(config.broker.url).toBe('mqtt://env:1883');
    expect(config.nodeName).toBe('edge-7');
    expect(config.batch.maxSize).toBe(512);
    expect(config.model.executionProviders).toEqual(['cuda', 'cpu']);
  });

  it('types each environment value by what the schema expects at its path', () => {
    const config = validateConfig(
      applyEnv(
        { broker: { url: 'mqtt://file:1883' } },
        {
          SENTINEL_BROKER_PASSWORD: '123456',
          SENTINEL_BROKER_USERNAME: 'true',
          SENTINEL_HTTP_PORT: '9465',
          SENTINEL_LOG_LEVEL: 'trace',
          SENTINEL_NODE_NAME: '42',
          SENTINEL_BROKER__PROTOCOL_VERSION: '4',
          SENTINEL_MODEL__WATCH: 'false',
          SENTINEL_BROKER__TLS__KEY_FILE: '0600',
          SENTINEL_BROKER__TLS__CERT_FILE: '1e3',
          SENTINEL_BROKER__TLS__CA_FILE: 'null',
        },
      ),
    );
    expect(config.broker.password).toBe('123456');
    expect(config.broker.username).toBe('true');
    expect(config.http.port).toBe(9465);
    expect(config.log.level).toBe('trace');
    expect(config.nodeName).toBe('42');
    expect(config.broker.protocolVersion).toBe(4);
    expect(config.model.watch).toBe(false);
    expect(config.broker.tls?.keyFile).toBe('0600');
    expect(config.broker.tls?.certFile).toBe('1e3');
    expect(config.broker.tls?.caFile).toBe('null');
    expect(validateConfig(applyEnv({ broker: { url: 'mqtt://file:1883' } }, { SENTINEL_BROKER_URL: 'null' })).broker.url).toBeNull();
    expect(validateConfig(applyEnv({}, { SENTINEL_BROKER__URL: 'mqtt://h:1' })).broker.url).toBe('mqtt://h:1');
    expect(validateConfig(applyEnv({}, { SENTINEL_BROKER__PASSWORD: '007' })).broker.password).toBe('007');
  });

  it('parseEnvValue: the string where the schema takes it, JSON where it does not, the clearer one when neither passes', () => {
    expect(parseEnvValue(['broker', 'password'], '123456')).toBe('123456');
    expect(parseEnvValue(['broker', 'password'], ' padded ')).toBe(' padded ');
    expect(parseEnvValue(['http', 'port'], '9464')).toBe(9464);
    expect(parseEnvValue(['broker', 'url'], 'null')).toBeNull();
    expect(parseEnvValue(['model', 'executionProviders'], '["cuda","cpu"]')).toEqual(['cuda', 'cpu']);
    expect(parseEnvValue(['subscriptions', '0', 'qos'], '0')).toBe(0);
    expect(parseEnvValue(['queue', 'capacity'], 'abc')).toBe('abc');
    // A number where an enum is expected stays the string, so the error says which values are allowed.
    expect(parseEnvValue(['log', 'level'], '5')).toBe('5');
    // A number out of range is still a number: the error names the range, not the type.
    expect(parseEnvValue(['http', 'port'], '70000')).toBe(70000);
    // Keys the schema does not have: JSON when it parses.
    expect(parseEnvValue(['nope'], '1')).toBe(1);
    expect(parseEnvValue(['nope'], 'x')).toBe('x');
  });

  it('an environment value the schema rejects is reported by its variable and key', () => {
    const problems = problemsOf(() => validateConfig(applyEnv({}, { SENTINEL_QUEUE__CAPACITY: 'abc', SENTINEL_HTTP_PORT: '70000' })));
    expect(problems.find((p) => p.startsWith('$SENTINEL_QUEUE__CAPACITY: queue.capacity:'))).toMatch(/number/);
    expect(problems.find((p) => p.startsWith('$SENTINEL_HTTP_PORT: http.port:'))).toMatch(/TCP port/);
  });

  it('substitutes ${nodeName} in client id and topics', () => {
    const config = validateConfig({ nodeName: 'n1', subscriptions: [{ topic: 'plant/${nodeName}/+/telemetry', stream: '${nodeName}/{1}' }] });
    expect(config.subscriptions[0]?.topic).toBe('plant/n1/+/telemetry');
    expect(config.subscriptions[0]?.stream).toBe('n1/{1}');
    expect(config.broker.clientId).toBe('sentinel-n1');
  });

  it('loads YAML and JSON files; a missing explicit file or bad syntax is a ConfigError', () => {
    const yamlPath = tempFile('s.yaml', 'nodeName: a\nqueue:\n  capacity: 10\n');
    expect(loadConfig({ path: yamlPath, env: {} }).queue.capacity).toBe(10);
    const jsonPath = tempFile('s.json', '{"nodeName":"b","batch":{"maxSize":3}}');
    expect(loadConfig({ path: jsonPath, env: {} }).batch.maxSize).toBe(3);
    expect(problemsOf(() => loadConfig({ path: '/nonexistent/sentinel.yaml', env: {} }))[0]).toMatch(/cannot read file/);
    expect(problemsOf(() => loadConfig({ path: tempFile('bad.yaml', 'a: [1,\n'), env: {} }))[0]).toMatch(/not valid YAML/);
  });

  it('redacts secrets', () => {
    const config = validateConfig({ broker: { url: 'mqtt://h:1883', username: 'u', password: 'hunter2' } });
    const text = JSON.stringify(redactConfig(config));
    expect(text).not.toContain('hunter2');
    expect(text).toContain('[redacted]');
    expect(text).toContain('"username":"u"');
  });

  it('redacts a URL password that holds "@" in the printed config', () => {
    const config = validateConfig({ broker: { url: 'mqtt://u:Pa@ss@host:1883' } });
    const text = JSON.stringify(redactConfig(config));
    expect(text).not.toContain('Pa@ss');
    expect(text).not.toContain('@ss@');
    expect(text).toContain('"url":"mqtt://[redacted]@host:1883"');
  });
});

describe('config docs', () => {
  it('the README config reference is the one generated from the schema', async () => {
    const { withConfigReference } = await import('../../src/config/docs.js');
    const readme = readFileSync('README.md', 'utf8');
    expect(readme, 'run `npm run docs:config`').toBe(withConfigReference(readme));
    expect(readme).toContain('| `queue.capacity` | `4096` |');
  });

  it('the README lists every sentinel_ metric the daemon exports', async () => {
    const { SentinelMetrics } = await import('../../src/observe/metrics.js');
    const metrics = new SentinelMetrics({ defaultMetrics: false });
    const readme = readFileSync('README.md', 'utf8');
    const names = (await metrics.registry.getMetricsAsJSON()).map((m) => m.name);
    expect(names.length).toBeGreaterThan(20);
    for (const name of names) expect(readme, name).toContain(`\`${name}`);
  });
});
