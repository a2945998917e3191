/**
 * k8s/common/model-sync.mjs, the DaemonSet's model-sync init container and sidecar, run as they run
 * there (node, settings in the environment) against a local model source, and a daemon that picks up
 * what it installs without a restart.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, watch } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startCapturedDaemon } from '../support/captured-daemon.js';
import { repoRoot } from '../support/deploy.js';
import { freePort } from '../support/proc.js';
import { trainPumpModel, type ModelFiles } from '../support/swap.js';

const script = join(repoRoot, 'k8s/common/model-sync.mjs');
const imageModels = join(repoRoot, 'models');

/** A model source: a folder of files over HTTP, each one replaceable, with the requests it saw. */
class ModelSource {
  readonly files = new Map<string, Uint8Array>();
  readonly requests: string[] = [];
  private server: Server | null = null;
  url = '';

  serve(name: string, model: ModelFiles, onnx: Uint8Array = model.onnx): void {
    this.files.set(`/models/${name}.onnx`, onnx);
    this.files.set(`/models/${name}.json`, Buffer.from(JSON.stringify(model.manifest, null, 2)));
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => {
      this.requests.push(req.url ?? '');
      const body = this.files.get(req.url ?? '');
      res.writeHead(body ? 200 : 404).end(body);
    });
    await new Promise<void>((resolve) => this.server?.listen(0, '127.0.0.1', resolve));
    const address = this.server.address();
    this.url = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}/models`;
    this.files.clear();
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
  }
}

interface SyncRun {
  code: number | null;
  /** The JSON log lines it printed. */
  logs: Array<{ level: number; msg: string; model?: string; err?: string }>;
  stderr: string;
}

/** Runs the script as the pod does; async, because the model source lives in this process. */
function modelSync(mode: string, env: Record<string, string>): Promise<SyncRun> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, mode], { env: { PATH: process.env.PATH, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('error', reject);
    child.once('exit', (code) =>
      resolve({
        code,
        stderr: err,
        logs: out
          .split('\n')
          .filter((l) => l.startsWith('{'))
          .map((l) => JSON.parse(l) as SyncRun['logs'][number]),
      }),
    );
  });
}

const version = (bytes: Uint8Array): string => `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
const installedVersion = (dir: string, name = 'default'): string => (JSON.parse(readFileSync(join(dir, `${name}.json`), 'utf8')) as { version: string }).version;

const dirs: string[] = [];
function modelsDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'sentinel-models-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

const source = new ModelSource();
let first: ModelFiles;
let second: ModelFiles;
beforeAll(async () => {
  await source.start();
  // Two versions of a model that fits the default one's pipeline (same window and channels).
  first = trainPumpModel(101, { name: 'default' });
  second = trainPumpModel(202, { name: 'default' });
});
afterAll(() => source.stop());
afterEach(() => {
  source.files.clear();
  source.requests.length = 0;
});

describe('model-sync.mjs', () => {
  it('seed without a source installs the image\'s models, and leaves them be once current', async () => {
    const dir = modelsDir();
    const env = { MODEL_SOURCE_URL: '', MODEL_DIR: dir, MODEL_SEED_DIR: imageModels };
    expect((await modelSync('seed', env)).code).toBe(0);
    for (const file of ['default.onnx', 'default.json']) expect(readFileSync(join(dir, file))).toEqual(readFileSync(join(imageModels, file)));
    const installedAt = statSync(join(dir, 'default.onnx')).mtimeMs;
    const again = await modelSync('seed', env);
    expect(again.code).toBe(0);
    expect(again.logs.filter((l) => l.msg.startsWith('model installed'))).toEqual([]);
    expect(statSync(join(dir, 'default.onnx')).mtimeMs).toBe(installedAt);
  });

  it('seed takes the source\'s model; with the source out of reach it keeps the node\'s, and a new node gets the image\'s', async () => {
    const dir = modelsDir();
    source.serve('default', first);
    const env = { MODEL_SOURCE_URL: source.url, MODEL_DIR: dir, MODEL_SEED_DIR: imageModels };
    expect((await modelSync('seed', env)).code).toBe(0);
    expect(readFileSync(join(dir, 'default.onnx'))).toEqual(Buffer.from(first.onnx));
    expect(installedVersion(dir)).toBe(first.manifest.version);

    // The uplink is down when the node reboots: it starts with the model it had, not the image's.
    const offline = { ...env, MODEL_SOURCE_URL: `http://127.0.0.1:${await freePort()}/models`, MODEL_SYNC_TIMEOUT_SECONDS: '5' };
    const kept = await modelSync('seed', offline);
    expect(kept.code).toBe(0);
    expect(kept.logs.map((l) => l.msg)).toContain('model source out of reach at start');
    expect(installedVersion(dir)).toBe(first.manifest.version);

    const fresh = modelsDir();
    expect((await modelSync('seed', { ...offline, MODEL_DIR: fresh })).code).toBe(0);
    expect(installedVersion(fresh)).toBe(installedVersion(imageModels));

    // A model that only the source has, and no source: the init container fails, so the pod waits for it.
    const none = await modelSync('seed', { ...offline, MODEL_DIR: modelsDir(), MODEL_NAMES: 'pump' });
    expect(none.code).toBe(1);
    expect(none.logs.at(-1)).toMatchObject({ level: 50, model: 'pump', msg: 'no model on this node: neither the source nor the image has it' });
  });

  it('once installs a new version ONNX file first, manifest last, and asks only for the manifest when current', async () => {
    const dir = modelsDir();
    source.serve('default', first);
    const env = { MODEL_SOURCE_URL: source.url, MODEL_DIR: dir };
    expect((await modelSync('once', env)).code).toBe(0);

    source.serve('default', second);
    source.requests.length = 0;
    const order: string[] = [];
    const watcher = watch(dir, (_event, file) => {
      if ((file === 'default.onnx' || file === 'default.json') && !order.includes(file)) order.push(file);
    });
    const run = await modelSync('once', env);
    watcher.close();
    expect(run.code).toBe(0);
    expect(order).toEqual(['default.onnx', 'default.json']);
    expect(installedVersion(dir)).toBe(second.manifest.version);
    expect(version(readFileSync(join(dir, 'default.onnx')))).toBe(second.manifest.version);

    source.requests.length = 0;
    expect((await modelSync('once', env)).code).toBe(0);
    expect(source.requests).toEqual(['/models/default.json']);
    expect(readdirSync(dir).sort()).toEqual(['default.json', 'default.onnx']);
  });

  it('refuses an ONNX file that does not match its manifest and keeps the model it has, leaving no temp file', async () => {
    const dir = modelsDir();
    source.serve('default', first);
    const env = { MODEL_SOURCE_URL: source.url, MODEL_DIR: dir };
    expect((await modelSync('once', env)).code).toBe(0);
    source.serve('default', second, first.onnx.slice(0, 1000));
    const run = await modelSync('once', env);
    expect(run.code).toBe(1);
    expect(run.logs.at(-1)?.err).toContain(`its manifest says ${second.manifest.version}`);
    expect(installedVersion(dir)).toBe(first.manifest.version);
    expect(readFileSync(join(dir, 'default.onnx'))).toEqual(Buffer.from(first.onnx));
    expect(readdirSync(dir).sort()).toEqual(['default.json', 'default.onnx']);
  });

  it('refuses settings it cannot use, naming the variable and a fix', async () => {
    for (const [env, message] of [
      [{ MODEL_SOURCE_URL: 'ftp://models' }, /MODEL_SOURCE_URL=ftp:\/\/models is not an http\(s\) URL — fix:/],
      [{ MODEL_NAMES: '../etc/passwd' }, /MODEL_NAMES: "..\/etc\/passwd" is not a file name — fix:/],
      [{ MODEL_SYNC_INTERVAL_SECONDS: 'often' }, /MODEL_SYNC_INTERVAL_SECONDS=often is not a positive number of seconds — fix:/],
    ] as const) {
      const run = await modelSync('watch', { MODEL_DIR: modelsDir(), ...env });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    }
    const once = await modelSync('once', { MODEL_SOURCE_URL: '', MODEL_DIR: modelsDir() });
    expect(once.code).toBe(2);
    expect(once.stderr).toContain('MODEL_SOURCE_URL is empty — fix:');
  });

  it('ships a model to a running daemon without a restart: the daemon swaps in what the sidecar installs', async () => {
    const dir = modelsDir();
    source.serve('default', first);
    const env = { MODEL_SOURCE_URL: source.url, MODEL_DIR: dir, MODEL_SEED_DIR: imageModels };
    expect((await modelSync('seed', env)).code).toBe(0);
    const daemon = await startCapturedDaemon('model-sync', {
      broker: { url: null, embedded: { host: '127.0.0.1', port: 0 } },
      model: { path: join(dir, 'default.onnx'), watch: true },
      log: { level: 'info' },
    });
    try {
      expect(await daemon.waitForMetric('sentinel_model_info', 1, 10_000, { version: first.manifest.version })).toBeTruthy();
      source.serve('default', second);
      const sidecar = spawn(process.execPath, [script, 'watch'], {
        env: { PATH: process.env.PATH, ...env, MODEL_SYNC_INTERVAL_SECONDS: '0.2' },
        stdio: 'ignore',
      });
      try {
        await daemon.waitForMetric('sentinel_model_swaps_total', 1, 15_000, { result: 'swapped' });
        await daemon.waitForMetric('sentinel_model_info', 1, 5_000, { version: second.manifest.version });
      } finally {
        const exited = new Promise((resolve) => sidecar.once('exit', resolve));
        sidecar.kill('SIGTERM');
        // PID 1 in a container gets no default SIGTERM handler; the script installs its own.
        expect(await exited).toBe(0);
      }
      expect(await daemon.waitForMetric('sentinel_model_swaps_total', 0, 1_000, { result: 'refused' })).toBeTruthy();
    } finally {
      await daemon.stop();
    }
  });
});
