/** Loads the config file, applies SENTINEL_* environment overrides and validates it strictly, reporting every problem at once. */
import { existsSync, readFileSync } from 'node:fs';
import { hostname } from 'node:os';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { nearestName } from './nearest.js';
import { configSchema, renamedKeys, type Config } from './schema.js';

export { nearestName };

export const DEFAULT_CONFIG_PATH = 'config/sentinel.yaml';

/** One thing wrong: where it came from (the config file, a $VARIABLE, a manifest), the key path, what, and the fix. */
export interface ConfigProblem {
  source: string;
  /** Dotted key path ("subscriptions.0.qos"); empty for the file as a whole. */
  path: string;
  message: string;
  fix: string;
}

/** `<source>: <path>: <message> — fix: <fix>`, one line. */
export function formatProblem(problem: ConfigProblem): string {
  const path = problem.path === '' ? '' : `${problem.path}: `;
  const fix = problem.fix === '' ? '' : ` — fix: ${problem.fix}`;
  return `${problem.source}: ${path}${problem.message}${fix}`;
}

export class ConfigError extends Error {
  constructor(readonly problems: readonly ConfigProblem[]) {
    super(problems.map(formatProblem).join('\n'));
    this.name = 'ConfigError';
  }
}

/** Short aliases for the overrides operators set most; any key also works as SENTINEL_<SECTION>__<KEY>. */
const envAliases: Readonly<Record<string, readonly string[]>> = {
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

/**
 * SENTINEL_* variables that are not config keys, so not typos: the config file's path, and the test
 * suites' knobs (the CLI under test inherits the test runner's environment).
 */
export const otherEnvVariables: Readonly<Record<string, string>> = {
  SENTINEL_CONFIG: 'the config file (the --config default)',
  SENTINEL_TEST_MQTT_URL: 'tests: the Mosquitto to test against',
  SENTINEL_FUZZ_SEED: 'tests: seed of the fuzz and property tests',
  SENTINEL_OVERLOAD_SECONDS: 'tests: length of the overload test',
  SENTINEL_OVERLOAD_DUTY: 'tests: duty cycle of the overload test',
};

const hints: Array<[RegExp, string]> = [
  [/^broker\.url$/, 'use mqtt://host:1883 (or mqtts:// for TLS), or null for the embedded broker'],
  [/^subscriptions/, 'each subscription needs a topic such as "sensors/+/telemetry" and a format: json-value | json-values | number'],
  [/^models?(\.\d+)?\.executionProviders/, 'use a list of "cuda" and "cpu", e.g. ["cuda", "cpu"]'],
  [/^models\.\d+/, 'each model needs a name and a path, e.g. { name: compressor, path: models/compressor.onnx }; other keys default to model\'s'],
  [/port$/, 'use a TCP port number 1-65535 (0 = pick a free one)'],
  [/^schedule\./, 'use a 5- or 6-field cron expression, e.g. "*/30 * * * * *"'],
];

function hintFor(path: string): string | undefined {
  for (const [pattern, hint] of hints) if (pattern.test(path)) return hint;
  return undefined;
}

const GENERIC_FIX = 'see config/sentinel.yaml for every key with its default';

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
      const shape = inner.shape as Record<string, z.ZodType>;
      if (!Object.hasOwn(shape, key)) return undefined;
      schema = shape[key] as z.ZodType;
    } else if (inner instanceof z.ZodArray && /^\d+$/.test(key)) {
      schema = inner.def.element as z.ZodType;
    } else return undefined;
  }
  return schema;
}

function keysAt(path: readonly string[]): string[] {
  const schema = schemaAt(path);
  const inner = schema === undefined ? undefined : unwrapSchema(schema);
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}

/** Every key path that holds a value (not a section), each once: lists count as one value. */
function leafPaths(): string[][] {
  const out: string[][] = [];
  const visit = (schema: z.ZodType, path: string[]): void => {
    const inner = unwrapSchema(schema);
    if (inner instanceof z.ZodObject) {
      for (const [key, child] of Object.entries(inner.shape as Record<string, z.ZodType>)) visit(child, [...path, key]);
    } else out.push(path);
  };
  visit(configSchema, []);
  return out;
}

const LEAVES = leafPaths();

/** The variable for a key path: SENTINEL_ then each key in SCREAMING_SNAKE_CASE, joined by "__". */
export function envNameFor(path: readonly string[]): string {
  return `SENTINEL_${path.map((key) => key.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toUpperCase()).join('__')}`;
}

function pathFromEnvName(name: string): string[] {
  return name
    .slice('SENTINEL_'.length)
    .split('__')
    .map((part) => part.toLowerCase().replace(/_([a-z])/g, (_m, c: string) => c.toUpperCase()));
}

/** Every SENTINEL_ variable that sets a config key: one per value key (a list is set whole, as JSON), plus the aliases. */
const configVariables = new Map<string, readonly string[]>([...LEAVES.map((path) => [envNameFor(path), path] as const), ...Object.entries(envAliases)]);


function renamedTo(path: readonly string[]): string | undefined {
  const dotted = path.join('.');
  return Object.hasOwn(renamedKeys, dotted) ? renamedKeys[dotted] : undefined;
}

function unknownKey(path: string[], source: string): ConfigProblem {
  const dotted = path.join('.');
  const key = path[path.length - 1] as string;
  const parent = path.slice(0, -1);
  const renamed = renamedTo(path);
  if (renamed !== undefined) return { source, path: dotted, message: `renamed to ${renamed}`, fix: `rename it to ${renamed.split('.').pop() as string}` };
  const siblings = keysAt(parent);
  const near = nearestName(key, siblings);
  if (near !== undefined) return { source, path: dotted, message: 'unknown key', fix: `did you mean ${[...parent, near].join('.')}?` };
  const elsewhere = LEAVES.filter((leaf) => (leaf[leaf.length - 1] as string).toLowerCase() === key.toLowerCase()).map((leaf) => leaf.join('.'));
  if (elsewhere.length > 0) return { source, path: dotted, message: 'unknown key', fix: `did you mean ${elsewhere.slice(0, 3).join(' or ')}?` };
  const where = parent.length === 0 ? 'at the top level' : `in ${parent.join('.')}`;
  return { source, path: dotted, message: 'unknown key', fix: `remove it; the keys ${where} are ${siblings.join(', ')}` };
}

/** Kubernetes puts <SERVICE>_SERVICE_HOST, <SERVICE>_PORT_9464_TCP… in every pod unless enableServiceLinks is false. */
const serviceLink = /_(SERVICE_HOST|SERVICE_PORT(_\w+)?|PORT(_\d+_(TCP|UDP|SCTP)(_(ADDR|PORT|PROTO))?)?)$/;

function unknownVariable(name: string): ConfigProblem {
  const source = `$${name}`;
  const path = pathFromEnvName(name);
  const dotted = path.join('.');
  for (const [from, to] of Object.entries(renamedKeys)) {
    if (envNameFor(from.split('.')) === name) {
      return { source, path: from, message: `renamed to ${to}`, fix: `set ${envNameFor(to.split('.'))} instead` };
    }
  }
  for (let n = 1; n < path.length; n++) {
    const list = path.slice(0, n);
    if (/^\d+$/.test(path[n] as string) && unwrapSchema(schemaAt(list) ?? z.never()) instanceof z.ZodArray) {
      return { source, path: dotted, message: 'a list is set whole, not item by item', fix: `set ${envNameFor(list)} to the whole list as JSON, e.g. ${envExample(list)}` };
    }
  }
  const near = nearestName(name.slice('SENTINEL_'.length), [...configVariables.keys(), ...Object.keys(otherEnvVariables)].map((v) => v.slice('SENTINEL_'.length)));
  if (near !== undefined) {
    const target = configVariables.get(`SENTINEL_${near}`);
    return { source, path: dotted, message: 'unknown variable', fix: `did you mean SENTINEL_${near}${target === undefined ? '' : ` (${target.join('.')})`}?` };
  }
  if (serviceLink.test(name)) {
    return { source, path: '', message: 'unknown variable, by its name a Kubernetes Service link', fix: 'set enableServiceLinks: false in the pod spec' };
  }
  return { source, path: dotted, message: 'unknown variable', fix: 'config keys are set as SENTINEL_<SECTION>__<KEY> (e.g. SENTINEL_BATCH__MAX_SIZE), other SENTINEL_ names are refused' };
}

/** A command line that sets a list variable, e.g. SENTINEL_SUBSCRIPTIONS='[{"topic":"sensors/+/telemetry",…}]'. */
function envExample(path: readonly string[]): string {
  const schema = schemaAt(path);
  const value = schema instanceof z.ZodDefault ? (schema.def.defaultValue as unknown) : [];
  return `${envNameFor(path)}='${JSON.stringify(value)}'`;
}

function parseJson(raw: string): { ok: true; value: unknown } | { ok: false; reason: string } {
  try {
    return { ok: true, value: JSON.parse(raw) };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
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
  const wantsOtherType = asString.error.issues.some(
    (issue) => issue.path.length === 0 && (issue.code === 'invalid_type' || (issue.code === 'invalid_value' && issue.values.every((v) => typeof v !== 'string'))),
  );
  return wantsOtherType ? json.value : raw;
}

function setPath(target: Record<string, unknown>, path: readonly string[], value: unknown): void {
  let node = target;
  for (let i = 0; i < path.length - 1; i++) {
    const key = path[i] as string;
    const next = node[key];
    if (typeof next !== 'object' || next === null || Array.isArray(next)) node[key] = {};
    node = node[key] as Record<string, unknown>;
  }
  node[path[path.length - 1] as string] = value;
}

/** What applyEnv did to a config input: which variable set each key, and the variables it refused. */
interface EnvOverlay {
  origins: Map<string, string>;
  problems: ConfigProblem[];
}

/** Kept per applyEnv result, so that validateConfig(applyEnv(raw, env)) names the variable behind a bad value. */
const overlays = new WeakMap<object, EnvOverlay>();

/**
 * Applies SENTINEL_* variables: aliases first, then SENTINEL_<SECTION>__<KEY> paths (so those win). Unknown
 * SENTINEL_ variables are not applied; validateConfig reports them, with the nearest real name.
 */
export function applyEnv(raw: Record<string, unknown>, env: NodeJS.ProcessEnv): Record<string, unknown> {
  const out = structuredClone(raw);
  const overlay: EnvOverlay = { origins: new Map(), problems: [] };
  const names = Object.keys(env)
    .filter((name) => name.startsWith('SENTINEL_') && env[name] !== undefined && !Object.hasOwn(otherEnvVariables, name))
    .sort();
  const isAlias = (name: string): boolean => Object.hasOwn(envAliases, name);
  for (const name of [...names.filter(isAlias), ...names.filter((n) => !isAlias(n))]) {
    const value = env[name] as string;
    const path = configVariables.get(name);
    if (path === undefined) {
      overlay.problems.push(unknownVariable(name));
      continue;
    }
    // An empty alias counts as unset (a Secret or downward-API value that is not there).
    if (value === '' && isAlias(name)) continue;
    if (unwrapSchema(schemaAt(path) ?? z.never()) instanceof z.ZodArray) {
      const json = parseJson(value.trim());
      if (!json.ok) {
        overlay.problems.push({ source: `$${name}`, path: path.join('.'), message: `not valid JSON (${json.reason})`, fix: `give the whole list as JSON, e.g. ${envExample(path)}` });
        continue;
      }
    }
    setPath(out, path, parseEnvValue(path, value));
    overlay.origins.set(path.join('.'), name);
  }
  if (out.nodeName === undefined) out.nodeName = hostname();
  overlays.set(out, overlay);
  return out;
}

function readFile(path: string): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new ConfigError([{ source: path, path: '', message: `cannot read file: ${(err as Error).message}`, fix: 'pass --config <file> or create it' }]);
  }
  let parsed: unknown;
  const format = path.endsWith('.json') ? 'JSON' : 'YAML';
  try {
    parsed = format === 'JSON' ? JSON.parse(text) : parseYaml(text);
  } catch (err) {
    const reason = (err as Error).message.split('\n')[0] as string;
    throw new ConfigError([{ source: path, path: '', message: `not valid ${format}: ${reason}`, fix: `correct the ${format} syntax at the place named` }]);
  }
  if (parsed === null || parsed === undefined) return {};
  if (typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new ConfigError([{ source: path, path: '(root)', message: 'must be a mapping of keys to values', fix: GENERIC_FIX }]);
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

function show(value: unknown): string {
  const text = typeof value === 'string' ? JSON.stringify(value) : String(value);
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

/** The allowed values of an enum, a literal or a union of literals; undefined for other issues. */
function allowedValues(issue: z.core.$ZodIssue): readonly unknown[] | undefined {
  if (issue.code === 'invalid_value') return issue.values;
  if (issue.code === 'invalid_union' && issue.errors.length > 0) {
    const values: unknown[] = [];
    for (const branch of issue.errors) {
      const [only, ...rest] = branch;
      if (only === undefined || rest.length > 0 || only.code !== 'invalid_value' || only.path.length > 0) return undefined;
      values.push(...only.values);
    }
    return values;
  }
  return undefined;
}

function issueProblems(issues: readonly z.core.$ZodIssue[], sourceOf: (path: readonly string[]) => string): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  for (const issue of issues) {
    const path = issue.path.map(String);
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) problems.push(unknownKey([...path, key], sourceOf([...path, key])));
      continue;
    }
    const dotted = path.join('.') || '(root)';
    const allowed = allowedValues(issue);
    const fix = (issue.code === 'custom' ? (issue.params?.fix as string | undefined) : undefined) ?? hintFor(dotted);
    if (allowed !== undefined) {
      const got = 'input' in issue && issue.input !== undefined ? ` (got ${show(issue.input)})` : '';
      problems.push({ source: sourceOf(path), path: dotted, message: `must be one of ${allowed.map((v) => String(v)).join(', ')}${got}`, fix: fix ?? 'use one of those values' });
    } else if (issue.code === 'invalid_type' && issue.input === undefined) {
      // zod says "expected string, received undefined": the key is simply missing.
      problems.push({ source: sourceOf(path), path: dotted, message: `missing (required: a ${issue.expected})`, fix: fix ?? GENERIC_FIX });
    } else {
      problems.push({ source: sourceOf(path), path: dotted, message: issue.message, fix: fix ?? GENERIC_FIX });
    }
  }
  return problems;
}

/** The outcome of checking a config input: the config when there is no problem, else every problem. */
export interface ConfigCheck {
  config: Config | null;
  problems: ConfigProblem[];
  /** Where the value at a key path came from: the $VARIABLE that set it, else the file. */
  sourceOf(path: readonly string[]): string;
}

/** Validates a config input (see applyEnv) against the strict schema; never throws. */
export function checkConfig(input: unknown, source = 'config'): ConfigCheck {
  const overlay = typeof input === 'object' && input !== null ? overlays.get(input) : undefined;
  const sourceOf = (path: readonly string[]): string => {
    if (overlay === undefined) return source;
    for (let n = path.length; n > 0; n--) {
      const name = overlay.origins.get(path.slice(0, n).join('.'));
      if (name !== undefined) return `$${name}`;
    }
    // A rule over a section ("certFile and keyFile go together") names a variable that set a key in it.
    const within = `${path.join('.')}.`;
    for (const [key, name] of overlay.origins) if (path.length > 0 && key.startsWith(within)) return `$${name}`;
    return source;
  };
  const problems = [...(overlay?.problems ?? [])];
  const result = configSchema.safeParse(input, { reportInput: true });
  if (!result.success) problems.push(...issueProblems(result.error.issues, sourceOf));
  // The file's problems first, then the variables' (a stable sort keeps each group's order).
  problems.sort((a, b) => Number(a.source.startsWith('$')) - Number(b.source.startsWith('$')));
  const config = result.success && problems.length === 0 ? substituteNodeName(result.data) : null;
  return { config, problems, sourceOf };
}

/** Validates; throws ConfigError listing every problem by source and key path. */
export function validateConfig(input: unknown, source = 'config'): Config {
  const { config, problems } = checkConfig(input, source);
  if (config === null) throw new ConfigError(problems);
  return config;
}

export interface LoadOptions {
  path?: string;
  env?: NodeJS.ProcessEnv;
}

/** checkConfig for the file and environment, plus the merged input (null when the file cannot be read). */
export interface ConfigReport extends ConfigCheck {
  input: Record<string, unknown> | null;
  source: string;
}

/** Reads the file and the environment and checks them; every problem in the report, none thrown. */
export function inspectConfig(options: LoadOptions = {}): ConfigReport {
  const env = options.env ?? process.env;
  const source = options.path ?? env.SENTINEL_CONFIG ?? DEFAULT_CONFIG_PATH;
  const explicit = options.path !== undefined || env.SENTINEL_CONFIG !== undefined;
  try {
    const raw = explicit || existsSync(source) ? readFile(source) : {};
    const input = applyEnv(raw, env);
    return { ...checkConfig(input, source), input, source };
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    // Without the file, the variables can still be judged on their own.
    const fromEnv = checkConfig(applyEnv({}, env), source);
    const problems = [...err.problems, ...fromEnv.problems.filter((p) => p.source.startsWith('$'))];
    return { config: null, problems, sourceOf: fromEnv.sourceOf, input: null, source };
  }
}

/** Loads and validates; throws ConfigError listing every problem by source and key path. */
export function loadConfig(options: LoadOptions = {}): Config {
  const { config, problems } = inspectConfig(options);
  if (config === null) throw new ConfigError(problems);
  return config;
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
