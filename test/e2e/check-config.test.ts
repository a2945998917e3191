/** Issue 15: typos in the config file or in SENTINEL_* variables stop check-config and run, each named with the nearest valid name. */
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { runCli } from '../support/cli.js';
import { DEFAULT_MODEL } from '../support/model.js';

const MODEL = resolve(DEFAULT_MODEL);

/** A valid config (the default model, a private outbox) with `yaml` appended: each case adds one mistake. */
function writeConfig(yaml = '', base: Record<string, unknown> = { model: { path: MODEL } }): string {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-check-'));
  const path = join(dir, 'sentinel.yaml');
  writeFileSync(path, `${stringify({ nodeName: 'edge-1', outbox: { path: join(dir, 'outbox.jsonl') }, ...base })}${yaml}`);
  return path;
}

function stderrLines(stderr: string): string[] {
  return stderr.split('\n').filter((line) => line !== '');
}

describe('check-config: typos are errors (issue 15)', () => {
  it('a valid config passes, so the cases below fail for their one mistake', async () => {
    const { code, stdout, stderr } = await runCli(['check-config', '--config', writeConfig()]);
    expect(stderr).toBe('');
    expect(code).toBe(0);
    expect(stdout).toMatch(/config OK\n$/);
  });

  it.each([
    ['batch:\n  maxDelay: 10\n', 'batch.maxDelay: unknown key — fix: did you mean batch.maxDelayMs?'],
    ['logging:\n  level: debug\n', 'logging: unknown key — fix: did you mean log?'],
    ['brokr:\n  url: mqtt://localhost:1883\n', 'brokr: unknown key — fix: did you mean broker?'],
    ['schedule:\n  staleCheck: "*/5 * * * * *"\n', 'schedule.staleCheck: renamed to schedule.sweep — fix: rename it to sweep'],
  ])('file %j: exit 2, the key and the suggestion on one line', async (yaml, expected) => {
    const path = writeConfig(yaml);
    const { code, stdout, stderr } = await runCli(['check-config', '--config', path]);
    expect(stderrLines(stderr)).toEqual([`${path}: ${expected}`]);
    expect(code).toBe(2);
    expect(stdout).not.toContain('config OK');
  });

  it('subscriptions[0].qoss: exit 2, the key and the suggestion', async () => {
    const path = writeConfig('', { model: { path: MODEL }, subscriptions: [{ topic: 'sensors/+/telemetry', qoss: 1 }] });
    const { code, stderr } = await runCli(['check-config', '--config', path]);
    expect(stderrLines(stderr)).toEqual([`${path}: subscriptions.0.qoss: unknown key — fix: did you mean subscriptions.0.qos?`]);
    expect(code).toBe(2);
  });

  it('broker.protocolVersion: 6 lists the allowed values', async () => {
    const path = writeConfig('', { model: { path: MODEL }, broker: { protocolVersion: 6 } });
    const { code, stderr } = await runCli(['check-config', '--config', path]);
    expect(stderrLines(stderr)).toEqual([`${path}: broker.protocolVersion: must be one of 5, 4 (got 6) — fix: use one of those values`]);
    expect(code).toBe(2);
  });

  it.each([
    ['SENTINEL_BATCH__MAXSIZE', '5', 'batch.maxsize: unknown variable — fix: did you mean SENTINEL_BATCH__MAX_SIZE (batch.maxSize)?'],
    ['SENTINEL_OUTBOX__PATHH', '/tmp/outbox.jsonl', 'outbox.pathh: unknown variable — fix: did you mean SENTINEL_OUTBOX__PATH (outbox.path)?'],
  ])('%s=%s: exit 2, the variable and the suggestion', async (name, value, expected) => {
    const { code, stdout, stderr } = await runCli(['check-config', '--config', writeConfig()], { [name]: value });
    expect(stderrLines(stderr)).toEqual([`$${name}: ${expected}`]);
    expect(code).toBe(2);
    expect(stdout).not.toContain('config OK');
  });

  it('SENTINEL_SUBSCRIPTIONS=[…] (JSON) replaces the list; an item set on its own says how to set the list', async () => {
    const list = [{ topic: 'plant/+/telemetry' }, { topic: 'plant/+/pressure', format: 'number', channel: 'pressure', qos: 0 }];
    const set = await runCli(['check-config', '--config', writeConfig()], { SENTINEL_SUBSCRIPTIONS: JSON.stringify(list) });
    expect(set.stderr).toBe('');
    expect(set.code).toBe(0);
    const printed = JSON.parse(set.stdout.slice(0, set.stdout.lastIndexOf('config OK'))) as { subscriptions: unknown };
    expect(printed.subscriptions).toEqual([
      { topic: 'plant/+/telemetry', format: 'json-values', qos: 1 },
      { topic: 'plant/+/pressure', format: 'number', channel: 'pressure', qos: 0 },
    ]);

    const item = await runCli(['check-config', '--config', writeConfig()], { SENTINEL_SUBSCRIPTIONS__0__TOPIC: 'plant/+/telemetry' });
    expect(stderrLines(item.stderr)).toEqual([
      `$SENTINEL_SUBSCRIPTIONS__0__TOPIC: subscriptions.0.topic: a list is set whole, not item by item — fix: set SENTINEL_SUBSCRIPTIONS to the whole list as JSON, e.g. SENTINEL_SUBSCRIPTIONS='[{"topic":"sensors/+/telemetry","format":"json-values","qos":1}]'`,
    ]);
    expect(item.code).toBe(2);
  });

  it('a bad value from a variable names the variable, not the file', async () => {
    const path = writeConfig('queue:\n  capacity: 10\n');
    const { code, stderr } = await runCli(['check-config', '--config', path], {
      SENTINEL_QUEUE__CAPACITY: 'lots',
      SENTINEL_SUBSCRIPTIONS: '[{"topic":"a/+","qoss":1}]',
    });
    const lines = stderrLines(stderr);
    expect(lines).toEqual([
      '$SENTINEL_SUBSCRIPTIONS: subscriptions.0.qoss: unknown key — fix: did you mean subscriptions.0.qos?',
      expect.stringMatching(/^\$SENTINEL_QUEUE__CAPACITY: queue\.capacity: .*expected number, received string/),
    ]);
    expect(stderr).not.toContain(path);
    expect(code).toBe(2);
  });
});

describe('check-config and run: every problem in one run, the model\'s included (issue 15)', () => {
  const typos = 'brokr: {}\nlogging: {}\nbatch:\n  maxDelay: 10\n';
  const missingModel = '/nonexistent/pump.onnx';

  function expectAll(lines: string[], path: string): void {
    expect(lines).toEqual([
      `${path}: batch.maxDelay: unknown key — fix: did you mean batch.maxDelayMs?`,
      `${path}: brokr: unknown key — fix: did you mean broker?`,
      `${path}: logging: unknown key — fix: did you mean log?`,
      '$SENTINEL_OUTBOX__PATHH: outbox.pathh: unknown variable — fix: did you mean SENTINEL_OUTBOX__PATH (outbox.path)?',
      `${path}: model.path: ${missingModel} does not exist — fix: train one with \`sentinel train\` or point model.path at a model`,
      expect.stringMatching(/^\/nonexistent\/pump\.json: cannot read manifest: .*ENOENT.* — fix: /),
    ]);
  }

  it('check-config: config typos, a variable typo and a missing model, exit 2', async () => {
    const path = writeConfig(typos, { model: { path: missingModel } });
    const { code, stdout, stderr } = await runCli(['check-config', '--config', path], { SENTINEL_OUTBOX__PATHH: 'x' });
    expectAll(stderrLines(stderr), path);
    expect(code).toBe(2);
    expect(stdout).toBe('');
  });

  it('run: the same list, exit 2, nothing started', async () => {
    const path = writeConfig(typos, { model: { path: missingModel } });
    const { code, stdout, stderr } = await runCli(['run', '--config', path], { SENTINEL_OUTBOX__PATHH: 'x' });
    expectAll(stderrLines(stderr), path);
    expect(code).toBe(2);
    expect(stdout).toBe('');
  });

  it('a manifest that breaks the contract in several ways: each on its own line, with the config\'s problems', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-check-model-'));
    const model = join(dir, 'pump.onnx');
    writeFileSync(model, readFileSync(MODEL));
    const manifest = JSON.parse(readFileSync(MODEL.replace(/\.onnx$/, '.json'), 'utf8')) as Record<string, unknown>;
    writeFileSync(join(dir, 'pump.json'), JSON.stringify({ ...manifest, schemaVersion: 2, name: '', window: 0 }));
    const path = writeConfig('brokr: {}\n', { model: { path: model } });
    const { code, stderr } = await runCli(['check-config', '--config', path]);
    const manifestPath = join(dir, 'pump.json');
    const lines = stderrLines(stderr);
    expect(lines[0]).toBe(`${path}: brokr: unknown key — fix: did you mean broker?`);
    expect(lines.slice(1).map((l) => l.slice(0, l.indexOf(': ', manifestPath.length + 2)))).toEqual([
      `${manifestPath}: schemaVersion`,
      `${manifestPath}: name`,
      `${manifestPath}: window`,
    ]);
    expect(code).toBe(2);
  });

  it('a subscription whose channel the model does not have is a config/model mismatch', async () => {
    const path = writeConfig('', { model: { path: MODEL }, subscriptions: [{ topic: 'plant/+/temp', format: 'number', channel: 'temp' }] });
    const { code, stderr } = await runCli(['check-config', '--config', path]);
    expect(stderrLines(stderr)).toEqual([
      `${path}: subscriptions.0.channel: "temp" is not one of the model's channels (vibration, current, pressure, temperature, flow) — fix: use one of them`,
    ]);
    expect(code).toBe(2);
  });

  it('several models: each model file is checked against its own subscriptions, every problem naming its model', async () => {
    const path = writeConfig('', {
      model: { name: 'pump', path: MODEL },
      models: [{ name: 'compressor', path: '/nonexistent/compressor.onnx' }],
      subscriptions: [
        { topic: 'pumps/+/temp', format: 'number', channel: 'temp' },
        { topic: 'compressors/+/telemetry', model: 'compressor' },
      ],
    });
    const { code, stderr } = await runCli(['check-config', '--config', path]);
    const lines = stderrLines(stderr);
    expect(lines).toContain(
      `${path}: subscriptions.0.channel: "temp" is not one of model "pump"'s channels (vibration, current, pressure, temperature, flow) — fix: use one of them`,
    );
    expect(lines).toContain(
      `${path}: models.0.path: model "compressor": /nonexistent/compressor.onnx does not exist — fix: train one with \`sentinel train\` or point models.0.path at a model`,
    );
    expect(code).toBe(2);
  });
});
