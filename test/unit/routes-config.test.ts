/** Routes in the config: several models, each subscription naming one; errors name the subscription and the model. */
import { describe, expect, it } from 'vitest';
import { checkConfig, formatProblem } from '../../src/config/load.js';
import { MAX_MODELS, type ConfigInput } from '../../src/config/schema.js';
import { configuredModels, routeSpecs } from '../../src/route/routes.js';

const problems = (input: ConfigInput): string[] => checkConfig(input, 'f.yaml').problems.map(formatProblem);
const valid = (input: ConfigInput) => {
  const { config, problems: found } = checkConfig(input, 'f.yaml');
  expect(found.map(formatProblem)).toEqual([]);
  return config as NonNullable<typeof config>;
};

const twoModels: ConfigInput = {
  subscriptions: [
    { topic: 'pumps/+/telemetry' },
    { topic: 'compressors/+/telemetry', model: 'compressor' },
    { topic: 'pumps/+/vibration', format: 'json-value', channel: 'vibration' },
  ],
  model: { name: 'pump', path: 'models/pump.onnx', executionProviders: ['cuda', 'cpu'], warmupRuns: 2 },
  models: [{ name: 'compressor', path: 'models/compressor.onnx', intraOpThreads: 2 }],
};

describe('routes config', () => {
  it('one route per model a subscription names; a models[] entry takes what it leaves unset from model', () => {
    const config = valid(twoModels);
    expect(routeSpecs(config).map((r) => [r.name, r.model.path, r.subscriptions])).toEqual([
      ['pump', 'models/pump.onnx', [0, 2]],
      ['compressor', 'models/compressor.onnx', [1]],
    ]);
    const compressor = configuredModels(config)[1]?.model;
    expect(compressor).toEqual({ name: 'compressor', path: 'models/compressor.onnx', executionProviders: ['cuda', 'cpu'], intraOpThreads: 2, warmupRuns: 2, watch: true });
  });

  it('a single-model config is one route named "default" with every subscription', () => {
    const config = valid({ subscriptions: [{ topic: 'a/+' }, { topic: 'b/+' }] });
    expect(routeSpecs(config).map((r) => [r.name, r.subscriptions])).toEqual([['default', [0, 1]]]);
  });

  it('the model section runs only when a subscription uses it', () => {
    const config = valid({
      subscriptions: [{ topic: 'a/+', model: 'a' }, { topic: 'b/+', model: 'b' }],
      models: [
        { name: 'a', path: 'a.onnx' },
        { name: 'b', path: 'b.onnx' },
      ],
    });
    expect(routeSpecs(config).map((r) => r.name)).toEqual(['a', 'b']);
  });

  it('a subscription naming an unknown model names the subscription, the model, the known ones and the nearest', () => {
    expect(problems({ ...twoModels, subscriptions: [{ topic: 'pumps/+/telemetry' }, { topic: 'compressors/+/telemetry', model: 'compresor' }] })).toEqual([
      'f.yaml: subscriptions.1.model: subscription 1 (compressors/+/telemetry) names model "compresor", which is not loaded (models: pump, compressor) — fix: use one of pump, compressor (did you mean compressor?), or add it to models[]',
      'f.yaml: models.0: model "compressor" is named by no subscription, so nothing would reach it — fix: set model: compressor on the subscriptions it should score, or remove it',
    ]);
  });

  it('names are unique, well formed and bounded in number; two routes never share a model file', () => {
    expect(problems({ ...twoModels, models: [{ name: 'pump', path: 'other.onnx' }] })[0]).toBe(
      'f.yaml: models.0.name: "pump" is taken by model.name — fix: give every model its own name',
    );
    expect(problems({ ...twoModels, models: [{ name: 'compressor', path: 'models/pump.onnx' }] })).toEqual([
      'f.yaml: models.0.path: model "compressor": models/pump.onnx is already loaded as model.path — fix: two routes cannot share a model file (each swaps its own); copy it, or point both subscriptions at one model',
    ]);
    expect(problems({ ...twoModels, models: [{ name: 'Compressor!', path: 'c.onnx' }] }).join('\n')).toMatch(/models\.0\.name: must be 1-32 characters of a-z/);
    const many = Array.from({ length: MAX_MODELS }, (_, i) => ({ name: `m${i}`, path: `m${i}.onnx` }));
    expect(problems({ subscriptions: many.map((m) => ({ topic: `${m.name}/+`, model: m.name })), models: many }).join('\n')).toMatch(/^f\.yaml: models: .*15/);
  });

  it('an unknown key in a models[] entry is an error with the nearest name', () => {
    expect(problems({ ...twoModels, models: [{ name: 'compressor', pth: 'c.onnx' } as never] })).toEqual([
      "f.yaml: models.0.path: missing (required: a string) — fix: each model needs a name and a path, e.g. { name: compressor, path: models/compressor.onnx }; other keys default to model's",
      'f.yaml: models.0.pth: unknown key — fix: did you mean models.0.path?',
    ]);
  });
});
