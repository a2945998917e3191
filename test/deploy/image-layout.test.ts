/**
 * The CPU image as it starts, without a Docker engine: the built dist/ laid out as the Dockerfile's COPY
 * lines lay it out (root-owned /app, the volume directory its RUN line creates for uid 10001) and run
 * with the runtime stage's ENV, WORKDIR, USER and ENTRYPOINT as parsed from the Dockerfile, with no
 * config but the image's own. The image paths are made real in a private mount namespace (an overlay of
 * / with the layout bind-mounted at /app and /var/lib/sentinel), entered with chroot and setpriv, so
 * this needs root; the host sees none of it.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, chownSync, cpSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { dirname, join, posix } from 'node:path';
import { DockerfileParser, ModifiableInstruction, PropertyInstruction, type Instruction } from 'dockerfile-ast';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { captureCli, CLI, type CliProcess } from '../support/cli.js';
import { repoRoot } from '../support/deploy.js';
import { eventually, getText } from '../support/http.js';
import { freePort, sleep } from '../support/proc.js';

const isRoot = process.getuid?.() === 0;

const dockerfile = DockerfileParser.parse(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
const stages = new Map<string, Instruction[]>();
let current: Instruction[] = [];
for (const instruction of dockerfile.getInstructions()) {
  if (instruction.getKeyword() === 'FROM') {
    const from = dockerfile.getFROMs().find((f) => f.getRange().start.line === instruction.getRange().start.line);
    current = [];
    stages.set(from?.getBuildStage() ?? '', current);
  } else {
    current.push(instruction);
  }
}
const ofKind = (stage: string, keyword: string): Instruction[] => (stages.get(stage) ?? []).filter((i) => i.getKeyword() === keyword);
const args = (i: Instruction): string => (i.getRawArgumentsContent() ?? '').replace(/\\\r?\n/g, ' ');
const fromFlag = (i: Instruction): string | undefined =>
  i instanceof ModifiableInstruction ? i.getFlags().find((f) => f.getName() === 'from')?.getValue() ?? undefined : undefined;
/** COPY sources and destination, without flags. */
const copyPaths = (i: Instruction): { sources: string[]; dest: string } => {
  const words = args(i).split(/\s+/).filter((w) => w !== '' && !w.startsWith('--'));
  return { sources: words.slice(0, -1), dest: words[words.length - 1] as string };
};

/** What `docker run image` starts with, read from the runtime stage. */
interface RuntimeSpec {
  env: Record<string, string>;
  workdir: string;
  uid: number;
  gid: number;
  entrypoint: string[];
  /** The directory the stage's RUN line creates for the user (the volume), with its owner and mode. */
  volume: { path: string; uid: number; gid: number; mode: number };
}

function runtimeSpec(stage: string): RuntimeSpec {
  const env: Record<string, string> = {};
  for (const instruction of ofKind(stage, 'ENV')) {
    for (const property of (instruction as PropertyInstruction).getProperties()) env[property.getName()] = property.getValue() ?? '';
  }
  const [user] = ofKind(stage, 'USER').map(args);
  const ids = /^(\d+):(\d+)$/.exec(user ?? '');
  if (!ids) throw new Error(`USER ${user}: expected numeric uid:gid`);
  const [workdir] = ofKind(stage, 'WORKDIR').map(args);
  const [entrypoint] = ofKind(stage, 'ENTRYPOINT').map(args);
  const install = ofKind(stage, 'RUN')
    .map(args)
    .map((r) => /\binstall -d -o (\d+) -g (\d+) -m ([0-7]+) (\/\S+)/.exec(r))
    .find((m) => m !== null);
  if (!install) throw new Error(`stage ${stage}: no \`install -d -o UID -g GID -m MODE DIR\` creates the volume directory`);
  return {
    env,
    workdir: workdir as string,
    uid: Number(ids[1]),
    gid: Number(ids[2]),
    entrypoint: JSON.parse(entrypoint as string) as string[],
    volume: { path: install[4] as string, uid: Number(install[1]), gid: Number(install[2]), mode: parseInt(install[3] as string, 8) },
  };
}

/**
 * Runs `command` chrooted into an overlay of the host's / on which each [source, image path] pair is
 * bind-mounted, inside a private mount namespace (nothing leaks to the host; it ends with the process).
 * The command replaces the shell, so the child's pid is the daemon's.
 */
const ENTER = `set -eu
root=$1; shift
mount -t tmpfs -o mode=0755 tmpfs "$root"
mkdir "$root/upper" "$root/work" "$root/merged"
mount -t overlay overlay -o "lowerdir=/,upperdir=$root/upper,workdir=$root/work" "$root/merged"
for dir in proc sys dev; do mount --rbind "/$dir" "$root/merged/$dir"; done
while [ "$1" != -- ]; do mkdir -p "$root/merged$2"; mount --bind "$1" "$root/merged$2"; shift 2; done
shift
exec chroot "$root/merged" "$@"`;

describe.skipIf(!isRoot)('the image layout run as its unprivileged user (needs root: mount namespace, chroot, setpriv)', () => {
  const spec = runtimeSpec('cpu');
  let dir = '';
  /** The image's root directory as laid out here: app/… and the volume directory. */
  let image = '';
  let daemon: (CliProcess & { startedAt: number }) | null = null;
  let server: Server | null = null;

  beforeAll(() => {
    expect(existsSync(join(repoRoot, CLI)), `${CLI}: run npm run build first`).toBe(true);
    for (const tool of ['unshare', 'mount', 'chroot', 'setpriv', 'env']) {
      expect(spawnSync('sh', ['-c', `command -v ${tool}`]).status, `${tool} is needed to run the image layout`).toBe(0);
    }
    dir = mkdtempSync(join(tmpdir(), 'sentinel-image-'));
    image = join(dir, 'image');
    // The app stage: every COPY, from the build context or the build stage's output (its WORKDIR is the repo root here).
    const buildWorkdir = ofKind('build', 'WORKDIR').map(args)[0] as string;
    for (const copy of ofKind('app', 'COPY')) {
      const { sources, dest } = copyPaths(copy);
      for (const source of sources) {
        const from = fromFlag(copy) === 'build' ? join(repoRoot, posix.relative(buildWorkdir, source)) : join(repoRoot, source);
        const target = join(image, dest.endsWith('/') ? posix.join(dest, posix.basename(source)) : dest);
        mkdirSync(dirname(target), { recursive: true, mode: 0o755 });
        cpSync(from, target, { recursive: true });
      }
    }
    rmSync(join(image, 'app/dist/REVISION'), { force: true });
    const runtimeCopies = ofKind('cpu', 'COPY').map((c) => `${fromFlag(c) ?? ''} ${args(c)}`);
    expect(runtimeCopies).toContain('app /app /app');
    expect(runtimeCopies).toContain('prod-deps /app/node_modules /app/node_modules');
    mkdirSync(join(image, 'app/node_modules'), { mode: 0o755 });
    const volume = join(image, spec.volume.path);
    mkdirSync(volume, { recursive: true, mode: 0o755 });
    chownSync(volume, spec.volume.uid, spec.volume.gid);
    chmodSync(volume, spec.volume.mode);
  });

  afterEach(async () => {
    if (daemon !== null && daemon.child.exitCode === null && daemon.child.signalCode === null) {
      daemon.child.kill('SIGKILL');
      await daemon.exited;
    }
    daemon = null;
    await new Promise<void>((resolve) => (server === null ? resolve() : server.close(() => resolve())));
    server = null;
    for (const name of readdirSync(join(image, spec.volume.path))) rmSync(join(image, spec.volume.path, name), { force: true });
  });

  afterAll(() => {
    if (dir !== '') rmSync(dir, { recursive: true, force: true });
  });

  /**
   * Starts the entrypoint as the image's USER in its WORKDIR with the image's environment only (plus
   * what Docker itself provides). The host's network is shared, so the two listening ports are moved
   * off 9464 and 1883 (a CI broker may hold 1883), as `docker run -p` would map them.
   */
  async function start(extraEnv: Record<string, string>, drop: string[] = []): Promise<{ httpPort: number }> {
    const httpPort = await freePort();
    const env: Record<string, string> = {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/nonexistent',
      ...spec.env,
      SENTINEL_HTTP_PORT: String(httpPort),
      SENTINEL_BROKER__EMBEDDED__PORT: String(await freePort()),
      ...extraEnv,
    };
    for (const name of drop) delete env[name];
    const mounts = [join(image, 'app'), '/app', join(repoRoot, 'node_modules'), '/app/node_modules', join(image, spec.volume.path), spec.volume.path];
    const command = ['setpriv', `--reuid=${spec.uid}`, `--regid=${spec.gid}`, '--clear-groups', 'env', '-C', spec.workdir, '--', ...spec.entrypoint];
    mkdirSync(join(dir, 'root'), { recursive: true });
    const child: ChildProcess = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', '-c', ENTER, 'enter', join(dir, 'root'), ...mounts, '--', ...command], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    daemon = { ...captureCli(child), startedAt: Date.now() };
    return { httpPort };
  }

  const status = async (port: number, path: string): Promise<number> => {
    try {
      return (await getText(port, path)).status;
    } catch {
      return 0;
    }
  };
  const output = (): string => `${daemon?.stdout() ?? ''}${daemon?.stderr() ?? ''}`;
  const alive = (): boolean => daemon !== null && daemon.child.exitCode === null && daemon.child.signalCode === null;
  const proc = (field: string): string => new RegExp(`^${field}:\\s*(.*)$`, 'm').exec(readFileSync(`/proc/${daemon?.child.pid}/status`, 'utf8'))?.[1] ?? '';

  async function expectStarted(httpPort: number): Promise<void> {
    await eventually(async () => (await status(httpPort, '/healthz')) === 200 || !alive(), '/healthz 200', 20_000);
    expect(alive(), output()).toBe(true);
    await eventually(async () => (await status(httpPort, '/startupz')) === 200 || !alive(), '/startupz 200 (model loaded)', 20_000);
    expect(alive(), output()).toBe(true);
    // The user the image names, with no capabilities left, as Docker runs a numeric USER.
    expect(proc('Uid').split(/\s+/)).toEqual(Array(4).fill(String(spec.uid)));
    expect(proc('Gid').split(/\s+/)).toEqual(Array(4).fill(String(spec.gid)));
    expect(proc('CapEff')).toMatch(/^0+$/);
  }

  async function stopGracefully(): Promise<void> {
    daemon?.child.kill('SIGTERM');
    expect(await daemon?.exited, output()).toBe(0);
  }

  it('starts with no config and no environment: probes answer, the outbox is created in the volume, no EACCES', async () => {
    const outbox = spec.env.SENTINEL_OUTBOX__PATH;
    expect(outbox, 'the runtime stage sets SENTINEL_OUTBOX__PATH').toBeDefined();
    expect(posix.dirname(outbox as string)).toBe(spec.volume.path);
    const { httpPort } = await start({});
    await expectStarted(httpPort);
    // The image's config has no broker.url: the embedded broker, so the daemon becomes ready on its own.
    await eventually(async () => (await status(httpPort, '/readyz')) === 200 || !alive(), '/readyz 200', 20_000);
    const readiness = JSON.parse((await getText(httpPort, '/readyz')).body) as { outbox?: unknown };
    expect(readiness.outbox).toBe('ok');
    // The journal is written (compacted: temp file, fsync, rename) when the outbox opens at start.
    const journal = join(image, outbox as string);
    expect(existsSync(journal), output()).toBe(true);
    expect(statSync(journal).uid).toBe(spec.uid);
    await sleep(1_000);
    expect(alive(), output()).toBe(true);
    expect(output()).not.toMatch(/EACCES|EPERM|permission denied|startup failed/i);
    expect(readdirSync(join(image, 'app')).sort()).toEqual(['config', 'dist', 'models', 'node_modules', 'package.json']);
    await stopGracefully();
    expect(existsSync(journal)).toBe(true);
  });

  it('with its broker unreachable it stays up and keeps reconnecting', async () => {
    // A broker that drops every connection: each attempt is counted here, whatever the daemon logs.
    let attempts = 0;
    server = createServer((socket) => {
      attempts++;
      socket.destroy();
    });
    const brokerPort = await freePort();
    await new Promise<void>((resolve) => server?.listen(brokerPort, '127.0.0.1', resolve));
    const { httpPort } = await start({ SENTINEL_BROKER_URL: `mqtt://127.0.0.1:${brokerPort}` });
    await expectStarted(httpPort);
    await eventually(async () => attempts >= 3 || !alive(), 'three connection attempts', 15_000);
    expect(alive(), output()).toBe(true);
    expect(await status(httpPort, '/healthz')).toBe(200);
    expect(await status(httpPort, '/readyz')).toBe(503);
    expect(existsSync(join(image, spec.env.SENTINEL_OUTBOX__PATH as string))).toBe(true);
    expect(output()).not.toMatch(/EACCES|EPERM|permission denied|startup failed/i);
    await stopGracefully();
  });

  it('the same layout without the image’s outbox variable fails on EACCES, as the image did (the check above has teeth)', async () => {
    await start({}, ['SENTINEL_OUTBOX__PATH']);
    await eventually(async () => /EACCES/.test(output()) || !alive(), 'the EACCES startup failure', 20_000);
    const failure = daemon?.logs().find((l) => l.msg === 'startup failed');
    expect(failure?.err, output()).toMatch(/^outbox\.path \.sentinel\/outbox\.jsonl: EACCES/);
  });
});
