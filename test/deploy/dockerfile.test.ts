/**
 * The Dockerfile, checked without a Docker engine: parsed with dockerfile-ast for the image rules, and
 * its shell snippets (binary pruning, HEALTHCHECK) run here for real.
 */
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { DockerfileParser, ModifiableInstruction, PropertyInstruction, type Instruction } from 'dockerfile-ast';
import { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeServer } from '../../src/observe/probe-server.js';
import { repoRoot } from '../support/deploy.js';

const text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(text);
const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string; description: string; license: string; bin: Record<string, string> };

interface Stage {
  name: string | null;
  /** The base image with build args expanded to their defaults. */
  base: string;
  /** The base image as written, e.g. `${NODE_IMAGE}`. */
  rawBase: string;
  /** The FROM's --platform flag, or null: the stage is built for the target platform. */
  platform: string | null;
  instructions: Instruction[];
}

const argDefaults = new Map<string, string>();
for (const arg of dockerfile.getInitialARGs()) {
  const property = arg.getProperty();
  if (property?.getValue()) argDefaults.set(property.getName(), property.getValue() as string);
}

function expand(value: string): string {
  return value.replace(/\$\{(\w+)\}|\$(\w+)/g, (_m, a?: string, b?: string) => {
    const name = (a ?? b) as string;
    const found = argDefaults.get(name);
    if (found === undefined) throw new Error(`build arg ${name} has no default`);
    return expand(found);
  });
}

const stages: Stage[] = [];
for (const instruction of dockerfile.getInstructions()) {
  const keyword = instruction.getKeyword();
  if (keyword === 'FROM') {
    const from = dockerfile.getFROMs().find((f) => f.getRange().start.line === instruction.getRange().start.line);
    if (!from) throw new Error('FROM without a parsed image');
    const platform = from.getFlags().find((f) => f.getName() === 'platform')?.getValue() ?? null;
    stages.push({ name: from.getBuildStage(), base: expand(from.getImage() ?? ''), rawBase: from.getImage() ?? '', platform, instructions: [] });
  } else if (stages.length > 0) {
    stages[stages.length - 1]?.instructions.push(instruction);
  }
}
const stageNames = new Set(stages.map((s) => s.name).filter((n): n is string => n !== null));

function stage(name: string): Stage {
  const found = stages.find((s) => s.name === name);
  if (!found) throw new Error(`no stage named ${name} (stages: ${[...stageNames].join(', ')})`);
  return found;
}

/** The instruction's flags and arguments as one line (continuations joined), e.g. `--from=app /app /app`. */
function shell(instruction: Instruction): string {
  const flags = instruction instanceof ModifiableInstruction ? instruction.getFlags().map((f) => `--${f.getName()}=${f.getValue() ?? ''}`) : [];
  return [...flags, (instruction.getRawArgumentsContent() ?? '').replace(/\\\r?\n/g, ' ')].join(' ');
}

function ofKind(s: Stage, keyword: string): Instruction[] {
  return s.instructions.filter((i) => i.getKeyword() === keyword);
}

/** Exec-form arguments (JSON array) of ENTRYPOINT, CMD or the HEALTHCHECK's CMD. */
function execForm(instruction: Instruction): string[] {
  const raw = shell(instruction);
  const json = raw.slice(raw.indexOf('['));
  const parsed = JSON.parse(json) as unknown;
  if (!Array.isArray(parsed) || !parsed.every((p) => typeof p === 'string')) throw new Error(`not exec form: ${raw}`);
  return parsed;
}

/** A stage's ENV instructions as one map (values unquoted). */
function envOf(s: Stage): Map<string, string> {
  return new Map(ofKind(s, 'ENV').flatMap((e) => (e as PropertyInstruction).getProperties().map((p) => [p.getName(), p.getValue() ?? ''] as [string, string])));
}

/** Stages that build on an image from a registry (not another stage, not scratch). */
const externalStages = stages.filter((s) => s.base !== 'scratch' && !stageNames.has(s.base));
const runtimeStages = ['cpu', 'gpu'].map(stage);

describe('Dockerfile', () => {
  it('is multi-stage: compiles with dev dependencies, runs with production dependencies only', () => {
    expect(stages.length).toBeGreaterThanOrEqual(4);
    const build = stage('build');
    const buildRuns = ofKind(build, 'RUN').map(shell);
    expect(buildRuns.some((r) => /\bnpm ci\b/.test(r) && !r.includes('--omit=dev'))).toBe(true);
    expect(buildRuns.some((r) => r.includes('npm run build'))).toBe(true);
    expect(ofKind(stage('prod-deps'), 'RUN').map(shell).some((r) => /\bnpm ci\b.*--omit=dev/.test(r))).toBe(true);
    for (const runtime of runtimeStages) {
      const copies = ofKind(runtime, 'COPY').map(shell);
      const nodeModules = copies.filter((c) => c.includes('node_modules'));
      expect(nodeModules, runtime.name ?? '').toHaveLength(1);
      expect(nodeModules[0]).toMatch(/--from=prod-deps(-gpu)?\s/);
      // Nothing from the build stage but its compiled output reaches a runtime image.
      expect(copies.some((c) => c.includes('--from=build'))).toBe(false);
    }
    expect(ofKind(stage('app'), 'COPY').map(shell)).toContain('--from=build /src/dist /app/dist');
  });

  it('pins every base image: no latest, Node 24 LTS Debian slim, CUDA 12 + cuDNN runtime', () => {
    expect(externalStages.length).toBeGreaterThanOrEqual(2);
    for (const s of externalStages) {
      expect(s.base, s.name ?? '').not.toMatch(/:latest$|@latest/);
      expect(s.base, `${s.name}: tag or digest`).toMatch(/:[\w.-]+$|@sha256:[0-9a-f]{64}$/);
    }
    expect(stage('node').base).toMatch(/^node:24\.\d+\.\d+-(bookworm|trixie)-slim(@sha256:[0-9a-f]{64})?$/);
    expect(stage('gpu').base).toMatch(/^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+(@sha256:[0-9a-f]{64})?$/);
    expect(text).not.toMatch(/\blatest\b/);
  });

  it('takes every base image from a global *_IMAGE build arg holding name:tag, optionally @sha256:<digest>', () => {
    const imageArgs = [...argDefaults].filter(([name]) => name.endsWith('_IMAGE'));
    expect(imageArgs.map(([name]) => name).sort()).toEqual(['CUDA_IMAGE', 'NODE_IMAGE']);
    for (const [name, value] of imageArgs) {
      // A literal, so scripts/pin-base-images.sh can resolve and rewrite it (a digest wins over its tag).
      expect(value, name).toMatch(/^[a-z0-9]+(?:[._/-][a-z0-9]+)*:\w[\w.-]{0,127}(?:@sha256:[0-9a-f]{64})?$/);
    }
    for (const s of externalStages) {
      expect(s.rawBase, `${s.name}: FROM \${<NAME>_IMAGE}`).toMatch(/^\$\{[A-Z0-9_]+_IMAGE\}$/);
      expect(imageArgs.map(([name]) => `\${${name}}`), s.name ?? '').toContain(s.rawBase);
    }
  });

  it('the default target is the CPU image, and both runtime images share one application tree', () => {
    expect(stages[stages.length - 1]?.name).toBe('cpu');
    for (const runtime of runtimeStages) {
      expect(ofKind(runtime, 'COPY').map(shell)).toContain('--from=app /app /app');
    }
    expect(stage('cpu').base).toBe('node');
  });

  it('installs onnxruntime-node with =skip for CPU and =cuda12 (install script run explicitly) for GPU', () => {
    const cpuDeps = stage('prod-deps');
    expect(ofKind(cpuDeps, 'ENV').map(shell)).toContain('ONNXRUNTIME_NODE_INSTALL=skip');
    expect(ofKind(cpuDeps, 'RUN').map(shell).find((r) => r.includes('npm ci'))).toContain('--ignore-scripts');
    const gpuDeps = stage('prod-deps-gpu');
    expect(gpuDeps.base).toBe('prod-deps');
    expect(ofKind(gpuDeps, 'ARG').map(shell)).toContain('ONNXRUNTIME_NODE_INSTALL=cuda12');
    const install = ofKind(gpuDeps, 'RUN').map(shell).join('\n');
    expect(install).toMatch(/ONNXRUNTIME_NODE_INSTALL="\$\{ONNXRUNTIME_NODE_INSTALL\}" node node_modules\/onnxruntime-node\/script\/install/);
    expect(install).toContain('libonnxruntime_providers_cuda.so');
    const gpuCopies = ofKind(stage('gpu'), 'COPY').map(shell);
    expect(gpuCopies).toContain('--from=prod-deps-gpu /app/node_modules /app/node_modules');
    expect(gpuCopies.some((c) => c.startsWith('--from=node /usr/local/bin/node'))).toBe(true);
  });

  it('prunes the onnxruntime binaries of every other platform (the RUN line, executed on a fake tree)', () => {
    const prune = ofKind(stage('prod-deps'), 'RUN')
      .map(shell)
      .find((r) => r.includes('napi-v6'));
    expect(prune).toBeDefined();
    const here = `${process.platform}/${process.arch}`;
    const platforms = ['darwin/arm64', 'linux/arm64', 'linux/x64', 'win32/arm64', 'win32/x64'];
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-prune-'));
    const bin = join(dir, 'node_modules/onnxruntime-node/bin/napi-v6');
    /** Lays out a package shipping `shipped`, runs the RUN line on it, and returns what it left. */
    const pruned = (shipped: string[]) => {
      rmSync(bin, { recursive: true, force: true });
      for (const p of shipped) {
        mkdirSync(join(bin, p), { recursive: true });
        writeFileSync(join(bin, p, 'onnxruntime_binding.node'), '');
      }
      const result = spawnSync('sh', ['-c', prune as string], { cwd: dir, encoding: 'utf8' });
      return { ...result, kept: readdirSync(bin).flatMap((os) => readdirSync(join(bin, os)).map((arch) => `${os}/${arch}`)) };
    };
    try {
      const result = pruned(platforms);
      expect(result.status, result.stderr).toBe(0);
      expect(result.kept).toEqual([here]);
      // A platform onnxruntime-node ships nothing for fails the build, naming the way out.
      const missing = pruned(platforms.filter((p) => p !== here));
      expect(missing.status).not.toBe(0);
      expect(missing.stderr).toContain(`ships no ${here} binary — fix: build for linux/amd64 or linux/arm64`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('multi-platform', () => {
    it('compiles once on the build platform; everything else is built for the target platform', () => {
      expect(stage('build').platform).toBe('$BUILDPLATFORM');
      expect(stage('build').base).toBe(stage('node').base);
      for (const s of stages.filter((st) => st.name !== 'build')) expect(s.platform, s.name ?? '').toBeNull();
      // Only dist/ crosses from the build platform into the images, and it is JavaScript.
      const fromBuild = stages.flatMap((s) => ofKind(s, 'COPY').map(shell)).filter((c) => c.startsWith('--from=build '));
      expect(fromBuild).toEqual(['--from=build /src/dist /app/dist']);
    });

    it('onnxruntime-node ships the binaries both CPU platforms need (linux/amd64 = x64, linux/arm64)', () => {
      const bin = join(repoRoot, 'node_modules/onnxruntime-node/bin/napi-v6');
      for (const arch of ['x64', 'arm64']) expect(existsSync(join(bin, 'linux', arch, 'onnxruntime_binding.node')), arch).toBe(true);
    });

    it('the GPU image refuses any target but linux/amd64 before fetching CUDA libraries (the RUN line, executed)', () => {
      const gpuDeps = stage('prod-deps-gpu');
      expect(ofKind(gpuDeps, 'ARG').map(shell)).toContain('TARGETARCH');
      const runs = ofKind(gpuDeps, 'RUN').map(shell);
      const guard = runs.findIndex((r) => r.includes('TARGETARCH'));
      expect(guard).toBeGreaterThanOrEqual(0);
      expect(guard).toBeLessThan(runs.findIndex((r) => r.includes('script/install')));
      const runGuard = (arch: string) => spawnSync('sh', ['-c', runs[guard] as string], { env: { ...process.env, TARGETARCH: arch }, encoding: 'utf8' });
      expect(runGuard('amd64').status).toBe(0);
      const arm = runGuard('arm64');
      expect(arm.status).not.toBe(0);
      expect(arm.stderr).toContain('the GPU image is linux/amd64 only');
      expect(arm.stderr).toContain('fix: build --target gpu with --platform linux/amd64');
      // The install step's directory is linux/x64, which the guard is there for.
      expect(runs.find((r) => r.includes('script/install'))).toContain('napi-v6/linux/x64');
    });
  });

  it('runtime images: non-root numeric USER, EXPOSE 9464, ENTRYPOINT runs the CLI with `run`, outbox volume', () => {
    const bin = packageJson.bin.sentinel as string;
    for (const runtime of runtimeStages) {
      const users = ofKind(runtime, 'USER').map(shell);
      expect(users, runtime.name ?? '').toHaveLength(1);
      const [uid, gid] = (users[0] as string).split(':');
      expect(Number(uid)).toBeGreaterThan(0);
      expect(Number(gid)).toBeGreaterThan(0);
      expect(ofKind(runtime, 'EXPOSE').map(shell)).toEqual(['9464']);
      const entrypoints = ofKind(runtime, 'ENTRYPOINT');
      expect(entrypoints).toHaveLength(1);
      expect(execForm(entrypoints[0] as Instruction)).toEqual(['node', `/app/${bin}`, 'run']);
      expect(ofKind(runtime, 'WORKDIR').map(shell)).toEqual(['/app']);
      expect(ofKind(runtime, 'VOLUME').map(shell)).toEqual(['["/var/lib/sentinel"]']);
      // The user is set after everything that needs root.
      const last = runtime.instructions.findLastIndex((i) => i.getKeyword() === 'RUN' || i.getKeyword() === 'COPY');
      expect(runtime.instructions.findIndex((i) => i.getKeyword() === 'USER')).toBeGreaterThan(last);
    }
  });

  it('caps the V8 heap in both runtime images, well inside the DaemonSet memory limit', () => {
    const daemonset = parseYaml(readFileSync(join(repoRoot, 'k8s/base/daemonset.yaml'), 'utf8')) as {
      spec: { template: { spec: { containers: Array<{ name: string; resources?: { limits?: { memory?: string } } }> } } };
    };
    const container = daemonset.spec.template.spec.containers.find((c) => c.name === 'sentinel');
    const limit = /^(\d+)Mi$/.exec(container?.resources?.limits?.memory ?? '');
    expect(limit, 'sentinel container memory limit in Mi').not.toBeNull();
    for (const runtime of runtimeStages) {
      const env = ofKind(runtime, 'ENV').map(shell).filter((e) => e.startsWith('NODE_OPTIONS='));
      expect(env, runtime.name ?? '').toHaveLength(1);
      const cap = /--max-old-space-size=(\d+)\b/.exec(env[0] as string);
      expect(cap, env[0]).not.toBeNull();
      // onnxruntime, the young generation, code and buffers live beside the old generation.
      expect(Number(cap?.[1])).toBeLessThanOrEqual(0.7 * Number(limit?.[1]));
      expect(Number(cap?.[1])).toBeGreaterThanOrEqual(256);
    }
  });

  it('runtime images put the outbox in the volume their user owns, through SENTINEL_OUTBOX__PATH (/app is root-owned)', () => {
    for (const runtime of runtimeStages) {
      const env = envOf(runtime);
      const outbox = env.get('SENTINEL_OUTBOX__PATH');
      expect(outbox, runtime.name ?? '').toBe('/var/lib/sentinel/outbox.jsonl');
      const [volume] = JSON.parse(ofKind(runtime, 'VOLUME').map(shell)[0] as string) as string[];
      expect(posix.dirname(outbox as string)).toBe(volume);
      const user = ofKind(runtime, 'USER').map(shell)[0] as string;
      const [uid, gid] = user.split(':');
      const creates = ofKind(runtime, 'RUN').map(shell).join('\n');
      expect(creates, runtime.name ?? '').toContain(`install -d -o ${uid} -g ${gid} -m 0750 ${volume}`);
      // Nothing else in the image is the user's: the application tree is copied as root.
      expect(ofKind(runtime, 'COPY').map(shell).some((c) => c.includes('--chown'))).toBe(false);
    }
  });

  it('both runtime images start the same way: environment, user, workdir, entrypoint', () => {
    const startup = (s: Stage) => ({
      env: [...envOf(s)],
      user: ofKind(s, 'USER').map(shell),
      workdir: ofKind(s, 'WORKDIR').map(shell),
      entrypoint: ofKind(s, 'ENTRYPOINT').map(execForm),
    });
    expect(startup(stage('gpu'))).toEqual(startup(stage('cpu')));
  });

  it('labels both runtime images with the OCI annotations, version and description following package.json', () => {
    expect(argDefaults.get('VERSION')).toBe(packageJson.version);
    const globals = dockerfile.getInitialARGs().map((a) => a.getProperty()?.getName());
    for (const arg of ['REVISION', 'VERSION', 'CREATED', 'SOURCE']) expect(globals, arg).toContain(arg);
    const titles = new Set<string>();
    for (const runtime of runtimeStages) {
      const labels = ofKind(runtime, 'LABEL');
      expect(labels, runtime.name ?? '').toHaveLength(1);
      const values = new Map((labels[0] as PropertyInstruction).getProperties().map((p) => [p.getName(), p.getValue() ?? '']));
      const oci = (key: string) => values.get(`org.opencontainers.image.${key}`);
      expect(oci('title'), runtime.name ?? '').toMatch(/^Sentinel\b/);
      titles.add(oci('title') as string);
      expect(oci('description')).toBe(packageJson.description);
      expect(oci('licenses')).toBe(packageJson.license);
      expect(oci('version')).toBe('${VERSION}');
      expect(oci('revision')).toBe('${REVISION}');
      expect(oci('created')).toBe('${CREATED}');
      expect(oci('source')).toBe('${SOURCE}');
      // A build arg reaches LABEL only when the stage declares it, and before the LABEL.
      const labelAt = runtime.instructions.indexOf(labels[0] as Instruction);
      const declared = runtime.instructions.slice(0, labelAt).filter((i) => i.getKeyword() === 'ARG').map(shell);
      for (const arg of ['REVISION', 'VERSION', 'CREATED', 'SOURCE']) expect(declared, `${runtime.name}: ARG ${arg}`).toContain(arg);
    }
    expect(titles.size).toBe(2);
  });

  describe('HEALTHCHECK', () => {
    const probes = new ProbeServer(new Registry(), () => ({ ready: true, detail: {} }), { host: '127.0.0.1', port: 0, maxConnections: 64, maxConnectionsPerClient: 8, headersTimeoutMs: 5_000, requestTimeoutMs: 10_000 });
    let port = 0;
    beforeAll(async () => {
      await probes.start();
      port = probes.port;
    });
    afterAll(() => probes.stop());

    const command = (runtime: Stage): string[] => {
      const checks = ofKind(runtime, 'HEALTHCHECK');
      expect(checks, runtime.name ?? '').toHaveLength(1);
      const check = shell(checks[0] as Instruction);
      expect(check).toMatch(/--interval=\d+s/);
      expect(check).toMatch(/--start-period=\d+s/);
      expect(check).toMatch(/\bCMD \[/);
      return execForm(checks[0] as Instruction);
    };

    it('probes /healthz with node itself (no curl in slim images), same command in both images', () => {
      const cpu = command(stage('cpu'));
      expect(command(stage('gpu'))).toEqual(cpu);
      expect(cpu.slice(0, 2)).toEqual(['node', '-e']);
      expect(cpu[2]).toContain("'/healthz'");
    });

    /** Async: the probe server lives in this process, so a blocking spawn would starve it. */
    const exitCode = (cmd: string, args: string[], httpPort: number): Promise<number | null> =>
      new Promise((resolve, reject) => {
        const child = spawn(cmd, args, { env: { ...process.env, SENTINEL_HTTP_PORT: String(httpPort) }, stdio: 'ignore', timeout: 10_000 });
        child.once('error', reject);
        child.once('exit', (code) => resolve(code));
      });

    it('exits 0 against a live probe server and 1 when nothing listens', async () => {
      const [cmd, ...args] = command(stage('cpu')) as [string, ...string[]];
      expect(await exitCode(cmd, args, port)).toBe(0);
      expect(await exitCode(cmd, args, 1)).toBe(1);
    });
  });
});

describe('scripts/pin-base-images.sh', () => {
  const script = join(repoRoot, 'scripts/pin-base-images.sh');
  /** The fake registries' answer for a reference. */
  const digest = (ref: string) => `sha256:${createHash('sha256').update(ref).digest('hex')}`;
  const fakes = mkdtempSync(join(tmpdir(), 'sentinel-pin-'));
  const crane = join(fakes, 'crane-bin');
  const docker = join(fakes, 'docker-bin');
  const answer = 'printf "%s" "$ref" | sha256sum | cut -d" " -f1';
  mkdirSync(crane);
  mkdirSync(docker);
  writeFileSync(join(crane, 'crane'), `#!/bin/sh\n[ "$1" = digest ] || exit 2\nref=$2\nprintf 'sha256:%s\\n' "$(${answer})"\n`);
  writeFileSync(
    join(docker, 'docker'),
    `#!/bin/sh\n[ "$1" = buildx ] || exit 2\n[ "$2" = version ] && exit 0\nfor ref; do :; done\nprintf '{"mediaType":"application/vnd.oci.image.index.v1+json","digest":"sha256:%s","size":1}\\n' "$(${answer})"\n`,
  );
  chmodSync(join(crane, 'crane'), 0o755);
  chmodSync(join(docker, 'docker'), 0o755);
  afterAll(() => rmSync(fakes, { recursive: true, force: true }));

  const copy = (name: string, content = text): string => {
    const path = join(fakes, name);
    writeFileSync(path, content);
    return path;
  };
  const pin = (bin: string, ...args: string[]) => spawnSync('bash', [script, ...args], { env: { ...process.env, PATH: `${bin}:/usr/bin:/bin` }, encoding: 'utf8' });
  const imageArgs = (path: string) =>
    new Map(DockerfileParser.parse(readFileSync(path, 'utf8')).getInitialARGs().map((a) => [a.getProperty()?.getName(), a.getProperty()?.getValue()]));

  it('rewrites each *_IMAGE build arg to name:tag@sha256:<digest> and nothing else; a pinned one is re-pinned by its tag', () => {
    for (const bin of [crane, docker]) {
      const path = copy('Dockerfile');
      const result = pin(bin, path);
      expect(result.status, result.stderr).toBe(0);
      const before = imageArgs(join(repoRoot, 'Dockerfile'));
      const after = imageArgs(path);
      for (const name of ['NODE_IMAGE', 'CUDA_IMAGE']) {
        const ref = (before.get(name) as string).split('@')[0] as string;
        expect(after.get(name), `${bin}: ${name}`).toBe(`${ref}@${digest(ref)}`);
      }
      const changed = readFileSync(path, 'utf8').split('\n').filter((line, i) => line !== text.split('\n')[i]);
      // The fake digests differ from any real pin, so exactly the two ARG lines change.
      expect(changed.map((line) => line.split('=')[0]), bin).toEqual(['ARG NODE_IMAGE', 'ARG CUDA_IMAGE']);
      // Pinned again (a tag bump keeps the old digest's place): the digest follows the tag.
      writeFileSync(path, readFileSync(path, 'utf8').replace(/^ARG NODE_IMAGE=([^@\n]+)@sha256:[0-9a-f]{64}$/m, `ARG NODE_IMAGE=$1@${digest('stale')}`));
      expect(pin(bin, path).status).toBe(0);
      expect(imageArgs(path)).toEqual(after);
    }
  });

  it('--check changes nothing and fails while an image has no digest', () => {
    const content = text.replace(/^(ARG \w+_IMAGE=[^@\n]+)@sha256:[0-9a-f]{64}$/gm, '$1');
    const unpinned = copy('Dockerfile.unpinned', content);
    const check = pin(crane, '--check', unpinned);
    expect(check.status).toBe(1);
    expect(check.stderr).toMatch(/NODE_IMAGE=.* is not pinned/);
    expect(check.stderr).toContain('fix: run scripts/pin-base-images.sh');
    expect(readFileSync(unpinned, 'utf8')).toBe(content);
    expect(pin(crane, unpinned).status).toBe(0);
    expect(pin(crane, '--check', unpinned).status).toBe(0);
  });

  it('refuses an image arg it cannot resolve literally, and a registry answer that is not a digest', () => {
    const templated = copy('Dockerfile.templated', text.replace(/^ARG NODE_IMAGE=.*$/m, 'ARG NODE_IMAGE=node:${NODE_VERSION}-trixie-slim'));
    const result = pin(crane, templated);
    expect(result.status).toBe(2);
    expect(result.stderr).toContain('write the image as a literal name:tag');
    const refusing = join(fakes, 'refusing-bin');
    mkdirSync(refusing);
    writeFileSync(join(refusing, 'crane'), '#!/bin/sh\necho "UNAUTHORIZED: authentication required"\n', { mode: 0o755 });
    const deniedPath = copy('Dockerfile.denied');
    const denied = pin(refusing, deniedPath);
    expect(denied.status).not.toBe(0);
    expect(denied.stderr).toContain('not a sha256 digest');
    expect(readFileSync(deniedPath, 'utf8')).toBe(text);
  });
});

/** Docker's .dockerignore semantics for the patterns used here: last match wins, a directory match covers its contents. */
function ignored(patterns: string[], path: string): boolean {
  const toRegex = (glob: string): RegExp =>
    new RegExp(
      `^${glob
        .replace(/\/$/, '')
        .replace(/[.+^${}()|[\]\\]/g, '\\$&')
        .replace(/\*\*/g, '\0')
        .replace(/\*/g, '[^/]*')
        .replace(/\?/g, '[^/]')
        .replace(/\0/g, '.*')}$`,
    );
  const prefixes = path.split('/').map((_, i, parts) => parts.slice(0, i + 1).join('/'));
  let result = false;
  for (const raw of patterns) {
    const negated = raw.startsWith('!');
    const re = toRegex(negated ? raw.slice(1) : raw);
    if (prefixes.some((p) => re.test(p))) result = !negated;
  }
  return result;
}

describe('.dockerignore', () => {
  const patterns = readFileSync(join(repoRoot, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));

  it('lets in every file the Dockerfile copies from the context', () => {
    const sources = stages.flatMap((s) =>
      ofKind(s, 'COPY')
        .map(shell)
        .filter((c) => !c.startsWith('--from'))
        .flatMap((c) => c.split(/\s+/).filter((w) => !w.startsWith('--')).slice(0, -1)),
    );
    expect(sources.length).toBeGreaterThan(5);
    for (const source of sources) {
      expect(existsSync(join(repoRoot, source)), source).toBe(true);
      expect(ignored(patterns, source.replace(/\/$/, '')), source).toBe(false);
    }
    expect(ignored(patterns, 'src/cli/main.ts')).toBe(false);
  });

  it('keeps the context small: no node_modules, build output, tests, git or secrets', () => {
    for (const path of ['node_modules/onnxruntime-node/package.json', 'dist/cli/main.js', 'test/support/deploy.ts', '.git/HEAD', 'k8s/base/daemonset.yaml', 'bench/x.ts', '.env', 'models/README.md', 'scripts/pin-base-images.sh', 'docs/image.md']) {
      expect(ignored(patterns, path), path).toBe(true);
    }
  });
});
