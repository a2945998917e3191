/** Reads a Prometheus text exposition into numbers a test can assert on. */
import { getText } from './http.js';
import { waitFor } from './broker.js';

/** GET /metrics (on a fresh connection: see getText). */
export async function scrape(port: number): Promise<string> {
  const { status, body } = await getText(port, '/metrics');
  if (status !== 200) throw new Error(`/metrics answered ${status}`);
  return body;
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
