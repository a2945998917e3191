/** `sentinel demo`: embedded broker, the daemon, and a seeded pump simulator with injected faults; prints alerts live. */
import mqtt from 'mqtt';
import { alertSchema } from '../alert/alert.js';
import { validateConfig } from '../config/load.js';
import { Daemon } from '../daemon.js';
import { createLogger } from '../observe/log.js';
import { PumpSimulator, type FaultPlan } from '../offline/sim/pump.js';
import { consoleIO, numberOption, numberOr, runCommandLine, type CommandIO } from './args.js';
import { demoSpec } from './commands.js';

interface DemoPump {
  streamId: string;
  faults: FaultPlan[];
}

/** Three pumps, each with its own faults; fault rows are in simulated seconds. */
export function demoScenario(): DemoPump[] {
  return [
    { streamId: 'pump-1', faults: [{ kind: 'spike', channel: 0, start: 200, length: 15 }, { kind: 'noise', channel: 2, start: 560, length: 60 }] },
    { streamId: 'pump-2', faults: [{ kind: 'drift', channel: 3, start: 260, length: 200 }] },
    { streamId: 'pump-3', faults: [{ kind: 'stuck', channel: 4, start: 320, length: 120 }] },
  ];
}

export async function runDemoCommand(argv: string[], io: CommandIO = consoleIO): Promise<number> {
  return runCommandLine(demoSpec, argv, io, async ({ values }) => {
    const port = { integer: true, min: 0, max: 65_535 } as const;
    return demo({
      seed: numberOr('seed', values.seed, 7, { integer: true }),
      rows: numberOr('rows', values.rows, 800, { integer: true, min: 1 }),
      rate: numberOr('rate', values.rate, 100, { above: 0, unit: 'rows per second' }),
      durationS: numberOption('duration', values.duration, { above: 0, unit: 'seconds' }),
      port: numberOr('port', values.port, 0, port),
      httpPort: numberOr('http-port', values['http-port'], 9464, port),
      model: values.model,
    });
  });
}

interface DemoOptions {
  seed: number;
  rows: number;
  rate: number;
  /** Stop after this long even if rows remain (undefined: once every row is sent). */
  durationS: number | undefined;
  port: number;
  httpPort: number;
  model: string;
}

async function demo({ seed, rows, rate, durationS, port, httpPort, model }: DemoOptions): Promise<number> {
  const config = validateConfig({
    nodeName: 'demo',
    broker: { url: null, embedded: { host: '127.0.0.1', port } },
    subscriptions: [{ topic: 'sensors/+/telemetry', format: 'json-values', qos: 1 }],
    http: { host: '127.0.0.1', port: httpPort },
    model: { path: model },
    log: { level: 'warn' },
  });
  const daemon = new Daemon(config, createLogger(config.log.level));
  await daemon.start();
  process.stdout.write(`sentinel demo: embedded broker ${daemon.brokerUrl}, metrics http://127.0.0.1:${daemon.httpPort}/metrics\n`);

  const client = await mqtt.connectAsync(daemon.brokerUrl, { protocolVersion: 4, clientId: `sentinel-demo-${process.pid}` });
  let alerts = 0;
  client.on('message', (_topic, payload) => {
    const parsed = alertSchema.safeParse(JSON.parse(payload.toString()));
    if (!parsed.success) return;
    const a = parsed.data;
    alerts++;
    const channels = a.topChannels.map((c) => c.channel).join(', ');
    process.stdout.write(`  ALERT ${a.type.padEnd(8)} ${a.streamId}  at ${a.recordTs}  score ${a.score.toFixed(2)}  channels: ${channels}\n`);
  });
  await client.subscribeAsync('sentinel/alerts/#', { qos: 1 });

  const pumps = demoScenario().map((p, i) => ({ ...p, sim: new PumpSimulator({ seed: seed + i, faults: p.faults }) }));
  for (const p of pumps) {
    process.stdout.write(`  ${p.streamId}: faults ${p.faults.map((f) => `${f.kind} on ${p.sim.channels[f.channel]} at row ${f.start}`).join(', ')}\n`);
  }
  process.stdout.write(`publishing ${rows} rows per pump at ${rate} rows/s${durationS === undefined ? '' : ` for at most ${durationS} s`}…\n`);
  let stop = false;
  const onSigint = (): void => {
    stop = true;
  };
  process.once('SIGINT', onSigint);
  const timer = durationS === undefined ? undefined : setTimeout(onSigint, durationS * 1000);
  for (let row = 0; row < rows && !stop; row++) {
    await Promise.all(
      pumps.map((p) => {
        const r = p.sim.next();
        const payload = { ts: r.ts, values: Object.fromEntries(p.sim.channels.map((c, i) => [c, r.values[i]])) };
        return client.publishAsync(`sensors/${p.streamId}/telemetry`, JSON.stringify(payload), { qos: 1 });
      }),
    );
    await new Promise((resolve) => setTimeout(resolve, 1000 / rate));
  }
  clearTimeout(timer);
  process.removeListener('SIGINT', onSigint);
  await new Promise((resolve) => setTimeout(resolve, 500));
  await client.endAsync();
  await daemon.stop();
  process.stdout.write(`done: ${alerts} alert events\n`);
  return 0;
}
