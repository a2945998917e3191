/**
 * The Dockerfile, checked without a Docker engine: parsed with dockerfile-ast for the image rules, and
 * its shell snippets (binary pruning, HEALTHCHECK) run here for real.
 */
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerfileParser, ModifiableInstruction, type Instruction } from 'dockerfile-ast';
import { Registry } from 'prom-client';
import { parse as parseYaml } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ProbeServer } from '../../src/observe/probe-server.js';
import { repoRoot } from '../support/deploy.js';

const text = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
const dockerfile = DockerfileParser.parse(text);
const packageJson = JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { bin: Record<string, string> };

interface Stage {
  name: string | null;
  /** The base image with build args expanded to their defaults. */
  base: string;
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
    stages.push({ name: from.getBuildStage(), base: expand(from.getImage() ?? ''), instructions: [] });
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
    expect(stage('node').base).toMatch(/^node:24\.\d+\.\d+-(bookworm|trixie)-slim$/);
    expect(stage('gpu').base).toMatch(/^nvidia\/cuda:12\.\d+\.\d+-cudnn-runtime-ubuntu\d+\.\d+$/);
    expect(text).not.toMatch(/\blatest\b/);
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
    const dir = mkdtempSync(join(tmpdir(), 'sentinel-prune-'));
    try {
      const bin = join(dir, 'node_modules/onnxruntime-node/bin/napi-v6');
      const platforms = ['darwin/arm64', 'linux/arm64', 'linux/x64', 'win32/arm64', 'win32/x64'];
      for (const p of platforms) {
        mkdirSync(join(bin, p), { recursive: true });
        writeFileSync(join(bin, p, 'onnxruntime_binding.node'), '');
      }
      const result = spawnSync('sh', ['-c', prune as string], { cwd: dir, encoding: 'utf8' });
      expect(result.status, result.stderr).toBe(0);
      const kept = readdirSync(bin).flatMap((os) => readdirSync(join(bin, os)).map((arch) => `${os}/${arch}`));
      expect(kept).toEqual([`${process.platform}/${process.arch}`]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
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

  describe('HEALTHCHECK', () => {
    const probes = new ProbeServer(new Registry(), () => ({ ready: true, detail: {} }), { maxConnections: 64, maxConnectionsPerClient: 8, headersTimeoutMs: 5_000, requestTimeoutMs: 10_000 });
    let port = 0;
    beforeAll(async () => {
      port = await probes.start('127.0.0.1', 0);
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
    for (const path of ['node_modules/onnxruntime-node/package.json', 'dist/cli/main.js', 'test/support/deploy.ts', '.git/HEAD', 'k8s/base/daemonset.yaml', 'bench/x.ts', '.env', 'models/README.md']) {
      expect(ignored(patterns, path), path).toBe(true);
    }
  });
});
