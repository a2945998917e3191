/** An in-process daemon whose pino output is captured, for tests that assert on logs and metrics together. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { validateConfig } from '../../src/config/load.js';
import type { ConfigInput } from '../../src/config/schema.js';
import { Daemon } from '../../src/daemon.js';
import { createLogger } from '../../src/observe/log.js';
import { scrape, waitForMetric } from './metrics.js';
import { DEFAULT_MODEL } from './model.js';

export interface CapturedDaemon {
  daemon: Daemon;
  /** Every log line the daemon wrote so far (pino JSON). */
  logText(): string;
  metrics(): Promise<string>;
  readyz(): Promise<{ status: number; body: Record<string, unknown> }>;
  /** Polls /metrics until `name{labels}` equals `value`; returns the last scrape. */
  waitForMetric(name: string, value: number, timeoutMs?: number, labels?: Record<string, string>): Promise<string>;
  /** daemon.stop(), then removes the daemon's temp dir (outbox). */
  stop(): Promise<boolean>;
}

/** Config for tests: default model, probes on a free port, a private outbox, fast reconnects. */
export function testConfig(name: string, overrides: ConfigInput & { broker: NonNullable<ConfigInput['broker']> }, dir: string) {
  const { broker, model, ...rest } = overrides;
  return validateConfig({
    nodeName: 'rel-node',
    http: { host: '127.0.0.1', port: 0 },
    outbox: { path: join(dir, 'outbox.jsonl') },
    log: { level: 'debug' },
    ...rest,
    broker: { clientId: `sentinel-${name}-${process.pid}`, reconnectMinMs: 100, reconnectMaxMs: 400, ...broker },
    model: { path: DEFAULT_MODEL, warmupRuns: 1, watch: false, ...model },
  });
}

export async function startCapturedDaemon(name: string, overrides: Parameters<typeof testConfig>[1]): Promise<CapturedDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-rel-daemon-'));
  let text = '';
  const sink = new Writable({
    write(chunk: Buffer | string, _encoding, callback) {
      text += chunk.toString();
      callback();
    },
  });
  const config = testConfig(name, overrides, dir);
  const daemon = new Daemon(config, createLogger(config.log.level, sink));
  try {
    await daemon.start();
  } catch (err) {
    await daemon.stop().catch(() => false);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  const metrics = () => scrape(daemon.httpPort);
  return {
    daemon,
    logText: () => text,
    metrics,
    readyz: async () => {
      const res = await fetch(`http://127.0.0.1:${daemon.httpPort}/readyz`);
      return { status: res.status, body: (await res.json()) as Record<string, unknown> };
    },
    waitForMetric: (name, value, timeoutMs = 15_000, labels = {}) => waitForMetric(daemon.httpPort, name, value, timeoutMs, labels),
    stop: async () => {
      try {
        return await daemon.stop();
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  };
}
