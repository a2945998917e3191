/** The routes a config asks for: one per model, each with the subscriptions that name it. */
import type { Config } from '../config/schema.js';
import type { RouteSpec } from './route.js';

export function routeSpecs(config: Config): RouteSpec[] {
  return [{ name: 'default', model: config.model, subscriptions: config.subscriptions.map((_s, i) => i) }];
}
