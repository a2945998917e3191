/**
 * The image's revision: the Dockerfile's REVISION build arg reaches dist/REVISION (its RUN line executed
 * here for real) and the OCI label, and the built CLI laid out as in the image reports it.
 */
import { spawnSync } from 'node:child_process';
import { cpSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DockerfileParser, type Instruction } from 'dockerfile-ast';
import { afterAll, describe, expect, it } from 'vitest';
import { CLI } from '../support/cli.js';
import { repoRoot } from '../support/deploy.js';

const dockerfile = DockerfileParser.parse(readFileSync(join(repoRoot, 'Dockerfile'), 'utf8'));
const packageVersion = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version;

/** Each stage's name and instructions, in order. */
const stages: Array<{ name: string | null; instructions: Instruction[] }> = [];
for (const instruction of dockerfile.getInstructions()) {
  if (instruction.getKeyword() === 'FROM') {
    const from = dockerfile.getFROMs().find((f) => f.getRange().start.line === instruction.getRange().start.line);
    stages.push({ name: from?.getBuildStage() ?? null, instructions: [] });
  } else {
    stages[stages.length - 1]?.instructions.push(instruction);
  }
}
const stage = (name: string) => stages.find((s) => s.name === name) ?? { name, instructions: [] };
const args = (i: Instruction): string => (i.getRawArgumentsContent() ?? '').replace(/\\\r?\n/g, ' ');
const index = (s: { instructions: Instruction[] }, keyword: string, match: RegExp): number =>
  s.instructions.findIndex((i) => i.getKeyword() === keyword && match.test(args(i)));

const dirs: string[] = [];
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

/** The image's /app: package.json, dist/ and node_modules beside each other, with the build stage's REVISION line run in it. */
function imageLayout(revision: string | undefined): string {
  const app = mkdtempSync(join(tmpdir(), 'sentinel-app-'));
  dirs.push(app);
  cpSync(join(repoRoot, 'dist'), join(app, 'dist'), { recursive: true });
  rmSync(join(app, 'dist/REVISION'), { force: true });
  cpSync(join(repoRoot, 'package.json'), join(app, 'package.json'));
  symlinkSync(join(repoRoot, 'node_modules'), join(app, 'node_modules'));
  const build = stage('build');
  const line = build.instructions[index(build, 'RUN', /\bREVISION\b/)];
  // Docker passes a build arg to RUN as an environment variable; the build stage's WORKDIR holds dist/.
  const env: NodeJS.ProcessEnv = { ...process.env };
  if (revision === undefined) delete env.REVISION;
  else env.REVISION = revision;
  const result = spawnSync('sh', ['-c', args(line as Instruction)], { cwd: app, env, encoding: 'utf8' });
  expect(result.status, result.stderr).toBe(0);
  return app;
}

describe('the image revision', () => {
  it('REVISION is a global build arg (default "unknown"), declared in the build stage after the compile, and labelled on both runtime images', () => {
    const global = dockerfile.getInitialARGs().map((a) => a.getProperty()).find((p) => p?.getName() === 'REVISION');
    expect(global?.getValue()).toBe('unknown');
    const build = stage('build');
    const declared = index(build, 'ARG', /^REVISION$/);
    const written = index(build, 'RUN', /\bREVISION\b/);
    expect(declared).toBeGreaterThan(index(build, 'RUN', /npm run build/));
    expect(written).toBeGreaterThan(declared);
    expect(args(build.instructions[written] as Instruction)).toMatch(/"\$\{REVISION\}" > dist\/REVISION/);
    for (const runtime of ['cpu', 'gpu'].map(stage)) {
      const label = index(runtime, 'LABEL', /org\.opencontainers\.image\.revision="\$\{REVISION\}"/);
      expect(label, runtime.name ?? '').toBeGreaterThan(index(runtime, 'ARG', /^REVISION$/));
      expect(index(runtime, 'ARG', /^REVISION$/), runtime.name ?? '').toBeGreaterThanOrEqual(0);
      expect(args(runtime.instructions[label] as Instruction)).toContain('org.opencontainers.image.licenses="Apache-2.0"');
    }
  });

  it('the built CLI in the image layout reports the revision the build was given, with no git at hand', () => {
    expect(existsSync(join(repoRoot, CLI)), `${CLI}: run npm run build first`).toBe(true);
    const app = imageLayout('3f2c1ab9e0d4');
    expect(readFileSync(join(app, 'dist/REVISION'), 'utf8')).toBe('3f2c1ab9e0d4\n');
    const result = spawnSync(process.execPath, [join(app, CLI), '--version'], { cwd: mkdtempSync(join(tmpdir(), 'sentinel-cwd-')), encoding: 'utf8', env: { ...process.env, PATH: '' } });
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toMatch(new RegExp(`^sentinel ${packageVersion.replace(/\./g, '\\.')} \\(revision 3f2c1ab9e0d4, onnxruntime-node \\d+\\.\\d+\\.\\d+\\)\\n$`));
  });

  it('a build given no revision, or an unusable one, reports "unknown"', () => {
    for (const revision of [undefined, '', 'not a revision; rm -rf /']) {
      const app = imageLayout(revision);
      const result = spawnSync(process.execPath, [join(app, CLI), '-V'], { encoding: 'utf8' });
      expect(result.stdout, String(revision)).toContain('(revision unknown,');
    }
  });
});
