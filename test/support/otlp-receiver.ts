/**
 * An in-process OTLP/HTTP traces receiver (what an OpenTelemetry Collector's otlp receiver does for
 * `POST /v1/traces` with a JSON body): it decodes each export, flattens the spans with their resource,
 * and answers 200 — or an error status while `failWith` is set, to test failed exports.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';

export type AttributeValue = string | number | boolean | null;

export interface ReceivedSpan {
  traceId: string;
  spanId: string;
  parentSpanId: string;
  name: string;
  kind: number;
  /** Epoch nanoseconds, as the wire carries them. */
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttributeValue>;
  status: { code: number; message?: string };
  resource: Record<string, AttributeValue>;
  scope: string;
}

interface WireAttribute {
  key: string;
  value: { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
}
interface WireSpan {
  traceId: string;
  spanId: string;
  parentSpanId?: string;
  name: string;
  kind: number;
  startTimeUnixNano: string | number;
  endTimeUnixNano: string | number;
  attributes?: WireAttribute[];
  status?: { code?: number; message?: string };
}
interface WireExport {
  resourceSpans: Array<{ resource?: { attributes?: WireAttribute[] }; scopeSpans: Array<{ scope?: { name?: string }; spans?: WireSpan[] }> }>;
}

function attributes(list: WireAttribute[] | undefined): Record<string, AttributeValue> {
  const out: Record<string, AttributeValue> = {};
  for (const { key, value } of list ?? []) {
    if (value.stringValue !== undefined) out[key] = value.stringValue;
    else if (value.intValue !== undefined) out[key] = Number(value.intValue);
    else if (value.doubleValue !== undefined) out[key] = value.doubleValue;
    else if (value.boolValue !== undefined) out[key] = value.boolValue;
    else out[key] = null;
  }
  return out;
}

export class OtlpReceiver {
  readonly spans: ReceivedSpan[] = [];
  /** Export requests received (each a POST), and their content types. */
  readonly requests: Array<{ contentType: string; spans: number }> = [];
  /** While set, exports are answered with this HTTP status and their spans are not kept. */
  failWith: number | null = null;
  /** Spans received in successful exports (kept or not). */
  received = 0;
  private server: Server | null = null;
  private readonly keepSpans: boolean;

  /** `keepSpans: false` only counts them (a benchmark's receiver). */
  constructor(options: { keepSpans?: boolean } = {}) {
    this.keepSpans = options.keepSpans ?? true;
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server?.address() as AddressInfo).port}/v1/traces`;
  }

  async start(): Promise<this> {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => {
        if (req.method !== 'POST' || req.url !== '/v1/traces') {
          res.writeHead(404).end();
          return;
        }
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        const payload = JSON.parse(body.toString('utf8')) as WireExport;
        let count = 0;
        for (const rs of payload.resourceSpans) {
          const resource = attributes(rs.resource?.attributes);
          for (const ss of rs.scopeSpans) {
            for (const span of ss.spans ?? []) {
              count++;
              if (this.failWith !== null) continue;
              this.received++;
              if (!this.keepSpans) continue;
              this.spans.push({
                traceId: span.traceId,
                spanId: span.spanId,
                parentSpanId: span.parentSpanId ?? '',
                name: span.name,
                kind: span.kind,
                startNs: BigInt(span.startTimeUnixNano),
                endNs: BigInt(span.endTimeUnixNano),
                attributes: attributes(span.attributes),
                status: { code: span.status?.code ?? 0, ...(span.status?.message ? { message: span.status.message } : {}) },
                resource,
                scope: ss.scope?.name ?? '',
              });
            }
          }
        }
        this.requests.push({ contentType: String(req.headers['content-type']), spans: count });
        if (this.failWith !== null) {
          res.writeHead(this.failWith, { 'content-type': 'application/json' }).end('{}');
          return;
        }
        res.writeHead(200, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    return this;
  }

  named(name: string): ReceivedSpan[] {
    return this.spans.filter((s) => s.name === name);
  }

  /** The span with this id, or undefined. */
  byId(spanId: string): ReceivedSpan | undefined {
    return this.spans.find((s) => s.spanId === spanId);
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (server === null) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
