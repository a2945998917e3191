/** Loads the config file, applies SENTINEL_* environment overrides and validates it, failing with every problem listed. */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import cron from 'node-cron';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { configSchema, type Config } from './schema.js';

export const DEFAULT_CONFIG_PATH = 'config/sentinel.yaml';

export class ConfigError extends Error {
  constructor(
    readonly source: string,
    readonly problems: string[],
  ) {
    super(`invalid config (${source}):\n${problems.map((p) => `  - ${p}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

/** Short aliases for the overrides operators set most; any key also works as SENTINEL_<SECTION>__<KEY>. */
const envAliases: Record<string, string[]> = {
  SENTINEL_NODE_NAME: ['nodeName'],
  SENTINEL_BROKER_URL: ['broker', 'url'],
  SENTINEL_BROKER_USERNAME: ['broker', 'username'],
  SENTINEL_BROKER_PASSWORD: ['broker', 'password'],
  SENTINEL_BROKER_PASSWORD_FILE: ['broker', 'passwordFile'],
  SENTINEL_MODEL_PATH: ['model', 'path'],
  SENTINEL_LOG_LEVEL: ['log', 'level'],
  SENTINEL_HTTP_PORT: ['http', 'port'],
  SENTINEL_HTTP_HOST: ['http', 'host'],
};

const hints: Array<[RegExp, string]> = [
  [/^broker\.url$/, 'use mqtt://host:1883 (or mqtts:// for TLS), or null for the embedded broker'],
  [/^subscriptions/, 'each subscription needs a topic such as "sensors/+/telemetry" and a format: json-value | json-values | number'],
  [/^model\.executionProviders/, 'use a list of "cuda" and "cpu", e.g. ["cuda", "cpu"]'],
  [/^queue\.dropPolicy/, 'use drop-oldest or drop-newest'],
  [/^log\.level/, 'use one of fatal, error, warn, info, debug, trace'],
  [/port$/, 'use a TCP port number 1-65535 (0 = pick a free one)'],
  [/^schedule\./, 'use a 5- or 6-field cron expression, e.g. "*/30 * * * * *"'],
];

function hintFor(path: string): string {
  for (const [pattern, hint] of hints) if (pattern.test(path)) return hint;
  return 'see config/sentinel.yaml for every key with its default';
}

function formatIssues(issues: z.core.$ZodIssue[]): string[] {
  return issues.map((issue) => {
    const path = issue.path.map(String).join('.') || '(root)';
    return `${path}: ${issue.message} — fix: ${hintFor(path)}`;
  });
}

/** Steps through defaults, prefaults, optionals and nullables to the schema that holds the children. */
function unwrapSchema(schema: z.ZodType): z.ZodType {
  let inner = schema;
  while (inner instanceof z.ZodDefault || inner instanceof z.ZodPrefault || inner instanceof z.ZodOptional || inner instanceof z.ZodNullable) {
    inner = inner.def.innerType as z.ZodType;
  }
  return inner;
}

/** The config schema at a key path (array elements by index), or undefined for a key the schema does not have. */
export function schemaAt(path: readonly string[]): z.ZodType | undefined {
  let schema: z.ZodType = configSchema;
  for (const key of path) {
    const inner = unwrapSchema(schema);
    if (inner instanceof z.ZodObject) {
      const child = (inner.shape as Record<string, z.ZodType>)[key];
      if (child === undefined) return undefined;
      schema = child;
    } else if (inner instanceof z.ZodArray && /^\d+$/.test(key)) {
      schema = inner.def.element as z.ZodType;
    } else return undefined;
  }
  return schema;
}

function parseJson(raw: string): { ok: true; value: unknown } | { ok: false } {
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch {
    return { ok: false };
  }
}

/**
 * An environment value typed by what the schema expects at its path: the raw string where the schema
 * takes it (a password "123456", log level "trace"), else its JSON reading (9464, true, null, ["cpu"]).
 * When neither passes, the one that yields the clearer validation error: the string where the schema
 * wants a string, the JSON value where it wants another type.
 */
export function parseEnvValue(path: readonly string[], raw: string): unknown {
  const schema = schemaAt(path);
  const json = parseJson(raw.trim());
  if (schema === undefined) return json.ok ? json.value : raw;
  const asString = schema.safeParse(raw);
  if (asString.success || !json.ok) return raw;
  if (schema.safeParse(json.value).success) return json.value;
  const wantsOtherType = asString.error.issues.some((issue) => issue.code === 'invalid_type' && issue.path.length === 0);
  return wantsOtherType ? json.value : raw;
}

function setPath(target: Record<string, unknown>, path: string[], value: unknown): void {
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] as string;
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

/** Applies SENTINEL_* variables: aliases first, then SENTINEL_SECTION__KEY paths (camelCase kept as written). */
export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw);
  for (const [name, path] of Object.entries(envAliases)) {
    const value = env[name];
    if (value !== undefined && value !== '') setPath(out, path, parseEnvValue(path, value));
  }
  for (const [name, value] of Object.entries(env)) {
    if (!name.startsWith('SENTINEL_') || !name.includes('__') || value === undefined) continue;
    const path = name
      .slice('SENTINEL_'.length)
      .split('__')
      .map((part) => part.toLowerCase().replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()));
    setPath(out, path, parseEnvValue(path, value));
  }
  if (out.nodeName === undefined) out.nodeName = hostname();
  return out;
}

function readFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError(path, [`cannot read file: ${(err as Error).message} — fix: pass --config <file> or create it`]);
  }
  let parsed: unknown;
  try {
    parsed = path.endsWith('.json') ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    throw new ConfigError(path, [`not valid ${path.endsWith('.json') ? 'JSON' : 'YAML'}: ${(err as Error).message}`]);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError(path, ['(root): must be a mapping of keys to values']);
  }
  return parsed as Record<string, unknown>;
}

/** Replaces ${nodeName} in the keys that name per-node things (client id, topic filters, stream ids). */
function substituteNodeName(config: Config): Config {
  const sub = (s: string): string => s.replaceAll('${nodeName}', config.nodeName);
  return {
    ...config,
    broker: { ...config.broker, clientId: sub(config.broker.clientId) },
    subscriptions: config.subscriptions.map((s) => ({ ...s, topic: sub(s.topic), ...(s.stream === undefined ? {} : { stream: sub(s.stream) }) })),
  };
}

export interface LoadOptions {
  path?: string;
  env?: NodeJS.ProcessEnv;
}

/** Loads and validates; throws ConfigError listing every problem by field path. */
export function loadConfig(options: LoadOptions = {}): Config {
  const env = options.env ?? process.env;
  const path = options.path ?? env.SENTINEL_CONFIG ?? DEFAULT_CONFIG_PATH;
  const explicit = options.path !== undefined || env.SENTINEL_CONFIG !== undefined;
  const raw = explicit || existsSync(path) ? readFile(path) : {};
  return validateConfig(applyEnv(raw, env), path);
}

export function validateConfig(raw: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(raw);
  if (!result.success) throw new ConfigError(source, formatIssues(result.error.issues));
  const problems: string[] = [];
  const { broker } = result.data;
  if (broker.reconnectMaxMs < broker.reconnectMinMs) {
    problems.push('broker.reconnectMaxMs: is below reconnectMinMs — fix: raise reconnectMaxMs');
  }
  if (broker.tls && (broker.tls.certFile === undefined) !== (broker.tls.keyFile === undefined)) {
    problems.push('broker.tls: certFile and keyFile go together — fix: set both for mutual TLS, or neither');
  }
  if (broker.password !== undefined && broker.passwordFile !== undefined) {
    problems.push('broker.passwordFile: both password and passwordFile are set — fix: keep one');
  }
  const { http } = result.data;
  if (http.headersTimeoutMs > http.requestTimeoutMs) {
    problems.push(`http.headersTimeoutMs: ${http.headersTimeoutMs} is above http.requestTimeoutMs (${http.requestTimeoutMs}) — fix: the headers are part of the request, so keep headersTimeoutMs ≤ requestTimeoutMs`);
  }
  for (const [key, expression] of Object.entries(result.data.schedule)) {
    if (!cron.validate(expression)) {
      problems.push(`schedule.${key}: "${expression}" is not a valid cron expression — fix: ${hintFor('schedule.')}`);
    }
  }
  if (problems.length > 0) throw new ConfigError(source, problems);
  return substituteNodeName(result.data);
}

const secretKeys = new Set(['password']);

/**
 * Where the user:password part of a URL lies: after the scheme, up to the last '@' before the first
 * '/', '?' or '#' (as mqtt.js's url.parse reads it, so a password may hold '@'); null when there is none.
 */
export function urlUserinfo(url: string): { start: number; end: number } | null {
  const scheme = /^[a-z][a-z0-9+.-]*:\/\//i.exec(url);
  if (scheme === null) return null;
  const start = scheme[0].length;
  const rest = url.slice(start).search(/[/?#]/);
  const hostEnd = rest < 0 ? url.length : start + rest;
  const at = url.lastIndexOf('@', hostEnd - 1);
  return at < start ? null : { start, end: at };
}

/** The URL without the user:password part, for logs and printed config. */
export function redactUrl(url: string): string {
  const userinfo = urlUserinfo(url);
  return userinfo === null ? url : `${url.slice(0, userinfo.start)}[redacted]${url.slice(userinfo.end)}`;
}

/** A copy safe to print or log: secrets (and credentials inside the broker URL) replaced by "[redacted]". */
export function redactConfig(config: Config): unknown {
  const url = config.broker.url === null ? null : redactUrl(config.broker.url);
  const walk = (value: unknown): unknown => {
    if (Array.isArray(value)) return value.map(walk);
    if (value && typeof value === 'object') {
      return Object.fromEntries(
        Object.entries(value).map(([k, v]) => [k, secretKeys.has(k) && v !== undefined ? '[redacted]' : walk(v)]),
      );
    }
    return value;
  };
  return walk({ ...config, broker: { ...config.broker, url } });
}
