/**
 * Load agents: the publisher and the baseline subscriber run as child processes of their own (so their
 * CPU is never the daemon's), driven over the IPC channel: job → ready → go → (stats)* → done.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export type PayloadFormat = 'json-values' | 'json-value';

export interface PublisherJob {
  url: string;
  protocolVersion: 4 | 5;
  clientId: string;
  qos: 0 | 1;
  /** Topic of stream s: `${topicPrefix}/s${s}/${topicSuffix}`. */
  topicPrefix: string;
  topicSuffix: string;
  streams: number;
  format: PayloadFormat;
  /** Round (reading index per stream) of the first message: a job that carries on where an earlier one left off. Default 0. */
  firstRound?: number;
  /** Record time of round 0, epoch ms (one round per second); default: the last round ends before now. */
  baseTs?: number;
  /** Flood: publish this many messages as fast as the window allows. */
  messages?: number;
  /** Paced: this many messages per second for durationMs. */
  rate?: number;
  durationMs?: number;
  /** Most unacknowledged publishes in flight (QoS 1: PUBACKs; QoS 0: socket writes). */
  window: number;
  seed: number;
  /** Paced runs: one spike fault per everyMs on a fresh stream, from startAfterMs on. */
  faults?: { startAfterMs: number; everyMs: number };
  /** Alert topic filter to watch (e.g. `sentinel/alerts/#`). */
  alertFilter?: string;
}

export interface FaultTiming {
  streamId: string;
  /** ms from the fault's publish to the arrival of its `raised` alert; null if none came. */
  alertAfterMs: number | null;
  /** ms from the fault's publish to the daemon's decision (the alert's detectedAt, 1 ms resolution). */
  decisionAfterMs: number | null;
}

export interface PublisherResult {
  published: number;
  /** QoS 1: PUBACKs received; QoS 0: publishes written to the socket. */
  acked: number;
  errors: number;
  /** First publish to last acknowledgement. */
  elapsedMs: number;
  /** How far behind the target rate a paced run fell, in messages, at its worst. */
  maxLag: number;
  faults: FaultTiming[];
  alerts: { raised: number; resolved: number };
}

export interface SubscriberJob {
  url: string;
  protocolVersion: 4 | 5;
  clientId: string;
  filter: string;
  qos: 0 | 1;
}

export interface SubscriberStats {
  received: number;
  malformed: number;
}

type ToAgent<J> = { type: 'job'; job: J } | { type: 'go' } | { type: 'stats' } | { type: 'stop' };
type FromAgent<S, R> =
  | { type: 'ready' }
  | { type: 'stats'; stats: S }
  | { type: 'done'; result: R }
  | { type: 'error'; message: string };

/** Parent side of an agent process. */
export class Agent<J, S, R> {
  private readonly waiters = new Map<string, Array<(msg: FromAgent<S, R>) => void>>();
  private failure: Error | null = null;
  readonly child: ChildProcess;

  constructor(script: 'publisher' | 'subscriber') {
    const path = fileURLToPath(new URL(`../agents/${script}.js`, import.meta.url));
    // e.g. BENCH_BASELINE_NODE_ARGS="--cpu-prof" profiles the baseline subscriber for comparison with the daemon.
    const nodeArgs = script === 'subscriber' ? (process.env.BENCH_BASELINE_NODE_ARGS ?? '').split(' ').filter((a) => a.length > 0) : [];
    this.child = fork(path, [], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'], execArgv: nodeArgs });
    this.child.on('message', (msg: FromAgent<S, R>) => {
      if (msg.type === 'error') this.fail(new Error(`${script} agent: ${msg.message}`));
      const list = this.waiters.get(msg.type);
      const next = list?.shift();
      if (next) next(msg);
    });
    this.child.once('exit', (code) => this.fail(new Error(`${script} agent exited with ${code}`)));
  }

  get pid(): number {
    if (this.child.pid === undefined) throw new Error('agent has no pid');
    return this.child.pid;
  }

  private fail(err: Error): void {
    if (this.failure !== null) return;
    this.failure = err;
    for (const list of this.waiters.values()) for (const waiter of list.splice(0)) waiter({ type: 'error', message: err.message });
  }

  private expect<T extends FromAgent<S, R>['type']>(type: T): Promise<Extract<FromAgent<S, R>, { type: T }>> {
    if (this.failure !== null) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const list = this.waiters.get(type) ?? [];
      list.push((msg) => (msg.type === 'error' ? reject(new Error(msg.message)) : resolve(msg as Extract<FromAgent<S, R>, { type: T }>)));
      this.waiters.set(type, list);
    });
  }

  private send(msg: ToAgent<J>): void {
    this.child.send(msg);
  }

  /** Sends the job and resolves once the agent is connected and subscribed. */
  async prepare(job: J): Promise<void> {
    const ready = this.expect('ready');
    this.send({ type: 'job', job });
    await ready;
  }

  go(): void {
    this.send({ type: 'go' });
  }

  async stats(): Promise<S> {
    const reply = this.expect('stats');
    this.send({ type: 'stats' });
    return (await reply).stats;
  }

  /** Resolves with the agent's result (a publisher sends it by itself when done; a subscriber on stop). */
  async result(stop = false): Promise<R> {
    const done = this.expect('done');
    if (stop) this.send({ type: 'stop' });
    return (await done).result;
  }

  /** Waits a moment for the agent to exit by itself (after stop), then kills it. */
  async close(timeoutMs = 3000): Promise<void> {
    if (this.child.exitCode !== null || this.child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => this.child.once('exit', () => resolve()));
    await Promise.race([exited, new Promise<void>((resolve) => setTimeout(resolve, timeoutMs))]);
    this.kill();
  }

  kill(): void {
    this.child.removeAllListeners('exit');
    if (this.child.exitCode === null) this.child.kill('SIGKILL');
  }
}

/** Child side: receives the job, reports ready/stats/done. */
export function serveAgent<J, S, R>(handlers: {
  prepare(job: J): Promise<void>;
  go(): Promise<R | null>;
  stats?(): S;
  stop?(): Promise<R>;
}): void {
  const send = (msg: FromAgent<S, R>): void => {
    process.send?.(msg);
  };
  const report = (err: unknown): void => send({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  process.on('message', (msg: ToAgent<J>) => {
    if (msg.type === 'job') handlers.prepare(msg.job).then(() => send({ type: 'ready' }), report);
    else if (msg.type === 'go') handlers.go().then((result) => result !== null && send({ type: 'done', result }), report);
    else if (msg.type === 'stats' && handlers.stats) send({ type: 'stats', stats: handlers.stats() });
    else if (msg.type === 'stop' && handlers.stop) {
      handlers.stop().then((result) => {
        send({ type: 'done', result });
        process.disconnect();
      }, report);
    }
  });
  process.on('disconnect', () => process.exit(0));
}
