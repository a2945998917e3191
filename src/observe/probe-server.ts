/** The metrics and probes HTTP server: GET /metrics, /healthz, /readyz and nothing else. */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Registry } from 'prom-client';

export interface Readiness {
  ready: boolean;
  detail: Record<string, unknown>;
}

export class ProbeServer {
  private server: Server | null = null;

  constructor(
    private readonly registry: Registry,
    private readonly readiness: () => Readiness,
  ) {}

  async start(host: string, port: number): Promise<number> {
    const server = createServer((req, res) => {
      const url = new URL(req.url ?? '/', 'http://probe');
      const path = url.pathname;
      const known = path === '/metrics' || path === '/healthz' || path === '/readyz';
      if (!known) {
        res.writeHead(404, { 'content-type': 'text/plain' }).end('not found\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
        return;
      }
      if (path === '/healthz') {
        res.writeHead(200, { 'content-type': 'text/plain' }).end('ok\n');
      } else if (path === '/readyz') {
        const { ready, detail } = this.readiness();
        res.writeHead(ready ? 200 : 503, { 'content-type': 'application/json' }).end(JSON.stringify({ ready, ...detail }) + '\n');
      } else {
        // ?name=a&name=b returns only those metrics: a cheap scrape for tools that poll often.
        const names = url.searchParams.getAll('name');
        const text = names.length === 0 ? this.registry.metrics() : this.only(names);
        text.then(
          (text) => res.writeHead(200, { 'content-type': this.registry.contentType }).end(text),
          (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
        );
      }
    });
    server.headersTimeout = 5_000;
    server.requestTimeout = 10_000;
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => {
        server.off('error', reject);
        resolve();
      });
    });
    return (server.address() as AddressInfo).port;
  }

  private async only(names: string[]): Promise<string> {
    const parts: string[] = [];
    for (const name of names.slice(0, 64)) {
      if (this.registry.getSingleMetric(name)) parts.push(await this.registry.getSingleMetricAsString(name));
    }
    return parts.join('\n') + '\n';
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
