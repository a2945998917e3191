/**
 * The live status page on the probe port: GET / (one self-contained HTML page), GET /events (server-sent
 * events, one snapshot per tick shared by every client) and GET /status.json (the latest snapshot).
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { statusPageHtml } from './status-page-html.js';
import type { StatusSnapshot } from './status-page-snapshot.js';

export { statusPageConfigSchema, type StatusPageConfig } from './status-page-config.js';
export { buildStatusSnapshot, OpenAlerts, statusSnapshotSchema, TopStreams } from './status-page-snapshot.js';
export type { ScoredStream, StatusInputs, StatusSnapshot } from './status-page-snapshot.js';

export interface StatusPageOptions {
  /** Config http.maxSseClients. */
  maxClients: number;
  /** Config http.statusIntervalMs. */
  intervalMs: number;
  /**
   * Takes one snapshot (buildStatusSnapshot); `previous` is the last one, null at first. Called once per
   * tick whatever the number of clients; may be async (prom-client counters are read asynchronously).
   */
  snapshot(previous: StatusSnapshot | null): StatusSnapshot | Promise<StatusSnapshot>;
  /** An /events client turned away (over maxClients) or cut off (not reading). */
  onRejected?(reason: 'sse_limit' | 'sse_slow'): void;
  /** A snapshot that threw: the last good one stays served. */
  onError?(err: Error): void;
}

/** A client that leaves this much unread is cut off: a stalled browser tab must not hold memory. */
const MAX_UNREAD_BYTES = 1 << 20;
/** EventSource waits this long before reconnecting (its default is about 3 s): a restarted daemon is seen sooner. */
const RETRY_MS = 1_000;

const HTML_HEADERS = {
  'content-type': 'text/html; charset=utf-8',
  'cache-control': 'no-store',
  'x-content-type-options': 'nosniff',
  // Nothing leaves the node: no script, style or connection anywhere but inline and this origin.
  'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
} as const;
const JSON_HEADERS = { 'content-type': 'application/json', 'cache-control': 'no-store' } as const;
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' } as const;
const BUSY_HEADERS = { 'content-type': 'text/plain', 'retry-after': '5', connection: 'close' } as const;
const NOT_ALLOWED = { allow: 'GET, HEAD', 'content-type': 'text/plain', connection: 'close' } as const;

export const statusPaths = ['/', '/events', '/status.json'] as const;

export class StatusPage {
  readonly name = 'status-page';
  private readonly clients = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | null = null;
  private last: StatusSnapshot | null = null;
  /** The last snapshot as one SSE event, serialized once for all clients. */
  private event = '';
  private json = '';
  private busy = false;
  private ticks = 0;

  constructor(private readonly options: StatusPageOptions) {}

  /** Open /events streams. */
  get clientCount(): number {
    return this.clients.size;
  }

  /** Snapshots taken since start (one per tick, whatever the number of clients). */
  get snapshotsTaken(): number {
    return this.ticks;
  }

  /** Takes the first snapshot, then one per interval. */
  async start(): Promise<void> {
    if (this.timer !== null) return;
    this.timer = setInterval(() => void this.tick(), this.options.intervalMs);
    this.timer.unref();
    await this.tick();
  }

  /** Stops the ticks and ends every /events stream, so a shutdown is not held by open browsers. */
  async stop(): Promise<void> {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
    for (const res of this.clients) res.end();
    this.clients.clear();
  }

  /** Serves `/`, `/events` and `/status.json` (true), or leaves the request alone (false). */
  handle(req: IncomingMessage, res: ServerResponse, path = pathOf(req.url)): boolean {
    if (path !== '/' && path !== '/events' && path !== '/status.json') return false;
    const head = req.method === 'HEAD';
    if (req.method !== 'GET' && !head) {
      res.writeHead(405, NOT_ALLOWED).end('method not allowed\n');
    } else if (path === '/') {
      res.writeHead(200, HTML_HEADERS).end(head ? undefined : statusPageHtml);
    } else if (path === '/status.json') {
      if (this.last === null) res.writeHead(503, BUSY_HEADERS).end('no snapshot yet\n');
      else res.writeHead(200, JSON_HEADERS).end(head ? undefined : this.json);
    } else if (head) {
      res.writeHead(200, SSE_HEADERS).end();
    } else {
      this.subscribe(req, res);
    }
    return true;
  }

  private subscribe(req: IncomingMessage, res: ServerResponse): void {
    if (this.clients.size >= this.options.maxClients || this.timer === null) {
      this.options.onRejected?.('sse_limit');
      res.writeHead(503, BUSY_HEADERS).end('too many status page clients\n');
      return;
    }
    // The stream is meant to stay open: no idle timeout on its socket (the connection caps still count it).
    req.socket.setTimeout(0);
    req.socket.setNoDelay(true);
    res.writeHead(200, SSE_HEADERS);
    res.write(`retry: ${RETRY_MS}\n\n${this.event}`);
    this.clients.add(res);
    res.once('close', () => this.clients.delete(res));
  }

  private async tick(): Promise<void> {
    // A slow (async) snapshot is not stacked: the next tick is skipped instead.
    if (this.busy) return;
    this.busy = true;
    try {
      const snapshot = await this.options.snapshot(this.last);
      this.ticks++;
      this.last = snapshot;
      this.json = JSON.stringify(snapshot);
      this.event = `data: ${this.json}\n\n`;
      for (const res of this.clients) this.send(res);
    } catch (err) {
      this.options.onError?.(err instanceof Error ? err : new Error(String(err)));
    } finally {
      this.busy = false;
    }
  }

  private send(res: ServerResponse): void {
    if (res.writableLength > MAX_UNREAD_BYTES) {
      this.options.onRejected?.('sse_slow');
      this.clients.delete(res);
      res.destroy();
      return;
    }
    res.write(this.event);
  }
}

function pathOf(url: string | undefined): string {
  const target = url ?? '';
  const end = target.search(/[?#]/);
  return end < 0 ? target : target.slice(0, end);
}
