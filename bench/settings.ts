/** Bench settings from the environment: every duration and size can be changed, BENCH_QUICK=1 shrinks them all. */

export const sectionNames = ['model', 'hotpath', 'throughput', 'routes', 'latency', 'overload', 'memory'] as const;
export type SectionName = (typeof sectionNames)[number];
export const brokerKinds = ['mosquitto', 'embedded'] as const;
export type BrokerKind = (typeof brokerKinds)[number];
/** Telemetry formats the throughput comparisons run: every channel in one message, or one value per topic. */
export const benchFormats = ['json-values', 'json-value'] as const;
export type BenchFormat = (typeof benchFormats)[number];

export interface BenchSettings {
  quick: boolean;
  sections: SectionName[];
  brokers: BrokerKind[];
  formats: BenchFormat[];
  /** An already running broker to use instead of starting our own mosquitto (e.g. mqtt://127.0.0.1:1883). */
  mqttUrl: string | null;
  /** Messages per throughput run (baseline and daemon each). */
  messages: number;
  /** Streams the telemetry is spread over, so windows fill and batches are full. */
  streams: number;
  /** Baseline/daemon pairs per broker and QoS; the median pair is reported. */
  repeats: number;
  /** Fill every stream's window before the measured messages, so each measured reading completes a window (long-lived sensors). */
  fillWindows: boolean;
  /** Most unacknowledged publishes the publisher keeps in flight. */
  publisherWindow: number;
  latencySeconds: number;
  /** Publish rate of the latency run; 0 = half the daemon's sustained QoS 1 rate measured in this run. */
  latencyRate: number;
  overloadSeconds: number;
  /** Publisher processes side by side in the overload run. */
  overloadPublishers: number;
  /** Share of each 100 ms the daemon may run during the overload push (SIGSTOP/SIGCONT); 1 = unthrottled. */
  overloadDuty: number;
  memoryStreams: number;
  /** Readings per stream in the memory run (32 = every window full once). */
  memoryRounds: number;
  modelSeconds: number;
  outDir: string;
  /** A commit whose build runs as the routes section's "before" setup (BENCH_BASELINE_REV), or null. */
  baselineRev: string | null;
}

function num(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name}=${raw} is not a non-negative number`);
  return value;
}

function list<T extends string>(name: string, allowed: readonly T[]): T[] {
  const raw = process.env[name];
  if (raw === undefined || raw.trim() === '') return [...allowed];
  const picked = raw.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  for (const item of picked) {
    if (!(allowed as readonly string[]).includes(item)) throw new Error(`${name}: "${item}" is not one of ${allowed.join(', ')}`);
  }
  return picked as T[];
}

export function readSettings(): BenchSettings {
  const quick = process.env.BENCH_QUICK === '1';
  return {
    quick,
    sections: list('BENCH_SECTIONS', sectionNames),
    brokers: list('BENCH_BROKERS', brokerKinds),
    formats: list('BENCH_FORMATS', benchFormats),
    mqttUrl: process.env.BENCH_MQTT_URL?.trim() || null,
    messages: num('BENCH_MESSAGES', quick ? 20_000 : 120_000),
    streams: num('BENCH_STREAMS', 1000),
    repeats: Math.max(1, Math.round(num('BENCH_REPEATS', quick ? 1 : 3))),
    fillWindows: process.env.BENCH_FILL_WINDOWS !== '0',
    publisherWindow: num('BENCH_PUBLISHER_WINDOW', 1000),
    latencySeconds: num('BENCH_LATENCY_SECONDS', quick ? 6 : 20),
    latencyRate: num('BENCH_LATENCY_RATE', 0),
    overloadSeconds: num('BENCH_OVERLOAD_SECONDS', quick ? 4 : 12),
    overloadPublishers: Math.max(1, Math.round(num('BENCH_OVERLOAD_PUBLISHERS', 3))),
    overloadDuty: Math.min(1, Math.max(0.1, num('BENCH_OVERLOAD_DUTY', 0.3))),
    memoryStreams: num('BENCH_MEMORY_STREAMS', 100_000),
    memoryRounds: Math.max(1, Math.round(num('BENCH_MEMORY_ROUNDS', quick ? 1 : 32))),
    modelSeconds: num('BENCH_MODEL_SECONDS', quick ? 1 : 3),
    outDir: process.env.BENCH_OUT?.trim() || 'bench/results',
    baselineRev: process.env.BENCH_BASELINE_REV?.trim() || null,
  };
}
