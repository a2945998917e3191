/** What check-config checks, and run before it starts: the config, its subscription templates, and the model file and manifest against it, every problem in one list. */
import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { inspectConfig, type ConfigProblem } from '../config/load.js';
import { configSchema, type Config } from '../config/schema.js';
import { compileRules } from '../daemon.js';
import { compileSubscription } from '../ingest/topic.js';
import { manifestPathFor, parseManifest, type Manifest } from '../model/manifest.js';
import { configuredModels, routeSpecs } from '../route/routes.js';

export interface Preflight {
  /** The config, when it has no problem (model problems aside). */
  config: Config | null;
  configProblems: ConfigProblem[];
  /** The model file, its manifest, and how they fit the config. */
  modelProblems: ConfigProblem[];
}

type SourceOf = (path: readonly string[]) => string;

const DEFAULT_MODEL_PATH = configSchema.shape.model.parse(undefined).path;
const MODEL_FIX = 'train one with `sentinel train` or point model.path at a model';

export async function preflight(path: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<Preflight> {
  const report = inspectConfig({ path, env });
  const configProblems = [...report.problems];
  if (report.config !== null) configProblems.push(...ruleProblems(report.config, report.sourceOf));
  const modelProblems: ConfigProblem[] = [];
  if (report.config !== null) {
    // Every route's model, each against the subscriptions that feed it.
    const models = configuredModels(report.config);
    for (const route of routeSpecs(report.config)) {
      const index = models.findIndex((m) => m.name === route.name);
      const target: ModelTarget = { name: route.name, path: route.model.path, key: index === 0 ? ['model', 'path'] : ['models', String(index - 1), 'path'] };
      modelProblems.push(...(await checkModel(target, { config: report.config, subscriptions: route.subscriptions }, report.sourceOf)));
    }
  } else {
    const modelPath = modelPathIn(report.input);
    if (modelPath !== null) modelProblems.push(...(await checkModel({ name: null, path: modelPath, key: ['model', 'path'] }, null, report.sourceOf)));
  }
  return { config: configProblems.length === 0 ? report.config : null, configProblems, modelProblems };
}

/** The model path an invalid config names, so that its model is checked too; null when it names none usable. */
function modelPathIn(input: Record<string, unknown> | null): string | null {
  if (input === null) return null;
  const model = input.model;
  if (model === undefined) return DEFAULT_MODEL_PATH;
  if (typeof model !== 'object' || model === null) return null;
  const path = (model as Record<string, unknown>).path;
  if (path === undefined) return DEFAULT_MODEL_PATH;
  return typeof path === 'string' && path !== '' ? path : null;
}

/** compileRules stops at its first error; each subscription is compiled again so that all of theirs are listed. */
function ruleProblems(config: Config, sourceOf: SourceOf): ConfigProblem[] {
  const messages = new Set<string>();
  const attempt = (compile: () => unknown): void => {
    try {
      compile();
    } catch (err) {
      messages.add((err as Error).message);
    }
  };
  attempt(() => compileRules(config));
  config.subscriptions.forEach((sub, i) => attempt(() => compileSubscription(sub, i)));
  return [...messages].map((message) => fromMessage(message, sourceOf));
}

/** Splits "<path>: <message> — fix: <fix>", the form the daemon's own checks throw, into a problem. */
function fromMessage(text: string, sourceOf: SourceOf): ConfigProblem {
  const match = /^([\w.]+(?: \/ [\w.]+)*): ([\s\S]*?)(?: — fix: ([\s\S]*))?$/.exec(text);
  if (match === null) return { source: sourceOf([]), path: '', message: text, fix: '' };
  const [, path = '', message = '', fix = ''] = match;
  return { source: sourceOf((path.split(' / ')[0] as string).split('.')), path, message, fix };
}

/** A model file to check: its name (null when the config is too broken to say) and the key that sets its path. */
interface ModelTarget {
  name: string | null;
  path: string;
  key: readonly string[];
}

async function checkModel(target: ModelTarget, fit: { config: Config; subscriptions: readonly number[] } | null, sourceOf: SourceOf): Promise<ConfigProblem[]> {
  const modelPath = target.path;
  const problems: ConfigProblem[] = [];
  // Several models: each problem says which.
  const named = target.name === null ? '' : `model "${target.name}": `;
  let bytes: Buffer | null = null;
  try {
    bytes = await readFile(modelPath);
  } catch (err) {
    const missing = (err as NodeJS.ErrnoException).code === 'ENOENT';
    problems.push({
      source: sourceOf(target.key),
      path: target.key.join('.'),
      message: `${named}${missing ? `${modelPath} does not exist` : `cannot read ${modelPath}: ${(err as Error).message}`}`,
      fix: target.key[0] === 'model' ? MODEL_FIX : `train one with \`sentinel train\` or point ${target.key.join('.')} at a model`,
    });
  }
  const manifestPath = manifestPathFor(modelPath);
  let text: string;
  try {
    text = await readFile(manifestPath, 'utf8');
  } catch (err) {
    problems.push({ source: manifestPath, path: '', message: `${named}cannot read manifest: ${(err as Error).message}`, fix: 'every model needs <name>.json beside <name>.onnx (sentinel train writes both)' });
    return problems;
  }
  const parsed = parseManifest(text);
  if (!parsed.ok) {
    for (const p of parsed.problems) problems.push({ source: manifestPath, path: p.path, message: `${named}${p.message}`, fix: 'correct the manifest, or train the model again' });
    return problems;
  }
  const { manifest } = parsed;
  if (bytes !== null) {
    const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
    if (digest !== manifest.version) {
      problems.push({
        source: manifestPath,
        path: 'version',
        message: `${named}${manifest.version} does not match the model file (${digest})`,
        fix: 'the manifest belongs to another model file, or the file is corrupt or still being copied: copy both again',
      });
    }
  }
  if (fit !== null) problems.push(...fitProblems(fit.config, fit.subscriptions, target.name ?? '', manifest, sourceOf));
  return problems;
}

/** Subscriptions whose every reading their model would refuse: a channel it lacks, or none where it has several. */
function fitProblems(config: Config, subscriptions: readonly number[], name: string, manifest: Manifest, sourceOf: SourceOf): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const channels = manifest.channels.join(', ');
  const theModel = config.models.length === 0 ? "the model" : `model "${name}"`;
  for (const i of subscriptions) {
    const sub = config.subscriptions[i];
    if (sub === undefined || sub.format === 'json-values') continue;
    const path = ['subscriptions', String(i), 'channel'];
    if (sub.channel === undefined && manifest.channels.length !== 1) {
      problems.push({
        source: sourceOf(path),
        path: path.join('.'),
        message: `not set, and ${theModel} has ${manifest.channels.length} channels (${channels}), so every ${sub.format} reading would be refused`,
        fix: 'set channel to one of them, or to a template such as {2} that takes it from the topic',
      });
    } else if (sub.channel !== undefined && !/\{\d+\}/.test(sub.channel) && !manifest.channels.includes(sub.channel)) {
      problems.push({ source: sourceOf(path), path: path.join('.'), message: `"${sub.channel}" is not one of ${theModel}'s channels (${channels})`, fix: 'use one of them' });
    }
  }
  return problems;
}
