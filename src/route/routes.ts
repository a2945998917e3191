/** The routes a config asks for: one per model a subscription names, each with those subscriptions. */
import type { Config } from '../config/schema.js';
import type { RouteSpec } from './route.js';

/** Every model the config defines (`model`, then `models[]`), each `models[]` entry completed from `model`. */
export function configuredModels(config: Config): Array<{ name: string; model: Config['model'] }> {
  return [
    { name: config.model.name, model: config.model },
    ...config.models.map((m) => ({
      name: m.name,
      model: {
        name: m.name,
        path: m.path,
        executionProviders: m.executionProviders ?? config.model.executionProviders,
        intraOpThreads: m.intraOpThreads ?? config.model.intraOpThreads,
        warmupRuns: m.warmupRuns ?? config.model.warmupRuns,
        watch: m.watch ?? config.model.watch,
      },
    })),
  ];
}

/**
 * One route per model that some subscription names, in config order. The `model` section's model runs
 * only when a subscription uses it (every subscription does unless it names another); the schema has
 * already refused a `models[]` entry nothing names and a subscription naming an unknown model.
 */
export function routeSpecs(config: Config): RouteSpec[] {
  const modelOf = (i: number): string => config.subscriptions[i]?.model ?? config.model.name;
  const sparkplug = config.sparkplug.enabled ? (config.sparkplug.model ?? config.model.name) : null;
  return configuredModels(config).flatMap(({ name, model }) => {
    const subscriptions = config.subscriptions.flatMap((_s, i) => (modelOf(i) === name ? [i] : []));
    return subscriptions.length === 0 && sparkplug !== name ? [] : [{ name, model, subscriptions }];
  });
}
