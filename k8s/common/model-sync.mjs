// Model sync for the Sentinel DaemonSet: keeps the node's models folder equal to the model source.
//
//   node model-sync.mjs seed    init container: one sync; on failure keep the node's model, or install the image's
//   node model-sync.mjs once    one sync, exit 1 if a model could not be synced (`kubectl exec` to ship at once)
//   node model-sync.mjs watch   sidecar: a sync every MODEL_SYNC_INTERVAL_SECONDS
//
// Settings come from the environment (k8s/common/model-sync.env). A model is <name>.onnx plus its manifest
// <name>.json, whose version is the sha256 of the ONNX bytes: the ONNX file is downloaded beside the model,
// checked against that hash, renamed into place, and only then is the manifest renamed over the old one. The
// daemon takes a version once file and manifest agree, so it never loads a half-written model.
import { createHash } from 'node:crypto';
import { createReadStream, createWriteStream } from 'node:fs';
import { open, readFile, readdir, rename, rm } from 'node:fs/promises';
import { Buffer } from 'node:buffer';
import { join } from 'node:path';
import process from 'node:process';
import { Readable, Transform } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { setInterval } from 'node:timers';
import { setTimeout as sleep } from 'node:timers/promises';
/* global fetch, AbortSignal -- Node's own globals; they have no module to import them from */

const levels = { info: 30, warn: 40, error: 50 };
/** One JSON line per event, with pino's numeric levels like the daemon's own log. */
function log(level, msg, fields = {}) {
  process.stdout.write(`${JSON.stringify({ level: levels[level], time: Date.now(), name: 'model-sync', msg, ...fields })}\n`);
}

function fail(message) {
  process.stderr.write(`model-sync: ${message}\n`);
  process.exit(2);
}

function settings(env) {
  const source = (env.MODEL_SOURCE_URL ?? '').trim().replace(/\/+$/, '');
  if (source !== '' && !/^https?:\/\/[^/]/.test(source)) fail(`MODEL_SOURCE_URL=${source} is not an http(s) URL — fix: set it to the folder that holds <name>.onnx and <name>.json, or leave it empty`);
  const names = (env.MODEL_NAMES ?? 'default').split(',').map((n) => n.trim()).filter((n) => n !== '');
  for (const name of names) {
    if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(name)) fail(`MODEL_NAMES: "${name}" is not a file name — fix: letters, digits, _ . - only`);
  }
  if (names.length === 0) fail('MODEL_NAMES is empty — fix: name at least one model, e.g. default');
  const number = (key, fallback) => {
    const value = Number(env[key] ?? fallback);
    if (!Number.isFinite(value) || value <= 0) fail(`${key}=${env[key]} is not a positive number of seconds — fix: e.g. ${fallback}`);
    return value * 1000;
  };
  return {
    source,
    names,
    dir: env.MODEL_DIR ?? '/models',
    seedDir: env.MODEL_SEED_DIR ?? '/app/models',
    intervalMs: number('MODEL_SYNC_INTERVAL_SECONDS', 300),
    timeoutMs: number('MODEL_SYNC_TIMEOUT_SECONDS', 120),
  };
}

const versionPattern = /^sha256:[0-9a-f]{64}$/;

/** The manifest's version, or an error naming what is wrong with it. */
function versionOf(bytes, where) {
  let manifest;
  try {
    manifest = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new Error(`${where} is not JSON`);
  }
  const version = manifest === null || typeof manifest !== 'object' ? undefined : manifest.version;
  if (typeof version !== 'string' || !versionPattern.test(version)) throw new Error(`${where} has no version "sha256:<hex>"`);
  return version;
}

async function localVersion(dir, name) {
  try {
    return versionOf(await readFile(join(dir, `${name}.json`)), `${name}.json`);
  } catch {
    return null;
  }
}

async function fsyncPath(path, flags) {
  const handle = await open(path, flags);
  try {
    await handle.sync();
  } finally {
    await handle.close();
  }
}

/** Streams `body` to a temporary file beside the model, hashing on the way; returns the temp path and the hash. */
async function download(dir, name, suffix, body) {
  const temp = join(dir, `.${name}.${suffix}.${process.pid}.partial`);
  const hash = createHash('sha256');
  const tap = new Transform({
    transform(chunk, _encoding, callback) {
      hash.update(chunk);
      callback(null, chunk);
    },
  });
  try {
    await pipeline(body, tap, createWriteStream(temp, { mode: 0o640 }));
    await fsyncPath(temp, 'r+');
  } catch (err) {
    await rm(temp, { force: true });
    throw err;
  }
  return { temp, hex: hash.digest('hex') };
}

/** Checks the ONNX bytes against the manifest, then renames the ONNX file into place and the manifest after it. */
async function install(dir, name, manifestBytes, version, onnxBody) {
  const onnx = await download(dir, name, 'onnx', onnxBody);
  if (`sha256:${onnx.hex}` !== version) {
    await rm(onnx.temp, { force: true });
    throw new Error(`${name}.onnx is sha256:${onnx.hex}, its manifest says ${version}`);
  }
  const manifest = await download(dir, name, 'json', Readable.from([manifestBytes]));
  await rename(onnx.temp, join(dir, `${name}.onnx`));
  await rename(manifest.temp, join(dir, `${name}.json`));
  await fsyncPath(dir, 'r');
}

async function get(url, timeoutMs) {
  const response = await fetch(url, { signal: AbortSignal.timeout(timeoutMs), redirect: 'follow' });
  if (!response.ok || response.body === null) throw new Error(`GET ${url}: HTTP ${response.status}`);
  return response;
}

/** 'current' when the node has the source's version, 'installed' when it now has it; throws otherwise. */
async function syncFromSource(config, name) {
  const manifestUrl = `${config.source}/${encodeURIComponent(name)}.json`;
  const manifestBytes = Buffer.from(await (await get(manifestUrl, config.timeoutMs)).arrayBuffer());
  const version = versionOf(manifestBytes, manifestUrl);
  const before = await localVersion(config.dir, name);
  if (version === before) return 'current';
  const onnx = await get(`${config.source}/${encodeURIComponent(name)}.onnx`, config.timeoutMs);
  await install(config.dir, name, manifestBytes, version, Readable.fromWeb(onnx.body));
  log('info', 'model installed from the source', { model: name, version, previous: before });
  return 'installed';
}

/** Installs the model the image ships, unless the node has that version already. */
async function seedFromImage(config, name) {
  const manifestBytes = await readFile(join(config.seedDir, `${name}.json`));
  const version = versionOf(manifestBytes, join(config.seedDir, `${name}.json`));
  const before = await localVersion(config.dir, name);
  if (version === before) return 'current';
  await install(config.dir, name, manifestBytes, version, createReadStream(join(config.seedDir, `${name}.onnx`)));
  log('info', 'model installed from the image', { model: name, version, previous: before });
  return 'installed';
}

/** Temp files a killed run left behind. */
async function removePartials(dir) {
  for (const file of await readdir(dir)) {
    if (file.startsWith('.') && file.endsWith('.partial')) await rm(join(dir, file), { force: true });
  }
}

async function syncAll(config) {
  let failed = 0;
  for (const name of config.names) {
    try {
      await syncFromSource(config, name);
    } catch (err) {
      failed++;
      log('warn', 'model not synced; the node keeps the model it has', { model: name, err: String(err?.message ?? err) });
    }
  }
  return failed;
}

async function seed(config) {
  await removePartials(config.dir);
  let missing = 0;
  for (const name of config.names) {
    if (config.source !== '') {
      try {
        await syncFromSource(config, name);
        continue;
      } catch (err) {
        log('warn', 'model source out of reach at start', { model: name, err: String(err?.message ?? err) });
        if ((await localVersion(config.dir, name)) !== null) continue;
      }
    }
    try {
      await seedFromImage(config, name);
    } catch (err) {
      missing++;
      log('error', 'no model on this node: neither the source nor the image has it', { model: name, err: String(err?.message ?? err) });
    }
  }
  return missing === 0 ? 0 : 1;
}

async function watch(config) {
  if (config.source === '') {
    log('info', 'no model source (MODEL_SOURCE_URL): the models stay as the image shipped them');
    setInterval(() => {}, 2 ** 30);
    return;
  }
  for (;;) {
    await syncAll(config);
    await sleep(config.intervalMs * (1 + Math.random() / 10));
  }
}

// PID 1 in a container has no default signal handlers: without these, a stop would wait for SIGKILL.
for (const signal of ['SIGTERM', 'SIGINT']) process.on(signal, () => process.exit(0));

const config = settings(process.env);
const mode = process.argv[2];
if (mode === 'seed') process.exitCode = await seed(config);
else if (mode === 'once') {
  if (config.source === '') fail('MODEL_SOURCE_URL is empty — fix: set it in k8s/common/model-sync.env');
  process.exitCode = (await syncAll(config)) === 0 ? 0 : 1;
} else if (mode === 'watch') await watch(config);
else fail(`unknown mode "${mode ?? ''}" — fix: seed, once or watch`);
