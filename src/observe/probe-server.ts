/**
 * The metrics and probes HTTP server: GET /metrics, /healthz (liveness: the event loop answers),
 * /startupz (the model is loaded), /readyz (ready for telemetry), the status page when one is mounted
 * (/, /events, /status.json) and nothing else, bounded against abuse.
 */
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Registry } from 'prom-client';
import { ConnectionGuard, listenGuarded } from './connection-guard.js';
import type { Stage } from '../lifecycle/stage.js';
import type { StatusPage } from './status-page.js';

export interface Readiness {
  ready: boolean;
  detail: Record<string, unknown>;
}

export type ProbeRejectReason = 'connection_limit' | 'client_limit' | 'bad_request' | 'timeout';

export interface ProbeOptions {
  /** Config http.host and http.port (0: any free port, see ProbeServer.port). */
  host: string;
  port: number;
  /**
   * The startup probe: ready once the model is loaded, whatever the broker does (a node that boots with
   * its uplink down must not be restarted for it). Without one, /startupz answers 200 once listening.
   */
  startup?(): Readiness;
  /** Config http.maxConnections (default 64): open connections in all; more are closed at once. */
  maxConnections: number;
  /** Config http.maxConnectionsPerClient (default 8): open connections from one remote address. */
  maxConnectionsPerClient: number;
  /** Config http.headersTimeoutMs (default 5000): a request head not complete by then is answered 408 and closed. */
  headersTimeoutMs: number;
  /** Config http.requestTimeoutMs (default 10000): the same for the whole request; also bounds headersTimeoutMs. */
  requestTimeoutMs: number;
  /** A connection or request turned away; counted as sentinel_http_rejected_total{reason}. */
  onRejected?(reason: ProbeRejectReason): void;
  /** An error caught in a handler that would otherwise have reached the top level (a bug). */
  onError?(err: Error): void;
  /**
   * The live status page (config http.statusPage): serves /, /events and /status.json, and starts and
   * stops with this server. Its event streams hold connections, counted by the caps above.
   */
  statusPage?: StatusPage;
}

/** Probes and scrapes come every few seconds at most: an idle keep-alive socket is not worth a slot. */
const KEEP_ALIVE_MS = 2_000;
/** Probe requests carry a handful of short headers; a larger head is refused with 431 (Node's default is 16 KiB). */
const MAX_HEADER_BYTES = 8_192;
/** At most this many ?name= metrics per scrape. */
const MAX_NAMES = 64;

const TEXT = { 'content-type': 'text/plain' } as const;
const JSON_TYPE = { 'content-type': 'application/json' } as const;
// Error answers close the connection: a client that sends these has nothing more to ask.
const TEXT_CLOSE = { 'content-type': 'text/plain', connection: 'close' } as const;
const NOT_ALLOWED = { allow: 'GET, HEAD', 'content-type': 'text/plain', connection: 'close' } as const;



function ignore(): void {}

/**
 * Splits a request target into path and query without `new URL` (which throws on targets like `//` or
 * `/\`). Origin form `/p?q` and absolute form `http://host/p?q` (RFC 9112 §3.2.2: a server must accept
 * it) are understood; anything else (`*`, authority form, garbage) is null.
 */
export function splitTarget(target: string): { path: string; query: string } | null {
  let start = 0;
  if (target.charCodeAt(0) !== 0x2f) {
    const scheme = /^https?:\/\/[^/?#]*/i.exec(target);
    if (scheme === null) return null;
    start = scheme[0].length;
  }
  let end = target.length;
  const hash = target.indexOf('#', start);
  if (hash >= 0) end = hash;
  const q = target.indexOf('?', start);
  const pathEnd = q >= 0 && q < end ? q : end;
  return {
    path: pathEnd > start ? target.slice(start, pathEnd) : '/',
    query: pathEnd < end ? target.slice(pathEnd + 1, end) : '',
  };
}

export class ProbeServer implements Stage {
  readonly name = 'probes';
  private server: Server | null = null;
  private boundPort = 0;
  /** Open connections by remote address, for the per-client cap. */
  private guard: ConnectionGuard | null = null;
  private readonly headersTimeoutMs: number;

  constructor(
    private readonly registry: Registry,
    private readonly readiness: () => Readiness,
    private readonly options: ProbeOptions,
  ) {
    // The headers are part of the request: its deadline bounds theirs (Node refuses headersTimeout > requestTimeout).
    this.headersTimeoutMs = Math.min(options.headersTimeoutMs, options.requestTimeoutMs);
  }

  /** The port listened on (the configured one, or the one picked for port 0). */
  get port(): number {
    return this.boundPort;
  }

  async start(): Promise<void> {
    const { requestTimeoutMs, maxConnections, maxConnectionsPerClient, host, port } = this.options;
    const listening = await listenGuarded(
      { host, port, maxConnections, maxConnectionsPerClient, headersTimeoutMs: this.headersTimeoutMs, requestTimeoutMs, keepAliveMs: KEEP_ALIVE_MS, maxHeaderBytes: MAX_HEADER_BYTES },
      this.onRequest,
      (reason) => this.reject(reason),
      (err) => this.report(err),
    );
    this.server = listening.server;
    this.guard = listening.guard;
    this.boundPort = listening.port;
    await this.options.statusPage?.start();
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    // Event streams never end by themselves: end them first, or close() would wait for every browser.
    await this.options.statusPage?.stop();
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    this.guard?.clear();
  }



  private readonly onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    // A response write that fails means the peer went away; nothing to do but not crash.
    res.on('error', ignore);
    try {
      this.route(req, res);
    } catch (err) {
      this.fail(res, err);
    }
  };

  private route(req: IncomingMessage, res: ServerResponse): void {
    // requestTimeout stops counting once the request is read: this bounds a client that never reads the answer.
    req.socket.setTimeout(this.options.requestTimeoutMs);
    const target = splitTarget(req.url ?? '');
    if (target === null) {
      this.reject('bad_request');
      res.writeHead(400, TEXT_CLOSE).end('bad request target\n');
      return;
    }
    const { path } = target;
    if (this.options.statusPage?.handle(req, res, path) === true) return;
    if (path !== '/metrics' && path !== '/healthz' && path !== '/readyz' && path !== '/startupz') {
      res.writeHead(404, TEXT_CLOSE).end('not found\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, NOT_ALLOWED).end('method not allowed\n');
      return;
    }
    if (path === '/healthz') {
      res.writeHead(200, TEXT).end('ok\n');
    } else if (path === '/readyz') {
      const { ready, detail } = this.readiness();
      res.writeHead(ready ? 200 : 503, JSON_TYPE).end(JSON.stringify({ ready, ...detail }) + '\n');
    } else if (path === '/startupz') {
      const { ready, detail } = this.options.startup?.() ?? { ready: true, detail: {} };
      res.writeHead(ready ? 200 : 503, JSON_TYPE).end(JSON.stringify({ started: ready, ...detail }) + '\n');
    } else {
      // ?name=a&name=b returns only those metrics: a cheap scrape for tools that poll often.
      // URLSearchParams decodes leniently (a bad %-escape stays as written): it never throws.
      const names = target.query === '' ? [] : new URLSearchParams(target.query).getAll('name');
      void this.serveMetrics(res, names);
    }
  }

  private async serveMetrics(res: ServerResponse, names: string[]): Promise<void> {
    try {
      const text = names.length === 0 ? await this.registry.metrics() : await this.only(names);
      res.writeHead(200, { 'content-type': this.registry.contentType }).end(text);
    } catch (err) {
      this.fail(res, err);
    }
  }

  private async only(names: string[]): Promise<string> {
    const parts: string[] = [];
    for (const name of new Set(names.slice(0, MAX_NAMES))) {
      if (this.registry.getSingleMetric(name)) parts.push(await this.registry.getSingleMetricAsString(name));
    }
    return parts.join('\n') + '\n';
  }

  /** A bug reached the handler's edge: count it, answer 500 if nothing was sent yet, else drop the connection. */
  private fail(res: ServerResponse, err: unknown): void {
    this.report(err);
    try {
      if (res.headersSent) res.destroy();
      else res.writeHead(500, TEXT_CLOSE).end('internal error\n');
    } catch {
      res.destroy();
    }
  }

  private reject(reason: ProbeRejectReason): void {
    try {
      this.options.onRejected?.(reason);
    } catch (err) {
      this.report(err);
    }
  }

  private report(err: unknown): void {
    try {
      this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
    } catch {
      // The error counter itself failed: nothing safer is left than to carry on.
    }
  }
}
