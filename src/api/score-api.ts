/**
 * The HTTP scoring API: POST /v1/score and GET /v1/models on a listener of their own, scoring with the
 * routes' live models through a bounded, coalescing batcher; bounded like the probe server, never a crash.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { finiteScore } from '../alert/alert.js';
import { ConnectionGuard, listenGuarded, type GuardedServer } from '../observe/connection-guard.js';
import type { Stage } from '../lifecycle/stage.js';
import type { Scorer } from '../model/scorer.js';
import type { Logger } from '../observe/log.js';
import { splitTarget } from '../observe/probe-server.js';
import { ApiBatcher, NotScored } from './batcher.js';
import type { ApiConfig } from './config.js';
import { ApiMetrics, type ApiRejectReason, type ApiRoute } from './metrics.js';
import { TokenFile } from './token.js';
import {
  normalizationOf,
  packWindows,
  scoreRequestSchema,
  zodIssues,
  type FieldIssue,
  type ModelsResponse,
  type ScoreResponse,
} from './wire.js';

/** What the API scores with: every route's name in the config and the model serving it now. */
export interface ApiModelProvider {
  models(): Array<{ name: string; scorer: Scorer | null; provider?: string }>;
}

export interface ScoreApiOptions {
  /** Windows per model run at most (config batch.maxSize). */
  maxBatch: number;
}

/** API clients send a request every few ms to s: a keep-alive socket saves a handshake, but is not held long. */
const KEEP_ALIVE_MS = 5_000;
const MAX_HEADER_BYTES = 16_384;
/** Seconds a client is told to wait after 429 (the queue drains in a few model runs) or 503 (a model loading). */
const RETRY_BUSY_S = '1';
const RETRY_UNAVAILABLE_S = '5';


function ignore(): void {}

interface ErrorBody {
  error: string;
  message: string;
  issues?: FieldIssue[];
  models?: string[];
}

export class ScoreApi implements Stage {
  readonly name = 'api';
  readonly metrics: ApiMetrics;
  private readonly batcher: ApiBatcher;
  private readonly token: TokenFile | null;
  private server: Server | null = null;
  private boundPort = 0;
  private guard: ConnectionGuard | null = null;
  private readonly headersTimeoutMs: number;

  constructor(
    private readonly config: ApiConfig,
    registry: Registry,
    private readonly log: Logger,
    private readonly provider: ApiModelProvider,
    options: ScoreApiOptions,
  ) {
    this.metrics = new ApiMetrics(registry, provider.models().map((m) => m.name));
    this.headersTimeoutMs = Math.min(config.headersTimeoutMs, config.requestTimeoutMs);
    this.token = config.tokenFile === undefined ? null : new TokenFile(config.tokenFile);
    this.batcher = new ApiBatcher((model) => this.scorerFor(model), {
      maxBatch: options.maxBatch,
      maxQueued: config.maxQueuedWindows,
      delayMs: config.batchDelayMs,
      onRun: (windows, model) => {
        this.metrics.batchWindows.observe(windows);
        this.metrics.windowsScored.labels(model).inc(windows);
      },
      onQueued: (windows) => this.metrics.queuedWindows.set(windows),
    });
  }

  /** The port listened on (the configured one, or the one picked for port 0); 0 when disabled. */
  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    if (!this.config.enabled) return;
    await this.token?.load();
    const { host, port, maxConnections, maxConnectionsPerClient, requestTimeoutMs } = this.config;
    let listening: GuardedServer;
    try {
      listening = await listenGuarded(
        { host, port, maxConnections, maxConnectionsPerClient, headersTimeoutMs: this.headersTimeoutMs, requestTimeoutMs, keepAliveMs: KEEP_ALIVE_MS, maxHeaderBytes: MAX_HEADER_BYTES },
        this.onRequest,
        (reason) => this.reject(reason),
        (err) => this.log.error({ err: err.message }, 'scoring API server error'),
      );
    } catch (err) {
      throw new Error(`api: cannot listen on ${host}:${port}: ${(err as Error).message} — fix: set api.port to a free port or api.enabled: false`);
    }
    this.server = listening.server;
    this.guard = listening.guard;
    this.boundPort = listening.port;
    this.log.info({ host, port: this.boundPort, auth: this.token !== null }, 'scoring API listening');
  }

  async stop(deadline: AbortSignal): Promise<void> {
    const server = this.server;
    this.server = null;
    // Requests waiting for a run are answered 503; the run in flight finishes (it is one model run).
    const drained = this.batcher.stop();
    await Promise.race([drained, new Promise<void>((resolve) => deadline.addEventListener('abort', () => resolve(), { once: true }))]);
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.guard?.clear();
  }

  private scorerFor(model: string): Scorer | null {
    for (const m of this.provider.models()) if (m.name === model) return m.scorer;
    return null;
  }



  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    res.on('error', ignore);
    req.on('error', ignore);
    const started = process.hrtime.bigint();
    let route: ApiRoute = 'other';
    res.once('finish', () => {
      this.metrics.requests.labels(route, String(res.statusCode)).inc();
      this.metrics.duration.labels(route).observe(Number(process.hrtime.bigint() - started) / 1e9);
    });
    try {
      req.socket.setTimeout(this.config.requestTimeoutMs);
      const target = splitTarget(req.url ?? '');
      if (target?.path === '/v1/score') route = 'score';
      else if (target?.path === '/v1/models') route = 'models';
      this.handle(req, res, route).catch((err: unknown) => this.fail(res, err));
    } catch (err) {
      this.fail(res, err);
    }
  };

  private async handle(req: IncomingMessage, res: ServerResponse, route: ApiRoute): Promise<void> {
    if (route === 'other') return this.answer(res, 404, { error: 'not_found', message: 'the API serves POST /v1/score and GET /v1/models' }, true);
    const method = route === 'score' ? 'POST' : 'GET';
    if (req.method !== method && !(route === 'models' && req.method === 'HEAD')) {
      res.setHeader('allow', route === 'score' ? 'POST' : 'GET, HEAD');
      return this.answer(res, 405, { error: 'method_not_allowed', message: `${route === 'score' ? '/v1/score' : '/v1/models'} takes ${method}` }, true);
    }
    if (this.token !== null && !(await this.token.accepts(req.headers.authorization))) {
      const sent = req.headers.authorization !== undefined;
      res.setHeader('www-authenticate', sent ? 'Bearer realm="sentinel", error="invalid_token"' : 'Bearer realm="sentinel"');
      return this.answer(res, 401, { error: 'unauthorized', message: sent ? 'the bearer token is not the one in api.tokenFile' : 'send Authorization: Bearer <token>' }, true);
    }
    if (route === 'models') return this.answer(res, 200, this.listModels(), false);
    return this.score(req, res);
  }

  private listModels(): ModelsResponse {
    return {
      models: this.provider.models().map(({ name, scorer, provider }) => {
        if (scorer === null) {
          return { name, loaded: false, manifestName: null, version: null, provider: provider ?? null, channels: null, window: null, normalization: null, thresholds: null };
        }
        const m = scorer.manifest;
        return {
          name,
          loaded: true,
          manifestName: m.name,
          version: m.version,
          provider: provider ?? scorer.provider,
          channels: [...m.channels],
          window: m.window,
          normalization: normalizationOf(m),
          thresholds: { raise: m.policy.raiseThreshold, clear: m.policy.clearThreshold },
        };
      }),
    };
  }

  private async score(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const type = req.headers['content-type'];
    if (type !== undefined && !/^application\/json\s*(;|$)/i.test(type)) {
      return this.answer(res, 415, { error: 'unsupported_media_type', message: `content-type ${type.slice(0, 64)}: send application/json` }, true);
    }
    const cap = this.config.maxBodyBytes;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > cap) return this.tooLarge(res, cap);
    const body = await readBody(req, cap);
    if (body === null) return this.tooLarge(res, cap);
    let json: unknown;
    try {
      json = JSON.parse(body.toString('utf8'));
    } catch (err) {
      return this.answer(res, 400, { error: 'invalid_json', message: `body: not valid JSON (${(err as Error).message.slice(0, 120)})` }, false);
    }
    const parsed = scoreRequestSchema.safeParse(json);
    if (!parsed.success) {
      const issues = zodIssues(parsed.error);
      return this.answer(res, 400, { error: 'invalid_request', message: describe(issues), issues }, false);
    }
    const request = parsed.data;
    const max = this.config.maxWindowsPerRequest;
    if (request.windows.length > max) {
      return this.answer(res, 413, { error: 'too_many_windows', message: `windows: ${request.windows.length} windows, at most ${max} per request (api.maxWindowsPerRequest)` }, false);
    }
    const models = this.provider.models();
    const names = models.map((m) => m.name);
    let name = request.model;
    if (name === undefined) {
      if (models.length !== 1) {
        return this.answer(res, 400, { error: 'invalid_request', message: `model: required when several models are loaded (${names.join(', ')})`, issues: [{ path: 'model', message: 'required' }], models: names }, false);
      }
      name = names[0] as string;
    }
    const entry = models.find((m) => m.name === name);
    if (entry === undefined) {
      return this.answer(res, 404, { error: 'unknown_model', message: `model: no model named ${JSON.stringify(name.slice(0, 64))} — known: ${names.join(', ')}`, models: names }, false);
    }
    const scorer = entry.scorer;
    if (scorer === null) return this.unavailable(res, `model "${name}" is not loaded yet`);
    const packed = packWindows(request, name, scorer.manifest);
    if (!(packed instanceof Float32Array)) {
      return this.answer(res, 422, { error: 'shape_mismatch', message: describe(packed), issues: packed }, false);
    }
    const pending = this.batcher.submit(name, packed, request.windows.length);
    if (pending === null) {
      res.setHeader('retry-after', RETRY_BUSY_S);
      return this.answer(res, 429, { error: 'busy', message: `more than api.maxQueuedWindows (${this.config.maxQueuedWindows}) windows are waiting to be scored; retry later` }, false);
    }
    let result;
    try {
      result = await pending;
    } catch (err) {
      if (err instanceof NotScored) return this.unavailable(res, err.message);
      throw err;
    }
    const m = result.scorer.manifest;
    const raise = m.policy.raiseThreshold;
    const channels = m.channels;
    const width = channels.length;
    const response: ScoreResponse = {
      model: { name, manifestName: m.name, version: m.version, provider: entry.provider ?? result.scorer.provider },
      thresholds: { raise, clear: m.policy.clearThreshold },
      results: Array.from(result.scores, (raw, i) => {
        const score = finiteScore(raw);
        let contributions: Record<string, number> | null = null;
        if (result.contributions !== null) {
          contributions = {};
          for (let c = 0; c < width; c++) contributions[channels[c] as string] = finiteScore(result.contributions[i * width + c] as number);
        }
        return { score, atOrAboveRaise: score >= raise, contributions };
      }),
    };
    this.answer(res, 200, response, false);
  }

  private tooLarge(res: ServerResponse, cap: number): void {
    // The rest of the body is never read: the connection closes after the answer.
    this.answer(res, 413, { error: 'body_too_large', message: `body: larger than api.maxBodyBytes (${cap} bytes)` }, true);
  }

  private unavailable(res: ServerResponse, message: string): void {
    res.setHeader('retry-after', RETRY_UNAVAILABLE_S);
    this.answer(res, 503, { error: 'unavailable', message }, false);
  }

  private answer(res: ServerResponse, status: number, body: ErrorBody | ScoreResponse | ModelsResponse, close: boolean): void {
    if (res.headersSent || res.destroyed) return;
    const text = JSON.stringify(body) + '\n';
    res.writeHead(status, close ? { 'content-type': 'application/json', connection: 'close' } : { 'content-type': 'application/json' });
    res.end(res.req.method === 'HEAD' ? undefined : text);
  }

  /** A bug reached the handler's edge: log it, answer 500 if nothing was sent yet, else drop the connection. */
  private fail(res: ServerResponse, err: unknown): void {
    try {
      this.log.error({ err: err instanceof Error ? err.message : String(err) }, 'scoring API request failed (a bug)');
      if (res.headersSent) res.destroy();
      else this.answer(res, 500, { error: 'internal', message: 'internal error' }, true);
    } catch {
      res.destroy();
    }
  }

  private reject(reason: ApiRejectReason): void {
    this.metrics.rejected.labels(reason).inc();
  }
}

function describe(issues: readonly FieldIssue[]): string {
  const first = issues[0];
  if (first === undefined) return 'invalid request';
  const more = issues.length > 1 ? ` (and ${issues.length - 1} more)` : '';
  return `${first.path}: ${first.message}${more}`;
}

/** Reads the body up to `cap` bytes; null when it is larger (reading stops there). */
function readBody(req: IncomingMessage, cap: number): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const onData = (chunk: Buffer): void => {
      size += chunk.length;
      if (size > cap) {
        done();
        req.pause();
        resolve(null);
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = (): void => {
      done();
      resolve(Buffer.concat(chunks, size));
    };
    const onGone = (): void => {
      done();
      resolve(Buffer.alloc(0));
    };
    const done = (): void => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('close', onGone);
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('close', onGone);
  });
}
