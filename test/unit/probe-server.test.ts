import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SentinelMetrics } from '../../src/observe/metrics.js';
import { ProbeServer, splitTarget, type ProbeOptions, type ProbeRejectReason, type Readiness } from '../../src/observe/probe-server.js';
import { completeHeld, eventually, holdPartial, rawRequest, type HeldSocket } from '../support/http.js';

interface Probe {
  server: ProbeServer;
  port: number;
  rejected: ProbeRejectReason[];
  errors: Error[];
  count(reason: ProbeRejectReason): number;
}

async function startProbe(options: Partial<ProbeOptions> = {}, readiness: () => Readiness = () => ({ ready: true, detail: {} })): Promise<Probe> {
  const metrics = new SentinelMetrics();
  const rejected: ProbeRejectReason[] = [];
  const errors: Error[] = [];
  const server = new ProbeServer(metrics.registry, readiness, {
    host: '127.0.0.1',
    port: 0,
    maxConnections: 64,
    maxConnectionsPerClient: 8,
    headersTimeoutMs: 5_000,
    requestTimeoutMs: 10_000,
    onRejected: (reason) => rejected.push(reason),
    onError: (err) => errors.push(err),
    ...options,
  });
  await server.start();
  return { server, port: server.port, rejected, errors, count: (reason) => rejected.filter((r) => r === reason).length };
}

const get = (target: string, headers = 'Host: sentinel\r\n'): string => `GET ${target} HTTP/1.1\r\n${headers}\r\n`;

let ready = false;
const metrics = new SentinelMetrics();
const rejected: ProbeRejectReason[] = [];
const errors: Error[] = [];
let started = false;
const server = new ProbeServer(metrics.registry, () => ({ ready, detail: { broker: ready ? 'connected' : 'disconnected' } }), {
  host: '127.0.0.1',
  port: 0,
  startup: () => ({ ready: started, detail: { model: started ? 'm' : null } }),
  maxConnections: 64,
  maxConnectionsPerClient: 8,
  headersTimeoutMs: 5_000,
  requestTimeoutMs: 10_000,
  onRejected: (reason) => rejected.push(reason),
  onError: (err) => errors.push(err),
});
let base = '';
let port = 0;
beforeAll(async () => {
  await server.start();
  port = server.port;
  base = `http://127.0.0.1:${port}`;
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

  it('/startupz follows the startup check alone, whatever readiness says', async () => {
    ready = false;
    started = false;
    const before = await fetch(`${base}/startupz`);
    expect(before.status).toBe(503);
    expect(await before.json()).toEqual({ started: false, model: null });
    started = true;
    const after = await fetch(`${base}/startupz`);
    expect(after.status).toBe(200);
    expect(await after.json()).toEqual({ started: true, model: 'm' });
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    ready = true;
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

describe('probe server: hostile request targets never throw', () => {
  it('splitTarget reads origin and absolute form and refuses the rest', () => {
    expect(splitTarget('/metrics?name=a#f')).toEqual({ path: '/metrics', query: 'name=a' });
    expect(splitTarget('//')).toEqual({ path: '//', query: '' });
    expect(splitTarget('/\\')).toEqual({ path: '/\\', query: '' });
    expect(splitTarget('HTTP://x:1/healthz?')).toEqual({ path: '/healthz', query: '' });
    expect(splitTarget('http://x?name=a')).toEqual({ path: '/', query: 'name=a' });
    expect(splitTarget('*')).toBeNull();
    expect(splitTarget('x:80')).toBeNull();
    expect(splitTarget('')).toBeNull();
    expect(splitTarget('ftp://x/metrics')).toBeNull();
  });

  it.each([
    ['//', 404, get('//')],
    ['/\\', 404, get('/\\')],
    ['%zz', 404, get('/%zz')],
    ['%zz in ?name=', 200, get('/metrics?name=%zz&name=%E0%A4%A&name')],
    ['absolute form', 200, get('http://x/metrics')],
    ['absolute form, odd authority', 200, get('http://[::1:99999/healthz')],
    ['absolute form, no path', 404, get('http://x')],
    ['asterisk form', 400, get('*')],
    ['OPTIONS *', 400, 'OPTIONS * HTTP/1.1\r\nHost: sentinel\r\n\r\n'],
    ['OPTIONS /metrics', 405, 'OPTIONS /metrics HTTP/1.1\r\nHost: sentinel\r\n\r\n'],
    ['POST with a body', 405, 'POST /healthz HTTP/1.1\r\nHost: sentinel\r\nContent-Length: 5\r\n\r\nhello'],
    ['POST promising a huge body', 405, 'POST /metrics HTTP/1.1\r\nHost: sentinel\r\nContent-Length: 1000000000\r\n\r\nx'],
    ['query just under the header limit', 200, get('/metrics?' + 'name=sentinel_ready&'.repeat(350))],
    ['query over the header limit', 431, get('/metrics?' + 'name=x&'.repeat(3000))],
    ['a header line over the limit', 431, get('/healthz', `Host: sentinel\r\nX-Big: ${'a'.repeat(9_000)}\r\n`)],
    ['bytes that are not HTTP', 400, '\u0000\u0001\u0002 /\r\n\r\n'],
    ['an unknown method', 400, 'BREW /healthz HTTP/1.1\r\nHost: sentinel\r\n\r\n'],
    ['HTTP/1.1 without Host', 400, 'GET /healthz HTTP/1.1\r\n\r\n'],
    ['both Content-Length and chunked', 400, 'GET /healthz HTTP/1.1\r\nHost: s\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n'],
    ['a bad chunk size', 405, 'POST /healthz HTTP/1.1\r\nHost: s\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n'],
    ['raw non-UTF-8 bytes in the target', 400, Buffer.from('GET /readyz?\xff\xfe HTTP/1.1\r\nHost: s\r\n\r\n', 'latin1')],
  ] as Array<[string, number, string | Buffer]>)('%s answers %i', async (_name, status, bytes) => {
    const before = errors.length;
    expect((await rawRequest(port, bytes)).status).toBe(status);
    expect(errors.length).toBe(before);
    expect((await rawRequest(port, get('/healthz'))).status).toBe(200);
  });

  it('CONNECT is closed without an answer; Upgrade is served as a plain request', async () => {
    expect((await rawRequest(port, 'CONNECT 127.0.0.1:1883 HTTP/1.1\r\nHost: 127.0.0.1:1883\r\n\r\n')).status).toBeNull();
    expect((await rawRequest(port, get('/healthz', 'Host: s\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n'))).status).toBe(200);
    expect((await rawRequest(port, get('/healthz'))).status).toBe(200);
  });

  it('counts refused requests as bad_request, error answers close the connection, and no handler error escaped', async () => {
    const before = rejected.filter((r) => r === 'bad_request').length;
    const answer = await rawRequest(port, get('/%zz') + get('/healthz'));
    expect(answer.text).toMatch(/connection: close/i);
    await rawRequest(port, get('*'));
    await rawRequest(port, 'BREW / HTTP/1.1\r\n\r\n');
    expect(rejected.filter((r) => r === 'bad_request').length).toBe(before + 2);
    expect(errors).toEqual([]);
  });
});

describe('probe server: failures inside a handler', () => {
  it('a throwing readiness check answers 500, is reported once, and the server carries on', async () => {
    const probe = await startProbe({}, () => {
      throw new Error('readiness bug');
    });
    try {
      expect((await rawRequest(probe.port, get('/readyz'))).status).toBe(500);
      expect(probe.errors.map((e) => e.message)).toEqual(['readiness bug']);
      expect((await rawRequest(probe.port, get('/healthz'))).status).toBe(200);
    } finally {
      await probe.server.stop();
    }
  });

  it('an onRejected callback that throws is reported, not thrown', async () => {
    const errs: Error[] = [];
    const server = new ProbeServer(new SentinelMetrics().registry, () => ({ ready: true, detail: {} }), {
      host: '127.0.0.1',
      port: 0,
      maxConnections: 64,
      maxConnectionsPerClient: 8,
      headersTimeoutMs: 5_000,
      requestTimeoutMs: 10_000,
      onRejected: () => {
        throw new Error('counter bug');
      },
      onError: (err) => errs.push(err),
    });
    await server.start();
    const p = server.port;
    try {
      expect((await rawRequest(p, 'BREW / HTTP/1.1\r\n\r\n')).status).toBe(400);
      expect(errs.map((e) => e.message)).toEqual(['counter bug']);
      expect((await rawRequest(p, get('/healthz'))).status).toBe(200);
    } finally {
      await server.stop();
    }
  });
});

describe('probe server: connection caps and deadlines', () => {
  it('caps connections per remote address and in total; over a cap a socket is closed at once; slots come back', async () => {
    const probe = await startProbe({ maxConnections: 4, maxConnectionsPerClient: 2, headersTimeoutMs: 60_000, requestTimeoutMs: 60_000 });
    const held: HeldSocket[] = [];
    try {
      // Connected one after another: the kernel's accept queue keeps that order, so the third is the one refused.
      for (let i = 0; i < 3; i++) held.push(await holdPartial(probe.port, '127.0.0.2'));
      expect((await held[2]!.closed).text).toBe('');
      expect(probe.count('client_limit')).toBe(1);
      for (let i = 0; i < 2; i++) held.push(await holdPartial(probe.port, '127.0.0.3'));
      // Four held: the total cap is reached, for a new address and for the probe client alike.
      const fifth = await holdPartial(probe.port, '127.0.0.4');
      expect((await fifth.closed).text).toBe('');
      expect((await rawRequest(probe.port, get('/healthz'))).status).toBeNull();
      expect(probe.count('connection_limit')).toBe(2);

      // The held ones were kept, not dropped: finishing their heads gets them answered.
      const kept = [held[0]!, held[1]!, held[3]!, held[4]!];
      expect(kept.map((h) => h.isClosed())).toEqual([false, false, false, false]);
      expect(await Promise.all(kept.map(completeHeld))).toEqual([200, 200, 200, 200]);

      for (const h of kept) h.socket.destroy();
      // The server sees those closes a moment later: then 127.0.0.1 gets in again, and 127.0.0.2 has both slots back.
      await eventually(async () => (await rawRequest(probe.port, get('/healthz'))).status === 200, '/healthz answered again');
      await eventually(async () => {
        const again = [await holdPartial(probe.port, '127.0.0.2'), await holdPartial(probe.port, '127.0.0.2')];
        const answers = await Promise.all(again.map(completeHeld));
        for (const h of again) h.socket.destroy();
        return answers.every((s) => s === 200);
      }, 'two slots for 127.0.0.2 again');
      expect(probe.errors).toEqual([]);
    } finally {
      for (const h of held) h.socket.destroy();
      await probe.server.stop();
    }
  });

  it('stop() closes held connections instead of waiting for their deadline', async () => {
    const probe = await startProbe({ headersTimeoutMs: 60_000, requestTimeoutMs: 60_000 });
    const held = [await holdPartial(probe.port, '127.0.0.2'), await holdPartial(probe.port, '127.0.0.3')];
    // Answered after them in accept order: both are held by the server now, not waiting in the backlog.
    expect((await rawRequest(probe.port, get('/healthz'))).status).toBe(200);
    await probe.server.stop();
    await Promise.all(held.map((h) => h.closed));
    expect(held.map((h) => h.isClosed())).toEqual([true, true]);
  });

  it('a request head that never ends is answered 408 and closed after headersTimeoutMs, counted as timeout', async () => {
    const probe = await startProbe({ headersTimeoutMs: 200, requestTimeoutMs: 400 });
    try {
      const held = await holdPartial(probe.port, '127.0.0.2');
      expect((await held.closed).text).toMatch(/^HTTP\/1\.1 408 /);
      expect(probe.rejected).toEqual(['timeout']);
      // A connection that sends nothing at all is under the same deadline.
      const silent = await rawRequest(probe.port, '');
      expect(silent.status).toBe(408);
      expect(probe.count('timeout')).toBe(2);
    } finally {
      await probe.server.stop();
    }
  });

  it('a headersTimeoutMs above requestTimeoutMs is bounded by it instead of failing start-up', async () => {
    const probe = await startProbe({ headersTimeoutMs: 5_000, requestTimeoutMs: 300 });
    try {
      const held = await holdPartial(probe.port, '127.0.0.2');
      expect((await held.closed).text).toMatch(/^HTTP\/1\.1 408 /);
    } finally {
      await probe.server.stop();
    }
  });
});
