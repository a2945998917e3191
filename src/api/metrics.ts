/** The scoring API's metrics: requests by route and status, windows scored, durations, batches and the queue. */
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

export const API_ROUTES = ['score', 'models', 'other'] as const;
export type ApiRoute = (typeof API_ROUTES)[number];
/** Every status the API answers with, so each series exists from the first scrape. */
export const API_CODES = [200, 400, 401, 404, 405, 408, 413, 415, 422, 429, 500, 503] as const;
export type ApiRejectReason = 'connection_limit' | 'client_limit' | 'bad_request' | 'timeout';
const REJECT_REASONS: readonly ApiRejectReason[] = ['connection_limit', 'client_limit', 'bad_request', 'timeout'];

export class ApiMetrics {
  readonly requests: Counter<'route' | 'code'>;
  readonly windowsScored: Counter<'model'>;
  readonly duration: Histogram<'route'>;
  readonly batchWindows: Histogram;
  readonly queuedWindows: Gauge;
  readonly rejected: Counter<'reason'>;

  constructor(registry: Registry, models: readonly string[]) {
    const registers = [registry];
    this.requests = new Counter({ name: 'sentinel_api_requests_total', help: 'Scoring API requests answered, by route and HTTP status', labelNames: ['route', 'code'], registers });
    this.windowsScored = new Counter({ name: 'sentinel_api_windows_scored_total', help: 'Windows scored for the scoring API', labelNames: ['model'], registers });
    this.duration = new Histogram({
      name: 'sentinel_api_request_duration_seconds',
      help: 'Scoring API request, from its head to the answer (queue wait and model run included)',
      labelNames: ['route'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
      registers,
    });
    this.batchWindows = new Histogram({
      name: 'sentinel_api_batch_windows',
      help: 'Windows per model run for the scoring API (requests arriving together share a run)',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
      registers,
    });
    this.queuedWindows = new Gauge({ name: 'sentinel_api_queued_windows', help: 'Windows accepted by the scoring API and not yet scored', registers });
    this.rejected = new Counter({ name: 'sentinel_api_rejected_total', help: 'Scoring API connections or requests turned away before routing', labelNames: ['reason'], registers });
    for (const route of API_ROUTES) {
      for (const code of API_CODES) this.requests.labels(route, String(code)).inc(0);
      this.duration.labels(route);
    }
    for (const model of models) this.windowsScored.labels(model).inc(0);
    for (const reason of REJECT_REASONS) this.rejected.labels(reason).inc(0);
  }
}
