/**
 * Secrets never leak: the built CLI against a password-protected Mosquitto, with the password given by
 * config, env, passwordFile and inside the URL, at trace level where mqtt.js logs every packet.
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { waitFor } from '../support/broker.js';
import { runCli, startCli, type CliProcess } from '../support/cli.js';
import { metricValue, scrape } from '../support/metrics.js';
import { startMosquitto, type MosquittoProcess } from '../support/mosquitto.js';
import { attackConfig } from '../support/attack-daemon.js';

/** A token no log line can hold by chance: each password carries one, and it must never be printed. */
const token = (): string => Math.random().toString(36).slice(2, 12);

const users = {
  numeric: '123456',
  config: `cfg-${token()}-S3cr3t`,
  env: `env-${token()}-S3cr3t`,
  file: `file-${token()}-S3cr3t`,
  url: `Pa@ss-${token()}`,
} as const;
type User = keyof typeof users;

let dir: string;
let broker: MosquittoProcess;
let counter = 0;

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sentinel-secrets-'));
  const passwd = join(dir, 'passwd');
  writeFileSync(passwd, '');
  for (const [user, password] of Object.entries(users)) {
    const made = spawnSync('mosquitto_passwd', ['-b', passwd, user, password], { encoding: 'utf8' });
    if (made.status !== 0) throw new Error(`mosquitto_passwd failed: ${made.error?.message ?? made.stderr}`);
  }
  broker = await startMosquitto({ passwordFile: passwd });
});

afterAll(async () => {
  await broker?.dispose();
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** Starts `sentinel run` with these broker settings and env; resolves once it is ready (or has exited). */
async function startDaemon(name: string, brokerSettings: Record<string, unknown>, env: NodeJS.ProcessEnv, level: string): Promise<CliProcess> {
  const own = mkdtempSync(join(dir, `${name}-`));
  const prefix = `secrets-${name}-${process.pid}-${++counter}`;
  const config = attackConfig(prefix, own, broker.url, { log: { level, rejectLogIntervalMs: 1000 } });
  config.broker = { ...(config.broker as Record<string, unknown>), ...brokerSettings };
  const configPath = join(own, 'sentinel.yaml');
  writeFileSync(configPath, stringify(config));
  const cli = startCli(['run', '--config', configPath], { DEBUG: '', SENTINEL_BROKER_PASSWORD: '', SENTINEL_LOG_LEVEL: '', ...env });
  await waitFor(() => cli.logs().some((l) => l.msg === 'sentinel ready') || cli.child.exitCode !== null, 30_000, 'sentinel ready');
  return cli;
}

async function stop(cli: CliProcess): Promise<void> {
  if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGTERM');
  await cli.exited;
}

const connected = (cli: CliProcess): boolean => cli.logs().some((l) => l.msg === 'connected to broker');

describe('broker credentials', () => {
  it('a numeric password from SENTINEL_BROKER_PASSWORD stays a string: the daemon connects', async () => {
    const cli = await startDaemon('numeric', { username: 'numeric' }, { SENTINEL_BROKER_PASSWORD: users.numeric }, 'info');
    try {
      await waitFor(() => connected(cli) || cli.child.exitCode !== null, 15_000, 'connected to broker');
      expect(cli.stderr()).toBe('');
      expect(connected(cli), cli.stdout()).toBe(true);
      const port = cli.logs().find((l) => l.msg === 'sentinel ready')?.httpPort as number;
      expect(metricValue(await scrape(port), 'sentinel_broker_connected')).toBe(1);
    } finally {
      await stop(cli);
    }
    expect(broker.log()).toMatch(/as sentinel-secrets-numeric-.* u'numeric'/);
  });

  const passwordFile = (): string => {
    const path = join(dir, 'broker-password');
    writeFileSync(path, `${users.file}\n`, { mode: 0o600 });
    return path;
  };
  const urlWith = (password: string): string => broker.url.replace('mqtt://', `mqtt://url:${password}@`);
  const cases: Array<[string, User, () => Record<string, unknown>, NodeJS.ProcessEnv]> = [
    ['config', 'config', () => ({ username: 'config', password: users.config }), {}],
    ['env', 'env', () => ({ username: 'env' }), { SENTINEL_BROKER_PASSWORD: users.env }],
    ['passwordFile', 'file', () => ({ username: 'file', passwordFile: passwordFile() }), {}],
    ['the URL, percent-encoded', 'url', () => ({ url: urlWith(encodeURIComponent(users.url)) }), {}],
    ['the URL, with a raw "@"', 'url', () => ({ url: urlWith(users.url) }), {}],
  ];

  it.each(cases)('at trace level, a password given by %s is never printed; mqtt.js CONNECT shows [redacted]', async (label, user, settings, env) => {
    const cli = await startDaemon(`trace-${user}`, settings(), { SENTINEL_LOG_LEVEL: 'trace', ...env }, 'info');
    let output = '';
    try {
      await waitFor(() => connected(cli) || cli.child.exitCode !== null, 15_000, `connected with the password from ${label}`);
      expect(connected(cli), cli.stderr() + cli.stdout()).toBe(true);
      // Publish and subscribe traffic after the CONNECT is logged too.
      await new Promise((resolve) => setTimeout(resolve, 300));
    } finally {
      await stop(cli);
      output = cli.stdout() + cli.stderr();
    }
    const password = users[user];
    // The random part alone: a partly redacted password ("[redacted]@ss-…") is a leak too.
    const forms = [password, encodeURIComponent(password), password.split('-')[1] as string];
    expect(output.split('\n').filter((line) => forms.some((form) => line.includes(form)))).toEqual([]);
    const connects = cli.logs().filter((l) => l.component === 'mqtt.js' && /cmd: 'connect'/.test(String(l.msg)));
    expect(connects.length, 'mqtt.js logged its CONNECT packet at trace').toBeGreaterThan(0);
    for (const line of connects) expect(String(line.msg)).toMatch(/password: \[redacted\]/);
    expect(output).toMatch(/"url":"mqtt:\/\/(\[redacted\]@)?127\.0\.0\.1:\d+"/);
  });

  it('with DEBUG=mqttjs*, mqtt.js\'s debug output on stderr is scrubbed alike', async () => {
    const cli = await startDaemon('debug', { username: 'config', password: users.config }, { DEBUG: 'mqttjs*' }, 'info');
    try {
      await waitFor(() => connected(cli) || cli.child.exitCode !== null, 15_000, 'connected with DEBUG on');
      expect(connected(cli), cli.stderr()).toBe(true);
    } finally {
      await stop(cli);
    }
    const output = cli.stdout() + cli.stderr();
    expect(cli.stderr()).toMatch(/cmd: 'connect'[^}]*password: \[redacted\]/);
    expect(output.split('\n').filter((line) => line.includes(users.config.split('-')[1] as string))).toEqual([]);
  });
});

describe('check-config', () => {
  it('prints a URL whose password holds "@" without any of it', async () => {
    const own = mkdtempSync(join(dir, 'check-'));
    const configPath = join(own, 'sentinel.yaml');
    writeFileSync(configPath, stringify(attackConfig('check', own, 'mqtt://u:Pa@ss@host:1883')));
    const { code, stdout, stderr } = await runCli(['check-config', '--config', configPath], { SENTINEL_BROKER_PASSWORD: '' });
    expect(code, stderr).toBe(0);
    expect(stdout).toContain('config OK');
    expect(stdout).toContain('"url": "mqtt://[redacted]@host:1883"');
    expect(stdout + stderr).not.toContain('Pa@ss');
    expect(stdout + stderr).not.toContain('@ss@');
  });
});
