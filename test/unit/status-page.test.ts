import { get, request, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import fc from 'fast-check';
import { afterEach, describe, expect, it } from 'vitest';
import { SATURATED } from '../../src/alert/alert.js';
import { SentinelMetrics } from '../../src/observe/metrics.js';
import { ProbeServer, type ProbeOptions } from '../../src/observe/probe-server.js';
import { statusPageHtml } from '../../src/observe/status-page-html.js';
import { HISTORY_POINTS, STREAM_HOLD_MS } from '../../src/observe/status-page-snapshot.js';
import {
  buildStatusSnapshot,
  OpenAlerts,
  StatusPage,
  statusPageConfigSchema,
  statusSnapshotSchema,
  TopStreams,
  type StatusInputs,
  type StatusSnapshot,
} from '../../src/observe/status-page.js';
import { sampleAlert } from '../support/alert.js';
import { eventually } from '../support/http.js';

/** GET without connection reuse, with the answer's headers. */
function getText(port: number, path: string): Promise<{ status: number; headers: IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

function inputs(fields: Partial<StatusInputs> = {}): StatusInputs {
  return {
    version: '0.1.0',
    nodeName: 'edge-1',
    startedAt: '2026-01-01T00:00:00.000Z',
    brokerConnected: true,
    models: [{ model: 'pump', loaded: true, name: 'pump-ae', version: 'sha256:ab', provider: 'cpu', raiseThreshold: 1, clearThreshold: 0.5 }],
    queue: { depth: 3, capacity: 1000 },
    counters: { received: 0, scored: 0, raised: 0, resolved: 0, dropped: 0 },
    rejects: { parse_error: 2, non_finite: 1 },
    openAlerts: 0,
    alerts: [],
    scored: [],
    topStreams: 10,
    now: 1_000_000,
    ...fields,
  };
}

describe('TopStreams', () => {
  it('keeps the k highest streams by their highest score, and drain empties it', () => {
    const top = new TopStreams(3);
    for (const [id, score] of [['a', 1], ['b', 5], ['c', 2], ['a', 7], ['d', 3], ['e', Number.NaN], ['c', 0.5], ['f', 1]] as const) top.offer(id, score);
    expect(top.drain('m')).toEqual([
      { streamId: 'a', score: 7, model: 'm' },
      { streamId: 'b', score: 5, model: 'm' },
      { streamId: 'd', score: 3, model: 'm' },
    ]);
    expect(top.drain('m')).toEqual([]);
    top.offer('z', -1);
    expect(top.drain('m')).toEqual([{ streamId: 'z', score: -1, model: 'm' }]);
  });

  it('agrees with sorting every stream by its maximum (property)', () => {
    const offers = fc.array(fc.tuple(fc.constantFrom('a', 'b', 'c', 'd', 'e', 'f', 'g'), fc.double({ noNaN: true, min: -1e6, max: 1e6 })), { maxLength: 80 });
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 5 }), offers, (k, list) => {
        const top = new TopStreams(k);
        const max = new Map<string, number>();
        for (const [id, score] of list) {
          top.offer(id, score);
          max.set(id, Math.max(max.get(id) ?? Number.NEGATIVE_INFINITY, score));
        }
        const got = top.drain('m').map((e) => e.score);
        const want = [...max.values()].sort((a, b) => b - a).slice(0, k);
        expect(got).toEqual(want);
      }),
    );
  });
});

describe('OpenAlerts', () => {
  it('opens on raised, closes on any resolved, newest first, bounded', () => {
    const open = new OpenAlerts(2);
    open.record(sampleAlert(1, 'a'));
    open.record(sampleAlert(2, 'b'));
    open.record({ ...sampleAlert(3, 'a'), type: 'resolved', reason: 'stale' });
    expect(open.list().map((a) => a.streamId)).toEqual(['b']);
    open.record(sampleAlert(4, 'c'));
    open.record(sampleAlert(5, 'd'));
    expect(open.list().map((a) => a.streamId)).toEqual(['d', 'c']);
  });
});

describe('buildStatusSnapshot', () => {
  it('is valid under its schema, with rates from the previous snapshot and saturated scores made finite', () => {
    const first = buildStatusSnapshot(inputs({ scored: [{ streamId: 's1', score: Number.POSITIVE_INFINITY, model: 'pump' }] }));
    expect(statusSnapshotSchema.parse(first)).toEqual(first);
    expect(first.rates).toEqual({ messagesPerSecond: null, windowsPerSecond: null, alertsPerMinute: null });
    expect(first.streams[0]?.score).toBe(SATURATED);
    expect(first.counters.rejected).toBe(3);
    const second = buildStatusSnapshot(inputs({ now: 1_002_000, counters: { received: 400, scored: 100, raised: 1, resolved: 0, dropped: 0 } }), first);
    expect(second.rates).toEqual({ messagesPerSecond: 200, windowsPerSecond: 50, alertsPerMinute: 30 });
    // A restart (new startedAt): counters start again, no negative rate.
    const restarted = buildStatusSnapshot(inputs({ now: 1_003_000, startedAt: '2026-01-02T00:00:00.000Z' }), second);
    expect(restarted.rates.messagesPerSecond).toBeNull();
  });

  it('extends each shown stream\'s history by one point per tick, capped, and holds slow streams for a while', () => {
    let snap: StatusSnapshot | null = null;
    for (let t = 0; t < HISTORY_POINTS + 5; t++) {
      const scored = [{ streamId: 'fast', score: t, model: 'pump' }, ...(t === 0 ? [{ streamId: 'slow', score: 0.5, model: 'pump' }] : [])];
      snap = buildStatusSnapshot(inputs({ now: 1_000_000 + t * 1000, scored }), snap);
    }
    const fast = snap?.streams.find((s) => s.streamId === 'fast');
    expect(fast?.history.length).toBe(HISTORY_POINTS);
    expect(fast?.history.at(-1)).toBe(HISTORY_POINTS + 4);
    // 'slow' was scored once, 64 ticks ago: past the hold, it is gone.
    expect(snap?.streams.map((s) => s.streamId)).toEqual(['fast']);
    const held = buildStatusSnapshot(inputs({ now: 2_000, scored: [{ streamId: 'slow', score: 2, model: 'pump' }] }));
    const later = buildStatusSnapshot(inputs({ now: 2_000 + STREAM_HOLD_MS - 1, scored: [{ streamId: 'x', score: 9, model: 'pump' }] }), held);
    expect(later.streams.map((s) => [s.streamId, s.history])).toEqual([['x', [9]], ['slow', [2, null]]]);
  });

  it('marks streams with an open alert and gives each alert its latest score', () => {
    const alert = sampleAlert(5, 's1', { topChannels: [{ channel: 'pressure', contribution: 4 }] });
    const snap = buildStatusSnapshot(inputs({ openAlerts: 1, alerts: [alert], scored: [{ streamId: 's1', score: 3, model: 'pump' }, { streamId: 's2', score: 1, model: 'pump' }] }));
    expect(snap.streams.map((s) => s.raised)).toEqual([true, false]);
    expect(snap.alerts).toEqual({ open: 1, shown: [{ ...alert, latest: 3 }] });
  });
});

describe('statusPageConfigSchema', () => {
  it('has a default for every key', () => {
    expect(statusPageConfigSchema.parse({})).toEqual({ statusPage: true, maxSseClients: 4, statusIntervalMs: 500, statusTopStreams: 10 });
  });
});

describe('the page', () => {
  it('loads nothing from anywhere: no URL but the SVG namespace, no src or href', () => {
    const urls = statusPageHtml.match(/[a-z]+:\/\/[^\s"')]*/gi) ?? [];
    expect(urls.filter((u) => u !== 'http://www.w3.org/2000/svg')).toEqual([]);
    expect(statusPageHtml).not.toMatch(/\s(src|href)=/i);
    expect(statusPageHtml).not.toMatch(/innerHTML|insertAdjacentHTML|document\.write/);
  });
});

interface Sse {
  res: IncomingMessage;
  events: StatusSnapshot[];
  ended: Promise<void>;
  close(): void;
}

function openEvents(port: number): Promise<Sse | number> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/events', agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve(res.statusCode ?? 0);
        return;
      }
      const events: StatusSnapshot[] = [];
      let buffer = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffer += chunk;
        let end: number;
        while ((end = buffer.indexOf('\n\n')) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          for (const line of block.split('\n')) if (line.startsWith('data: ')) events.push(statusSnapshotSchema.parse(JSON.parse(line.slice(6))));
        }
      });
      const ended = new Promise<void>((done) => {
        res.on('end', done);
        res.on('close', done);
      });
      resolve({ res, events, ended, close: () => req.destroy() });
    });
    req.on('error', reject);
    req.end();
  });
}

describe('StatusPage on the probe server', () => {
  let probes: ProbeServer | null = null;
  afterEach(async () => {
    await probes?.stop();
    probes = null;
  });

  async function start(page: StatusPage | undefined, options: Partial<ProbeOptions> = {}): Promise<number> {
    probes = new ProbeServer(new SentinelMetrics({ defaultMetrics: false }).registry, () => ({ ready: true, detail: {} }), {
      host: '127.0.0.1',
      port: 0,
      maxConnections: 64,
      maxConnectionsPerClient: 8,
      headersTimeoutMs: 5_000,
      requestTimeoutMs: 10_000,
      ...(page ? { statusPage: page } : {}),
      ...options,
    });
    await probes.start();
    return probes.port;
  }

  function counting(intervalMs: number, maxClients = 2): { page: StatusPage; calls: () => number; rejected: string[] } {
    let calls = 0;
    const rejected: string[] = [];
    const page = new StatusPage({
      maxClients,
      intervalMs,
      snapshot: (previous) => {
        calls++;
        return buildStatusSnapshot(inputs({ now: Date.now(), counters: { received: calls, scored: 0, raised: 0, resolved: 0, dropped: 0 } }), previous);
      },
      onRejected: (reason) => rejected.push(reason),
    });
    return { page, calls: () => calls, rejected };
  }

  it('serves the page, the JSON and 404 as before without one', async () => {
    const { page } = counting(1000);
    const port = await start(page);
    const html = await getText(port, '/');
    expect(html.status).toBe(200);
    expect(html.headers['content-type']).toBe('text/html; charset=utf-8');
    expect(html.headers['content-security-policy']).toContain("connect-src 'self'");
    expect(html.body).toContain('<title>Sentinel</title>');
    const json = await getText(port, '/status.json?x=1');
    expect(json.status).toBe(200);
    expect(statusSnapshotSchema.parse(JSON.parse(json.body)).nodeName).toBe('edge-1');
    expect((await getText(port, '/healthz')).status).toBe(200);
    await probes?.stop();
    const bare = await start(undefined);
    expect((await getText(bare, '/')).status).toBe(404);
    expect((await getText(bare, '/events')).status).toBe(404);
  });

  it('takes one snapshot per tick, shared by every client, and turns away clients over maxClients', async () => {
    const { page, calls, rejected } = counting(100, 2);
    const port = await start(page);
    const a = await openEvents(port);
    const b = await openEvents(port);
    const c = await openEvents(port);
    expect(c).toBe(503);
    expect(rejected).toEqual(['sse_limit']);
    if (typeof a === 'number' || typeof b === 'number') throw new Error('no stream');
    await eventually(async () => a.events.length >= 6 && b.events.length >= 6, 'six events each');
    const taken = page.snapshotsTaken;
    expect(calls()).toBe(taken);
    // Both clients saw the same snapshots (the same ticks), and no more snapshots than ticks were taken.
    const common = b.events.map((e) => e.counters.received).filter((n) => a.events.some((x) => x.counters.received === n));
    expect(common.length).toBeGreaterThanOrEqual(5);
    expect(page.clientCount).toBe(2);
    a.close();
    await eventually(async () => page.clientCount === 1, 'closed client forgotten');
    const d = await openEvents(port);
    expect(typeof d).not.toBe('number');
    if (typeof d !== 'number') d.close();
  });

  it('keeps an event stream open past the request timeout and the keep-alive timeout', async () => {
    const { page } = counting(200);
    const port = await start(page, { requestTimeoutMs: 600, headersTimeoutMs: 300 });
    const sse = await openEvents(port);
    if (typeof sse === 'number') throw new Error(`status ${sse}`);
    await new Promise((r) => setTimeout(r, 2_500));
    const seen = sse.events.length;
    expect(seen).toBeGreaterThanOrEqual(8);
    await eventually(async () => sse.events.length > seen, 'still receiving');
    sse.close();
  });

  it('counts event streams against the per-client connection cap', async () => {
    const { page } = counting(1000, 10);
    const port = await start(page, { maxConnectionsPerClient: 2 });
    const a = await openEvents(port);
    const b = await openEvents(port);
    if (typeof a === 'number' || typeof b === 'number') throw new Error('no stream');
    await expect(openEvents(port)).rejects.toThrow();
    a.close();
    b.close();
  });

  it('ends every event stream on stop, so shutdown is not held', async () => {
    const { page } = counting(1000, 4);
    const port = await start(page);
    const streams = await Promise.all([openEvents(port), openEvents(port), openEvents(port)]);
    const began = performance.now();
    await probes?.stop();
    probes = null;
    for (const s of streams) if (typeof s !== 'number') await s.ended;
    expect(performance.now() - began).toBeLessThan(1_000);
    expect(page.clientCount).toBe(0);
    const calls = page.snapshotsTaken;
    await new Promise((r) => setTimeout(r, 1_200));
    expect(page.snapshotsTaken).toBe(calls);
  });

  it('keeps serving the last good snapshot when one throws', async () => {
    let n = 0;
    const errors: Error[] = [];
    const page = new StatusPage({
      maxClients: 1,
      intervalMs: 100,
      snapshot: (previous) => {
        if (++n > 1) throw new Error('boom');
        return buildStatusSnapshot(inputs(), previous);
      },
      onError: (err) => errors.push(err),
    });
    const port = await start(page);
    await eventually(async () => errors.length >= 2, 'errors reported');
    expect((await getText(port, '/status.json')).status).toBe(200);
  });
});
