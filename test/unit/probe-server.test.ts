import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SentinelMetrics } from '../../src/observe/metrics.js';
import { ProbeServer } from '../../src/observe/probe-server.js';

let ready = false;
const metrics = new SentinelMetrics();
const server = new ProbeServer(metrics.registry, () => ({ ready, detail: { broker: ready ? 'connected' : 'disconnected' } }));
let base = '';
beforeAll(async () => {
  base = `http://127.0.0.1:${await server.start('127.0.0.1', 0)}`;
});
afterAll(() => server.stop());

describe('probe server', () => {
  it('/healthz is 200; /readyz follows readiness with a JSON reason', async () => {
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    const notReady = await fetch(`${base}/readyz`);
    expect(notReady.status).toBe(503);
    expect(await notReady.json()).toEqual({ ready: false, broker: 'disconnected' });
    ready = true;
    expect((await fetch(`${base}/readyz`)).status).toBe(200);
  });

  it('/metrics serves the registry; ?name= narrows it to the named metrics', async () => {
    metrics.windowsScored.inc(7);
    const full = await (await fetch(`${base}/metrics`)).text();
    expect(full).toContain('sentinel_windows_scored_total 7');
    expect(full).toContain('process_cpu_user_seconds_total');
    const narrow = await (await fetch(`${base}/metrics?name=sentinel_windows_scored_total&name=no_such_metric`)).text();
    expect(narrow).toContain('sentinel_windows_scored_total 7');
    expect(narrow).not.toContain('process_cpu_user_seconds_total');
  });

  it('has no other surface: unknown paths 404, other methods 405', async () => {
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/metrics/../admin`)).status).toBe(404);
    expect((await fetch(`${base}/debug/pprof`)).status).toBe(404);
    const post = await fetch(`${base}/metrics`, { method: 'POST', body: 'x' });
    expect(post.status).toBe(405);
    expect(post.headers.get('allow')).toBe('GET, HEAD');
    expect((await fetch(`${base}/readyz`, { method: 'DELETE' })).status).toBe(405);
  });
});
