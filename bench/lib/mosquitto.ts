/** A Mosquitto child process on a free localhost port with a minimal config, so the bench controls its broker. */
import { spawn, type ChildProcess } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { connect } from 'node:net';
import { freePort, sleep } from '../../test/support/proc.js';

export interface BrokerProcess {
  url: string;
  /** Process id to account CPU to, or null when the broker is not ours (BENCH_MQTT_URL). */
  pid: number | null;
  /** The config it runs with, quoted in the results. */
  config: string;
  stop(): Promise<void>;
}

/**
 * max_queued_messages is raised from Mosquitto's default (1000) because a subscriber that falls behind
 * would otherwise lose QoS 1 messages inside the broker — the overload run is about the daemon's losses.
 */
export function mosquittoConfig(port: number): string {
  return [
    `listener ${port} 127.0.0.1`,
    'allow_anonymous true',
    'persistence false',
    'max_queued_messages 0',
    'log_dest stderr',
    'log_type error',
    'log_type warning',
    '',
  ].join('\n');
}

async function portOpen(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

export async function startMosquitto(dir: string): Promise<BrokerProcess> {
  const port = await freePort();
  const config = mosquittoConfig(port);
  const path = join(dir, 'mosquitto.conf');
  writeFileSync(path, config);
  const child: ChildProcess = spawn('mosquitto', ['-c', path], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000);
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const spawnError = new Promise<never>((_, reject) => child.once('error', reject));
  const deadline = Date.now() + 5000;
  for (;;) {
    if (await Promise.race([portOpen(port), spawnError])) break;
    if (child.exitCode !== null || Date.now() > deadline) {
      child.kill('SIGKILL');
      throw new Error(`mosquitto did not start on port ${port}: ${stderr.trim() || 'no output'} (is it installed? apt-get install mosquitto)`);
    }
    await sleep(50);
  }
  if (child.pid === undefined) throw new Error('mosquitto has no pid');
  return {
    url: `mqtt://127.0.0.1:${port}`,
    pid: child.pid,
    config,
    async stop() {
      if (child.exitCode === null) child.kill('SIGTERM');
      await exited;
    },
  };
}

/** A broker someone else runs: nothing to start or stop, and its CPU is not ours to read. */
export function externalBroker(url: string): BrokerProcess {
  return { url, pid: null, config: '(external broker, config unknown)', stop: async () => {} };
}
