/**
 * What the ingest and stream attack files share: the daemons and MQTT clients a test starts (killed
 * and closed after it, with the daemons' output printed when it failed), a persistent publisher, an
 * alert watcher, telemetry rows and an RSS sampler.
 */
import mqtt, { type MqttClient } from 'mqtt';
import { alertSchema, type Alert } from '../../src/alert/alert.js';
import type { PumpSimulator } from '../../src/offline/sim/pump.js';
import { startAttackDaemon, type AttackDaemon, type AttackDaemonOptions } from './attack-daemon.js';
import { sleep } from './proc.js';

export interface SeenAlert {
  topic: string;
  alert: Alert;
  /** Date.now() when it arrived. */
  at: number;
}

export class AttackClients {
  private readonly daemons: AttackDaemon[] = [];
  private readonly clients: MqttClient[] = [];

  async daemon(name: string, overrides: Record<string, unknown> = {}, options: AttackDaemonOptions = {}): Promise<AttackDaemon> {
    return this.track(await startAttackDaemon(name, overrides, options));
  }

  /** Takes a daemon started some other way into the same cleanup. */
  track(d: AttackDaemon): AttackDaemon {
    this.daemons.push(d);
    return d;
  }

  /** A publisher with a persistent session: what it has not had acknowledged is sent again after a reconnect. */
  async publisher(url: string, name: string): Promise<MqttClient> {
    const client = await mqtt.connectAsync(url, {
      clientId: `pub-${name}-${process.pid}-${Date.now().toString(36)}`,
      clean: false,
      protocolVersion: 5,
      properties: { sessionExpiryInterval: 120 },
      reconnectPeriod: 100,
    });
    this.clients.push(client);
    return client;
  }

  /** Collects every alert under `<prefix>/alerts/`, schema-checked, with its topic and arrival time. */
  async alertWatcher(url: string, prefix: string): Promise<SeenAlert[]> {
    const client = await mqtt.connectAsync(url, { clientId: `watch-${prefix}`, clean: true, protocolVersion: 5, reconnectPeriod: 100 });
    this.clients.push(client);
    const alerts: SeenAlert[] = [];
    client.on('message', (topic, payload) => {
      if (topic.startsWith(`${prefix}/alerts/`)) alerts.push({ topic, alert: alertSchema.parse(JSON.parse(payload.toString())), at: Date.now() });
    });
    await client.subscribeAsync(`${prefix}/alerts/#`, { qos: 1 });
    return alerts;
  }

  /** After each test: a failed one shows what its daemons said; daemons still running are killed, clients closed. */
  async cleanup(failed: boolean): Promise<void> {
    if (failed) {
      for (const d of this.daemons) console.log(`daemon ${d.prefix}: exit ${d.cli.child.exitCode} ${d.cli.child.signalCode}\n${d.cli.stderr()}\n${d.cli.stdout().slice(-3000)}`);
    }
    for (const d of this.daemons.splice(0)) if (d.cli.child.exitCode === null && d.cli.child.signalCode === null) d.cli.child.kill('SIGKILL');
    await Promise.all(this.clients.splice(0).map((c) => c.endAsync(true)));
  }
}

/** One `json-values` payload from the simulator's next row, stamped `ts` when given. */
export function telemetry(sim: PumpSimulator, ts?: number): string {
  const r = sim.next();
  return JSON.stringify({ ts: ts ?? r.ts, values: Object.fromEntries(sim.channels.map((c, i) => [c, r.values[i]])) });
}

/** Samples the daemon's RSS (process_resident_memory_bytes) every 200 ms until stopped; returns the peak. */
export function rssSampler(d: AttackDaemon): { stop(): Promise<number> } {
  let peak = 0;
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        peak = Math.max(peak, await d.metric('process_resident_memory_bytes'));
      } catch {
        // a scrape that failed while the daemon was busy: the next one counts
      }
      await sleep(200);
    }
  })();
  return {
    async stop() {
      running = false;
      await loop;
      return Math.max(peak, await d.metric('process_resident_memory_bytes'));
    },
  };
}
