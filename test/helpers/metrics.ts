/** Reads a Prometheus text exposition into numbers a test can assert on. */
import { get } from 'node:http';
import { waitFor } from './broker.js';

/**
 * GET /metrics on a fresh connection. A pooled keep-alive connection races the server's idle timeout
 * (a request written just as the server closes the socket comes back ECONNRESET), and that race is
 * near certain against a daemon the overload tests keep paused with SIGSTOP.
 */
export function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/metrics', agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`/metrics answered ${res.statusCode}`))));
      res.on('error', reject);
    });
    req.on('error', reject);
  });
}

/** Sum of every sample of `name` whose labels include all of `labels`. */
export function metricValue(text: string, name: string, labels: Record<string, string> = {}): number {
  let sum = 0;
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const text = m[3] ?? '';
    if (Object.entries(labels).every(([k, v]) => text.includes(`${k}="${v}"`))) sum += Number(m[4]);
  }
  return sum;
}

/** Polls /metrics until `name{labels}` equals `value`; returns the last scrape (throws with the last value seen). */
export async function waitForMetric(
  port: number,
  name: string,
  value: number,
  timeoutMs = 15_000,
  labels: Record<string, string> = {},
): Promise<string> {
  let last = '';
  let polling = false;
  try {
    await waitFor(
      () => {
        if (!polling) {
          polling = true;
          void scrape(port)
            .then((t) => (last = t))
            .catch(() => {})
            .finally(() => (polling = false));
        }
        return last !== '' && metricValue(last, name, labels) === value;
      },
      timeoutMs,
      `${name} = ${value}`,
    );
  } catch (err) {
    throw new Error(`${(err as Error).message}; last value ${metricValue(last, name, labels)}`);
  }
  return last;
}
